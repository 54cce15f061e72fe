"""The producer's record accumulator and record futures, driven by a fake clock (no I/O).

Every test runs against the module as installed (compiled by Cython when the build had a C compiler) and against
its source interpreted, loaded under another name: the two must behave the same.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import raftkafka.client.accumulator as installed
from raftkafka.client.accumulator import RECORD_OVERHEAD, RecordAccumulator, RecordFuture, ignore
from raftkafka.errors import ClientClosedError, KafkaTimeoutError, MessageTooLargeError, NotLeaderError
from raftkafka.structs import RecordMetadata, TopicPartition


def _interpreted() -> ModuleType:
    source = Path(installed.__file__).with_name("accumulator.py")
    spec = importlib.util.spec_from_file_location("raftkafka.client.accumulator_interpreted", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


IMPLEMENTATIONS = {"interpreted": _interpreted(), "compiled": installed} if installed.compiled() else {
    "interpreted": installed
}


@pytest.fixture(autouse=True, params=sorted(IMPLEMENTATIONS))
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The tests' names for the module's classes point at one implementation at a time."""
    module = IMPLEMENTATIONS[request.param]
    for name in ("RecordAccumulator", "RecordFuture", "ignore"):
        monkeypatch.setitem(globals(), name, getattr(module, name))
    yield


def test_the_build_compiled_the_module_where_required() -> None:
    """CI builds with a compiler and sets RAFTKAFKA_REQUIRE_COMPILED: a build that silently fell back to
    interpreted Python fails here instead of going untested."""
    assert installed.compiled() or not os.environ.get("RAFTKAFKA_REQUIRE_COMPILED")


TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _acc(clock: Clock, **kw: float) -> RecordAccumulator:
    opts = {"batch_size": 1000, "linger_ms": 5, "buffer_memory": 10_000, "delivery_timeout_ms": 1000} | kw
    return RecordAccumulator(clock=clock, partition_counts={"t": 4}, **opts)  # type: ignore[arg-type]


def _put(acc: RecordAccumulator, tp: TopicPartition = TP0, size: int = RECORD_OVERHEAD) -> RecordFuture | None:
    """Append a keyless record of ``size`` estimated bytes (at least ``RECORD_OVERHEAD``) to ``tp``."""
    return acc.append(ignore, tp.topic, b"v" * (size - RECORD_OVERHEAD), None, None, tp.partition, 1)


def _all(_: TopicPartition) -> bool:
    return True


def test_batch_is_ready_after_linger_and_keeps_records_as_columns() -> None:
    clock = Clock()
    acc = _acc(clock)
    wakes = []
    acc.wakeup = lambda: wakes.append(1)
    f1 = acc.append(ignore, "t", b"v1", b"k", None, 0, 5000)
    f2 = acc.append(ignore, "t", b"v2", None, [("h", b"x")], 0, 5003)
    assert wakes == [1]  # one wake for the new batch, none per record
    ready, expired, delay = acc.drain(_all)
    assert ready == [] and expired == [] and delay == pytest.approx(0.005)
    clock.now += 0.005
    ready, _, delay = acc.drain(_all)
    assert len(ready) == 1 and delay is None
    batch = ready[0]
    assert (batch.first_timestamp, batch.deltas, batch.max_timestamp) == (5000, [0, 3], 5003)
    assert batch.keys == [b"k", None] and batch.values == [b"v1", b"v2"]
    assert batch.headers == [(), [("h", b"x")]] and batch.record_count == 2
    assert f1 is not None and f2 is not None and not f1.done()
    acc.complete(batch, 42)
    assert f1.result() == RecordMetadata("t", 0, 42, 5000)
    assert f2.result(0) == RecordMetadata("t", 0, 43, 5003)
    assert acc.buffered == 0 and acc.incomplete == 0


def test_timestamps_are_deltas_from_the_first_and_the_batch_keeps_the_largest() -> None:
    acc = _acc(Clock())
    futures = [acc.append(ignore, "t", b"v", None, None, 0, ts) for ts in (2000, 1990, 2500, 2100)]
    with pytest.raises(TypeError, match="timestamp_ms must be an int"):
        acc.append(ignore, "t", b"v", None, None, 0, 2000.5)  # type: ignore[arg-type]
    for out_of_range in (-1, 2**63):
        with pytest.raises(ValueError, match=r"timestamp_ms must be in \[0, 2\*\*63\)"):
            acc.append(ignore, "t", b"v", None, None, 0, out_of_range)
    acc.append(ignore, "t", b"v", None, None, 1)  # the clock's time: within this test's run
    acc.begin_flush()
    (batch, now), _, _ = acc.drain(_all)
    assert (batch.first_timestamp, batch.deltas, batch.max_timestamp) == (2000, [0, -10, 500, 100], 2500)
    assert now.deltas == [0] and now.first_timestamp == now.max_timestamp
    assert abs(now.first_timestamp - time.time() * 1000) < 60_000
    acc.complete(batch, 0)
    assert [f.result(0).timestamp for f in futures if f is not None] == [2000, 1990, 2500, 2100]


def test_keys_and_headers_columns_appear_with_the_first_record_that_has_one() -> None:
    acc = _acc(Clock(), linger_ms=0)
    _put(acc)
    _put(acc)
    (plain,), _, _ = acc.drain(_all)
    assert plain.keys is None and plain.headers is None and plain.values == [b"", b""]
    _put(acc)
    acc.append(ignore, "t", b"x", b"k", None, 0, 1)
    _put(acc)
    (mixed,), _, _ = acc.drain(_all)
    assert mixed.keys == [None, b"k", None] and mixed.headers == [(), (), ()]


def test_append_checks_the_record_and_chooses_its_partition() -> None:
    acc = _acc(Clock())
    blocked = []
    assert acc.append(lambda *record: blocked.append(record), "unknown", b"v") is None
    assert blocked == [("unknown", b"v", None, None, None, None)]  # no metadata yet: the caller waits
    copied = acc.append(ignore, "t", bytearray(b"v"), None, None, 1)
    assert copied is not None and copied._batch.values == [b"v"] and type(copied._batch.values[0]) is bytes
    with pytest.raises(TypeError, match="value must be bytes"):
        acc.append(ignore, "t", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pairs"):
        acc.append(ignore, "t", b"v", None, [("h", "not bytes")])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="partition 4 does not exist"):
        acc.append(ignore, "t", b"v", None, None, 4)
    keyed = acc.append(ignore, "t", b"v", b"key")
    assert keyed is not None and keyed._batch.partition == zlib.crc32(b"key") % 4


def test_full_batch_is_ready_at_once_and_moves_the_sticky_partition() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=350)
    wakes = []
    acc.wakeup = lambda: wakes.append(1)
    futures = [acc.append(ignore, "t", b"x" * 88) for _ in range(4)]  # 100 estimated bytes each
    partitions = [future._batch.partition for future in futures if future is not None]
    assert len(set(partitions[:3])) == 1 and partitions[3] != partitions[0]  # 3 x 100 + 100 > 350
    ready, _, delay = acc.drain(_all)
    assert [b.record_count for b in ready] == [3]
    assert delay == pytest.approx(0.005)  # the fourth record's batch lingers
    assert len(wakes) == 1  # coalesced until the sender drains


def test_unsendable_partitions_stay_queued_and_one_batch_per_partition_per_drain() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=150, linger_ms=0)
    for _ in range(4):
        _put(acc, TP0, 100)
    _put(acc, TP1, 100)
    ready, _, delay = acc.drain(lambda tp: tp == TP1)
    assert [b.tp for b in ready] == [TP1] and delay is None
    ready, _, delay = acc.drain(_all)
    assert [b.tp for b in ready] == [TP0] and delay == 0.0  # more batches of TP0 are ready
    ready, _, _ = acc.drain(_all)
    assert [b.tp for b in ready] == [TP0]


def test_reenqueued_batch_waits_for_backoff_and_goes_first() -> None:
    clock = Clock()
    acc = _acc(clock, linger_ms=0)
    fut = _put(acc)
    (batch,), _, _ = acc.drain(_all)
    _put(acc)
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
    fut = _put(acc)
    clock.now += 0.05
    ready, expired, _ = acc.drain(lambda tp: False)
    assert ready == [] and len(expired) == 1
    acc.complete(expired[0], -1, KafkaTimeoutError("expired"))
    with pytest.raises(KafkaTimeoutError):
        fut.result()
    assert isinstance(fut.exception(), KafkaTimeoutError)


def test_buffer_memory_counts_the_records_until_their_batch_completes() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=1_000, buffer_memory=250, linger_ms=0)
    for partition in range(4):  # four open batches of 1,000 bytes each, in 250 bytes: records count, not batches
        assert _put(acc, TopicPartition("t", partition), 50) is not None
    assert _put(acc, TP1, 38) is not None  # 238
    assert acc.has_room and acc.buffered == 238
    assert _put(acc, TP0, 13) is None  # would pass 250: waits
    assert _put(acc, TopicPartition("t", 2), 12) is not None  # exactly 250 fits
    assert not acc.has_room
    with pytest.raises(MessageTooLargeError, match="exceeds buffer_memory"):
        _put(acc, TP0, 251)  # larger than the whole buffer: it never fits
    ready, _, _ = acc.drain(_all)
    assert len(ready) == 4
    acc.complete(ready[1], 0)  # TP1's batch: 88 bytes
    assert acc.has_room and acc.buffered == 162
    for batch in ready:
        acc.complete(batch, 0)
    assert acc.buffered == 0
    assert _put(acc, TP0, 250) is not None


def test_a_record_without_room_makes_every_lingering_batch_ready_once() -> None:
    clock = Clock()
    acc = _acc(clock, batch_size=1_000, buffer_memory=100, linger_ms=60_000)
    wakes = []
    acc.wakeup = lambda: wakes.append(1)
    assert _put(acc, TP0, 50) is not None and _put(acc, TP1, 50) is not None
    assert acc.drain(_all)[0] == []  # lingering
    wakes.clear()
    assert _put(acc, TopicPartition("t", 2), 12) is None  # no room: the sender is woken to send what holds it
    assert wakes == [1]
    ready, _, _ = acc.drain(_all)
    assert [batch.tp for batch in ready] == [TP0, TP1]
    acc.complete(ready[0], 0)
    assert _put(acc, TopicPartition("t", 2), 12) is not None
    assert acc.drain(_all)[0] == []  # room again: batches linger as usual


def test_flush_makes_lingering_batches_ready_and_close_refuses_records() -> None:
    clock = Clock()
    acc = _acc(clock, linger_ms=10_000)
    _put(acc)
    pending = acc.begin_flush()
    ready, _, _ = acc.drain(_all)
    assert ready == pending
    acc.end_flush()
    acc.close()
    with pytest.raises(ClientClosedError):
        _put(acc)


def test_abort_fails_queued_batches() -> None:
    acc = _acc(Clock(), linger_ms=10_000)
    fut = _put(acc)
    acc.abort(NotLeaderError("gone"))
    with pytest.raises(NotLeaderError):
        fut.result(0)


def test_future_result_times_out_and_wakes_from_another_thread() -> None:
    acc = _acc(Clock(), linger_ms=0)
    fut = _put(acc)
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
    fut = acc.append(ignore, "t", b"a", None, None, 0, 9)
    (batch,), _, _ = acc.drain(_all)
    asyncio.get_running_loop().call_soon(acc.complete, batch, 3)
    assert await fut == RecordMetadata("t", 0, 3, 9)
    assert await fut == RecordMetadata("t", 0, 3, 9)


def test_an_interrupt_inside_append_leaves_the_lock_free() -> None:
    acc = _acc(Clock())

    def interrupted() -> None:
        raise KeyboardInterrupt

    acc.wakeup = interrupted  # called with the lock held, when the record starts a batch
    with pytest.raises(KeyboardInterrupt):
        _put(acc)
    other = threading.Thread(target=lambda: taken.append(acc.lock.acquire(timeout=1)))
    taken: list[bool] = []
    other.start()
    other.join()
    assert taken == [True]
