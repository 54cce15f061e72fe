"""``raftkafka bench produce|consume|e2e --cluster dev|3x3``: settings resolution (replication factor,
min.insync.replicas), topic readiness, small real runs on an own cluster parsed from --json, and cleanup of that
cluster (also on Ctrl-C). No speed is asserted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from raftkafka.bench.settings import BenchSettings
from raftkafka.bench.topic import is_ready
from raftkafka.errors import InvalidConfigError
from raftkafka.structs import PartitionInfo, TopicDescription
from tests.cluster import wait_own_cluster_gone
from tests.processes import processes_mentioning


def settings(**overrides: object) -> BenchSettings:
    return BenchSettings(**{"bootstrap": "127.0.0.1:9092", "topic": "t", "records": 10, "record_size": 1, **overrides})  # type: ignore[arg-type]


def test_replication_factor_defaults_to_every_broker_of_an_own_cluster() -> None:
    assert settings().replicas == 1
    assert settings(cluster="dev").replicas == 1
    assert settings(cluster="3x3").replicas == 3
    assert settings(cluster="3x3", replication_factor=2).replicas == 2
    assert settings(cluster="3x3").as_dict()["replication_factor"] == 3


def test_topics_get_min_insync_replicas_2_at_most_their_replication_factor() -> None:
    assert settings(cluster="3x3").topic_config() == {"min.insync.replicas": "2"}
    assert settings(replication_factor=2).topic_config() == {"min.insync.replicas": "2"}
    assert settings().topic_config() == {"min.insync.replicas": "1"}


def test_settings_refuse_clusters_that_cannot_hold_the_topic() -> None:
    settings(cluster="3x3", replication_factor=3).validate()
    for bad in (
        settings(cluster="5x5"),
        settings(cluster="dev", replication_factor=2),
        settings(cluster="3x3", replication_factor=4),
        settings(replication_factor=0),
    ):
        with pytest.raises(InvalidConfigError):
            bad.validate()


def test_a_topic_is_ready_once_every_partition_has_a_leader_and_a_full_isr() -> None:
    def topic(*partitions: PartitionInfo) -> TopicDescription:
        return TopicDescription("t", list(partitions), {})

    assert is_ready(topic(PartitionInfo(0, 1, [1, 2, 3], [3, 1, 2])))
    assert not is_ready(topic(PartitionInfo(0, 1, [1, 2, 3], [1, 2])))
    assert not is_ready(topic(PartitionInfo(0, -1, [1], [1])))
    assert not is_ready(topic())


def bench(tmp_path: Path, workload: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    return subprocess.Popen(
        [sys.executable, "-m", "raftkafka", "bench", workload, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip


def run_json(tmp_path: Path, workload: str, *args: str) -> dict[str, object]:
    proc = bench(tmp_path, workload, "--json", *args)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err.decode(errors="replace")
    wait_own_cluster_gone(tmp_path)
    return json.loads(out)  # type: ignore[no-any-return]


def test_acks_all_produce_on_an_own_3x3_cluster_uses_replication_factor_3(tmp_path: Path) -> None:
    figures = run_json(
        tmp_path, "produce", "--cluster", "3x3", "--acks", "all", "--records", "2000", "--warmup-records", "100"
    )
    assert figures["workload"] == "produce" and figures["records"] == 2000
    assert figures["records_per_s"] > 0  # type: ignore[operator]
    config = figures["settings"]
    assert isinstance(config, dict)
    assert config["cluster"] == "3x3" and config["replication_factor"] == 3 and config["acks"] == "all"
    assert config["bootstrap"].count(",") == 2  # the own cluster's three brokers, not --bootstrap
    assert {process["process"] for process in figures["cpu"]} == {  # type: ignore[union-attr]
        "client", "controller 1001", "controller 1002", "controller 1003", "broker 1", "broker 2", "broker 3",
    }  # fmt: skip


@pytest.mark.parametrize("workload", ["consume", "e2e"])
def test_consume_and_e2e_run_on_an_own_dev_cluster(tmp_path: Path, workload: str) -> None:
    records = "50" if workload == "e2e" else "2000"
    figures = run_json(tmp_path, workload, "--cluster", "dev", "--records", records, "--warmup-records", "10")
    assert figures["workload"] == workload and figures["records"] == int(records)
    config = figures["settings"]
    assert isinstance(config, dict) and config["cluster"] == "dev" and config["replication_factor"] == 1
    assert [process["process"] for process in figures["cpu"]] == ["client", "dev 1"]  # type: ignore[union-attr]


def test_ctrl_c_in_the_middle_of_a_run_stops_the_own_cluster(tmp_path: Path) -> None:
    proc = bench(tmp_path, "produce", "--cluster", "3x3", "--acks", "all", "--records", "100000000")
    try:
        assert proc.stderr is not None
        progress = proc.stderr.readline()  # the first progress line: the cluster is up and records are flowing
        assert progress.startswith(b"produce: "), progress
        assert len(processes_mentioning(str(tmp_path))) == 6
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode != 0
    wait_own_cluster_gone(tmp_path)
