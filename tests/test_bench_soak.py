"""`raftkafka bench soak` and `raftkafka bench scaling`: short runs through the real command against real servers (no
speed asserted), and the soak's verdict from its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from raftkafka.bench.soak import ProcessMemory, SoakResult, SoakSettings, read_rss_kb
from tests.processes import DevServer


def bench(*args: str, as_json: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", *args, *(["--json"] if as_json else [])],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace") + result.stdout.decode(errors="replace")
    return result


def test_soak_on_its_own_dev_server_consumes_every_record_and_samples_the_server() -> None:
    result = bench("soak", "--cluster", "dev", "--duration", "4", "--warmup-s", "1", "--rate", "2000",
                   "--sample-s", "1", "--partitions", "3")  # fmt: skip
    assert result.stderr == b""  # no progress in --json mode
    soak: dict[str, Any] = json.loads(result.stdout)
    assert soak["workload"] == "soak" and soak["ok"] is True
    assert soak["produced"] > 0 and soak["consumed"] == soak["produced"]
    assert soak["failed"] == 0 and soak["out_of_order"] == 0 and soak["every_record_consumed"] is True
    assert soak["seconds"] >= 4
    [server] = soak["processes"]
    assert server["name"] == "dev 1" and server["alive"] is True
    assert server["samples"] == len(server["rss_mb"]) >= 5  # idle, start, every second, end
    assert 0 < server["start_mb"] <= server["max_mb"] and server["end_mb"] <= server["max_mb"]
    assert abs(server["growth_mb"] - (server["end_mb"] - server["start_mb"])) <= 0.15  # each rounded to 0.1 MB
    assert server["rss_mb"][0][0] < 0 <= server["rss_mb"][1][0]  # the idle sample, then the start sample
    assert soak["growth_below_limit"] is True
    assert soak["settings"]["rate"] == 2000 and soak["settings"]["growth_limit_mb"] == 50.0


def test_soak_on_bootstrap_watches_the_given_pid_and_prints_a_table(dev_process: DevServer) -> None:
    assert dev_process.proc is not None
    pid = dev_process.proc.pid
    result = bench("soak", "--bootstrap", dev_process.bootstrap, "--pid", str(pid), "--duration", "1.5",
                   "--warmup-s", "0", "--rate", "1000", "--sample-s", "0.5", as_json=False)  # fmt: skip
    table = result.stdout.decode()
    assert table.splitlines()[0].split()[:3] == ["process", "pid", "idle"]
    assert f"pid {pid}  {pid}" in table
    assert "every record consumed in order" in table and "soak: ok" in table
    assert "produced" in result.stderr.decode()  # progress lines


def test_soak_verdict_fails_on_a_lost_record_or_too_much_growth() -> None:
    settings = SoakSettings(bootstrap="127.0.0.1:1", growth_limit_mb=50.0)
    flat = ProcessMemory("dev 1", 1, [(-10.0, 40_000), (0.0, 45_000), (5.0, 46_000)])
    grown = ProcessMemory("dev 1", 1, [(0.0, 45_000), (5.0, 45_000 + 60 * 1024)])
    assert SoakResult(settings, 5.0, 100, 0, 100, 0, (flat,)).ok
    assert not SoakResult(settings, 5.0, 100, 0, 99, 0, (flat,)).ok
    assert not SoakResult(settings, 5.0, 100, 0, 100, 1, (flat,)).every_record_consumed
    assert not SoakResult(settings, 5.0, 100, 0, 100, 0, (grown,)).ok
    assert flat.figures(50.0)["growth_mb"] == round(1_000 / 1024, 1)
    gone = ProcessMemory("dev 1", 1, [(0.0, 45_000), (5.0, None)])
    assert not gone.figures(50.0)["ok"]


def test_read_rss_kb_of_this_process_and_of_none() -> None:
    rss = read_rss_kb(os.getpid())
    assert rss is not None and rss > 1_000
    assert read_rss_kb(2**22 + 12345) is None


def test_scaling_runs_each_point_and_reads_back_what_it_wrote(dev_server: str) -> None:
    result = bench("scaling", "--bootstrap", dev_server, "--sizes", "10,1000", "--partitions", "1,2",
                   "--max-records", "400", "--max-mb", "0.2")  # fmt: skip
    scaling: dict[str, Any] = json.loads(result.stdout)
    assert scaling["workload"] == "scaling"
    points = [(p["scan"], p["record_size"], p["partitions"]) for p in scaling["points"]]
    assert points == [("size", 10, 1), ("size", 1000, 1), ("partitions", 100, 1), ("partitions", 100, 2)]
    for point in scaling["points"]:
        expected = min(400, int(0.2 * 1024 * 1024) // point["record_size"])
        assert point["produce"]["records"] == point["consume"]["records"] == expected
        assert point["produce"]["records_per_s"] > 0 and point["consume"]["mb_per_s"] > 0
