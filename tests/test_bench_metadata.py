"""``raftkafka bench metadata``: its pure helpers, and small real runs (own cluster, and --bootstrap to a dev
server) parsed from --json. No speed is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftkafka.bench.metadata import (
    LevelResult,
    MetadataResult,
    MetadataSettings,
    connection_shares,
    parse_in_flight,
)
from raftkafka.bench.quorum import create_topic_body, leader_listener, topic_errors
from raftkafka.bench.stats import summarize_latencies
from raftkafka.errors import InvalidConfigError, TopicAlreadyExistsError
from tests.cluster import wait_own_cluster_gone


def test_in_flight_depths_are_parsed_and_checked() -> None:
    assert parse_in_flight("1,200") == (1, 200)
    assert parse_in_flight(" 8 ") == (8,)
    for bad in ("", "0", "1,x", "-3"):
        with pytest.raises(InvalidConfigError):
            parse_in_flight(bad)


def test_in_flight_requests_are_spread_over_as_few_connections_as_allowed() -> None:
    assert connection_shares(1) == [1]
    assert connection_shares(100) == [100]
    assert connection_shares(200) == [100, 100]
    assert connection_shares(250) == [84, 83, 83]
    assert connection_shares(7, per_connection=3) == [3, 2, 2]


def test_settings_refuse_what_cannot_run() -> None:
    MetadataSettings("127.0.0.1:9092", cluster=3).validate()
    for bad in (
        MetadataSettings("x:1", cluster=2),
        MetadataSettings("x:1", changes=0),
        MetadataSettings("x:1", in_flight=()),
        MetadataSettings("x:1", in_flight=(0,)),
        MetadataSettings("x:1", warmup_changes=-1),
    ):
        with pytest.raises(InvalidConfigError):
            bad.validate()


def test_a_change_is_one_single_partition_topic() -> None:
    body = create_topic_body(["a"])
    assert body["topics"] == [{"name": "a", "partitions": 1, "replication_factor": 1, "config": {}}]
    assert body["validate_only"] is False


def test_topic_answers_turn_into_errors_per_topic() -> None:
    errors = topic_errors({"topics": [["a", 0, None], ["b", TopicAlreadyExistsError.code, "exists"]]})
    assert errors[0] is None
    assert isinstance(errors[1], TopicAlreadyExistsError) and "exists" in str(errors[1])
    with pytest.raises(Exception, match="malformed"):
        topic_errors({"topics": [["a"]]})


def test_the_active_controller_is_read_from_quorum_status() -> None:
    voters = [{"node_id": 1001, "listener": "h:1"}, {"node_id": 1002, "listener": "h:2"}]
    assert leader_listener({"leader_id": 1002, "is_leader": False, "voters": voters}, "h:1") == "h:2"
    assert leader_listener({"leader_id": None, "voters": voters}, "h:1") is None
    # a leader without a listener in its image (raftkafka dev) is reached where it was asked
    assert leader_listener({"leader_id": 1, "is_leader": True, "voters": [{"node_id": 1}]}, "h:9") == "h:9"
    assert leader_listener({"leader_id": 1, "is_leader": False, "voters": [{"node_id": 1}]}, "h:9") is None


def test_result_renders_every_depth() -> None:
    settings = MetadataSettings("x:1", cluster=1, changes=3, in_flight=(1, 2))
    levels = tuple(
        LevelResult(depth, 1, 3, 0.5, summarize_latencies([1_000_000, 2_000_000, 3_000_000])) for depth in (1, 2)
    )
    result = MetadataResult(settings, "h:1", levels)
    figures = result.as_dict()
    assert figures["workload"] == "metadata"
    assert [level["in_flight"] for level in figures["levels"]] == [1, 2]
    assert figures["levels"][0]["changes_per_s"] == 6.0
    assert figures["levels"][0]["latency_ms"]["p50_ms"] == 2.0
    assert figures["settings"]["in_flight"] == [1, 2]
    assert result.summary().count("changes/s") == 2


def run_bench(tmp_path: Path, *args: str) -> dict[str, object]:
    """Run ``raftkafka bench metadata --json`` with its temporary files under ``tmp_path``."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", "metadata", "--json", *args],
        capture_output=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout)


def check_levels(figures: dict[str, object], changes: int, depths: list[int]) -> None:
    levels = figures["levels"]
    assert isinstance(levels, list)
    assert [level["in_flight"] for level in levels] == depths
    for level in levels:
        assert level["changes"] == changes and level["changes_per_s"] > 0
        latency = level["latency_ms"]
        assert latency["count"] == changes
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_own_single_controller_cluster_run_reports_each_depth_and_cleans_up(tmp_path: Path) -> None:
    figures = run_bench(tmp_path, "--cluster", "1", "--changes", "50", "--warmup-changes", "5", "--in-flight", "1,20")
    assert figures["workload"] == "metadata"
    assert figures["settings"]["cluster"] == 1
    check_levels(figures, 50, [1, 20])
    wait_own_cluster_gone(tmp_path)


def test_bootstrap_run_against_a_dev_server_asks_it_directly(tmp_path: Path, dev_server: str) -> None:
    figures = run_bench(
        tmp_path, "--bootstrap", dev_server, "--changes", "30", "--warmup-changes", "0", "--in-flight", "4"
    )
    assert figures["controller"] == dev_server
    check_levels(figures, 30, [4])
