"""Consumer API around groups that needs no coordinator: argument checks, the iterator's pending records
(what a commit or ``position`` counts as consumed), and pause/resume against a real ``raftkafka dev``."""

from __future__ import annotations

import re
import time

import pytest

from raftkafka import Admin, Consumer, ConsumerRebalanceListener, Producer, Record, TopicPartition
from raftkafka.aio import AsyncConsumer
from raftkafka.aio import ConsumerRebalanceListener as AioListener
from raftkafka.client.consumer import PendingRecords
from raftkafka.errors import InvalidGroupIdError

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def _records(*spec: tuple[int, int]) -> list[Record]:
    return [Record("t", partition, offset, 0, None, b"", ()) for partition, offset in spec]


def test_listener_is_exported_from_both_apis_with_no_op_methods() -> None:
    assert ConsumerRebalanceListener is AioListener
    listener = ConsumerRebalanceListener()
    assert listener.on_partitions_revoked({T0}) is None
    assert listener.on_partitions_assigned(set()) is None


def test_pending_records_count_only_what_was_yielded() -> None:
    pending = PendingRecords()
    assert pending.first_offsets() == {} and len(pending) == 0
    pending.load(_records((0, 10), (0, 11), (1, 5), (1, 7), (0, 12), (1, 8)))
    assert pending.first_offsets() == {T0: 10, T1: 5}
    assert [r.offset for r in pending.take(3)] == [10, 11, 5]
    assert pending.first_offsets() == {T0: 12, T1: 7}
    pending.index = 5
    assert pending.first_offsets() == {T1: 8}
    pending.index = 6
    assert pending.first_offsets() == {} and len(pending) == 0


def test_pending_records_drop_returns_first_offsets_and_keeps_the_rest() -> None:
    pending = PendingRecords()
    pending.load(_records((0, 10), (1, 5), (0, 11), (1, 6)))
    pending.index = 1
    assert pending.drop({T1}) == {T1: 5}
    assert [(r.partition, r.offset) for r in pending.take(10)] == [(0, 11)]
    pending.load(_records((0, 1), (1, 2)))
    assert pending.drop({TopicPartition("other", 0)}) == {}
    assert len(pending) == 2
    assert pending.drop() == {T0: 1, T1: 2}
    assert len(pending) == 0


def test_group_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval_ms"):
        AsyncConsumer(group_id="g", session_timeout_ms=3000, heartbeat_interval_ms=3000)
    with pytest.raises(ValueError, match="partition_assignment_strategy"):
        AsyncConsumer(group_id="g", partition_assignment_strategy=["cooperative-sticky"])
    with pytest.raises(ValueError, match="partition_assignment_strategy"):
        AsyncConsumer(group_id="g", partition_assignment_strategy=[])
    consumer = AsyncConsumer("a", "b", group_id="g", client_id="billing", partition_assignment_strategy="sticky")
    assert consumer.subscription() == {"a", "b"}
    assert consumer._member is not None
    assert consumer._member.member_id.startswith("billing-")
    assert consumer._member.strategies == ["sticky"]
    other = AsyncConsumer(group_id="g", partition_assignment_strategy=["roundrobin", "range"])
    assert other._member is not None and other._member.member_id != consumer._member.member_id
    assert other._member.strategies == ["roundrobin", "range"]


async def test_groups_need_a_group_id_and_subscribe_excludes_assign() -> None:
    alone = AsyncConsumer()
    with pytest.raises(InvalidGroupIdError):
        alone.subscribe(["t"])
    with pytest.raises(InvalidGroupIdError):
        await alone.commit()
    with pytest.raises(InvalidGroupIdError):
        alone.commit_async()
    with pytest.raises(InvalidGroupIdError):
        await alone.committed(T0)

    subscribed = AsyncConsumer("t", group_id="g")
    with pytest.raises(ValueError, match="mutually exclusive"):
        subscribed.assign([T0])
    subscribed.subscribe(re.compile("t.*"))
    assert subscribed.subscription() == set()  # a pattern's topics are known once resolved
    with pytest.raises(ValueError, match="topic names"):
        subscribed.subscribe([])

    assigned = AsyncConsumer(group_id="g")
    assigned.assign([T0])
    with pytest.raises(ValueError, match="mutually exclusive"):
        assigned.subscribe(["t"])
    assigned.assign([])
    assigned.subscribe("t|u")
    with pytest.raises(ValueError, match="not assigned"):
        assigned.pause(T1)


def _produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    with Producer(bootstrap=bootstrap, linger_ms=2) as producer:
        for i in range(per_partition):
            for p in range(partitions):
                producer.send(topic, b"%d-%d" % (p, i), partition=p)


def _poll_until(consumer: Consumer, count: int, timeout: float = 15.0) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(timeout_ms=100)
    return records


def test_pause_and_resume_keep_positions(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic("t", partitions=2)
    _produce(dev_server, "t", 2, 50)
    with Consumer("t", bootstrap=dev_server, auto_offset_reset="earliest", max_poll_records=10) as consumer:
        first = consumer.poll(timeout_ms=10_000)
        assert first
        consumer.pause(T0)
        assert consumer.paused() == {T0}
        paused_at = consumer.position(T0)
        rest = _poll_until(consumer, 50 - (len(first) - paused_at), timeout=10)
        assert {r.partition for r in rest} <= {1}
        assert len(first) - paused_at + len(rest) == 50
        assert consumer.poll(timeout_ms=300) == []  # partition 1 is drained, partition 0 paused
        assert consumer.position(T0) == paused_at
        consumer.resume(T0)
        assert consumer.paused() == set()
        resumed = _poll_until(consumer, 50 - paused_at, timeout=10)
        assert [r.offset for r in resumed] == list(range(paused_at, 50))
        assert all(r.partition == 0 for r in resumed)


def test_iterator_position_counts_only_yielded_records(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic("t", partitions=2)
    _produce(dev_server, "t", 2, 100)
    with Consumer("t", bootstrap=dev_server, auto_offset_reset="earliest", consumer_timeout_ms=2000) as consumer:
        seen: list[Record] = []
        for record in consumer:
            seen.append(record)
            if len(seen) == 30:
                break
        assert len(consumer._consumer._pending) > 0  # the iterator took more than it yielded
        for tp in (T0, T1):
            yielded = [r.offset for r in seen if r.partition == tp.partition]
            assert consumer.position(tp) == (yielded[-1] + 1 if yielded else 0)
        last = seen[-1]
        other = T1 if last.partition == 0 else T0
        # pausing a partition with records pending rewinds its position to the first one not yielded
        expected_other = consumer.position(other)
        consumer.pause(other)
        assert consumer.position(other) == expected_other
        rest = [r for r in consumer]
        assert {r.partition for r in rest} == {last.partition}
        assert rest[0].offset == last.offset + 1 and rest[-1].offset == 99
        consumer.resume(other)
        after = [r for r in consumer]
        assert [r.offset for r in after] == list(range(expected_other, 100))
        # seek drops pending records of the partition
        consumer.seek(T0, 5)
        consumer.seek(T1, 7)
        records = consumer.poll(timeout_ms=5000, max_records=1)
        assert (records[0].partition, records[0].offset) in {(0, 5), (1, 7)}
