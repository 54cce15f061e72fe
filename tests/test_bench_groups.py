"""Consumer group benchmarks: ``bench metadata --change offsets``, ``bench consume --group``, ``bench rebalance``.

Pure helpers first, then small real runs through the command, parsed from --json. No speed is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from raftkafka.bench.changes import (
    CHANGE_KINDS,
    describe_change,
    offset_commit_body,
    partition_errors,
)
from raftkafka.bench.consumer_processes import stable_owners
from raftkafka.bench.group_consume import GroupSettings, allocate, covered, distinct_records, even_shares
from raftkafka.bench.group_consumer import Tally
from raftkafka.bench.metadata import MetadataSettings
from raftkafka.bench.rebalance import RebalanceResult, RebalanceRound, RebalanceSettings
from raftkafka.cli.bench import bench
from raftkafka.errors import InvalidConfigError, UnknownTopicError
from raftkafka.net.api import ApiKey
from raftkafka.structs import GroupDescription, MemberDescription, Record, TopicPartition
from tests.processes import processes_mentioning, request

# -- offset commits through the quorum (bench metadata --change offsets) --


def test_an_offset_change_commits_one_offset_for_a_group_without_members() -> None:
    body = offset_commit_body("g", "t", 41)
    assert body == {"group_id": "g", "member_id": "", "generation": -1, "offsets": [["t", [[0, 41]]]]}


def test_offset_commit_answers_turn_into_errors_per_partition() -> None:
    errors = partition_errors({"topics": [["t", [[0, 0], [1, UnknownTopicError.code]]]]})
    assert errors[0] is None
    assert isinstance(errors[1], UnknownTopicError)
    for malformed in ({}, {"topics": [["t"]]}, {"topics": [["t", [[0, "x"]]]]}):
        with pytest.raises(Exception, match="malformed"):
            partition_errors(malformed)


def test_change_kind_is_a_setting() -> None:
    assert CHANGE_KINDS == ("topics", "offsets")
    assert MetadataSettings("x:1").change == "topics"
    MetadataSettings("x:1", change="offsets").validate()
    with pytest.raises(InvalidConfigError, match="--change"):
        MetadataSettings("x:1", change="groups").validate()
    assert "OFFSET_COMMIT" in describe_change("offsets") and "CREATE_TOPICS" in describe_change("topics")


def run_bench(tmp_path: Path, workload: str, *args: str, timeout: float = 120) -> dict[str, object]:
    """Run ``raftkafka bench WORKLOAD --json ARGS`` with its temporary files under ``tmp_path``; its figures."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "raftkafka", "bench", workload, "--json", *args],
        capture_output=True, timeout=timeout, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return json.loads(result.stdout)


def test_offset_commits_against_a_dev_server_are_timed_and_cleaned_up(tmp_path: Path, dev_server: str) -> None:
    figures = run_bench(
        tmp_path,
        "metadata",
        *("--bootstrap", dev_server, "--change", "offsets"),
        *("--changes", "300", "--warmup-changes", "5", "--in-flight", "1,150"),
    )
    assert figures["workload"] == "metadata"
    assert figures["change"] == describe_change("offsets")
    assert figures["settings"]["change"] == "offsets"
    levels = figures["levels"]
    assert [level["in_flight"] for level in levels] == [1, 150]
    assert [level["connections"] for level in levels] == [1, 2]
    for level in levels:
        assert level["changes"] == 300 and level["changes_per_s"] > 0
        latency = level["latency_ms"]
        assert latency["count"] == 300
        assert 0 < latency["p50_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    # the groups (one per connection and level) and the topic were removed after the run
    assert request(dev_server, ApiKey.LIST_GROUPS, {})[1]["groups"] == []
    topics = request(dev_server, ApiKey.METADATA, {"topics": None})[1]["topics"]
    assert not [t["name"] for t in topics if t["name"].startswith("bench-metadata")]


# -- K consumer processes in one group (bench consume --group G --consumers K) --


def test_records_are_split_over_partitions_as_evenly_as_they_allow() -> None:
    assert even_shares(7, [0, 1, 2]) == {0: 3, 1: 2, 2: 2}
    assert allocate(10, {0: 50, 1: 50}) == {0: 5, 1: 5}
    assert allocate(10, {0: 30, 1: 70}) == {0: 5, 1: 5}
    assert allocate(7, {0: 1, 1: 1, 2: 100}) == {0: 1, 1: 1, 2: 5}
    assert allocate(9, {0: 2, 1: 100, 2: 100}) == {0: 2, 1: 4, 2: 3}
    assert allocate(3, {0: 1, 1: 1, 2: 1}) == {0: 1, 1: 1, 2: 1}
    assert allocate(0, {0: 0}) == {0: 0}
    with pytest.raises(ValueError):
        allocate(5, {0: 2, 1: 2})


def test_offset_ranges_count_each_record_once_within_the_bounds() -> None:
    assert covered([[0, 9]], 0, 10) == 10
    assert covered([[0, 4], [3, 9]], 0, 10) == 10  # read twice across a rebalance: counted once
    assert covered([[0, 3], [6, 9]], 0, 10) == 8
    assert covered([[0, 20]], 5, 10) == 5
    reads = [{"0": [[10, 19]], "1": [[0, 4]]}, {"1": [[3, 9]]}]
    assert distinct_records(reads, {0: (10, 20), 1: (0, 10)}) == 20
    assert distinct_records(reads, {0: (10, 21), 1: (0, 10), 2: (0, 5)}) == 20


def record(partition: int, offset: int) -> Record:
    return Record("t", partition, offset, 0, None, b"", ())


def test_a_consumer_tallies_offset_runs_per_partition() -> None:
    tally = Tally()
    tally.add([], 5)
    assert tally.first_ns is None
    tally.add([record(0, 0), record(0, 1), record(1, 7), record(1, 8), record(0, 2)], 10)
    tally.add([record(0, 3), record(1, 20)], 30)
    assert tally.records == 7
    assert (tally.first_ns, tally.last_ns) == (10, 30)
    assert tally.ranges == {0: [[0, 3]], 1: [[7, 8], [20, 20]]}
    assert tally.positions() == {0: 4, 1: 21}


def describe(state: str, generation: int, owners: dict[str, list[int]], topic: str = "t") -> GroupDescription:
    members = [
        MemberDescription(f"{client}-uuid", client, [topic], [TopicPartition(topic, p) for p in partitions])
        for client, partitions in owners.items()
    ]
    return GroupDescription("g", state, "range", generation, members, {})


def test_a_group_is_stable_when_exactly_the_expected_members_own_every_partition_once() -> None:
    owners = {"a": [0, 1, 2], "b": [3, 4, 5]}
    assert stable_owners(describe("Stable", 3, owners), ["b", "a"], 6, "t") == owners
    assert stable_owners(describe("PreparingRebalance", 3, owners), ["a", "b"], 6, "t") is None
    assert stable_owners(describe("Stable", 3, owners), ["a", "b", "c"], 6, "t") is None
    assert stable_owners(describe("Stable", 3, {"a": [0, 1, 2], "b": [2, 3, 4]}), ["a", "b"], 6, "t") is None
    assert stable_owners(describe("Stable", 3, owners, topic="other"), ["a", "b"], 6, "t") is None


def test_group_settings_refuse_what_cannot_run() -> None:
    GroupSettings("g", 3).validate()
    for bad in (GroupSettings("", 1), GroupSettings("g", 0)):
        with pytest.raises(InvalidConfigError):
            bad.validate()


def test_consumers_without_a_group_is_a_usage_error() -> None:
    result = CliRunner().invoke(bench, ["consume", "--consumers", "2"])
    assert result.exit_code == 2 and "--consumers needs --group" in result.output


def test_a_group_of_two_processes_reads_every_record_once(tmp_path: Path, dev_server: str) -> None:
    figures = run_bench(
        tmp_path,
        "consume",
        *("--bootstrap", dev_server, "--group", "bench-g", "--consumers", "2", "--topic", "bench-group"),
        *("--records", "20000", "--record-size", "64"),
    )
    assert figures["workload"] == "consume"
    assert (figures["group"], figures["consumers"]) == ("bench-g", 2)
    assert figures["records"] == figures["expected"] == figures["distinct"] == 20_000
    assert figures["duplicates"] == 0 and figures["missing"] == 0
    assert figures["bytes"] == 20_000 * 64
    assert figures["records_per_s"] > 0 and 0 <= figures["first_to_last_s"] <= figures["seconds"]
    per_consumer = figures["per_consumer"]
    assert sorted(c["client_id"] for c in per_consumer) == ["bench-consumer-0", "bench-consumer-1"]
    assert sum(c["records"] for c in per_consumer) == 20_000
    assert sorted(p for c in per_consumer for p in c["partitions"]) == [0, 1]  # --partitions follows --consumers
    assert figures["settings"]["partitions"] == 2 and figures["settings"]["group"] == "bench-g"
    # the group was deleted after the run, and no consumer process or log directory was left behind
    assert request(dev_server, ApiKey.LIST_GROUPS, {})[1]["groups"] == []
    assert not list(tmp_path.glob("raftkafka-bench-*"))
    assert not processes_mentioning("bench-g")


# -- kill -9 of one consumer of a group (bench rebalance) --


def test_rebalance_settings_and_target() -> None:
    settings = RebalanceSettings("x:1").validate()
    assert (settings.consumers, settings.partitions, settings.kills) == (3, 6, 3)
    assert (settings.session_timeout_ms, settings.heartbeat_interval_ms, settings.target_s) == (6000, 500, 7.0)
    for bad in (
        RebalanceSettings("x:1", consumers=1),
        RebalanceSettings("x:1", consumers=4, partitions=3),
        RebalanceSettings("x:1", kills=0),
        RebalanceSettings("x:1", session_timeout_ms=500, heartbeat_interval_ms=500),
        RebalanceSettings("x:1", cluster="5x5"),
    ):
        with pytest.raises(InvalidConfigError):
            bad.validate()


def test_rebalance_result_renders_every_kill() -> None:
    rounds = (RebalanceRound("c0", 2, 3, 6.2, 6.25), RebalanceRound("c1", 4, 5, 7.4, 7.41))
    result = RebalanceResult(RebalanceSettings("x:1", kills=2), rounds)
    figures = result.as_dict()
    assert figures["workload"] == "rebalance"
    assert [k["killed"] for k in figures["kills"]] == ["c0", "c1"]
    assert figures["seconds"]["max_s"] == 7.4 and figures["consuming_seconds"]["p50_s"] == 6.25
    assert figures["target_s"] == 7.0 and figures["within_target"] is False
    assert "NOT within" in result.summary()


def test_one_kill_of_a_group_member_is_timed_to_the_next_stable_generation(tmp_path: Path, dev_server: str) -> None:
    figures = run_bench(
        tmp_path,
        "rebalance",
        *("--bootstrap", dev_server, "--group", "bench-rebalance", "--kills", "1", "--idle-s", "0.2"),
        *("--session-timeout-ms", "3000", "--heartbeat-interval-ms", "300"),
    )
    assert figures["workload"] == "rebalance"
    (kill,) = figures["kills"]
    assert kill["killed"] == "bench-consumer-0"
    assert kill["generation_after"] > kill["generation_before"]
    # the coordinator cannot notice a kill -9 before the member's session expires
    assert kill["seconds"] >= 3.0 - 0.3 and kill["consuming_s"] >= 3.0 - 0.3
    assert figures["seconds"]["count"] == 1 and figures["seconds"]["p50_s"] == kill["seconds"]
    assert figures["target_s"] == 4.0
    assert figures["settings"]["partitions"] == 6 and figures["settings"]["consumers"] == 3
    assert request(dev_server, ApiKey.LIST_GROUPS, {})[1]["groups"] == []
    assert not list(tmp_path.glob("raftkafka-bench-*"))
    assert not processes_mentioning("bench-rebalance")
