"""The producer's record accumulator and record futures, driven by a fake clock (no I/O)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from raftkafka.client.accumulator import RecordAccumulator
from raftkafka.errors import ClientClosedError, KafkaTimeoutError, MessageTooLargeError, NotLeaderError
from raftkafka.structs import RecordMetadata, TopicPartition

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _acc(clock: Clock, **kw: float) -> RecordAccumulator:
    opts = {"batch_size": 1000, "linger_ms": 5, "buffer_memory": 10_000, "delivery_timeout_ms": 1000} | kw
    return RecordAccumulator(clock=clock, **opts)  # type: ignore[arg-type]


def _all(_: TopicPartition) -> bool:
    return True


def test_batch_is_ready_after_linger_and_keeps_records_as_columns() -> None:
    clock = Clock()
    acc = _acc(clock)
    wakes = []
    acc.wakeup = lambda: wakes.append(1)
    f1 = acc.append(TP0, 5000, b"k", b"v1", (), 100)
    f2 = acc.append(TP0, 5003, None, b"v2", (("h", b"x"),), 100)
    assert wakes == [1]  # one wake for the new batch, none per record
    ready, expired, delay = acc.drain(_all)
    assert ready == [] and expired == [] and delay == pytest.approx(0.005)
    clock.now += 0.005
    ready, _, delay = acc.drain(_all)
    assert len(ready) == 1 and delay is None
    batch = ready[0]
    assert batch.timestamps == [5000, 5003] and batch.keys == [b"k", None] and batch.values == [b"v1", b"v2"]
    assert batch.headers == [(), (("h", b"x"),)] and batch.record_count == 2
    assert not f1.done()
    acc.complete(batch, 42)
    assert f1.result() == RecordMetadata("t", 0, 42, 5000)
    assert f2.result(0) == RecordMetadata("t", 0, 43, 5003)
    assert acc.buffered == 0 and acc.incomplete == 0


def test_full_batch_is_ready_at_once_and_next_record_starts_a_new_batch() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=350)
    wakes = []
    fulls = []
    acc.wakeup = lambda: wakes.append(1)
    acc.on_batch_full = fulls.append
    for i in range(4):
        acc.append(TP0, 1, None, b"x", (), 100)
        assert fulls == ([TP0] if i >= 2 else [])  # 3 x 100 + 100 > 350: full after the third
    ready, _, delay = acc.drain(_all)
    assert [b.record_count for b in ready] == [3]
    assert delay == pytest.approx(0.005)  # the fourth record's batch lingers
    assert len(wakes) == 1  # coalesced until the sender drains


def test_unsendable_partitions_stay_queued_and_one_batch_per_partition_per_drain() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=150, linger_ms=0)
    for _ in range(4):
        acc.append(TP0, 1, None, b"x", (), 100)
    acc.append(TP1, 1, None, b"x", (), 100)
    ready, _, delay = acc.drain(lambda tp: tp == TP1)
    assert [b.tp for b in ready] == [TP1] and delay is None
    ready, _, delay = acc.drain(_all)
    assert [b.tp for b in ready] == [TP0] and delay == 0.0  # more batches of TP0 are ready
    ready, _, _ = acc.drain(_all)
    assert [b.tp for b in ready] == [TP0]


def test_reenqueued_batch_waits_for_backoff_and_goes_first() -> None:
    clock = Clock()
    acc = _acc(clock, linger_ms=0)
    fut = acc.append(TP0, 1, None, b"a", (), 10)
    (batch,), _, _ = acc.drain(_all)
    acc.append(TP0, 1, None, b"b", (), 10)
    acc.reenqueue(batch, clock.now + 0.1)
    ready, _, delay = acc.drain(_all)
    assert ready == [] and delay == pytest.approx(0.1)
    clock.now += 0.1
    (again,), _, _ = acc.drain(_all)
    assert again is batch
    acc.complete(again, 7)
    assert fut.result().offset == 7


def test_expired_batches_are_returned_for_failing() -> None:
    clock = Clock()
    acc = _acc(clock, delivery_timeout_ms=50)
    fut = acc.append(TP0, 1, None, b"a", (), 10)
    clock.now += 0.05
    ready, expired, _ = acc.drain(lambda tp: False)
    assert ready == [] and len(expired) == 1
    acc.complete(expired[0], -1, KafkaTimeoutError("expired"))
    with pytest.raises(KafkaTimeoutError):
        fut.result()
    assert isinstance(fut.exception(), KafkaTimeoutError)


def test_buffer_memory_is_reserved_per_batch_until_completion() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=100, buffer_memory=250, linger_ms=0)
    assert acc.append(TP0, 1, None, b"a", (), 10) is not None
    assert acc.append(TP1, 1, None, b"a", (), 10) is not None
    assert acc.append(TP1, 1, None, b"a", (), 10) is not None  # same open batch: no new reservation
    assert not acc.has_room and acc.buffered == 200
    assert acc.append(TopicPartition("t", 2), 1, None, b"a", (), 10) is None  # a third batch does not fit
    with pytest.raises(MessageTooLargeError):
        acc.append(TopicPartition("t", 3), 1, None, b"a", (), 300)
    ready, _, _ = acc.drain(_all)
    for batch in ready:
        acc.complete(batch, 0)
    assert acc.has_room and acc.buffered == 0
    assert acc.append(TopicPartition("t", 2), 1, None, b"a", (), 10) is not None


def test_flush_makes_lingering_batches_ready_and_close_refuses_records() -> None:
    clock = Clock()
    acc = _acc(clock, linger_ms=10_000)
    acc.append(TP0, 1, None, b"a", (), 10)
    pending = acc.begin_flush()
    ready, _, _ = acc.drain(_all)
    assert ready == pending
    acc.end_flush()
    acc.close()
    with pytest.raises(ClientClosedError):
        acc.append(TP0, 1, None, b"a", (), 10)


def test_abort_fails_queued_batches() -> None:
    acc = _acc(Clock(), linger_ms=10_000)
    fut = acc.append(TP0, 1, None, b"a", (), 10)
    acc.abort(NotLeaderError("gone"))
    with pytest.raises(NotLeaderError):
        fut.result(0)


def test_future_result_times_out_and_wakes_from_another_thread() -> None:
    acc = _acc(Clock(), linger_ms=0)
    fut = acc.append(TP0, 1, None, b"a", (), 10)
    with pytest.raises(KafkaTimeoutError):
        fut.result(0.01)
    (batch,), _, _ = acc.drain(_all)
    seen = []
    fut.add_done_callback(lambda f: seen.append(f.result().offset))
    threading.Timer(0.01, acc.complete, (batch, 5)).start()
    assert fut.result(5).offset == 5
    assert seen == [5]
    fut.add_done_callback(lambda f: seen.append(-f.result().offset))  # already done: called at once
    assert seen == [5, -5]


async def test_future_is_awaitable() -> None:
    acc = _acc(Clock(), linger_ms=0)
    fut = acc.append(TP0, 9, None, b"a", (), 10)
    (batch,), _, _ = acc.drain(_all)
    asyncio.get_running_loop().call_soon(acc.complete, batch, 3)
    assert await fut == RecordMetadata("t", 0, 3, 9)
    assert await fut == RecordMetadata("t", 0, 3, 9)
