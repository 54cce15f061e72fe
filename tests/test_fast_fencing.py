"""A crashed broker is fenced when its heartbeat connection closes, long before its session times out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka import Admin
from raftkafka.controller.sessions import BrokerSessions
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, wait_for
from tests.processes import request

SESSION_TIMEOUT_S = 30.0  # far longer than the test may take: only the closed connection can explain a fast fence


def test_cut_short_ends_a_session_soon_unless_the_broker_is_heard_again() -> None:
    now = [100.0]
    sessions = BrokerSessions(SESSION_TIMEOUT_S, clock=lambda: now[0])
    sessions.touch(1)
    sessions.touch(2)
    sessions.cut_short(1, 1.0)
    sessions.cut_short(2, 1.0)
    sessions.cut_short(3, 1.0)  # unknown brokers stay unknown
    now[0] += 0.5
    sessions.touch(2)  # broker 2 reconnected and heartbeated
    now[0] += 0.6
    assert sessions.expired([1, 2]) == [1]
    assert sessions.is_live(2)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path / "c", controllers=1, brokers=2,
                         controller_args=["--broker-session-timeout-ms", str(int(SESSION_TIMEOUT_S * 1000))])
    try:
        yield local.start()
    finally:
        local.close()


def test_killed_leader_is_fenced_within_two_heartbeats(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic("fast", partitions=2, replication_factor=2)
    survivor = cluster.broker(2)

    def leaders() -> list[int]:
        _, body = request(survivor.address, ApiKey.METADATA, {"topics": ["fast"]})
        return [p[1] for p in body["topics"][0]["partitions"]]

    wait_for(lambda: 1 in leaders(), 10, "broker 1 to lead a partition")
    killed_at = time.monotonic()
    cluster.broker(1).kill9()
    wait_for(lambda: all(leader == 2 for leader in leaders()), SESSION_TIMEOUT_S / 2, "leadership to move to broker 2")
    assert time.monotonic() - killed_at < SESSION_TIMEOUT_S / 2
