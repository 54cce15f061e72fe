"""Issue 3 acceptance: 3 controller processes + 3 broker processes, with kill -9 of controllers and brokers."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin
from raftkafka.errors import InvalidReplicationFactorError, NotControllerError, RequestTimedOutError
from raftkafka.metadata.records import decode_records
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, active_controller, running, wait_for
from tests.processes import request

SESSION_TIMEOUT_MS = 3000
HEARTBEAT_MS = 500


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS)],
        broker_args=["--heartbeat-interval-ms", str(HEARTBEAT_MS)],
    ))


def metadata_log(node: Node) -> list[tuple[int, bytes]]:
    """Every committed record a controller serves, as (offset, encoded record) pairs, read from offset 0."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    while True:
        error, body = request(node.address, ApiKey.METADATA_LOG, {"offset": offset, "max_wait_ms": 0,
                                                                  "max_records": 10_000})
        assert error == 0, body
        assert body.get("snapshot") is None, "the test keeps the log short enough to read from offset 0"
        records = decode_records(body["records"]) if body.get("records") else []
        if not records:
            return out
        out.extend((body["first_offset"] + i, repr(r).encode()) for i, r in enumerate(records))
        offset = body["first_offset"] + len(records)


def describe_everywhere(cluster: LocalCluster, topic: str) -> list[Any]:
    """The topic's partitions as each live broker describes them."""
    views = []
    for broker in cluster.brokers:
        if broker.alive:
            error, body = request(broker.address, ApiKey.METADATA, {"topics": [topic], "include_config": True})
            assert error == 0
            views.append(body["topics"])
    return views


def test_topics_appear_on_every_broker_spread_evenly(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.brokers[0].address) as admin:
        admin.create_topic("spread", partitions=6, replication_factor=3, config={"retention.ms": "60000"})
        with pytest.raises(InvalidReplicationFactorError):
            admin.create_topic("too-wide", partitions=1, replication_factor=4)

    def converged() -> bool:
        views = describe_everywhere(cluster, "spread")
        return len(views) == 3 and all(v == views[0] and v[0]["error"] == 0 for v in views)

    wait_for(converged, 10, "every broker to see the topic")
    (topic,) = describe_everywhere(cluster, "spread")[0]
    assert topic["config"]["retention.ms"] == "60000"
    leaders = Counter(p[1] for p in topic["partitions"])
    replicas = Counter(r for p in topic["partitions"] for r in p[3])
    assert sorted(leaders.values()) == [2, 2, 2]
    assert sorted(replicas.values()) == [6, 6, 6]
    for broker in cluster.brokers:
        with Admin(bootstrap=broker.address) as admin:
            assert "spread" in admin.list_topics()


def test_active_controller_kill9_elects_a_new_one_and_loses_nothing(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        for i in range(5):
            admin.create_topic(f"before-{i}", partitions=2, replication_factor=2)
    old = active_controller(cluster)
    old.kill9()
    new = active_controller(cluster)
    assert new is not old
    status = subprocess.run(
        [sys.executable, "-m", "raftkafka", "quorum", "status", "--bootstrap", cluster.bootstrap],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert status.returncode == 0, status.stderr
    assert str(new.node_id) in status.stdout
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic("after", partitions=1, replication_factor=3)
        assert {f"before-{i}" for i in range(5)} | {"after"} <= set(admin.list_topics())
    old.start().wait_serving()
    wait_for(lambda: metadata_log(old) == metadata_log(new), 20, "the restarted controller to catch up")


def test_without_a_majority_changes_fail_fast_and_resume(cluster: LocalCluster) -> None:
    survivor = active_controller(cluster)
    down = [n for n in cluster.controllers if n is not survivor]
    for node in down:
        node.kill9()
    started = time.monotonic()
    with Admin(bootstrap=cluster.bootstrap, request_timeout_ms=5000) as admin:
        with pytest.raises((RequestTimedOutError, NotControllerError)) as info:
            admin.create_topic("no-quorum", partitions=1, replication_factor=1)
        assert info.value.retriable
        assert time.monotonic() - started < 20
        down[0].start().wait_serving()
        active_controller(cluster)

        def created() -> bool:
            try:
                admin.create_topic("quorum-back", partitions=1, replication_factor=1)
            except (RequestTimedOutError, NotControllerError):
                return False
            return True

        wait_for(created, 30, "topic creation to succeed again", interval=0.5)


def test_killed_broker_is_fenced_and_leadership_moves(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic("moves", partitions=6, replication_factor=3)
    victim = cluster.broker(1)
    led_before = [p for p in describe_everywhere(cluster, "moves")[0][0]["partitions"] if p[1] == 1]
    assert led_before
    killed_at = time.monotonic()
    victim.kill9()

    def moved() -> bool:
        views = [v for v in describe_everywhere(cluster, "moves")]
        return all(p[1] not in (1, -1) for v in views for p in v[0]["partitions"])

    wait_for(moved, SESSION_TIMEOUT_MS / 1000 + 5, "leadership to move off the killed broker")
    assert time.monotonic() - killed_at < SESSION_TIMEOUT_MS / 1000 + 5
    _, body = request(cluster.brokers[1].address, ApiKey.METADATA, {"topics": []})
    assert 1 not in [b[0] for b in body["brokers"]]
    victim.start().wait_serving()

    def unfenced() -> bool:
        return 1 in [b[0] for b in request(cluster.brokers[1].address, ApiKey.METADATA, {"topics": []})[1]["brokers"]]

    wait_for(unfenced, 15, "the returning broker to be unfenced")


def test_full_cluster_kill9_restart_recovers_the_exact_image(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        for i in range(4):
            admin.create_topic(f"keep-{i}", partitions=3, replication_factor=2, config={"segment.bytes": "1048576"})
        admin.delete_topic("keep-3")
    wait_for(lambda: all(v[0]["error"] != 0 for v in describe_everywhere(cluster, "keep-3")),
             10, "the deletion to reach every broker")
    log_before = metadata_log(active_controller(cluster))
    placement_before = {t: _placement(describe_everywhere(cluster, t)[0]) for t in ("keep-0", "keep-1", "keep-2")}
    for node in cluster.nodes:
        node.kill9()
    cluster.start()
    active_controller(cluster)

    def logs_agree() -> bool:
        logs = [metadata_log(n) for n in cluster.controllers]
        return all(log == logs[0] for log in logs) and logs[0][: len(log_before)] == log_before

    wait_for(logs_agree, 20, "every controller to hold the same log, starting with everything committed before")

    def brokers_agree() -> bool:
        views = [describe_everywhere(cluster, t) for t in ("keep-0", "keep-1", "keep-2", "keep-3")]
        return all(len(v) == 3 and all(x == v[0] for x in v) for v in views) and all(
            _placement(describe_everywhere(cluster, t)[0]) == placement for t, placement in placement_before.items()
        )

    wait_for(brokers_agree, 20, "every broker to serve one image with the topics, replicas and configs of before")
    assert all(v[0]["error"] != 0 for v in describe_everywhere(cluster, "keep-3"))


def _placement(view: list[Any]) -> tuple[Any, ...]:
    """What a restart must not change: topic id, config and replica lists (leaders and ISRs may move)."""
    (topic,) = view
    return topic["topic_id"], topic["config"], [(p[0], p[3]) for p in topic["partitions"]]


@pytest.mark.slow
def test_voter_restart_loop_never_forks_the_log(cluster: LocalCluster) -> None:
    rng = random.Random(42)
    with Admin(bootstrap=cluster.bootstrap, request_timeout_ms=10_000) as admin:
        for round_number in range(10):
            victim = rng.choice(cluster.controllers)
            victim.stop(signal.SIGKILL if rng.random() < 0.7 else signal.SIGTERM)
            time.sleep(rng.uniform(0, 0.5))  # a random moment in the quorum's life, not a wait for a condition
            try:
                admin.create_topic(f"loop-{round_number}", partitions=1, replication_factor=1)
            except (RequestTimedOutError, NotControllerError):
                pass  # outcome unknown: the checks below compare what did commit
            victim.start().wait_serving()
    active_controller(cluster)
    logs: list[list[tuple[int, bytes]]] = []
    for node in cluster.controllers:
        logs.append(wait_for(lambda node=node: metadata_log(node), 20, "a voter's log"))  # type: ignore[misc]
    by_offset: dict[int, set[bytes]] = {}
    for log in logs:
        for offset, record in log:
            by_offset.setdefault(offset, set()).add(record)
    assert all(len(records) == 1 for records in by_offset.values()), "two different records at one offset"
