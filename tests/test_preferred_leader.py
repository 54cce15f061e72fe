"""Preferred-leader election with real processes: a broker that returns and catches up leads its
preferred partitions again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka import Admin, Producer
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, wait_for
from tests.processes import request


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = LocalCluster(
        tmp_path / "c", controllers=1, brokers=3,
        controller_args=["--leader-imbalance-check-interval-ms", "500"],
        broker_args=["--replica-lag-time-max-ms", "2000"],
    )
    try:
        yield local.start()
    finally:
        local.close()


def test_returning_broker_gets_its_preferred_partitions_back(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic("pref", partitions=6, replication_factor=3)
    witness = cluster.broker(2)

    def partitions() -> list[list[object]]:
        _, body = request(witness.address, ApiKey.METADATA, {"topics": ["pref"]})
        return body["topics"][0]["partitions"]

    preferred = {p[0] for p in partitions() if p[3][0] == 1}
    assert preferred
    cluster.broker(1).kill9()
    wait_for(lambda: all(p[1] != 1 for p in partitions()), 15, "leadership to leave the killed broker")
    with Producer(bootstrap=witness.address, acks="all") as producer:  # data broker 1 must catch up on
        for i in range(300):
            producer.send("pref", value=b"%d" % i)
    cluster.broker(1).start().wait_serving()
    wait_for(lambda: {p[0] for p in partitions() if p[1] == 1} == preferred, 30,
             "broker 1 to lead its preferred partitions again")
    assert all(1 in p[4] for p in partitions() if p[0] in preferred)  # it leads from inside the ISR
