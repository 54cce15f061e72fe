"""Consumer groups on a local 3-controller, 3-broker cluster: members keep their group and their commits go
through while the active controller (the group coordinator) and then a broker are ``kill -9``ed, and restarted
consumers resume at exactly the committed offsets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka import Admin, Consumer, Record
from tests.cluster import LocalCluster, active_controller, running
from tests.test_client_group_sync import FAST, poll_until, produce, tps

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TOPIC = "grouped"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", "3000"],
        broker_args=["--heartbeat-interval-ms", "300"],
    ))


def test_group_survives_a_coordinator_kill9_and_restarted_consumers_resume_at_the_commits(
    cluster: LocalCluster,
) -> None:
    bootstrap = cluster.bootstrap
    with Admin(bootstrap=bootstrap) as admin:
        admin.create_topic(TOPIC, partitions=4, replication_factor=3)
    settings = {**FAST, "session_timeout_ms": 6000, "enable_auto_commit": False, "max_poll_records": 20}
    read: list[Record] = []
    with (
        Consumer(TOPIC, bootstrap=bootstrap, group_id="g", **settings) as a,
        Consumer(TOPIC, bootstrap=bootstrap, group_id="g", **settings) as b,
    ):
        poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, timeout=30)
        values = produce(bootstrap, TOPIC, 4, 100)
        poll_until([a, b], lambda: len(read) >= 100, sink=read)
        a.commit()
        b.commit()
        killed = active_controller(cluster)
        killed.kill9()
        poll_until([a, b], lambda: len(read) >= 200, sink=read)
        started = time.monotonic()
        a.commit()  # retried until the next active controller coordinates the group
        b.commit()
        assert time.monotonic() - started < 30
        assert active_controller(cluster) is not killed
        # no rebalance happened: the members kept their partitions through the failover
        assert len(a.assignment()) == 2 and len(b.assignment()) == 2
        cluster.brokers[0].kill9()  # the first bootstrap broker: the members' group requests went through it
        poll_until([a, b], lambda: len(read) >= 300, timeout=60, sink=read)
        a.commit()
        b.commit()
        committed = {tp: a.committed(tp) for tp in tps(TOPIC, 4)}
        assert committed == {tp: (a.position(tp) if tp in a.assignment() else b.position(tp)) for tp in committed}
    assert len({(r.partition, r.offset) for r in read}) == len(read)
    restarted = {**settings, "enable_auto_commit": True}  # commits before a rebalance: no record read twice
    with (
        Consumer(TOPIC, bootstrap=bootstrap, group_id="g", **restarted) as c,
        Consumer(TOPIC, bootstrap=bootstrap, group_id="g", **restarted) as d,
    ):
        rest: list[Record] = []
        poll_until([c, d], lambda: len(rest) >= len(values) - len(read), timeout=60, sink=rest)
        for tp, offset in committed.items():
            offsets = [r.offset for r in rest if r.partition == tp.partition]
            assert (min(offsets) if offsets else 100) == offset
        assert sorted(r.value for r in read + rest) == sorted(values)
        assert c.poll(timeout_ms=300) + d.poll(timeout_ms=300) == []
