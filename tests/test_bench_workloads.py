"""One small run of each benchmark workload through the real command against a real server (no speed asserted), and
of --repeat, --plot, --duration and --clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftkafka.aio import AsyncAdmin, AsyncConsumer, AsyncProducer
from raftkafka.bench.e2e import round_trips
from raftkafka.bench.progress import Progress
from raftkafka.errors import InvalidConfigError
from raftkafka.structs import TopicPartition
from tests.processes import DevServer


def bench(workload: str, bootstrap: str, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", workload, "--bootstrap", bootstrap, "--json", *args],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stderr == b""  # no progress in --json mode
    return json.loads(result.stdout)


@pytest.mark.parametrize("workload", ["produce", "consume", "e2e"])
def test_workload_reports_its_figures_as_json(workload: str, dev_process: DevServer) -> None:
    records = 50 if workload == "e2e" else 3_000
    partitions = "1" if workload == "e2e" else "2"
    assert dev_process.proc is not None
    server_pid = dev_process.proc.pid
    figures = bench(
        workload,
        dev_process.bootstrap,
        *("--records", str(records), "--record-size", "64", "--warmup-records", "20"),
        *("--partitions", partitions, "--topic", f"bench-{workload}", "--pid", str(server_pid)),
    )
    assert figures["workload"] == workload
    assert figures["records"] == records and figures["bytes"] == records * 64
    assert figures["records_per_s"] > 0 and figures["mb_per_s"] > 0
    latency = figures["latency_ms"]
    if workload == "consume":
        assert latency is None
    else:
        assert isinstance(latency, dict)
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["p999_ms"] <= latency["max_ms"]
    assert figures["settings"]["topic"] == f"bench-{workload}"
    cpu = {process["process"]: process for process in figures["cpu"]}  # type: ignore[union-attr]
    assert set(cpu) == {"client", f"pid {server_pid}"} and cpu[f"pid {server_pid}"]["pid"] == server_pid
    assert cpu["client"]["cpu_s"] > 0 and cpu["client"]["cpu_us_per_record"] > 0
    assert cpu[f"pid {server_pid}"]["cpu_s"] >= 0 and cpu[f"pid {server_pid}"]["sleeps"] >= 0  # 10 ms ticks
    if workload == "e2e":  # measured against the machine's loopback round trip
        baseline = figures["baseline_round_trip_ms"]
        assert isinstance(baseline, dict) and isinstance(latency, dict) and baseline["p50_ms"] > 0
        ratio = figures["latency_vs_baseline"]["p50"]  # type: ignore[index]
        assert ratio == pytest.approx(latency["p50_ms"] / baseline["p50_ms"], rel=0.01, abs=0.01)
        assert "ceiling_records_per_s" not in figures
    else:  # measured against the machine's streaming ceiling
        assert "baseline_round_trip_ms" not in figures
        ceiling = figures["ceiling_records_per_s"]
        assert isinstance(ceiling, float) and ceiling > 0
        ratio = figures["throughput_vs_ceiling"]
        assert ratio == pytest.approx(figures["records_per_s"] / ceiling, rel=0.01)  # type: ignore[operator]


def test_consume_reuses_what_produce_left_in_the_topic(dev_server: str) -> None:
    bench("produce", dev_server, "--records", "2000", "--warmup-records", "0", "--topic", "shared")
    figures = bench("consume", dev_server, "--records", "1500", "--warmup-records", "500", "--topic", "shared")
    assert figures["records"] == 1500


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_repeat_gives_every_run_and_the_summary_and_plot_draws_them(dev_server: str, tmp_path: Path) -> None:
    plot = tmp_path / "produce.png"
    figures = bench(
        "produce", dev_server, "--records", "2000", "--warmup-records", "100", "--topic", "bench-repeat",
        "--repeat", "2", "--plot", str(plot),
    )  # fmt: skip
    assert figures["workload"] == "produce" and figures["repeat"] == 2
    runs = figures["runs"]
    assert isinstance(runs, list) and [run["records"] for run in runs] == [2000, 2000]
    summary = figures["summary"]
    assert isinstance(summary, dict)
    rates = sorted(run["records_per_s"] for run in runs)
    assert rates[0] <= summary["records_per_s"]["median"] <= rates[1]
    assert summary["records_per_s"]["min"] == pytest.approx(rates[0], abs=0.1)
    assert {"p50_ms", "p99_ms", "p999_ms", "mb_per_s", "vs_ceiling"} <= set(summary)
    assert plot.read_bytes().startswith(PNG_SIGNATURE)


def test_e2e_plot_and_a_consume_run_of_a_duration(dev_server: str, tmp_path: Path) -> None:
    plot = tmp_path / "e2e.png"
    e2e = bench("e2e", dev_server, "--records", "30", "--warmup-records", "5", "--topic", "bench-e2e-plot",
                "--plot", str(plot))  # fmt: skip
    assert e2e["records"] == 30 and plot.read_bytes().startswith(PNG_SIGNATURE)
    consume = bench("consume", dev_server, "--records", "500", "--warmup-records", "0", "--topic", "bench-duration",
                    "--duration", "0.5")  # fmt: skip
    settings = consume["settings"]
    assert isinstance(settings, dict) and settings["duration_s"] == 0.5
    assert consume["records"] > 0 and consume["seconds"] >= 0.5  # type: ignore[operator]


def test_produce_with_two_client_processes_sends_every_record(dev_server: str) -> None:
    figures = bench(
        "produce", dev_server, "--records", "3001", "--warmup-records", "100", "--clients", "2",
        "--topic", "bench-clients", "--partitions", "2",
    )  # fmt: skip
    assert figures["records"] == 3001 and figures["settings"]["clients"] == 2  # type: ignore[index]
    latency = figures["latency_ms"]
    assert isinstance(latency, dict) and latency["count"] > 0
    consumed = bench("consume", dev_server, "--records", "3101", "--warmup-records", "0", "--topic", "bench-clients")
    assert consumed["records"] == 3101  # the warm-up and the timed records all arrived (nothing had to be filled)


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path: Path) -> None:
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "matplotlib.py").write_text("raise ImportError('No module named matplotlib')\n")
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", "produce", "--plot", str(tmp_path / "p.png"), "--records", "1"],
        capture_output=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(stub)},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "error: --plot needs matplotlib, which is not installed: pip install 'raftkafka[plot]'"
    )
    assert not (tmp_path / "p.png").exists()


async def test_e2e_refuses_a_record_it_did_not_send(dev_server: str) -> None:
    """A round trip ends only on the record it sent: another producer's record fails the run."""
    async with AsyncAdmin(dev_server) as admin:
        await admin.create_topic("e2e-shared", partitions=1)
    async with AsyncProducer(dev_server, acks=1) as other, AsyncProducer(dev_server, acks=1, linger_ms=0) as producer:
        await (await other.send("e2e-shared", b"someone else's"))
        async with AsyncConsumer(bootstrap=dev_server) as consumer:
            consumer.assign([TopicPartition("e2e-shared", 0)])
            consumer.seek_to_beginning()
            with pytest.raises(InvalidConfigError, match="another producer writes to the topic"):
                await round_trips(producer, consumer, "e2e-shared", b"mine", 1, progress=Progress.silent())
