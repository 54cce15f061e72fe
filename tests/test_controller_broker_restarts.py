"""Restarted brokers against real controller processes: a broker killed with -9 and started again at once,
or after a full cluster restart, is registered within seconds (far below the session timeout) and its dead
predecessor is fenced first; a second live process with the same node id stays refused."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, running, wait_for
from tests.processes import free_port, request

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_MS = 20_000
QUICK_S = 8.0
"""How soon a restarted broker must be back: well below the session timeout."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=1,
        brokers=2,
        controller_args=["--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS)],
        broker_args=["--heartbeat-interval-ms", "500"],
    ))


def metadata(node: Node, topics: list[str] | None = None) -> Any:
    error, body = request(node.address, ApiKey.METADATA, {"topics": topics or []})
    assert error == 0
    return body


def incarnation(cluster: LocalCluster, node_id: int) -> str:
    return (cluster.broker(node_id).data_dir / "incarnation.id").read_text().strip()


def test_a_broker_killed_and_restarted_at_once_serves_again_within_seconds(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic("r", partitions=2, replication_factor=2)
    victim, other = cluster.broker(1), cluster.broker(2)
    before = incarnation(cluster, 1)
    victim.kill9()
    started = time.monotonic()
    victim.start().wait_serving(QUICK_S)
    assert incarnation(cluster, 1) != before

    def back() -> bool:
        body = metadata(other, ["r"])
        partitions = body["topics"][0]["partitions"]
        return [b[0] for b in body["brokers"]] == [1, 2] and all(p[1] != -1 for p in partitions)

    wait_for(back, QUICK_S - (time.monotonic() - started), "the restarted broker to be registered and unfenced")
    assert time.monotonic() - started < QUICK_S < SESSION_TIMEOUT_MS / 1000
    # its predecessor was fenced first: leadership left broker 1 (a new leader epoch where it led), and it left
    # the ISR (Kafka's semantics) — which it may have rejoined since, having caught up with nothing to copy
    partitions = metadata(other, ["r"])["topics"][0]["partitions"]
    assert all(p[1] == 2 for p in partitions), partitions
    assert all(p[2] >= 1 for p in partitions if p[3][0] == 1), partitions


def test_after_a_full_restart_every_broker_is_back_within_seconds(cluster: LocalCluster) -> None:
    for node in cluster.nodes:
        node.kill9()
    for node in cluster.controllers:
        node.start().wait_serving()
    started = time.monotonic()
    for node in cluster.brokers:
        node.start()
    for node in cluster.brokers:
        node.wait_serving(QUICK_S)
    wait_for(lambda: all([b[0] for b in metadata(n)["brokers"]] == [1, 2] for n in cluster.brokers),
             QUICK_S, "both brokers to be registered everywhere")  # fmt: skip
    assert time.monotonic() - started < QUICK_S


def test_a_second_process_on_the_same_data_dir_is_refused_at_once(cluster: LocalCluster) -> None:
    holder = cluster.broker(1)
    port = free_port()
    controllers = ",".join(node.address for node in cluster.controllers)
    twin = Node("broker", 1, holder.data_dir, ["broker", "--node-id", "1", "--listen", f"127.0.0.1:{port}",
                                               "--controllers", controllers, "--data-dir", str(holder.data_dir)],
                port)  # fmt: skip
    twin.log_path = holder.data_dir.parent / "twin.log"
    twin.start()
    try:
        assert twin.proc is not None
        assert twin.proc.wait(timeout=30) != 0
        assert "in use by another process" in twin.log()
    finally:
        twin.stop(signal.SIGKILL)
    assert [b[0] for b in metadata(cluster.broker(2))["brokers"]] == [1, 2]
    assert holder.alive
