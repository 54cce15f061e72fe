"""One small run of each benchmark workload through the real command against a real server (no speed asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


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
def test_workload_reports_its_figures_as_json(workload: str, dev_server: str) -> None:
    records = 50 if workload == "e2e" else 3_000
    partitions = "1" if workload == "e2e" else "2"
    figures = bench(
        workload,
        dev_server,
        *("--records", str(records), "--record-size", "64", "--warmup-records", "20"),
        *("--partitions", partitions, "--topic", f"bench-{workload}"),
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


def test_consume_reuses_what_produce_left_in_the_topic(dev_server: str) -> None:
    bench("produce", dev_server, "--records", "2000", "--warmup-records", "0", "--topic", "shared")
    figures = bench("consume", dev_server, "--records", "1500", "--warmup-records", "500", "--topic", "shared")
    assert figures["records"] == 1500
