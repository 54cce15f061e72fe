"""ISR shrink and expand through the controller, with real processes: 3 controllers, 3 brokers, a short
``replica.lag.time.max.ms``. A follower killed with -9 leaves the ISR of every partition it follows (seen in
METADATA from every live broker); restarted, it catches up and rejoins."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, running, wait_for
from tests.processes import request

pytestmark = pytest.mark.timeout(120)

LAG_MS = 1500
TOPIC = "isr"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        # sessions longer than the test: the ISR shrinks because the follower lags, not because it is fenced
        controller_args=["--broker-session-timeout-ms", "60000"],
        broker_args=["--heartbeat-interval-ms", "300", "--replica-lag-time-max-ms", str(LAG_MS)],
    ))


def partitions(node: Node) -> list[list[Any]] | None:
    """``[id, leader, leader_epoch, replicas, isr]`` per partition as ``node`` sees it (None if it cannot say)."""
    try:
        error, body = request(node.address, ApiKey.METADATA, {"topics": [TOPIC]}, timeout=2)
    except OSError:
        return None
    if error != 0 or body["topics"][0]["error"] != 0:
        return None
    return body["topics"][0]["partitions"]  # type: ignore[no-any-return]


def isr_everywhere(nodes: list[Node], wanted: Any) -> bool:
    """Whether every node's view has ``wanted(leader, isr)`` true for every partition."""
    views = [partitions(node) for node in nodes]
    return all(view is not None and all(wanted(p[1], set(p[4])) for p in view) for view in views)


def test_a_killed_follower_leaves_the_isr_and_rejoins_after_restart(cluster: LocalCluster) -> None:
    topic = {"name": TOPIC, "partitions": 3, "replication_factor": 3, "config": {}}
    error, body = request(cluster.brokers[0].address, ApiKey.CREATE_TOPICS, {"topics": [topic], "timeout_ms": 10_000})
    assert error == 0 and body["topics"] == [[TOPIC, 0, ""]], body
    all_in = {1, 2, 3}
    wait_for(lambda: isr_everywhere(cluster.brokers, lambda leader, isr: isr == all_in), 20, "full ISRs")

    # the victim stays registered (long session) and leads what it led, but stops fetching as a follower
    victim = cluster.broker(3)
    victim.kill9()
    others = [b for b in cluster.brokers if b is not victim]
    killed_at = time.monotonic()
    wait_for(
        lambda: isr_everywhere(others, lambda leader, isr: leader == 3 or 3 not in isr),
        20,
        "the killed follower out of the ISR of every partition it follows",
    )
    shrunk_after = time.monotonic() - killed_at
    assert shrunk_after < 3 * LAG_MS / 1000 + 2, f"the ISR shrank only after {shrunk_after:.1f}s"

    victim.start().wait_serving()
    wait_for(
        lambda: isr_everywhere(cluster.brokers, lambda leader, isr: isr == all_in), 30, "the restarted follower back in"
    )
