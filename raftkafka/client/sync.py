"""The synchronous clients: thin wrappers running the async clients on a private event loop thread.

Each ``Producer``, ``Consumer`` and ``Admin`` owns one background thread with its own event loop (uvloop
when installed). Calls hop to that thread and wait for the answer, except ``Producer.send``, which
appends to the shared, lock-guarded accumulator from the caller's thread and only hops when it must
wait (unknown topic, full buffer).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

from raftkafka.client.accumulator import RecordFuture
from raftkafka.client.admin import AsyncAdmin
from raftkafka.client.consumer import AsyncConsumer, ConsumerRebalanceListener, PartitionArgs
from raftkafka.client.producer import AsyncProducer
from raftkafka.errors import KafkaTimeoutError
from raftkafka.net.eventloop import new_event_loop
from raftkafka.structs import (
    BrokerInfo,
    GroupDescription,
    GroupListing,
    Headers,
    Record,
    TopicDescription,
    TopicPartition,
)

T = TypeVar("T")

ITERATION_BATCH = 10_000
"""Records fetched per hop to the loop thread while iterating a ``Consumer``."""


class LoopThread:
    """An event loop running in a daemon thread, owned by one sync client."""

    def __init__(self, name: str) -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (``KafkaTimeoutError`` after ``timeout`` s)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking client call cannot be made from the client's own callbacks")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise KafkaTimeoutError(f"the call did not finish within {timeout} s") from None

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a plain function on the loop thread and return its result."""

        async def call() -> T:
            return function(*args)

        return self.run(call())

    def stop(self) -> None:
        """Stop the loop and its thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()


def _started(name: str, make: Callable[[], T], start: Callable[[T], Coroutine[Any, Any, None]]) -> tuple[LoopThread, T]:
    thread = LoopThread(name)
    try:
        client = make()
        thread.run(start(client))
    except BaseException:
        thread.stop()
        raise
    return thread, client


class SendRecord(Protocol):
    """The signature of ``Producer.send``."""

    def __call__(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture: ...


class Producer:
    """Sends records to topics; the sync twin of ``AsyncProducer`` (same keyword arguments).

    ``send`` returns a ``RecordFuture`` at once; ``future.result()`` blocks for its ``RecordMetadata``.
    Closing (or leaving the ``with`` block) sends and waits for every buffered record.
    """

    send: SendRecord
    """``send(topic, value=None, key=None, *, headers=None, partition=None, timestamp_ms=None)``: queue a record and
    return its future; blocks only to wait for metadata or buffer room. It is the accumulator's ``append`` itself,
    the wait for room bound in: no Python frame of its own per record (8% of a producing thread's CPU)."""

    def __init__(self, bootstrap: str | Sequence[str] = "127.0.0.1:9092", **config: Any) -> None:
        self._thread, self._producer = _started(
            "raftkafka-producer", lambda: AsyncProducer(bootstrap, **config), AsyncProducer.start
        )
        self.send = partial(self._producer.accumulator.append, self._send_waiting)  # type: ignore[assignment]
        self._closed = False

    @property
    def idempotent(self) -> bool:
        """Whether retries are deduplicated by the partition leaders (see ``AsyncProducer``)."""
        return self._producer.idempotent

    def _send_waiting(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None,
        partition: int | None,
        timestamp_ms: int | None,
    ) -> RecordFuture:
        return self._thread.run(
            self._producer.send(topic, value, key, headers=headers, partition=partition, timestamp_ms=timestamp_ms)
        )

    def flush(self, timeout: float | None = None) -> None:
        """Send every buffered record now and wait until each is acknowledged or failed."""
        self._thread.run(self._producer.flush(timeout))

    def partitions_for(self, topic: str) -> list[TopicPartition]:
        """The partitions of ``topic``."""
        return self._thread.run(self._producer.partitions_for(topic))

    def close(self, timeout: float | None = None) -> None:
        """Flush (at most ``timeout`` seconds) and release the connections and the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self._producer.close(timeout))
        finally:
            self._thread.stop()

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        # Ctrl-C (or another BaseException such as SystemExit) leaves at once: records not yet sent fail
        # instead of holding the exit until a full buffer is delivered
        interrupted = exc_type is not None and not issubclass(exc_type, Exception)
        self.close(0 if interrupted else None)


class Consumer:
    """Reads records from partitions, alone or in a consumer group; the sync twin of ``AsyncConsumer`` (same
    arguments).

    Iterating yields every record as it arrives (until ``consumer_timeout_ms`` passes without one). The
    iterator takes records from the loop thread in batches, but ``commit()``, ``position()`` and the
    auto-commit on close count only the records it yielded; rebalances happen between batches, in ``poll``.
    Rebalance listener and commit callbacks run in a worker thread, so they may call this consumer's methods.
    """

    def __init__(self, *topics: str, bootstrap: str | Sequence[str] = "127.0.0.1:9092", **config: Any) -> None:
        self._callbacks: concurrent.futures.ThreadPoolExecutor | None = None

        def make() -> AsyncConsumer:
            consumer = AsyncConsumer(*topics, bootstrap=bootstrap, **config)
            consumer._invoke_callback = self._run_callback
            return consumer

        self._thread, self._consumer = _started("raftkafka-consumer", make, AsyncConsumer.start)
        self._closed = False

    async def _run_callback(self, function: Callable[..., Any], *args: Any) -> None:
        """Run a user callback in the worker thread (the loop thread must stay free for its calls back)."""
        if self._callbacks is None:
            self._callbacks = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="raftkafka-consumer-callback")
        await asyncio.get_running_loop().run_in_executor(self._callbacks, function, *args)

    def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting up to ``timeout_ms`` for the first (rebalancing first when
        the group needs it)."""
        return self._thread.run(self._consumer.poll(timeout_ms, max_records))

    def __iter__(self) -> Iterator[Record]:
        timeout = self._consumer.consumer_timeout
        wait_ms = 1_000_000_000 if timeout is None else timeout * 1000
        batch = max(self._consumer.max_poll_records, ITERATION_BATCH)
        pending = self._consumer._pending  # read here, between calls; the loop thread touches it only in calls
        refill = self._consumer._refill
        run = self._thread.run
        while True:
            records, i = pending.records, pending.index
            if i < len(records):
                pending.index = i + 1
                yield records[i]
            elif not run(refill(wait_ms, batch)):
                return

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions``."""
        self._thread.call(self._consumer.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        return self._thread.call(self._consumer.assignment)

    def subscribe(
        self, topics: Iterable[str] | str | re.Pattern[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Subscribe the group member to ``topics`` (names, or a pattern); the next ``poll`` joins."""
        if not isinstance(topics, str | re.Pattern):
            topics = list(topics)
        self._thread.call(self._consumer.subscribe, topics, listener)

    def subscription(self) -> set[str]:
        """The subscribed topics."""
        return self._thread.call(self._consumer.subscription)

    def unsubscribe(self) -> None:
        """Drop the assignment and leave the group."""
        self._thread.run(self._consumer.unsubscribe())

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets``, or the position after the last record handed out of every assigned partition."""
        self._thread.run(self._consumer.commit(offsets))

    def commit_async(
        self,
        offsets: dict[TopicPartition, int] | None = None,
        callback: Callable[[dict[TopicPartition, int], Exception | None], Any] | None = None,
    ) -> None:
        """Start a commit and return; ``callback(offsets, error)`` runs in the worker thread when it finished."""
        self._thread.call(self._consumer.commit_async, offsets, callback)

    def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of ``partition`` (None when none is)."""
        return self._thread.run(self._consumer.committed(partition))

    def pause(self, *partitions: PartitionArgs) -> None:
        """Stop fetching ``partitions`` (positions stay) until ``resume``."""
        self._thread.call(self._consumer.pause, *partitions)

    def resume(self, *partitions: PartitionArgs) -> None:
        """Fetch paused ``partitions`` again."""
        self._thread.call(self._consumer.resume, *partitions)

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._thread.call(self._consumer.paused)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record ``poll`` returns from ``partition``."""
        self._thread.call(self._consumer.seek, partition, offset)

    def seek_to_beginning(self, *partitions: PartitionArgs) -> None:
        """Move to the earliest offset of ``partitions`` (default: every assigned partition)."""
        self._thread.call(self._consumer.seek_to_beginning, *partitions)

    def seek_to_end(self, *partitions: PartitionArgs) -> None:
        """Move to the end of ``partitions`` (default: every assigned partition)."""
        self._thread.call(self._consumer.seek_to_end, *partitions)

    def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` (or the iterator) returns from ``partition``."""
        return self._thread.run(self._consumer.position(partition))

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset of each partition."""
        return self._thread.run(self._consumer.beginning_offsets(list(partitions)))

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition."""
        return self._thread.run(self._consumer.end_offsets(list(partitions)))

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """For each partition, the earliest offset whose timestamp is at or after the given one (ms)."""
        return self._thread.run(self._consumer.offsets_for_times(timestamps))

    def close(self) -> None:
        """Commit (with auto-commit) and leave the group, stop fetching, release the connections and threads."""
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self._consumer.close())
        finally:
            self._thread.stop()
            if self._callbacks is not None:
                self._callbacks.shutdown(wait=False)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Admin:
    """Manages topics and consumer groups; the sync twin of ``AsyncAdmin`` (same arguments)."""

    def __init__(self, bootstrap: str | Sequence[str] = "127.0.0.1:9092", **config: Any) -> None:
        self._thread, self._admin = _started(
            "raftkafka-admin", lambda: AsyncAdmin(bootstrap, **config), AsyncAdmin.start
        )
        self._closed = False

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Create topic ``name``."""
        self._thread.run(
            self._admin.create_topic(name, partitions, replication_factor, config, validate_only=validate_only)
        )

    def create_partitions(self, name: str, count: int, *, validate_only: bool = False) -> None:
        """Grow topic ``name`` to ``count`` partitions (more than now)."""
        self._thread.run(self._admin.create_partitions(name, count, validate_only=validate_only))

    def delete_topic(self, name: str) -> None:
        """Delete topic ``name`` and all its data."""
        self._thread.run(self._admin.delete_topic(name))

    def list_topics(self) -> list[str]:
        """The names of every topic, sorted."""
        return self._thread.run(self._admin.list_topics())

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (leader, replicas, ISR) and config of topic ``name``."""
        return self._thread.run(self._admin.describe_topic(name))

    def describe_cluster(self) -> list[BrokerInfo]:
        """The brokers of the cluster."""
        return self._thread.run(self._admin.describe_cluster())

    def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset of each partition."""
        return self._thread.run(self._admin.beginning_offsets(list(partitions)))

    def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end offset (high watermark) of each partition."""
        return self._thread.run(self._admin.end_offsets(list(partitions)))

    def list_groups(self) -> list[GroupListing]:
        """Every consumer group, sorted by id."""
        return self._thread.run(self._admin.list_groups())

    def describe_group(self, group_id: str) -> GroupDescription:
        """State, members, assignment and committed offsets of ``group_id`` (``GroupIdNotFoundError`` if none)."""
        return self._thread.run(self._admin.describe_group(group_id))

    def delete_group(self, group_id: str) -> None:
        """Delete ``group_id`` and its committed offsets (``NonEmptyGroupError`` while it has members)."""
        self._thread.run(self._admin.delete_group(group_id))

    def list_group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        """The committed offset of every partition ``group_id`` has committed."""
        return self._thread.run(self._admin.list_group_offsets(group_id))

    def alter_group_offsets(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` for a group without members (``NonEmptyGroupError`` while it has members)."""
        self._thread.run(self._admin.alter_group_offsets(group_id, dict(offsets)))

    def close(self) -> None:
        """Release the connections and the loop thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._thread.run(self._admin.close())
        finally:
            self._thread.stop()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
