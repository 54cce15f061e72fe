"""The idempotent producer's server side against real processes: INIT_PRODUCER_ID (unique ids, also across a
``kill -9`` of the active controller), and a batch resent with the same bytes after the leader stored it but
the client never saw the answer: the same base offset, stored once (on a ``raftkafka dev`` after a crash
restart, and on a 3x3 cluster after the partition leader was killed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka.errors import InvalidProducerEpochError, OutOfOrderSequenceError, UnknownProducerIdError
from raftkafka.net.api import ACKS_ALL, ApiKey
from raftkafka.storage.record_batch import decode_records, encode_batch, iter_batches
from tests.cluster import LocalCluster, Node, active_controller, partition_leader, running, wait_for
from tests.processes import DevServer, request

pytestmark = pytest.mark.timeout(120)

TOPIC = "idem"


def init_producer_id(address: str) -> tuple[int, int]:
    error, body = request(address, ApiKey.INIT_PRODUCER_ID, {"timeout_ms": 20_000}, timeout=30)
    assert error == 0, body
    return body["producer_id"], body["producer_epoch"]


def answers_init_producer_id(controller: Node) -> Node | None:
    """``controller`` if it hands out producer ids now (it is the active controller), else None."""
    try:
        error, _ = request(controller.address, ApiKey.INIT_PRODUCER_ID, {"timeout_ms": 5_000}, timeout=10)
    except OSError:
        return None
    return controller if error == 0 else None


def create_topic(address: str, replication_factor: int = 1, config: dict[str, str] | None = None) -> None:
    topic = {"name": TOPIC, "partitions": 1, "replication_factor": replication_factor, "config": config or {}}
    error, body = request(address, ApiKey.CREATE_TOPICS, {"topics": [topic], "timeout_ms": 10_000})
    assert error == 0 and body["topics"][0][:2] == [TOPIC, 0], body


def idempotent_batch(producer_id: int, sequence: int, values: list[bytes], epoch: int = 0) -> bytes:
    now = int(time.time() * 1000)
    return encode_batch([[0, None, v, []] for v in values], first_timestamp=now, max_timestamp=now,
                        producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)


def produce(address: str, batch: bytes, acks: int = ACKS_ALL) -> tuple[int, int]:
    """``(partition error, base offset)`` of one PRODUCE of ``batch`` over a fresh raw connection."""
    body = {"acks": acks, "timeout_ms": 10_000, "topics": [[TOPIC, [[0, batch]]]]}
    error, answer = request(address, ApiKey.PRODUCE, body, timeout=20)
    assert error == 0, answer
    ((_, ((_, partition_error, base_offset, _),)),) = answer["topics"]
    return partition_error, base_offset


def stored_values(address: str) -> list[bytes]:
    """Every value a consumer reads from the partition leader at ``address``, from offset 0."""
    values: list[bytes] = []
    offset = 0
    while True:
        body = {"max_wait_ms": 0, "topics": [[TOPIC, [[0, offset, 1 << 20]]]]}
        error, answer = request(address, ApiKey.FETCH, body)
        assert error == 0, answer
        ((_, ((_, partition_error, _, _, records),)),) = answer["topics"]
        assert partition_error == 0, partition_error
        if not records:
            return values
        for header in iter_batches(records):
            values.extend(record[2] for record in decode_records(records, header.position, header))
            offset = header.next_offset


def test_dev_answers_a_resent_batch_with_its_offset_also_after_a_crash(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "dev").start()
    try:
        address = server.bootstrap
        create_topic(address)
        ids = [init_producer_id(address) for _ in range(3)]
        assert len({pid for pid, _ in ids}) == 3 and {epoch for _, epoch in ids} == {0}
        pid = ids[0][0]
        first = idempotent_batch(pid, 0, [b"a", b"b"])
        assert produce(address, first) == (0, 0)
        assert produce(address, first) == (0, 0)  # the client never saw the answer: same bytes again
        second = idempotent_batch(pid, 2, [b"c"])
        assert produce(address, second, acks=1) == (0, 2)
        assert produce(address, idempotent_batch(pid, 9, [b"x"]))[0] == OutOfOrderSequenceError.code
        assert produce(address, idempotent_batch(ids[1][0], 5, [b"x"]))[0] == UnknownProducerIdError.code
        other = ids[2][0]
        assert produce(address, idempotent_batch(other, 0, [b"e0"])) == (0, 3)
        assert produce(address, idempotent_batch(other, 1, [b"x"], epoch=1))[0] == OutOfOrderSequenceError.code
        assert produce(address, idempotent_batch(other, 0, [b"e1"], epoch=1)) == (0, 4)
        assert produce(address, idempotent_batch(other, 1, [b"x"]))[0] == InvalidProducerEpochError.code

        server.kill9()
        server.start()
        assert produce(address, second) == (0, 2)  # the state is rebuilt from the log after the crash
        assert produce(address, idempotent_batch(other, 0, [b"e1"], epoch=1)) == (0, 4)
        assert produce(address, idempotent_batch(pid, 4, [b"x"]))[0] == OutOfOrderSequenceError.code
        assert stored_values(address) == [b"a", b"b", b"c", b"e0", b"e1"]
        assert init_producer_id(address)[0] > max(pid for pid, _ in ids)  # a new block after the restart
    finally:
        server.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", "3000"],
        broker_args=["--heartbeat-interval-ms", "500"],
    ))


def test_producer_ids_stay_unique_across_a_controller_kill9(cluster: LocalCluster) -> None:
    via = [broker.address for broker in cluster.brokers]
    before = [init_producer_id(via[i % 3]) for i in range(6)]
    victim = active_controller(cluster)
    victim.kill9()
    after = [init_producer_id(via[i % 3]) for i in range(6)]  # brokers find the new active controller
    victim.start().wait_serving()
    # the controller answers it itself too; the restarted voter may cost one more election first, so the
    # agreed leader can still be activating (a retriable NOT_CONTROLLER)
    active = wait_for(lambda: answers_init_producer_id(active_controller(cluster)), 20, "an active controller")
    direct = [init_producer_id(active.address) for _ in range(2)]  # type: ignore[attr-defined]
    ids = [pid for pid, _ in before + after + direct]
    assert len(set(ids)) == len(ids), ids
    # A new active controller reserves a block of its own (ids from 1000 on); only if an election moved the
    # leadership before the kill can the controller that handed out ``before`` still be the one answering.
    assert {epoch for _, epoch in before + after + direct} == {0}


def test_a_batch_resent_to_the_new_leader_is_stored_once(cluster: LocalCluster) -> None:
    """The leader stored and replicated a batch, then died before the client saw the answer: the client sends
    the same bytes to the new leader, which answers with the original offset and stores nothing new."""
    create_topic(cluster.brokers[0].address, replication_factor=3, config={"min.insync.replicas": "2"})
    pid, _ = init_producer_id(cluster.brokers[0].address)
    old_leader = partition_leader(cluster, TOPIC)
    first = idempotent_batch(pid, 0, [b"a", b"b"])
    second = idempotent_batch(pid, 2, [b"c"])
    assert produce(old_leader.address, first) == (0, 0)
    assert produce(old_leader.address, second) == (0, 2)
    old_leader.kill9()
    new_leader = partition_leader(cluster, TOPIC, exclude=old_leader)
    wait_for(lambda: produce(new_leader.address, second)[0] == 0, 20, "the new leader to take produce requests")
    assert produce(new_leader.address, second) == (0, 2)
    assert produce(new_leader.address, first) == (0, 0)
    assert produce(new_leader.address, idempotent_batch(pid, 3, [b"d"])) == (0, 3)
    assert stored_values(new_leader.address) == [b"a", b"b", b"c", b"d"]
