"""The consumer's fetcher: positions of the assigned partitions, pipelined FETCH requests, and the buffer
of fetched data waiting to be handed out.

Every assigned partition with a position, no fetch in flight and fewer than ``MAX_BUFFERED_RESPONSES``
unconsumed responses buffered is fetched, in one FETCH per leader for all such partitions at that moment;
so the next response is on its way (and the broker busy reading it) while ``take`` decodes the previous
one and the user works through its records. Memory is bounded by about ``MAX_BUFFERED_RESPONSES`` + 1
times ``max_partition_fetch_bytes`` per partition (the buffered responses and the one being handed out).
Responses are buffered as raw bytes and decoded only when ``take`` hands their records out; a partition
whose buffered error awaits ``take`` is not fetched, nor is a paused one (pausing drops its buffered data and
keeps its position). Partitions without a position are reset by LIST_OFFSETS according to their reset
strategy; a consumer group's partitions first look up the group's committed offset (reset strategy
``COMMITTED``) and fall back to ``auto_offset_reset`` when there is none. Event loop thread only.

No task sits on the fetch path: planning runs as a loop callback (``wakeup`` schedules one round, however
often called), a FETCH's answer is handled by the connection's callback as soon as its bytes are read
(``ClientNetwork.send``), and a ``wait_for_data`` caller's future is resolved from there directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from raftkafka.client.network import Address, ClientNetwork
from raftkafka.client.record_decoder import decode_fetched
from raftkafka.errors import (
    LeaderNotAvailableError,
    MessageTooLargeError,
    NetworkError,
    NoOffsetForPartitionError,
    NotLeaderError,
    OffsetOutOfRangeError,
    RaftKafkaError,
    UnknownServerError,
    UnknownTopicError,
    from_wire,
)
from raftkafka.net.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, MALFORMED_BODY_ERRORS, ApiKey
from raftkafka.storage.record_batch import complete_prefix
from raftkafka.structs import Record, TopicPartition

log = logging.getLogger(__name__)

RESET_STRATEGIES = ("earliest", "latest", "none")
_RESET_TIMESTAMP = {"earliest": EARLIEST_TIMESTAMP, "latest": LATEST_TIMESTAMP}
_STALE_METADATA = (NotLeaderError, UnknownTopicError, LeaderNotAvailableError)
MAX_BUFFERED_RESPONSES = 2
"""Fetched responses per partition waiting for ``take`` before the partition stops being fetched."""
COMMITTED = "committed"
"""Reset strategy of a group's partition: start at the group's committed offset, else at ``auto_offset_reset``."""

CommittedLookup = Callable[[list[TopicPartition]], Awaitable[dict[TopicPartition, int | None]]]


@dataclass(slots=True)
class PartitionState:
    """Where the consumer is in one assigned partition.

    ``position`` is the offset of the next record to hand out (None until reset); ``fetch_offset`` the
    offset the next fetch asks for; ``epoch`` counts seeks, so data fetched before one is dropped;
    ``fetching``/``resetting`` hold the epoch a request in flight was sent for (-1: none), so a seek
    need not wait for the answer to a request it made useless; ``buffered`` counts fetched responses
    waiting for ``take``, and ``failed`` says one of them is an error (no fetching until it is raised).
    ``paused`` partitions are not fetched.
    """

    reset: str
    position: int | None = None
    fetch_offset: int = 0
    epoch: int = 0
    fetching: int = -1
    resetting: int = -1
    buffered: int = 0
    failed: bool = False
    retry_at: float = 0.0
    paused: bool = False

    def seek(self, offset: int | None, reset: str) -> None:
        self.position = offset
        self.fetch_offset = offset if offset is not None else 0
        self.reset = reset
        self.epoch += 1


@dataclass(slots=True)
class FetchedData:
    """One partition's part of a fetch response, or the error it got (raised by ``take``)."""

    tp: TopicPartition
    epoch: int
    data: bytes = b""
    next_offset: int = 0
    error: RaftKafkaError | None = None
    records: list[Record] = field(default_factory=list)
    index: int = 0
    decoded: bool = False


class Fetcher:
    """Fetches the assigned partitions from their leaders; ``take`` returns the records in offset order
    per partition."""

    def __init__(
        self,
        network: ClientNetwork,
        *,
        auto_offset_reset: str,
        fetch_max_wait_ms: int,
        fetch_min_bytes: int,
        fetch_max_bytes: int,
        max_partition_fetch_bytes: int,
        check_crcs: bool,
    ) -> None:
        self.network = network
        self.auto_offset_reset = auto_offset_reset
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.fetch_min_bytes = fetch_min_bytes
        self.fetch_max_bytes = fetch_max_bytes
        self.max_partition_fetch_bytes = max_partition_fetch_bytes
        self.check_crcs = check_crcs
        self.states: dict[TopicPartition, PartitionState] = {}
        self._buffer: deque[FetchedData] = deque()
        self._current: FetchedData | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # resets and committed offset lookups
        self._loop: asyncio.AbstractEventLoop | None = None
        self._planned: asyncio.Handle | None = None  # the planning round ``wakeup`` scheduled
        self._timer: asyncio.TimerHandle | None = None  # the next planning round after a backoff
        self._waiters: list[asyncio.Future[None]] = []  # ``wait_for_data`` callers
        self._positioned: asyncio.Future[None] | None = None
        self._closed = False
        self.committed_offsets: CommittedLookup | None = None
        """Looks up a group's committed offsets for partitions reset with ``COMMITTED``."""

    # control --------------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.network.listeners.append(self.wakeup)
        self.wakeup()

    async def close(self) -> None:
        self._closed = True
        for handle in (self._planned, self._timer):
            if handle is not None:
                handle.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wakeup(self) -> None:
        """Plan fetches again (after an assignment change, a seek, consumed data or new metadata): once, in a
        loop callback after the caller's step, however often called before it runs."""
        if self._planned is None and self._loop is not None and not self._closed:
            self._planned = self._loop.call_soon(self._plan_round)

    def interrupt(self) -> None:
        """Make a pending ``wait_for_data`` return now (the consumer has something else to do)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def assign(self, partitions: Iterable[TopicPartition], reset: str | None = None) -> None:
        """Fetch exactly ``partitions``; the ones already assigned keep their positions, new ones start
        without one (reset with ``reset``, default ``auto_offset_reset``)."""
        wanted = [TopicPartition(*tp) for tp in partitions]
        reset = reset or self.auto_offset_reset
        self.states = {tp: self.states.get(tp) or PartitionState(reset) for tp in wanted}
        self.network.topics |= {tp.topic for tp in wanted}
        self._drop_stale()
        self.wakeup()

    def seek(self, tp: TopicPartition, offset: int | None, reset: str | None = None) -> None:
        """Move ``tp``'s position to ``offset`` (or, when None, reset it with strategy ``reset``)."""
        state = self._state(tp)
        state.seek(offset, reset or self.auto_offset_reset)
        self._drop_stale()
        self.wakeup()

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        """Stop fetching ``partitions`` and drop their fetched data; their positions stay."""
        for tp in partitions:
            state = self._state(tp)
            if not state.paused:
                state.paused = True
                if state.position is not None:
                    state.seek(state.position, state.reset)  # a new epoch: buffered and in-flight data is dropped
        self._drop_stale()

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        """Fetch ``partitions`` again."""
        for tp in partitions:
            self._state(tp).paused = False
        self.wakeup()

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, state in self.states.items() if state.paused}

    def _state(self, tp: TopicPartition) -> PartitionState:
        state = self.states.get(tp)
        if state is None:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer")
        return state

    def _drop_stale(self) -> None:
        current = self._current
        if current is not None and not self._fresh(current):
            self._current = None
        kept = deque(d for d in self._buffer if self._fresh(d))
        for state in self.states.values():
            state.buffered = 0
            state.failed = False
        for data in kept:
            state = self.states[data.tp]
            state.buffered += 1
            state.failed = state.failed or data.error is not None
        self._buffer = kept

    def _fresh(self, data: FetchedData) -> bool:
        state = self.states.get(data.tp)
        return state is not None and state.epoch == data.epoch

    async def wait_for_position(self, tp: TopicPartition, timeout: float) -> int:
        """``tp``'s position, resetting it first if it has none."""
        state = self._state(tp)
        async with asyncio.timeout(timeout):
            while state.position is None:
                if state.reset == "none":
                    raise NoOffsetForPartitionError(f"{tp.topic}-{tp.partition} has no position to start from")
                if self._positioned is None or self._positioned.done():
                    self._positioned = asyncio.get_running_loop().create_future()
                self.wakeup()
                await asyncio.shield(self._positioned)
                state = self._state(tp)
        return state.position

    # handing out records --------------------------------------------------------------------------
    def take(self, max_records: int) -> list[Record]:
        """Up to ``max_records`` fetched records (raising a partition's error once its records are out)."""
        out: list[Record] = []
        while len(out) < max_records:
            data = self._current
            if data is None:
                if not self._buffer:
                    break
                data = self._buffer.popleft()
                state = self.states[data.tp]
                if state.buffered >= MAX_BUFFERED_RESPONSES or data.error is not None:
                    self.wakeup()  # the partition can be fetched again
                state.buffered -= 1
                if data.error is not None:
                    if out:
                        self._buffer.appendleft(data)
                        state.buffered += 1
                        break
                    state.failed = False
                    raise data.error
                self._current = data
            state = self.states[data.tp]
            if not data.decoded:
                data.records, _ = decode_fetched(
                    data.tp.topic, data.tp.partition, data.data, state.position or 0, check_crcs=self.check_crcs
                )
                data.decoded = True
            records, index = data.records, data.index
            end = index + max_records - len(out)
            if index == 0 and end >= len(records) and not out:
                out = records
            else:
                out += records[index:end]
            if end >= len(records):
                self._current = None
                state.position = data.next_offset
            else:
                data.index = end
                state.position = records[end].offset
        return out

    def has_data(self) -> bool:
        return self._current is not None or bool(self._buffer)

    async def wait_for_data(self, timeout: float) -> None:
        """Return when data (or an error) is buffered, after ``timeout`` seconds, or on ``interrupt``."""
        if self.has_data():
            return
        loop = self._loop or asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()  # one per caller: cancelling one wakes no other
        timer = loop.call_later(timeout, _resolve, waiter)
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if self._waiters and self._waiters[-1] is waiter:
                self._waiters.pop()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)

    def _deliver(self, data: FetchedData) -> None:
        self._buffer.append(data)
        state = self.states[data.tp]
        state.buffered += 1
        state.failed = state.failed or data.error is not None
        self.interrupt()

    # planning -------------------------------------------------------------------------------------
    def _plan_round(self) -> None:
        self._planned = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        delay = self._plan()
        if delay is not None and self._loop is not None and not self._closed:
            self._timer = self._loop.call_later(delay, self.wakeup)

    def _plan(self) -> float | None:
        """Start the resets and fetches that can start; returns seconds until a backoff ends (if any)."""
        now = time.monotonic()
        cluster = self.network.cluster
        fetches: dict[Address, list[tuple[TopicPartition, PartitionState]]] = {}
        resets: dict[Address, list[tuple[TopicPartition, PartitionState]]] = {}
        lookups: list[tuple[TopicPartition, PartitionState]] = []
        delay: float | None = None
        for tp, state in self.states.items():
            if (
                state.epoch in (state.fetching, state.resetting)
                or state.buffered >= MAX_BUFFERED_RESPONSES
                or state.failed
            ):
                continue
            if state.retry_at > now:
                wait = state.retry_at - now
                delay = wait if delay is None else min(delay, wait)
                continue
            if state.position is None:
                if state.reset == COMMITTED and self.committed_offsets is None:
                    state.reset = self.auto_offset_reset
                if state.reset == "none":
                    continue
                if state.reset == COMMITTED:
                    lookups.append((tp, state))
                    continue
            elif state.paused:
                continue
            leader = cluster.leader(tp)
            if leader is None:
                self.network.request_refresh()
                continue
            address = (leader.host, leader.port)
            if state.position is None:
                resets.setdefault(address, []).append((tp, state))
            else:
                fetches.setdefault(address, []).append((tp, state))
        if lookups:
            for _, state in lookups:
                state.resetting = state.epoch
            self._spawn(self._lookup_committed(lookups))
        for address, parts in resets.items():
            for _, state in parts:
                state.resetting = state.epoch
            self._spawn(self._reset(address, parts))
        for address, parts in fetches.items():
            for _, state in parts:
                state.fetching = state.epoch
            self._fetch(address, parts)
        return delay

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _backoff(self, state: PartitionState, error: RaftKafkaError) -> None:
        state.retry_at = time.monotonic() + self.network.retry_backoff
        if isinstance(error, _STALE_METADATA) or not error.retriable:
            self.network.request_refresh()

    def _fetch(self, address: Address, parts: list[tuple[TopicPartition, PartitionState]]) -> None:
        sent = {tp: (state, state.epoch, state.fetch_offset) for tp, state in parts}
        topics: dict[str, list[list[int]]] = {}
        for tp, state in parts:
            topics.setdefault(tp.topic, []).append([tp.partition, state.fetch_offset, self.max_partition_fetch_bytes])
        body = {
            "max_wait_ms": self.fetch_max_wait_ms,
            "min_bytes": self.fetch_min_bytes,
            "max_bytes": self.fetch_max_bytes,
            "topics": list(topics.items()),
        }
        timeout = self.network.request_timeout + self.fetch_max_wait_ms / 1000
        self.network.send(ApiKey.FETCH, body, partial(self._fetched, address, sent), address=address, timeout=timeout)

    def _fetched(
        self,
        address: Address,
        sent: dict[TopicPartition, tuple[PartitionState, int, int]],
        response: Any,
        error: Exception | None,
    ) -> None:
        """A FETCH's answer (or failure), straight from the connection: buffer each partition's data and wake
        the ``wait_for_data`` callers; then plan the next fetches.

        The next fetches go out before the records are decoded (the broker reads the next answer meanwhile) but
        after the callers woken here have run: a request the application sends on seeing the records (the next
        record's PRODUCE, one at a time) reaches the broker first or together with the FETCH, so the broker
        wakes once for both. Planning first made it wake twice, each wake-up costing tens of µs on a VM.
        """
        for state, epoch, _ in sent.values():
            if state.fetching == epoch:
                state.fetching = -1
        if self._closed:
            return
        try:
            if error is not None:
                exc = error if isinstance(error, RaftKafkaError) else NetworkError(str(error))
                log.debug("fetch from %s:%d failed: %s", *address, exc)
                for state, _, _ in sent.values():
                    self._backoff(state, exc)
                self.network.request_refresh()
                return
            for topic, partitions in response["topics"]:
                for partition, error_code, _high_watermark, _log_start, data in partitions:
                    tp = TopicPartition(topic, partition)
                    entry = sent.get(tp)
                    if entry is None or self.states.get(tp) is not entry[0] or entry[0].epoch != entry[1]:
                        continue  # unassigned or sought since the request went out
                    state, epoch, offset = entry
                    if error_code:
                        self._fetch_error(tp, state, from_wire(error_code, None))
                    elif data:
                        length, next_offset = complete_prefix(data)
                        if length == 0:
                            self._deliver(FetchedData(tp, epoch, error=MessageTooLargeError(
                                f"{topic}-{partition} at offset {offset}: a batch is larger than "
                                f"max_partition_fetch_bytes ({self.max_partition_fetch_bytes})"
                            )))
                            continue
                        state.fetch_offset = next_offset
                        self._deliver(FetchedData(tp, epoch, data, next_offset))
        except MALFORMED_BODY_ERRORS as exc:  # not the shape of a FETCH answer
            malformed = UnknownServerError(f"malformed FETCH answer from {address}: {exc!r}")
            log.warning("%s", malformed.message)
            for state, _, _ in sent.values():
                self._backoff(state, malformed)
        finally:
            self.wakeup()  # queued after the callers' wake-ups (see above)

    def _fetch_error(self, tp: TopicPartition, state: PartitionState, error: RaftKafkaError) -> None:
        if isinstance(error, OffsetOutOfRangeError):
            if state.reset == "none":
                self._deliver(FetchedData(tp, state.epoch, error=OffsetOutOfRangeError(
                    f"offset {state.fetch_offset} is out of range for {tp.topic}-{tp.partition}"
                )))
            else:
                log.info("offset %d out of range for %s-%d; resetting to %s",
                         state.fetch_offset, tp.topic, tp.partition, state.reset)
                state.seek(None, state.reset)
        elif error.retriable:
            self._backoff(state, error)
        else:
            self._deliver(FetchedData(tp, state.epoch, error=error))

    async def _reset(self, address: Address, parts: list[tuple[TopicPartition, PartitionState]]) -> None:
        epochs = {tp: state.epoch for tp, state in parts}
        try:
            offsets = await self.list_offsets(address, {tp: _RESET_TIMESTAMP[state.reset] for tp, state in parts})
        except RaftKafkaError as exc:
            for _, state in parts:
                self._backoff(state, exc)
        else:
            for tp, state in parts:
                if self.states.get(tp) is not state or state.epoch != epochs[tp]:
                    continue
                result = offsets[tp]
                if not isinstance(result, RaftKafkaError):
                    state.position = state.fetch_offset = result
                elif result.retriable:
                    self._backoff(state, result)
                else:
                    self._deliver(FetchedData(tp, state.epoch, error=result))
        finally:
            for tp, state in parts:
                if state.resetting == epochs[tp]:
                    state.resetting = -1
            if self._positioned is not None and not self._positioned.done():
                self._positioned.set_result(None)
            self.wakeup()

    async def _lookup_committed(self, parts: list[tuple[TopicPartition, PartitionState]]) -> None:
        epochs = {tp: state.epoch for tp, state in parts}
        assert self.committed_offsets is not None
        try:
            offsets = await self.committed_offsets([tp for tp, _ in parts])
        except RaftKafkaError as exc:
            log.debug("committed offsets lookup failed: %s", exc)
            for tp, state in parts:
                if not exc.retriable and self.states.get(tp) is state and state.epoch == epochs[tp]:
                    self._deliver(FetchedData(tp, state.epoch, error=exc))
                state.retry_at = time.monotonic() + self.network.retry_backoff
        else:
            for tp, state in parts:
                if self.states.get(tp) is not state or state.epoch != epochs[tp]:
                    continue
                offset = offsets.get(tp)
                state.reset = self.auto_offset_reset
                if offset is not None:
                    state.position = state.fetch_offset = offset
                log.debug("%s-%d starts at %s", tp.topic, tp.partition,
                          f"committed offset {offset}" if offset is not None else f"{state.reset} (none committed)")
        finally:
            for tp, state in parts:
                if state.resetting == epochs[tp]:
                    state.resetting = -1
            if self._positioned is not None and not self._positioned.done():
                self._positioned.set_result(None)
            self.wakeup()

    async def list_offsets(
        self, address: Address, timestamps: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int | RaftKafkaError]:
        """LIST_OFFSETS for partitions led by ``address``: each partition's offset, or its error."""
        topics: dict[str, list[list[int]]] = {}
        for tp, timestamp in timestamps.items():
            topics.setdefault(tp.topic, []).append([tp.partition, timestamp])
        response = await self.network.request(ApiKey.LIST_OFFSETS, {"topics": list(topics.items())}, address=address)
        out: dict[TopicPartition, int | RaftKafkaError] = {}
        for topic, partitions in response["topics"]:
            for partition, error, offset, _timestamp in partitions:
                out[TopicPartition(topic, partition)] = from_wire(error, None) if error else offset
        for tp in timestamps:
            out.setdefault(tp, LeaderNotAvailableError(f"no offset returned for {tp.topic}-{tp.partition}"))
        return out


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
