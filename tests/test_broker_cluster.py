"""``raftkafka broker`` processes against real ``raftkafka controller`` processes: registration, metadata
propagation, NOT_LEADER, controlled shutdown on SIGTERM, duplicate node ids; and the broker's controller
channel (leader hints, stale epochs, failover) against a real 3-voter quorum."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka.broker.controller_client import ControllerClientConfig, RemoteController, StaleControllerEpochError
from raftkafka.errors import NotControllerError, NotLeaderError, RequestTimedOutError, UnknownTopicError
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, running, wait_for
from tests.processes import free_port, request

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """One controller (sessions long enough that only a controlled shutdown fences) and two brokers."""
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=1,
        brokers=2,
        controller_args=["--broker-session-timeout-ms", "30000"],
        broker_args=["--heartbeat-interval-ms", "300"],
    ))


def metadata(node: Node, topics: list[str] | None = None) -> dict[str, Any]:
    error, body = request(node.address, ApiKey.METADATA, {"topics": topics})
    assert error == 0, body
    return body  # type: ignore[no-any-return]


def create_topic(node: Node, name: str, partitions: int, replication_factor: int) -> None:
    topic = {"name": name, "partitions": partitions, "replication_factor": replication_factor, "config": {}}
    error, body = request(node.address, ApiKey.CREATE_TOPICS, {"topics": [topic], "timeout_ms": 10_000})
    assert error == 0 and body["topics"] == [[name, 0, ""]], body


def fetch_error(node: Node, topic: str, partition: int) -> int:
    body = {"max_wait_ms": 0, "topics": [[topic, [[partition, 0, 1024]]]]}
    error, answer = request(node.address, ApiKey.FETCH, body)
    assert error == 0, answer
    return answer["topics"][0][1][0][1]  # type: ignore[no-any-return]


def test_registration_propagation_and_not_leader(small_cluster: LocalCluster) -> None:
    one, two = small_cluster.brokers
    assert [b[0] for b in metadata(two)["brokers"]] == [1, 2]
    create_topic(one, "spread", partitions=2, replication_factor=1)

    def same_on_both() -> bool:
        views = [metadata(node, ["spread"])["topics"] for node in (one, two)]
        return views[0] == views[1] and views[0][0]["error"] == 0

    wait_for(same_on_both, 10, "the topic created through broker 1 to reach broker 2")
    partitions = metadata(two, ["spread"])["topics"][0]["partitions"]
    leaders = {p[0]: p[1] for p in partitions}
    assert sorted(leaders.values()) == [1, 2]
    for partition, leader in leaders.items():
        other = two if leader == 1 else one
        assert fetch_error(small_cluster.broker(leader), "spread", partition) == 0
        assert fetch_error(other, "spread", partition) == NotLeaderError.code
    assert fetch_error(one, "no-such-topic", 0) == UnknownTopicError.code


def test_sigterm_moves_leadership_off_before_exit(small_cluster: LocalCluster) -> None:
    one, two = small_cluster.brokers
    create_topic(one, "moves", partitions=4, replication_factor=2)
    wait_for(lambda: metadata(two, ["moves"])["topics"][0]["error"] == 0, 10, "broker 2 to see the topic")
    assert 1 in {p[1] for p in metadata(two, ["moves"])["topics"][0]["partitions"]}
    assert one.stop(signal.SIGTERM, timeout=15) == 0
    assert "controlled shutdown granted" in one.log()

    def moved() -> bool:
        body = metadata(two, ["moves"])
        partitions = body["topics"][0]["partitions"]
        return [b[0] for b in body["brokers"]] == [2] and all(p[1] == 2 and 1 not in p[4] for p in partitions)

    # The session timeout is 30 s: only the controlled shutdown can have moved leadership this soon.
    wait_for(moved, 15, "leadership and ISR membership to leave broker 1")


def test_second_process_with_the_same_node_id_is_refused(small_cluster: LocalCluster, tmp_path: Path) -> None:
    controllers = ",".join(node.address for node in small_cluster.controllers)
    port = free_port()
    impostor = Node("broker", 1, tmp_path / "impostor", [
        "broker", "--node-id", "1", "--listen", f"127.0.0.1:{port}", "--controllers", controllers,
        "--data-dir", str(tmp_path / "impostor"), "--duplicate-registration-timeout-ms", "1000",
    ], port).start()  # fmt: skip
    try:
        assert impostor.proc is not None
        assert impostor.proc.wait(timeout=30) != 0
        assert "another live broker process" in impostor.log() and "--node-id" in impostor.log()
    finally:
        impostor.stop(signal.SIGKILL)
    one, two = small_cluster.brokers
    assert metadata(two)["brokers"] == [[1, "127.0.0.1", one.port], [2, "127.0.0.1", two.port]]


@pytest.fixture
def quorum(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three controllers and no brokers."""
    yield from running(LocalCluster(tmp_path / "quorum", controllers=3, brokers=0))


def leader_of(quorum: LocalCluster) -> Node:
    def agreed() -> Node | None:
        leaders = set()
        for node in quorum.controllers:
            if node.alive:
                error, body = request(node.address, ApiKey.QUORUM_STATUS, {}, timeout=2)
                leaders.add(body.get("leader_id") if error == 0 else None)
        leader = leaders.pop() if len(leaders) == 1 else None
        return next((n for n in quorum.controllers if n.node_id == leader and n.alive), None)

    return wait_for(agreed, 15, "the voters to agree on a leader")  # type: ignore[return-value]


def address(node: Node) -> tuple[str, int]:
    return ("127.0.0.1", node.port)


def test_channel_follows_hints_rejects_stale_epochs_and_fails_over(quorum: LocalCluster) -> None:
    leader = leader_of(quorum)
    followers = [node for node in quorum.controllers if node is not leader]

    async def main() -> None:
        config = ControllerClientConfig(request_timeout_s=10.0)
        # Given only a follower, the channel follows its NOT_CONTROLLER hint to the active controller.
        hinted = RemoteController([address(followers[0])], config)
        assert await hinted.delete_topics(["nope"]) == [("nope", UnknownTopicError.code, "topic 'nope' does not exist")]
        assert hinted.active == address(leader)
        epoch = hinted.controller_epoch
        assert epoch >= 1

        # An answer from an epoch older than one seen is dropped; at the deadline the failure is clear.
        stale = RemoteController([address(leader)], ControllerClientConfig(request_timeout_s=0.5))
        stale.controller_epoch = epoch + 1
        with pytest.raises(StaleControllerEpochError) as info:
            await stale.delete_topics(["nope"])
        assert isinstance(info.value, NotControllerError) and info.value.retriable
        await stale.close()

        # The active controller dies: the channel finds the new one, in a newer epoch.
        everyone = RemoteController([address(node) for node in quorum.controllers], config)
        await everyone.delete_topics(["nope"])
        await asyncio.to_thread(leader.kill9)
        assert (await everyone.delete_topics(["nope"]))[0][1] == UnknownTopicError.code
        assert everyone.active != address(leader) and everyone.controller_epoch > epoch
        await everyone.close()
        await hinted.close()

    asyncio.run(main())


def test_topic_changes_are_not_resent_once_their_outcome_is_unknown(quorum: LocalCluster) -> None:
    leader = leader_of(quorum)
    assert leader.proc is not None

    async def main() -> None:
        config = ControllerClientConfig(request_timeout_s=10.0, attempt_timeout_s=1.0)
        channel = RemoteController([address(node) for node in quorum.controllers], config)
        await channel.delete_topics(["nope"])
        assert channel.active == address(leader)
        os.kill(leader.proc.pid, signal.SIGSTOP)  # the request reaches the socket, the answer never comes
        try:
            started = time.monotonic()
            with pytest.raises(RequestTimedOutError, match="outcome of API 5 is unknown"):
                await channel.create_topics([{"name": "once", "partitions": 1, "replication_factor": 1}], False)
            assert time.monotonic() - started < 3
            status = await channel.quorum_status()  # safe to repeat: answered by another voter
            assert status["node_id"] != leader.node_id
        finally:
            os.kill(leader.proc.pid, signal.SIGCONT)
        await channel.close()

    asyncio.run(main())
