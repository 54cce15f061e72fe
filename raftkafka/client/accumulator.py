"""The producer's record accumulator: per-partition batches of records waiting to be sent.

User threads ``append`` records to the open batch of their partition (under one lock, no thread hop);
``append`` is the whole per-record path of ``send`` in one Python frame: it checks and sizes the record and
chooses its partition (the key's hash, else the topic's sticky partition). The sender on the event loop
thread ``drain``s the batches that are ready (full, lingered long enough, or flushed), sends them, and
``complete``s them with their base offset or an error. A batch keeps its records as columns (timestamps
as deltas from the batch's first, keys, values, headers), the layout of the record-batch payload, so appending
is two list appends (four once a record in the batch has a key or headers) and encoding one msgpack call.
Every record gets a ``RecordFuture``: two references (its batch and its index), resolved when its batch is.

The module is compiled by Cython when the package is built with a C compiler (``setup.py``; the C types are
declared in ``accumulator.pxd``, which must follow any change to the attributes or to ``append``'s locals): that
halves the cost of ``append``. Without a compiler the same module runs interpreted; ``compiled()`` says which.

Memory is bounded by ``buffer_memory``: the estimated bytes of the records appended and not yet completed. A
record that would pass it waits (the producer's ``send``) for batches to complete, and meanwhile every batch is
ready at once, lingering or not (as with Kafka's exhausted buffer pool). Kafka's pool counts whole batches of
``batch_size`` instead; counting records lets batches be large (a Python client pays much more per batch than
per byte) without a producer writing to many partitions at once running out of room.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from time import time_ns
from typing import Any
from zlib import crc32

from raftkafka.client.partitioner import StickyPartitioner
from raftkafka.errors import ClientClosedError, KafkaTimeoutError, MessageTooLargeError, RaftKafkaError
from raftkafka.structs import Headers, RecordMetadata, TopicPartition

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 12
"""Estimated bytes a record adds to a batch besides its key, value and headers."""
MAX_TIMESTAMP_MS = 2**63
"""Record timestamps are 64-bit signed milliseconds, and never negative (as Kafka's ``ProducerRecord`` checks)."""

DoneCallback = Callable[["RecordFuture"], Any]
Blocked = Callable[[str, Any, Any, Any, Any, Any], "RecordFuture | None"]
"""What ``append`` returns instead when a record cannot be added now, called with the record's arguments."""

_NO_HEADERS: tuple[()] = ()


class ProducerBatch:
    """Records for one partition, sent together as one record batch. Appended to under the accumulator's
    lock until it leaves the accumulator; completed once, on the event loop thread."""

    __slots__ = (
        "_callbacks",
        "_event",
        "_lock",
        "_waiter",
        "base_offset",
        "created",
        "deadline",
        "deltas",
        "done",
        "encoded",
        "error",
        "first_timestamp",
        "full",
        "headers",
        "keys",
        "max_timestamp",
        "partition",
        "retry_at",
        "size",
        "topic",
        "tp",
        "values",
    )

    def __init__(
        self, tp: TopicPartition, now: float, deadline: float, lock: threading.RLock, first_timestamp: int
    ) -> None:
        self.tp = tp
        self.topic, self.partition = tp
        self.first_timestamp = first_timestamp
        self.max_timestamp = first_timestamp
        self.deltas: list[int] = []  # each record's timestamp minus the first's
        self.keys: list[bytes | None] | None = None  # None while no record has a key or headers
        self.values: list[bytes | None] = []
        self.headers: list[Any] | None = None  # None while no record has a key or headers
        self.size = 0
        self.created = now
        self.deadline = deadline
        self.retry_at = 0.0
        self.full = False
        self.encoded: bytes | None = None
        self.done = False
        self.base_offset = -1
        self.error: RaftKafkaError | None = None
        self._lock = lock
        self._event: threading.Event | None = None  # created only when a thread blocks on the batch
        self._waiter: Any = None  # an asyncio.Future, created only when someone awaits
        self._callbacks: list[tuple[DoneCallback, RecordFuture]] = []

    @property
    def record_count(self) -> int:
        """Records appended so far."""
        return len(self.values)

    def add_key_and_headers(self, index: int, key: bytes | None, headers: Any) -> None:
        """Record ``index``'s key and headers; the first record with either gives the batch both columns."""
        if self.keys is None or self.headers is None:
            self.keys = [None] * index
            self.headers = [_NO_HEADERS] * index
        self.keys.append(key)
        self.headers.append(headers or _NO_HEADERS)

    def metadata(self, index: int) -> RecordMetadata:
        """Where the batch's ``index``-th record was stored (offset -1 when unacknowledged, acks=0)."""
        offset = self.base_offset + index if self.base_offset >= 0 else -1
        return RecordMetadata(self.topic, self.partition, offset, self.first_timestamp + self.deltas[index])

    def wait(self, timeout: float | None) -> bool:
        """Block the calling thread until the batch is done; False on timeout."""
        if self.done:
            return True
        with self._lock:
            if self.done:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def waiter(self) -> Any:
        """An asyncio future (of the running loop) that resolves when the batch is done."""
        if self._waiter is None:
            import asyncio

            self._waiter = asyncio.get_running_loop().create_future()
            if self.done:
                self._waiter.set_result(None)
        return self._waiter

    def add_callback(self, callback: DoneCallback, future: RecordFuture) -> None:
        with self._lock:
            if not self.done:
                self._callbacks.append((callback, future))
                return
        callback(future)

    def finish(self, base_offset: int, error: RaftKafkaError | None) -> None:
        """Resolve every record of the batch (event loop thread)."""
        with self._lock:
            if self.done:
                return
            self.base_offset = base_offset
            self.error = error
            self.done = True
            callbacks, self._callbacks = self._callbacks, []
            event = self._event
        if event is not None:
            event.set()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        for callback, future in callbacks:
            try:
                callback(future)
            except Exception:
                log.exception("a producer callback failed")


class RecordFuture:
    """The outcome of one sent record: ``result()`` blocks, ``await`` suspends, until it is acknowledged.

    Made by the accumulator only, on the per-record path: ``__new__`` plus two slot stores, half the cost of
    an ``__init__`` call.
    """

    __slots__ = ("_batch", "_index")

    _batch: ProducerBatch
    _index: int

    def done(self) -> bool:
        """True once the record is acknowledged or failed."""
        return self._batch.done

    def result(self, timeout: float | None = None) -> RecordMetadata:
        """The record's metadata, waiting up to ``timeout`` seconds; raises the error it failed with."""
        batch = self._batch
        if not batch.done and not batch.wait(timeout):
            raise KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        if batch.error is not None:
            raise batch.error.with_traceback(None)
        return batch.metadata(self._index)

    def exception(self, timeout: float | None = None) -> RaftKafkaError | None:
        """The error the record failed with, or None once it succeeded."""
        batch = self._batch
        if not batch.done and not batch.wait(timeout):
            raise KafkaTimeoutError(f"record not acknowledged within {timeout} s")
        return batch.error

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(future)`` when the record is done (on the producer's event loop thread, or at
        once if it already is)."""
        self._batch.add_callback(callback, self)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        batch = self._batch
        if not batch.done:
            yield from batch.waiter().__await__()
        return self.result(0)


class RecordAccumulator:
    """Per-partition queues of unsent batches; the open batch (taking records) of a partition is the last
    of its queue.

    Thread-safe: any thread may ``append``; ``drain``, ``reenqueue`` and ``complete`` belong to the sender
    on the event loop thread.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        linger_ms: float,
        buffer_memory: int,
        delivery_timeout_ms: float,
        partition_counts: dict[str, int] | None = None,
        partitioner: StickyPartitioner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partition_counts: dict[str, int] = {} if partition_counts is None else partition_counts
        """Partitions per topic (the cluster metadata's live mapping); a topic missing here is not appended."""
        self.partitioner = partitioner or StickyPartitioner()
        self._sticky = self.partitioner.current
        self.batch_size = batch_size
        self.linger = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.delivery_timeout = delivery_timeout_ms / 1000
        self.clock = clock
        self.lock = threading.RLock()  # an RLock only to tell whether this thread holds it (see ``append``)
        self.buffered = 0
        self.wakeup: Callable[[], None] = ignore
        """Wakes the sender; called from the appending thread, at most once between two drains."""
        self._queues: dict[TopicPartition, deque[ProducerBatch]] = {}
        self._open: dict[TopicPartition, ProducerBatch] = {}
        self._incomplete: set[ProducerBatch] = set()
        self._wake_pending = False
        self._flushing = 0
        self._exhausted = False  # a record found no room: the next drain sends every batch
        self._closed = False

    @property
    def has_room(self) -> bool:
        """True when ``buffer_memory`` has room for more records."""
        return self.buffered < self.buffer_memory

    @property
    def incomplete(self) -> int:
        """Batches created and not yet completed."""
        return len(self._incomplete)

    def has_queued(self) -> bool:
        """True when some batch waits to be sent (the sender has work once a request is answered)."""
        with self.lock:
            return any(self._queues.values())

    def append(
        self,
        blocked: Blocked,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture | None:
        """Add a record to its partition's open batch and return its future: the partition is ``partition``,
        else the key's hash (``crc32(key) % partitions``), else the topic's sticky partition.

        When the record cannot be added now (its topic's partition count is unknown, or ``buffer_memory`` has no
        room for it) returns ``blocked(topic, value, key, headers, partition, timestamp_ms)`` instead. Raises
        ``TypeError`` for a value, key or headers of the wrong type, ``ValueError`` for a partition the topic does
        not have and ``MessageTooLargeError`` for a record larger than ``buffer_memory``.
        """
        count = self.partition_counts.get(topic)
        if count is None:
            return blocked(topic, value, key, headers, partition, timestamp_ms)
        if type(value) is bytes:
            size = RECORD_OVERHEAD + len(value)
        elif value is None:
            size = RECORD_OVERHEAD
        else:
            value = _as_bytes(value, "value")
            size = RECORD_OVERHEAD + len(value)
        if key is not None:
            if type(key) is not bytes:
                key = _as_bytes(key, "key")
            size += len(key)
        if headers:
            headers = _check_headers(headers)
            size += _headers_size(headers)
        if partition is None:
            if key is None:
                chosen = self._sticky.get(topic)
                if chosen is None or chosen >= count:
                    chosen = self.partitioner.partition(topic, count)
            else:
                chosen = crc32(key) % count
        elif 0 <= partition < count:
            chosen = partition
        else:
            raise ValueError(f"partition {partition} does not exist: {topic!r} has {count} partitions")
        if timestamp_ms is None:
            now_ns = time_ns()  # a C integer when compiled: the division below is C's
            timestamp = now_ns // 1_000_000
        elif type(timestamp_ms) is int and 0 <= timestamp_ms < MAX_TIMESTAMP_MS:
            timestamp = timestamp_ms
        else:
            raise _bad_timestamp(timestamp_ms)
        tp = (topic, chosen)  # a plain tuple: equal to, and cheaper than, a TopicPartition
        lock = self.lock
        try:
            lock.acquire()  # half the cost of ``with``; see the ``except`` for a signal arriving around it
            buffered = self.buffered + size
            if buffered > self.buffer_memory:
                future = self._no_room(size)
            else:
                batch = self._open.get(tp)  # type: ignore[call-overload]
                if batch is None:
                    batch = self._start_batch(tp, timestamp)  # type: ignore[arg-type]
                self.buffered = buffered
                future = RecordFuture.__new__(RecordFuture)
                future._batch = batch
                future._index = index = len(batch.values)
                batch.deltas.append(timestamp - batch.first_timestamp)
                if timestamp > batch.max_timestamp:  # noqa: PLR1730  (a call to max() costs more, interpreted)
                    batch.max_timestamp = timestamp
                batch.values.append(value)
                if key is not None or headers or batch.keys is not None:
                    batch.add_key_and_headers(index, key, headers)
                batch.size += size
                if batch.size + size > self.batch_size:
                    self._close_batch(batch)
        except BaseException:
            # A KeyboardInterrupt can be raised as ``acquire`` returns (signals are checked after calls) or while
            # it waits, before the lock is ours: release it only if this thread holds it.
            if lock._is_owned():  # type: ignore[attr-defined]  # RLock's (threading.Condition relies on it)
                lock.release()
            raise
        lock.release()
        if future is None:
            return blocked(topic, value, key, headers, partition, timestamp_ms)
        return future

    def _no_room(self, size: int) -> None:
        """A record of ``size`` bytes does not fit in ``buffer_memory`` now (lock held): it waits, unless it never
        can, and the batches holding the memory go out without lingering."""
        if size > self.buffer_memory:
            raise MessageTooLargeError(f"a record of {size} bytes exceeds buffer_memory ({self.buffer_memory})")
        self._exhausted = True
        self._wake()

    def _start_batch(self, tp: TopicPartition, first_timestamp: int) -> ProducerBatch:
        if self._closed:
            raise ClientClosedError("the producer is closed")
        now = self.clock()
        batch = self._open[tp] = ProducerBatch(tp, now, now + self.delivery_timeout, self.lock, first_timestamp)
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = deque()
        queue.append(batch)
        self._incomplete.add(batch)
        self._wake()  # arm its linger timer
        return batch

    def _close_batch(self, batch: ProducerBatch) -> None:
        """No more records for ``batch`` (lock held): it is ready to send."""
        batch.full = True
        if self._open.get(batch.tp) is batch:
            del self._open[batch.tp]
        self._wake()
        self.partitioner.batch_full(batch.tp)

    def _wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self.wakeup()

    def drain(
        self, sendable: Callable[[TopicPartition], bool]
    ) -> tuple[list[ProducerBatch], list[ProducerBatch], float | None]:
        """Take at most one ready batch per partition whose leader is ``sendable``.

        Returns ``(ready, expired, delay)``: the batches to send, the batches past their delivery
        timeout (to fail), and seconds until the next batch becomes ready by time (None: no timer needed).
        """
        now = self.clock()
        ready: list[ProducerBatch] = []
        expired: list[ProducerBatch] = []
        delay: float | None = None
        with self.lock:
            self._wake_pending = False
            send_all = self._flushing > 0 or self._closed or self._exhausted
            self._exhausted = False
            linger = self.linger
            for tp, queue in self._queues.items():
                while queue and queue[0].deadline <= now:
                    expired.append(queue.popleft())
                    if self._open.get(tp) is expired[-1]:
                        del self._open[tp]
                if not queue:
                    continue
                batch = queue[0]
                if batch.retry_at > now:
                    wait = batch.retry_at - now
                elif send_all or batch.full or len(queue) > 1 or now >= batch.created + linger:
                    if not sendable(tp):
                        continue
                    ready.append(queue.popleft())
                    if self._open.get(tp) is batch:
                        del self._open[tp]
                    if not queue:
                        continue
                    batch = queue[0]
                    ripe = send_all or batch.full or len(queue) > 1 or now >= batch.created + linger
                    wait = 0.0 if ripe else batch.created + linger - now
                else:
                    wait = batch.created + linger - now
                delay = wait if delay is None else min(delay, wait)
        return ready, expired, delay

    def reenqueue(self, batch: ProducerBatch, retry_at: float) -> None:
        """Put a batch that failed retriably back at the head of its queue, to be sent at ``retry_at``."""
        batch.retry_at = retry_at
        with self.lock:
            batch.full = True  # ready as soon as its backoff ends
            queue = self._queues.get(batch.tp)
            if queue is None:
                queue = self._queues[batch.tp] = deque()
            queue.appendleft(batch)

    def complete(self, batch: ProducerBatch, base_offset: int, error: RaftKafkaError | None = None) -> None:
        """Resolve a batch (success when ``error`` is None) and release its records' bytes."""
        with self.lock:
            if batch in self._incomplete:
                self._incomplete.discard(batch)
                self.buffered -= batch.size
        batch.finish(base_offset, error)

    def begin_flush(self) -> list[ProducerBatch]:
        """Make every batch ready now; returns the batches to wait for. Pair with ``end_flush``."""
        with self.lock:
            self._flushing += 1
            pending = list(self._incomplete)
        self.wakeup()
        return pending

    def end_flush(self) -> None:
        with self.lock:
            self._flushing -= 1

    def close(self) -> None:
        """Refuse new records; every queued batch becomes ready."""
        with self.lock:
            self._closed = True
            self._open.clear()
        self.wakeup()

    def abort(self, error: RaftKafkaError) -> None:
        """Fail every incomplete batch, queued or in flight, with ``error`` and refuse new records."""
        with self.lock:
            self._closed = True
            self._open.clear()
            for queue in self._queues.values():
                queue.clear()
            pending = list(self._incomplete)
        for batch in pending:
            self.complete(batch, -1, error)

    def wait_done(self, batches: list[ProducerBatch], deadline: float | None) -> bool:
        """Block until every batch is done (False if ``deadline``, a ``clock()`` value, passes first)."""
        for batch in batches:
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            if not batch.wait(timeout):
                return False
        return True


def compiled() -> bool:
    """True when this module runs compiled by Cython, False when interpreted."""
    return not __file__.endswith(".py")


def _headers_size(headers: Headers) -> int:
    return sum(len(k) + len(v) + 2 for k, v in headers)


def _bad_timestamp(timestamp_ms: Any) -> Exception:
    if type(timestamp_ms) is not int:
        return TypeError(f"record timestamp_ms must be an int (ms), not {type(timestamp_ms).__name__}")
    return ValueError(f"record timestamp_ms must be in [0, 2**63), not {timestamp_ms}")


def _as_bytes(data: Any, what: str) -> bytes:
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"record {what} must be bytes or None, not {type(data).__name__}")


def _check_headers(headers: Headers) -> Headers:
    for entry in headers:
        if len(entry) != 2 or not isinstance(entry[0], str) or not isinstance(entry[1], bytes):
            raise TypeError(f"headers must be (str, bytes) pairs, not {entry!r}")
    return headers


def ignore(*_: object) -> None:
    """Does nothing: the default wake-up, and the ``Blocked`` of callers that wait for room themselves
    (``append`` then returns None)."""
