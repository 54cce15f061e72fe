"""``raftkafka bench failover --target controller|broker``: its pure parts, one real kill round of each target
parsed from --json, and cleanup of the cluster's processes on Ctrl-C. No speed is asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raftkafka.bench.broker_failover import partition_state
from raftkafka.bench.failover_result import FailoverResult, FailoverSettings, KillResult, summarize_failovers
from raftkafka.bench.local_cluster import planned_ports, port_is_free
from raftkafka.cli.cluster import plan_cluster
from raftkafka.errors import InvalidConfigError
from tests.cluster import wait_for, wait_own_cluster_gone
from tests.processes import processes_mentioning


def test_failover_times_are_summarized_by_nearest_rank() -> None:
    summary = summarize_failovers([0.3, 0.1, 0.2, 1.0])
    assert summary.count == 4
    assert summary.p50_s == 0.2 and summary.p99_s == 1.0 and summary.max_s == 1.0
    assert summary.mean_s == pytest.approx(0.4)
    with pytest.raises(ValueError):
        summarize_failovers([])


def test_settings_refuse_what_cannot_run() -> None:
    FailoverSettings().validate()
    FailoverSettings(target="broker", broker_session_timeout_ms=2000, broker_heartbeat_interval_ms=500).validate()
    for bad in (
        FailoverSettings(target="zookeeper"),
        FailoverSettings(broker_session_timeout_ms=0),
        FailoverSettings(broker_heartbeat_interval_ms=0),
        FailoverSettings(controllers=1),
        FailoverSettings(kills=0),
        FailoverSettings(idle_s=-1),
    ):
        with pytest.raises(InvalidConfigError):
            bad.validate()


def test_result_lists_every_kill() -> None:
    kills = (KillResult(1001, 1002, 0.25), KillResult(1002, 1003, 0.5))
    figures = FailoverResult(FailoverSettings(kills=2, idle_s=0), kills).as_dict()
    assert figures["workload"] == "failover" and figures["target"] == "controller"
    assert figures["kills"][1] == {"killed": 1002, "new_leader": 1003, "seconds": 0.5}
    assert figures["seconds"]["count"] == 2 and figures["seconds"]["max_s"] == 0.5


def test_broker_target_settings_and_result() -> None:
    settings = FailoverSettings(target="broker", kills=1, idle_s=0, broker_session_timeout_ms=2000)
    assert settings.brokers == 3 and FailoverSettings().brokers == 1
    assert settings.controller_args() == ["--broker-session-timeout-ms", "2000"]
    assert FailoverSettings().controller_args() == []
    result = FailoverResult(settings, (KillResult(1, 2, 8.5),))
    figures = result.as_dict()
    assert figures["target"] == "broker" and "acks=all" in figures["measured"]
    assert figures["settings"]["brokers"] == 3 and figures["settings"]["broker_session_timeout_ms"] == 2000
    assert "session timeout 2000 ms" in result.summary()


def test_partition_state_is_read_from_a_metadata_answer() -> None:
    answer = {
        "topics": [
            {"name": "other", "error": 0, "partitions": [[0, 3, 1, [3], [3]]]},
            {"name": "t", "error": 0, "partitions": [[1, 2, 0, [2, 3], [2]], [0, 1, 4, [1, 2, 3], [1, 3]]]},
        ]
    }
    assert partition_state(answer, "t") == (1, [1, 3])
    assert partition_state({"topics": [{"name": "t", "error": 3, "partitions": []}]}, "t") is None
    assert partition_state({}, "t") is None


def test_the_planned_cluster_binds_listeners_and_raft_ports(tmp_path: Path) -> None:
    plans = plan_cluster(3, 1, tmp_path, "127.0.0.1", 30000, tmp_path / "secret")
    assert sorted(planned_ports(plans)) == [30000, 30100, 30101, 30102, 30200, 30201, 30202]
    assert isinstance(port_is_free(30000), bool)


def bench_failover(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "raftkafka", "bench", "failover", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("target", "options", "nodes"),
    [
        ("controller", (), {1001, 1002, 1003}),
        # a short session timeout keeps the test quick; the default one is measured in bench/README.md
        ("broker", ("--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "500"), {1, 2, 3}),
    ],
)
def test_one_kill_round_reports_the_failover_and_cleans_up(
    tmp_path: Path, target: str, options: tuple[str, ...], nodes: set[int]
) -> None:
    proc = bench_failover(tmp_path, "--target", target, "--kills", "1", "--idle-s", "0", "--json", *options)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode(errors="replace")
    figures = json.loads(out)
    assert figures["workload"] == "failover" and figures["target"] == target
    (kill,) = figures["kills"]
    assert kill["killed"] != kill["new_leader"]
    assert {kill["killed"], kill["new_leader"]} <= nodes
    assert kill["seconds"] > 0
    assert figures["seconds"]["count"] == 1
    if options:
        assert figures["settings"]["broker_session_timeout_ms"] == 2000
    wait_own_cluster_gone(tmp_path)


def test_ctrl_c_stops_every_process_of_the_cluster(tmp_path: Path) -> None:
    proc = bench_failover(tmp_path, "--kills", "5", "--idle-s", "30")
    try:
        # the cluster is up once its broker's log exists and all four nodes run
        wait_for(lambda: list(tmp_path.glob("raftkafka-bench-*/broker-1.log")), 60, "the cluster to start")
        wait_for(lambda: len(processes_mentioning(str(tmp_path))) >= 4, 60, "the cluster's processes")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode != 0
    wait_own_cluster_gone(tmp_path)
