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

from raftkafka.bench.changes import (
    CHANGE_KINDS,
    describe_change,
    offset_commit_body,
    partition_errors,
)
from raftkafka.bench.metadata import MetadataSettings
from raftkafka.errors import InvalidConfigError, UnknownTopicError
from raftkafka.net.api import ApiKey
from tests.processes import request

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
