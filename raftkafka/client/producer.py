"""The asynchronous producer: records go into the accumulator, a sender task ships ready batches.

The sender drains at most one ready batch per partition per round, groups them by leader into one PRODUCE
request per broker (at most ``max_in_flight`` requests outstanding per broker), encodes each batch once
with ``encode_batch``, and retries retriable failures with backoff until the batch's delivery timeout.

Idempotence (on by default with ``acks="all"``, as in Kafka 3): before its first batch the sender asks any
broker for a producer id (INIT_PRODUCER_ID), and each batch is encoded once with the id, its epoch and the
partition's next sequence number, so a retry resends the same bytes and the partition leader answers a
duplicate with the stored offset. At most one batch per partition is in flight (Kafka allows five, putting
retries back in sequence order; one is the simple correct rule), so a retry never overtakes a later batch.
The per-record hot path is ``RecordAccumulator.append`` (safe from any thread): ``send`` calls it, and so
does the sync ``Producer``'s ``send``, straight from the user's thread.

The sender is a loop callback, not a task: a wake-up schedules one round (drain, dispatch), however often
it is asked for before the round runs. A PRODUCE request is written by the round itself and its answer
handled by the connection's callback (``ClientNetwork.send``): no task per request. With ``linger_ms=0``
and no request in flight, ``send`` runs the round at once, so a lone record leaves before ``send`` returns;
records sent while requests are in flight still gather into batches.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

from raftkafka.client.accumulator import ProducerBatch, RecordAccumulator, RecordFuture, ignore
from raftkafka.client.network import Address, ClientNetwork
from raftkafka.errors import (
    ClientClosedError,
    InvalidConfigError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    NotLeaderError,
    RaftKafkaError,
    UnknownServerError,
    UnknownTopicError,
    from_wire,
)
from raftkafka.net.api import ACKS_ALL, MALFORMED_BODY_ERRORS, ApiKey
from raftkafka.net.frame import INLINE_LIMIT, BulkBody
from raftkafka.storage.compression import Compression
from raftkafka.storage.record_batch import encode_columns
from raftkafka.structs import Headers, RecordMetadata, TopicPartition

log = logging.getLogger(__name__)

_ACKS: dict[Any, int] = {0: 0, 1: 1, -1: ACKS_ALL, "0": 0, "1": 1, "-1": ACKS_ALL, "all": ACKS_ALL}
_STALE_METADATA = (NotLeaderError, UnknownTopicError, LeaderNotAvailableError)
MAX_IDEMPOTENT_IN_FLIGHT = 5
"""The most requests in flight per broker an idempotent producer allows (what a partition leader caches)."""
_SEQUENCE_MODULUS = 2**31
"""Sequence numbers wrap past 2**31 - 1 to 0, as in Kafka."""


class AsyncProducer:
    """Sends records to topics, batching them per partition. Use ``async with`` or ``start()``/``close()``.

    ``acks``: 0 (no acknowledgement), 1 (the leader stored it) or ``"all"``/-1 (every in-sync replica did).
    ``linger_ms``: how long a batch waits for more records; ``batch_size``: bytes that fill a batch (64 KiB
    by default, four times Kafka's: a batch costs this client far more than its bytes do);
    ``buffer_memory``: bytes of unacknowledged records before ``send`` waits (up to ``max_block_ms``,
    which also bounds waiting for a topic's metadata); ``delivery_timeout_ms``: how long a record may take,
    retries included, before its future fails. ``idempotent``: retries never store a record twice; None
    (default) turns it on unless ``acks`` is not "all" or ``max_in_flight`` exceeds 5, True insists
    (``InvalidConfigError`` with such settings). ``idle_poll_us``: as for ``AsyncConsumer`` (default 0, off).
    """

    def __init__(
        self,
        bootstrap: str | Sequence[str] = "127.0.0.1:9092",
        *,
        acks: int | str = "all",
        linger_ms: float = 5,
        batch_size: int = 65_536,
        buffer_memory: int = 32 * 1024 * 1024,
        max_in_flight: int = 5,
        compression_type: str = "none",
        delivery_timeout_ms: float = 120_000,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        max_block_ms: float = 60_000,
        idempotent: bool | None = None,
        idle_poll_us: int = 0,
    ) -> None:
        if acks not in _ACKS:
            raise ValueError(f"acks must be 0, 1 or 'all' (-1), not {acks!r}")
        if batch_size < 1 or buffer_memory < 1 or max_in_flight < 1 or linger_ms < 0:
            raise ValueError("batch_size, buffer_memory and max_in_flight must be positive, linger_ms >= 0")
        self.acks = _ACKS[acks]
        self.idempotent = _resolve_idempotence(idempotent, self.acks, max_in_flight)
        self.compression = Compression.from_name(compression_type)
        self.max_in_flight = max_in_flight
        self.max_block = max_block_ms / 1000
        self.request_timeout = request_timeout_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self._network = ClientNetwork(
            bootstrap, request_timeout_ms=request_timeout_ms, retry_backoff_ms=retry_backoff_ms,
            idle_poll_us=idle_poll_us,
        )  # fmt: skip
        self._accumulator = RecordAccumulator(
            batch_size=batch_size,
            linger_ms=linger_ms,
            buffer_memory=buffer_memory,
            delivery_timeout_ms=delivery_timeout_ms,
            partition_counts=self._network.cluster.partition_counts,
        )
        self._partition_counts = self._network.cluster.partition_counts
        self._in_flight: dict[Address, int] = {}
        self._muted: set[TopicPartition] = set()  # partitions with a batch in flight, see _one_per_partition
        self._one_per_partition = self.idempotent or max_in_flight == 1
        """At most one batch per partition in flight, to any broker: Kafka's order guarantee for
        max_in_flight=1, and (simpler than Kafka's five) the idempotent producer's."""
        self._producer_id = -1  # with idempotence: -1 until INIT_PRODUCER_ID answers
        self._producer_epoch = -1
        self._next_sequence: dict[TopicPartition, int] = {}
        self._requests: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._sender: asyncio.Future[None] | None = None  # resolved once closed and every batch is done
        self._round: asyncio.Handle | None = None  # the sender round a wake-up scheduled
        self._timer: asyncio.TimerHandle | None = None  # the round when the next batch is ripe
        self._space: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def accumulator(self) -> RecordAccumulator:
        """The record accumulator; its ``append`` is the per-record path of ``send`` (any thread)."""
        return self._accumulator

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to the cluster (``BrokerNotAvailableError`` if no bootstrap server answers)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._accumulator.wakeup = self._wakeup
        self._network.listeners.append(self._wakeup_local)
        try:
            await self._network.refresh([])
        except BaseException:
            await self._network.close()
            raise
        self._sender = self._loop.create_future()
        if self.idempotent:
            self._track(self._loop.create_task(self._init_producer_id()))
        self._wakeup_local()

    async def __aenter__(self) -> AsyncProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, timeout: float | None = None) -> None:
        """Send every buffered record and wait for the answers (at most ``timeout`` seconds; records still
        unanswered then fail with ``ClientClosedError``), then close the connections."""
        if self._closed:
            return
        self._closed = True
        self._accumulator.close()
        if self._sender is not None:
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._sender)
            except TimeoutError:
                pass
            self._accumulator.abort(ClientClosedError("the producer was closed before the record was sent"))
            self._stop_sender()
            for task in self._requests:
                task.cancel()
            await asyncio.gather(*self._requests, return_exceptions=True)
        await self._network.close()

    # sending --------------------------------------------------------------------------------------
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Queue a record; returns its future (await it for the ``RecordMetadata``).

        Waits (up to ``max_block_ms``) for the topic's metadata and for buffer room.
        """
        append = self._accumulator.append
        future = append(ignore, topic, value, key, headers, partition, timestamp_ms)
        if future is not None:
            if self._round is not None and self._accumulator.linger == 0 and not any(self._in_flight.values()):
                self._round.cancel()  # nothing to wait for: send now rather than one loop step later
                self._send_round()
            return future
        if self._closed:
            raise ClientClosedError("the producer is closed")
        deadline = time.monotonic() + self.max_block
        while (future := append(ignore, topic, value, key, headers, partition, timestamp_ms)) is None:
            remaining = deadline - time.monotonic()
            if topic not in self._partition_counts:
                await self._network.wait_for_topics([topic], max(remaining, 0.0))
                continue
            if remaining <= 0:
                raise KafkaTimeoutError(f"no room in the producer's buffer within {self.max_block:g} s")
            if self._space is None or self._space.done():
                self._space = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(self._space)
            except TimeoutError:
                pass
        return future

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for its acknowledgement."""
        future = await self.send(topic, value, key, headers=headers, partition=partition, timestamp_ms=timestamp_ms)
        return await future

    async def flush(self, timeout: float | None = None) -> None:
        """Send every buffered record now and wait until each is acknowledged or failed."""
        pending = self._accumulator.begin_flush()
        try:
            async with asyncio.timeout(timeout):
                for batch in pending:
                    await batch.waiter()
        except TimeoutError:
            raise KafkaTimeoutError(f"flush did not finish within {timeout} s") from None
        finally:
            self._accumulator.end_flush()

    async def partitions_for(self, topic: str) -> list[TopicPartition]:
        """The partitions of ``topic`` (waiting up to ``max_block_ms`` for its metadata)."""
        if topic not in self._partition_counts:
            await self._network.wait_for_topics([topic], self.max_block)
        return self._network.cluster.partitions(topic) or []

    # the sender -----------------------------------------------------------------------------------
    def _wakeup(self) -> None:
        """Wake the sender; callable from any thread."""
        if threading.get_ident() == self._loop_thread:
            self._wakeup_local()
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup_local)

    def _wakeup_local(self) -> None:
        if self._round is None and self._sender is not None and not self._sender.done():
            self._round = cast(asyncio.AbstractEventLoop, self._loop).call_soon(self._send_round)

    def _sendable(self, tp: TopicPartition) -> bool:
        leader = self._network.cluster.leader(tp)
        if leader is None:
            self._network.topics.add(tp[0])
            self._network.request_refresh()
            return False
        if tp in self._muted or (self.idempotent and self._producer_id < 0):
            return False
        return self._in_flight.get((leader.host, leader.port), 0) < self.max_in_flight

    def _send_round(self) -> None:
        """One round of the sender: fail expired batches, send the ready ones, and plan the next round."""
        self._round = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sender = self._sender
        if sender is None or sender.done():
            return
        accumulator = self._accumulator
        try:
            ready, expired, delay = accumulator.drain(self._sendable)
            for batch in expired:
                accumulator.complete(batch, -1, KafkaTimeoutError(
                    f"{batch.topic}-{batch.partition}: {batch.record_count} records expired before they were "
                    f"sent (delivery timeout {accumulator.delivery_timeout:g} s)"
                ))
            if expired:
                self._notify_space()
            if ready:
                self._dispatch(ready)
        except Exception as exc:  # a bug: stop sending, and let close() raise it
            log.exception("the producer's sender failed")
            sender.set_exception(exc)
            return
        if self._closed and accumulator.incomplete == 0:
            sender.set_result(None)
        elif delay is not None:
            if delay <= 0:
                self._wakeup_local()
            else:
                self._timer = cast(asyncio.AbstractEventLoop, self._loop).call_later(delay, self._wakeup_local)

    def _stop_sender(self) -> None:
        for handle in (self._round, self._timer):
            if handle is not None:
                handle.cancel()
        self._round = self._timer = None
        if self._sender is not None and not self._sender.done():
            self._sender.set_result(None)

    def _dispatch(self, batches: list[ProducerBatch]) -> None:
        by_leader: dict[Address, list[ProducerBatch]] = {}
        cluster = self._network.cluster
        for batch in batches:
            leader = cluster.leader(batch.tp)
            if leader is None:  # metadata changed since the drain
                self._accumulator.reenqueue(batch, 0.0)
                continue
            if batch.encoded is None:
                batch.encoded = self._encode(batch)
            by_leader.setdefault((leader.host, leader.port), []).append(batch)
        for address, group in by_leader.items():
            topics: dict[str, list[list[Any]]] = {}
            large = False
            for batch in group:
                topics.setdefault(batch.topic, []).append([batch.partition, batch.encoded])
                large = large or len(batch.encoded) >= INLINE_LIMIT  # type: ignore[arg-type]
            body = {"acks": self.acks, "timeout_ms": int(self.request_timeout * 1000), "topics": list(topics.items())}
            if large:  # written without copying the batches
                body = BulkBody(body)
            self._in_flight[address] = self._in_flight.get(address, 0) + 1
            if self._one_per_partition:
                self._muted.update(batch.tp for batch in group)
            if self.acks == 0:
                self._track(asyncio.get_running_loop().create_task(self._produce_unacknowledged(address, group, body)))
            else:
                self._network.send(ApiKey.PRODUCE, body, partial(self._produced, address, group), address=address)

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keep a sender-side task until it ends (``close`` cancels those still running)."""
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    def _encode(self, batch: ProducerBatch) -> bytes:
        """The batch's bytes, made once: with idempotence they carry the producer id and the partition's next
        sequence number, which then moves past the batch's records (a retry resends these bytes)."""
        sequence = -1
        if self.idempotent:
            sequence = self._next_sequence.get(batch.tp, 0)
            self._next_sequence[batch.tp] = (sequence + batch.record_count) % _SEQUENCE_MODULUS
        return encode_columns(
            batch.deltas, batch.keys, batch.values, batch.headers, first_timestamp=batch.first_timestamp,
            max_timestamp=batch.max_timestamp, compression=self.compression, producer_id=self._producer_id,
            producer_epoch=self._producer_epoch, base_sequence=sequence,
        )

    async def _init_producer_id(self) -> None:
        """Get a producer id from any broker, retrying retriable errors with backoff; a non-retriable error
        fails every record, sent or to be sent, with it."""
        body = {"timeout_ms": int(self.request_timeout * 1000)}
        while True:
            try:
                answer = await self._network.request(ApiKey.INIT_PRODUCER_ID, body)
            except RaftKafkaError as exc:
                if not exc.retriable:
                    log.error("no producer id for the idempotent producer: %s", exc)
                    self._accumulator.abort(exc)
                    self._notify_space()
                    self._wakeup_local()
                    return
                log.warning("no producer id yet, retrying: %s", exc)
                await asyncio.sleep(self.retry_backoff)
                continue
            self._producer_epoch = answer["producer_epoch"]
            self._producer_id = answer["producer_id"]
            log.debug("producer id %d, epoch %d", self._producer_id, self._producer_epoch)
            self._wakeup_local()
            return

    async def _produce_unacknowledged(
        self, address: Address, batches: list[ProducerBatch], body: dict[str, Any]
    ) -> None:
        """acks=0: write the request and complete its batches; the in-flight slot is held until the socket's
        buffer drains."""
        try:
            conn = await self._network.pool.get(address)
            conn.send_oneway(ApiKey.PRODUCE, 0, body)
            for batch in batches:
                self._accumulator.complete(batch, -1)
            await conn.wait_writable()
        except RaftKafkaError as exc:
            if exc.retriable:
                self._network.request_refresh()
            self._retry_or_fail(batches, exc)
        finally:
            self._request_done(address, batches)

    def _produced(self, address: Address, batches: list[ProducerBatch], response: Any, error: Exception | None) -> None:
        """A PRODUCE answer (or failure), straight from the connection."""
        try:
            if error is None:
                self._handle_response(batches, response)
            else:
                exc = error if isinstance(error, RaftKafkaError) else UnknownServerError(str(error))
                if exc.retriable:
                    self._network.request_refresh()
                self._retry_or_fail(batches, exc)
        except MALFORMED_BODY_ERRORS as exc:  # not the shape of a PRODUCE answer
            self._retry_or_fail(batches, UnknownServerError(f"malformed PRODUCE answer from {address}: {exc!r}"))
        finally:
            self._request_done(address, batches)

    def _request_done(self, address: Address, batches: list[ProducerBatch]) -> None:
        self._in_flight[address] -= 1
        self._muted.difference_update(batch.tp for batch in batches)
        self._notify_space()
        if self._closed or self._accumulator.has_queued():  # else the sender has nothing to do yet
            self._wakeup_local()

    def _handle_response(self, batches: list[ProducerBatch], response: dict[str, Any]) -> None:
        by_tp = {batch.tp: batch for batch in batches}
        for topic, partitions in response["topics"]:
            for partition, error, base_offset, message in partitions:
                batch = by_tp.pop((topic, partition), None)
                if batch is None:
                    continue
                if not error:
                    if type(base_offset) is not int:
                        raise TypeError(f"base offset {base_offset!r} of {topic}-{partition}")
                    self._accumulator.complete(batch, base_offset)
                    continue
                exc = from_wire(error, message)
                if isinstance(exc, _STALE_METADATA):
                    self._network.request_refresh()
                self._retry_or_fail([batch], exc)
        for batch in by_tp.values():
            self._accumulator.complete(batch, -1, UnknownServerError(f"no answer for {batch.topic}-{batch.partition}"))

    def _retry_or_fail(self, batches: list[ProducerBatch], error: RaftKafkaError) -> None:
        retry_at = time.monotonic() + self.retry_backoff
        for batch in batches:
            if batch.done:  # already failed, by an abort
                continue
            if error.retriable and retry_at < batch.deadline:
                log.warning("retrying %s-%d (%d records): %s", batch.topic, batch.partition, batch.record_count, error)
                self._accumulator.reenqueue(batch, retry_at)
            else:
                self._accumulator.complete(batch, -1, error)

    def _notify_space(self) -> None:
        space = self._space
        if space is not None and not space.done() and self._accumulator.has_room:
            space.set_result(None)


def _resolve_idempotence(idempotent: bool | None, acks: int, max_in_flight: int) -> bool:
    """Whether the producer is idempotent: None means yes when the settings allow it (Kafka 3's default)."""
    conflict = None
    if acks != ACKS_ALL:
        conflict = f"acks={acks}"
    elif max_in_flight > MAX_IDEMPOTENT_IN_FLIGHT:
        conflict = f"max_in_flight={max_in_flight}"
    if conflict is None:
        return idempotent is not False
    if idempotent:
        raise InvalidConfigError(
            f"an idempotent producer needs acks='all' and max_in_flight <= {MAX_IDEMPOTENT_IN_FLIGHT}, not {conflict}"
            " (pass idempotent=False, or None to turn it off with such settings)"
        )
    return False
