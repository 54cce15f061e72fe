"""Producing and consuming with the sync client against a real ``raftkafka dev`` process."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from raftkafka import Admin, Consumer, Producer, Record, TopicPartition
from raftkafka.errors import KafkaTimeoutError, NoOffsetForPartitionError, OffsetOutOfRangeError


def _create(bootstrap: str, topic: str, partitions: int) -> None:
    with Admin(bootstrap=bootstrap) as admin:
        admin.create_topic(topic, partitions=partitions)


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 15.0) -> list[Record]:
    with Consumer(topic, bootstrap=bootstrap, auto_offset_reset="earliest") as consumer:
        return _poll_until(consumer, count, timeout)


def _poll_until(consumer: Consumer, count: int, timeout: float = 15.0) -> list[Record]:
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records += consumer.poll(timeout_ms=200, max_records=count - len(records))
    return records


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_round_trip_preserves_offsets_keys_values_headers_timestamps(dev_server: str, acks: int | str) -> None:
    _create(dev_server, "events", 3)
    sent = []
    with Producer(bootstrap=dev_server, acks=acks, linger_ms=2, batch_size=2000) as producer:
        for i in range(600):
            key = None if i % 3 == 0 else b"user-%d" % (i % 7)
            headers = [("n", b"%d" % i), ("kind", b"test")] if i % 2 else None
            timestamp = 1_700_000_000_000 + i if i % 5 == 0 else None
            future = producer.send("events", value=b"value-%d" % i, key=key, headers=headers, timestamp_ms=timestamp)
            sent.append((future, key, b"value-%d" % i, headers or [], timestamp))
        producer.flush()
        metas = [future.result(10) for future, *_ in sent]
    records = _consume(dev_server, "events", len(sent))
    assert len(records) == len(sent)
    by_partition: dict[int, list[Record]] = defaultdict(list)
    for record in records:
        by_partition[record.partition].append(record)
    assert len(by_partition) == 3
    for part in by_partition.values():
        assert [r.offset for r in part] == list(range(len(part)))
    consumed = {(r.partition, r.value): r for r in records}
    for (_, key, value, headers, timestamp), meta in zip(sent, metas, strict=True):
        record = consumed[(meta.partition, value)]
        assert (record.key, record.headers) == (key, tuple(headers))  # a consumer reads an immutable tuple
        assert record.timestamp == meta.timestamp
        if timestamp is not None:
            assert record.timestamp == timestamp
        else:
            assert abs(record.timestamp - time.time() * 1000) < 60_000
        if acks == 0:
            assert meta.offset == -1
        else:
            assert (meta.topic, meta.offset) == ("events", record.offset)


def test_same_key_same_partition_and_explicit_partition(dev_server: str) -> None:
    _create(dev_server, "keyed", 3)
    with Producer(bootstrap=dev_server, linger_ms=0) as producer:
        parts = {producer.send("keyed", b"v", key=b"user-1").result(10).partition for _ in range(20)}
        assert len(parts) == 1
        assert producer.send("keyed", b"v", partition=2).result(10).partition == 2
        with pytest.raises(ValueError, match="partition 3"):
            producer.send("keyed", b"v", partition=3)
        with pytest.raises(TypeError):
            producer.send("keyed", "not bytes")  # type: ignore[arg-type]
        assert producer.partitions_for("keyed") == [TopicPartition("keyed", p) for p in range(3)]


def test_null_keys_fill_batches_on_a_sticky_partition(dev_server: str) -> None:
    _create(dev_server, "sticky", 3)
    with Producer(bootstrap=dev_server, linger_ms=1000, batch_size=100_000) as producer:
        futures = [producer.send("sticky", b"x" * 10) for _ in range(50)]
        producer.flush()
        assert len({f.result().partition for f in futures}) == 1


def test_closing_flushes_lingering_records(dev_server: str) -> None:
    _create(dev_server, "linger", 1)
    producer = Producer(bootstrap=dev_server, linger_ms=60_000)
    futures = [producer.send("linger", b"r%d" % i) for i in range(10)]
    assert not any(f.done() for f in futures)
    producer.close()
    assert [f.result(0).offset for f in futures] == list(range(10))
    assert [r.value for r in _consume(dev_server, "linger", 10)] == [b"r%d" % i for i in range(10)]


def test_send_waits_for_buffer_room_and_loses_nothing(dev_server: str) -> None:
    """``buffer_memory`` holds a few records' bytes, fewer than one batch: each send past it waits for the batches
    holding it to be sent (at once, however long they would linger) and acknowledged; with ``max_block_ms`` 0 such a
    send fails instead."""
    _create(dev_server, "room", 4)
    for linger_ms in (1, 600_000):  # lingering for 10 minutes, a waiting send would pass max_block_ms (1 minute)
        with Producer(bootstrap=dev_server, buffer_memory=1_000, batch_size=16_384, linger_ms=linger_ms) as producer:
            futures = [producer.send("room", b"%03d" % i + b"x" * 97, partition=i % 4) for i in range(148)]
            assert producer._producer.accumulator.buffered <= 1_000
        assert [f.result(0).offset % 37 for f in futures] == [i // 4 for i in range(148)]
    with Producer(bootstrap=dev_server, buffer_memory=1_000, linger_ms=60_000, max_block_ms=0) as producer:
        for _ in range(8):  # 8 x 112 estimated bytes
            producer.send("room", b"x" * 100)
        with pytest.raises(KafkaTimeoutError, match="no room in the producer's buffer"):
            producer.send("room", b"x" * 100)
    assert len(_consume(dev_server, "room", 304)) == 304


def test_send_from_many_threads(dev_server: str) -> None:
    _create(dev_server, "threads", 2)
    with Producer(bootstrap=dev_server) as producer:

        def work(n: int) -> None:
            for i in range(500):
                producer.send("threads", b"%d-%d" % (n, i), key=b"%d" % n)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = _consume(dev_server, "threads", 2000)
    assert len(records) == 2000
    for n in range(4):  # per key (so per partition), order is kept
        assert [r.value for r in records if r.key == b"%d" % n] == [b"%d-%d" % (n, i) for i in range(500)]


def test_assign_seek_position_and_iteration(dev_server: str) -> None:
    _create(dev_server, "seek", 2)
    tp0, tp1 = TopicPartition("seek", 0), TopicPartition("seek", 1)
    with Producer(bootstrap=dev_server) as producer:
        for i in range(100):
            producer.send("seek", b"%d" % i, partition=i % 2)
    with Consumer(bootstrap=dev_server, auto_offset_reset="earliest", consumer_timeout_ms=500) as consumer:
        assert consumer.assignment() == set()
        consumer.assign([tp0])
        assert consumer.assignment() == {tp0}
        assert consumer.position(tp0) == 0
        assert consumer.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert consumer.end_offsets([tp0, tp1]) == {tp0: 50, tp1: 50}
        consumer.seek(tp0, 42)
        assert consumer.position(tp0) == 42
        records = _poll_until(consumer, 8)
        assert [(r.offset, r.value) for r in records] == [(o, b"%d" % (2 * o)) for o in range(42, 50)]
        assert consumer.position(tp0) == 50
        consumer.assign([tp0, tp1])
        consumer.seek_to_beginning(tp1)
        assert [r.value for r in consumer] == [b"%d" % i for i in range(1, 100, 2)]  # tp0 is at its end
        consumer.seek_to_end()
        assert consumer.position(tp1) == 50
        assert consumer.poll(timeout_ms=100) == []
        consumer.seek_to_beginning([tp0, tp1])
        assert len(_poll_until(consumer, 100)) == 100
        with pytest.raises(ValueError):
            consumer.seek(TopicPartition("seek", 7), 0)


def test_auto_offset_reset_latest_sees_only_new_records(dev_server: str) -> None:
    _create(dev_server, "latest", 1)
    with Producer(bootstrap=dev_server) as producer:
        producer.send("latest", b"old").result(10)
        with Consumer("latest", bootstrap=dev_server) as consumer:  # "latest" is the default, as in Kafka
            assert consumer.position(TopicPartition("latest", 0)) == 1
            producer.send("latest", b"new").result(10)
            assert [r.value for r in _poll_until(consumer, 1)] == [b"new"]


def test_auto_offset_reset_none_and_out_of_range(dev_server: str) -> None:
    _create(dev_server, "strict", 1)
    tp = TopicPartition("strict", 0)
    with Producer(bootstrap=dev_server) as producer:
        for i in range(5):
            producer.send("strict", b"%d" % i)
    with Consumer("strict", bootstrap=dev_server, auto_offset_reset="none") as consumer:
        with pytest.raises(NoOffsetForPartitionError):
            consumer.position(tp)
        consumer.seek(tp, 3)
        assert [r.offset for r in _poll_until(consumer, 2)] == [3, 4]
        consumer.seek(tp, 1000)
        with pytest.raises(OffsetOutOfRangeError):
            _poll_until(consumer, 1, timeout=5)
    with Consumer("strict", bootstrap=dev_server, auto_offset_reset="earliest") as consumer:
        consumer.seek(tp, 1000)  # out of range: reset to the earliest offset
        assert [r.offset for r in _poll_until(consumer, 5)] == [0, 1, 2, 3, 4]


def test_poll_waits_for_records_that_arrive_later(dev_server: str) -> None:
    _create(dev_server, "later", 1)
    with Consumer("later", bootstrap=dev_server, auto_offset_reset="earliest") as consumer:
        assert consumer.poll(timeout_ms=50) == []
        with Producer(bootstrap=dev_server, linger_ms=0) as producer:
            producer.send("later", b"x")
            started = time.monotonic()
            records = consumer.poll(timeout_ms=5000)
        assert [r.value for r in records] == [b"x"]
        assert time.monotonic() - started < 2
