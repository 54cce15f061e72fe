"""The CPU and sleeps a benchmark reports: readings of this process and of real child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from raftkafka.bench.cpu import CLIENT, CpuMeter, ProcessCpu, read_own, read_process, spent
from raftkafka.cli.bench import bench

WORKER = """
import sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
for line in sys.stdin:
    command, amount = line.split()
    if command == "burn":
        burn(float(amount))
    else:
        for _ in range(int(amount)):
            time.sleep(0.0005)
    print("done", flush=True)
"""


class Worker:
    """A child process that burns CPU or sleeps when told, and says when it has."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def do(self, command: str, amount: float) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{command} {amount}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def worker() -> Iterator[Worker]:
    child = Worker()
    try:
        yield child
    finally:
        child.close()


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_own_reading_counts_the_cpu_this_process_burns() -> None:
    before = read_own()
    burn(0.05)
    after = read_own()
    assert after.cpu_s - before.cpu_s >= 0.05


def test_a_process_reading_counts_its_cpu_and_its_sleeps(worker: Worker) -> None:
    before = read_process(worker.proc.pid)
    assert before is not None
    worker.do("burn", 0.3)
    worker.do("sleep", 100)
    after = read_process(worker.proc.pid)
    assert after is not None
    assert 0.25 <= after.cpu_s - before.cpu_s < 2  # clock ticks of 10 ms
    assert after.sleeps - before.sleeps >= 100


def test_a_gone_process_has_no_reading(worker: Worker) -> None:
    pid = worker.proc.pid
    worker.close()
    assert read_process(pid) is None
    assert spent("gone", pid, None, read_own()) is None


def test_the_meter_reports_the_client_and_the_servers_that_stayed(worker: Worker) -> None:
    other = Worker()
    meter = CpuMeter([("busy", worker.proc.pid), ("killed", other.proc.pid)])
    meter.start()
    worker.do("burn", 0.2)
    burn(0.05)
    other.close()
    processes = {process.name: process for process in meter.stop()}
    assert set(processes) == {CLIENT, "busy"}
    assert processes[CLIENT].pid == os.getpid() and processes[CLIENT].cpu_s >= 0.05
    assert processes["busy"].pid == worker.proc.pid and processes["busy"].cpu_s >= 0.15


def test_a_meter_that_was_not_started_refuses_to_stop() -> None:
    with pytest.raises(ValueError):
        CpuMeter().stop()


def test_figures_per_record() -> None:
    figures = ProcessCpu("broker 1", 42, 0.5, 100).as_dict(1000)
    assert figures == {
        "process": "broker 1", "pid": 42, "cpu_s": 0.5, "cpu_us_per_record": 500.0, "sleeps": 100,
        "sleeps_per_record": 0.1,
    }  # fmt: skip
    assert ProcessCpu("client", 1, 0.002, 5).brief(1000) == "client 2.00 µs, 0.005 sleeps"


def test_pid_with_an_own_cluster_is_a_usage_error() -> None:
    result = CliRunner().invoke(bench, ["e2e", "--cluster", "dev", "--pid", "1"])
    assert result.exit_code == 2 and "--pid is for --bootstrap" in result.output
