"""One partition replica hosted by this broker: its log, its role, the ISR state the leader keeps, the high
watermark, the idempotent producers' state, and the readers and produce requests waiting on them.

Kafka's ISR model: the leader records each follower's log end offset (the offset it asks to fetch next) and
when it last caught up; the high watermark is the lowest log end offset among the in-sync replicas (the
leader included), never decreasing; consumers read below it, followers up to the log end. A follower's high
watermark is ``min(leader's high watermark, own log end offset)``, learned from each fetch; a follower waiting
in a long poll hears of a new one with the next records or within ``HIGH_WATERMARK_NEWS_DELAY_S``.

Idempotent producers (``producer_state``): the leader checks every batch that has a producer id before
appending it; a retry of a stored batch is answered with the stored batch's offsets and not appended again.
The state is built from the log's batch headers the first time this replica leads an idempotent append
(and again after a truncation that lost track of a producer); once built, follower appends and
truncations keep it in step with the log, so a follower that becomes leader again need not rescan.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from raftkafka.errors import (
    FencedLeaderEpochError,
    InvalidRequestError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderError,
    OffsetOutOfRangeError,
    UnknownLeaderEpochError,
)
from raftkafka.metadata.image import PartitionState
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import BatchHeader, iter_batches

from .producer_state import ProducerStateManager, scan_batch_headers

log = logging.getLogger(__name__)

MAX_WAITING_READERS = 64
"""Long polls of one partition kept before the finished ones are pruned."""
NO_EPOCH = -1
"""A fetch that does not name the leader epoch it expects (consumers), so it is not checked."""

ClockMs = Callable[[], int]
HighWatermarkListener = Callable[["Partition"], None]


class FetchWaiter(Protocol):
    """A long-poll fetch waiting on a partition (``add_reader``)."""

    def done(self) -> bool:
        """True once it needs no more wake-ups (answered, given up, or registered anew): it is dropped."""
        ...

    def wake(self) -> None:
        """The partition has something new: called at once, from inside the change (an append, a high watermark
        move, a change of leader), on the event loop thread. Must not raise; must not block."""
        ...


def monotonic_ms() -> int:
    """A monotonic clock in milliseconds (follower fetch and catch-up times)."""
    return time.monotonic_ns() // 1_000_000


HIGH_WATERMARK_NEWS_DELAY_S = 0.005
"""How long a waiting follower may go without hearing of a new high watermark when no records come."""


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower: its log end offset (-1 until its first fetch in this leader
    epoch), when it last caught up (Kafka: a fetch at or past the leader's log end offset, or one reaching
    the log end offset the leader had at the follower's previous fetch), and when it last fetched."""

    node_id: int
    log_end_offset: int = -1
    last_caught_up_ms: int = 0
    last_fetch_ms: int = 0
    last_fetch_leader_end_offset: int = 0
    """The leader's log end offset when this follower last fetched."""


class Partition:
    """A replica of ``topic``-``partition`` on this broker, leader or follower.

    Role and membership come from the metadata image (``update``); ``isr`` and ``partition_epoch`` are the
    image's. The ISR manager reads ``followers``/``isr`` and listens on ``on_high_watermark_change``.
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        topic_id: str,
        log: PartitionLog,
        local_id: int,
        *,
        high_watermark: int = 0,
        clock_ms: ClockMs = monotonic_ms,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.log = log
        self.local_id = local_id
        self.leader_id = -1
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.replicas: tuple[int, ...] = ()
        self.isr: tuple[int, ...] = ()
        self.is_leader = False
        self.followers: dict[int, FollowerState] = {}
        self.on_high_watermark_change: list[HighWatermarkListener] = []
        self.pending_isr: tuple[int, ...] | None = None  # an ISR proposed to the controller, not yet committed
        self.producer_state: ProducerStateManager | None = None  # built on the first idempotent append led here
        self._high_watermark = min(high_watermark, log.log_end_offset)
        self._clock_ms = clock_ms
        self._readers: list[FetchWaiter] = []
        self._replica_readers: list[FetchWaiter] = []
        self._delayed_produces: list[tuple[int, asyncio.Future[None]]] = []
        self._high_watermark_news: asyncio.TimerHandle | None = None  # see _set_high_watermark
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop, once a timer needed it

    # -- role -----------------------------------------------------------------------------------------

    def update(self, state: PartitionState) -> bool:
        """Adopt the image's view of the partition; True when this replica became a follower or follows at a
        new leader epoch (the fetcher must truncate it against the leader before fetching)."""
        was_leader, old_epoch, old_leader = self.is_leader, self.leader_epoch, self.leader_id
        self.replicas, self.isr, self.partition_epoch = state.replicas, state.isr, state.partition_epoch
        self.pending_isr = None  # the image now holds the answer to any proposal
        self.leader_id, self.leader_epoch = state.leader, state.leader_epoch
        self.is_leader = state.leader == self.local_id
        new_term = state.leader_epoch != old_epoch or state.leader != old_leader
        if self.is_leader:
            if new_term or not was_leader:
                self._become_leader()
            else:
                self._sync_followers()
            self.maybe_advance_high_watermark()
            return False
        if was_leader:
            self._step_down()
        return new_term or was_leader

    def _become_leader(self) -> None:
        now = self._clock_ms()
        self.log.assign_leader_epoch(self.leader_epoch)
        # Every follower starts unknown; ISR members count as caught up now, so none is dropped at once.
        self.followers = {
            r: FollowerState(r, last_caught_up_ms=now if r in self.isr else 0, last_fetch_ms=now)
            for r in self.replicas
            if r != self.local_id
        }
        log.info("leader of %s-%d at epoch %d (log end %d, high watermark %d)", self.topic, self.partition,
                 self.leader_epoch, self.log.log_end_offset, self._high_watermark)

    def _sync_followers(self) -> None:
        now = self._clock_ms()
        for r in self.replicas:
            if r != self.local_id and r not in self.followers:
                self.followers[r] = FollowerState(r, last_fetch_ms=now)
        for r in [r for r in self.followers if r not in self.replicas]:
            del self.followers[r]

    def _step_down(self) -> None:
        self.followers = {}
        self._fail_delayed_produces(NotLeaderError(f"{self.topic}-{self.partition} lost its leadership"))
        self._wake(self._readers)
        self._wake_followers()

    def check_leader(self, leader_epoch: int = NO_EPOCH) -> None:
        """Raise unless this replica leads at ``leader_epoch`` (any epoch for ``NO_EPOCH``)."""
        if not self.is_leader:
            raise NotLeaderError(f"broker {self.local_id} is not the leader of {self.topic}-{self.partition}")
        if leader_epoch in (NO_EPOCH, self.leader_epoch):
            return
        if leader_epoch < self.leader_epoch:
            raise FencedLeaderEpochError(
                f"leader epoch {leader_epoch} of {self.topic}-{self.partition} is older than {self.leader_epoch}"
            )
        raise UnknownLeaderEpochError(
            f"leader epoch {leader_epoch} of {self.topic}-{self.partition} is newer than {self.leader_epoch}"
        )

    # -- high watermark ---------------------------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        """The offset below which records are committed and visible to consumers."""
        return self._high_watermark

    def maybe_advance_high_watermark(self) -> bool:
        """(Leader) Move the high watermark to the lowest log end offset of the ISR if that is higher; True
        if it moved. A follower in the ISR that has not fetched in this epoch holds it where it is."""
        if not self.is_leader:
            return False
        candidate = self.log.log_end_offset
        followers = self.followers
        # Kafka's "maximal ISR" (KIP-497): a follower proposed for the ISR counts before the change commits,
        # so the high watermark never passes a replica that may be in the ISR by the time it is read.
        for r in set(self.isr).union(self.pending_isr or ()):
            if r != self.local_id:
                state = followers.get(r)
                if state is None or state.log_end_offset < 0:
                    return False
                candidate = min(candidate, state.log_end_offset)
        if candidate <= self._high_watermark:
            return False
        self._set_high_watermark(candidate)
        return True

    def update_follower_high_watermark(self, leader_high_watermark: int) -> None:
        """(Follower) Take the leader's high watermark, capped by the own log end offset."""
        candidate = min(leader_high_watermark, self.log.log_end_offset)
        if candidate > self._high_watermark:
            self._set_high_watermark(candidate)

    def _set_high_watermark(self, offset: int) -> None:
        self._high_watermark = offset
        self._wake(self._readers)
        if self._delayed_produces:
            self._complete_delayed_produces()
        if self.followers and self._high_watermark_news is None:
            # Waiting followers learn the new high watermark with the next records appended, or after
            # HIGH_WATERMARK_NEWS_DELAY_S: under load (or one record at a time) the news rides on the next
            # fetch answer instead of costing every follower one more fetch round trip per move. (The follower
            # whose fetch moved it starts waiting only after this: the timer covers it too.)
            self._schedule_high_watermark_news()
        for listener in self.on_high_watermark_change:
            listener(self)

    # -- leader: produce --------------------------------------------------------------------------------

    def check_enough_replicas(self) -> None:
        """(acks=all) ``NotEnoughReplicasError`` when the ISR is smaller than ``min.insync.replicas``."""
        required = self.log.config.min_insync_replicas
        if len(self.isr) < required:
            raise NotEnoughReplicasError(
                f"{self.topic}-{self.partition} has {len(self.isr)} in-sync replica(s) {list(self.isr)}; "
                f"min.insync.replicas is {required}"
            )

    def append_as_leader(self, batches: bytearray, headers: list[BatchHeader]) -> int:
        """Append validated ``batches`` (stamped in place); returns the first offset assigned.

        A batch with a producer id must come alone (``InvalidRequestError`` otherwise) and is checked
        against the producer's state first (``OutOfOrderSequenceError``, ``InvalidProducerEpochError``,
        ``UnknownProducerIdError``); a duplicate of a stored batch is not appended: the stored batch's
        base offset is returned.
        """
        self.check_leader()
        if headers[0].producer_id >= 0 or (len(headers) > 1 and any(h.producer_id >= 0 for h in headers)):
            if len(headers) != 1:
                raise InvalidRequestError(
                    f"a batch with a producer id must be alone in its produce entry for {self.topic}-{self.partition}"
                )
            duplicate = self._producers().check_and_record(headers[0], self.log.log_end_offset)
            if duplicate is not None:
                return duplicate.base_offset
        # A failed write takes the log offline for good, so a batch recorded above but not written is harmless.
        base_offset, _ = self.log.append(batches, leader_epoch=self.leader_epoch, headers=headers)
        self._wake_followers()
        self.maybe_advance_high_watermark()
        return base_offset

    def wait_for_high_watermark(self, offset: int) -> asyncio.Future[None] | None:
        """(acks=all) None if the high watermark is already at or past ``offset`` with enough in-sync
        replicas; else a future resolved when it gets there (``NotEnoughReplicasAfterAppendError`` if the
        ISR shrank below ``min.insync.replicas`` meanwhile, ``NotLeaderError`` if leadership moves).
        Cancel the future to give up waiting."""
        if self._high_watermark >= offset:
            self._check_enough_after_append()
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._delayed_produces.append((offset, future))
        return future

    def _complete_delayed_produces(self) -> None:
        high_watermark = self._high_watermark
        waiting = []
        for offset, future in self._delayed_produces:
            if future.done():
                continue
            if offset > high_watermark:
                waiting.append((offset, future))
                continue
            try:
                self._check_enough_after_append()
            except NotEnoughReplicasAfterAppendError as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)
        self._delayed_produces = waiting

    def _check_enough_after_append(self) -> None:
        required = self.log.config.min_insync_replicas
        if len(self.isr) < required:
            raise NotEnoughReplicasAfterAppendError(
                f"{self.topic}-{self.partition} has {len(self.isr)} in-sync replica(s); "
                f"min.insync.replicas is {required}"
            )

    def _fail_delayed_produces(self, exc: Exception) -> None:
        delayed, self._delayed_produces = self._delayed_produces, []
        for _, future in delayed:
            if not future.done():
                future.set_exception(exc)

    def _producers(self) -> ProducerStateManager:
        state = self.producer_state
        if state is None:
            started = time.monotonic()
            plog = self.log
            headers = scan_batch_headers(plog.read, plog.log_start_offset, plog.log_end_offset)
            state = ProducerStateManager.rebuild(headers)
            self.producer_state = state
            log.info("%s-%d: producer state of %d producer(s) rebuilt from offsets %d-%d in %.3f s", self.topic,
                     self.partition, len(state), plog.log_start_offset, plog.log_end_offset, time.monotonic() - started)
        return state

    # -- leader: fetch ------------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int) -> bytes:
        """(Consumers) Whole batches from ``offset`` up to the high watermark: empty at or past it as long as
        ``offset`` is within the log (a new leader's high watermark may lag the old one's until its followers
        fetch), ``OffsetOutOfRangeError`` past the log end."""
        high_watermark = self._high_watermark
        if offset >= high_watermark:
            end = self.log.log_end_offset
            if offset > end:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is past the log end {end} of {self.topic}-{self.partition}"
                )
            return b""
        return self.log.read(offset, max_bytes, max_offset=high_watermark)

    def read_for_follower(self, follower_id: int, offset: int, max_bytes: int, leader_epoch: int) -> bytes:
        """(Replica fetch) Record ``follower_id``'s fetch of ``offset`` (its log end offset), advance the high
        watermark, and return whole batches from ``offset`` up to the log end."""
        self.check_leader(leader_epoch)
        end = self.log.log_end_offset
        if offset > end:
            raise OffsetOutOfRangeError(
                f"follower {follower_id} fetches {self.topic}-{self.partition} at {offset}, past the log end {end}"
            )
        state = self.followers.get(follower_id)
        if state is not None:
            now = self._clock_ms()
            if offset >= end:
                state.last_caught_up_ms = now
            elif offset >= state.last_fetch_leader_end_offset:
                state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
            state.log_end_offset = offset
            state.last_fetch_ms = now
            state.last_fetch_leader_end_offset = end
            self.maybe_advance_high_watermark()
        return self.log.read(offset, max_bytes) if offset < end else b""

    def add_reader(self, waiter: FetchWaiter, *, replica: bool = False) -> None:
        """Wake ``waiter`` (once) when the high watermark moves (consumers) or, for a ``replica`` fetch, also
        when records are appended; also when leadership moves or the replica leaves the broker."""
        readers = self._replica_readers if replica else self._readers
        if len(readers) >= MAX_WAITING_READERS:  # long polls that timed out on an idle partition: forget them
            readers[:] = [w for w in readers if not w.done()]
        readers.append(waiter)

    def _schedule_high_watermark_news(self) -> None:
        if self._loop is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # driven without an event loop (unit tests): no fetch can be waiting
                return
        self._high_watermark_news = self._loop.call_later(HIGH_WATERMARK_NEWS_DELAY_S, self._wake_followers)

    def _wake_followers(self) -> None:
        """Answer the waiting follower fetches now (new records, the high watermark's news, or a role change)."""
        if self._high_watermark_news is not None:
            self._high_watermark_news.cancel()
            self._high_watermark_news = None
        self._wake(self._replica_readers)

    @staticmethod
    def _wake(waiters: list[FetchWaiter]) -> None:
        if waiters:
            woken = waiters[:]
            waiters.clear()  # a waiter registering again while woken goes into the emptied list
            for waiter in woken:
                if not waiter.done():
                    waiter.wake()

    # -- follower -----------------------------------------------------------------------------------------

    def append_as_follower(self, batches: bytes | bytearray | memoryview) -> int:
        """Append batches fetched from the leader as they are; returns the new log end offset."""
        if self.is_leader:
            raise NotLeaderError(f"{self.topic}-{self.partition} is led here; it takes no follower appends")
        end = self.log.append_as_follower(batches)
        if self.producer_state is not None:
            self.producer_state.replay_all(iter_batches(batches))
        return end

    def truncate_to(self, offset: int) -> int:
        """(Follower) Drop the log from ``offset`` on (and the epoch cache); returns the new log end offset."""
        end = self.log.truncate_to(offset)
        self._high_watermark = min(self._high_watermark, end)
        if self.producer_state is not None and not self.producer_state.truncate_to(end):
            self.producer_state = None  # rebuilt from the log when next needed
        return end

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """(Follower) Empty the log and restart it at ``offset`` (the leader's log start moved past ours)."""
        self.log.truncate_fully_and_start_at(offset)
        self._high_watermark = offset
        self.producer_state = None

    def detach(self) -> None:
        """Wake every waiting reader and fail waiting produces: this replica leaves the broker (its log
        belongs to the LogManager)."""
        self._step_down()
        self.is_leader = False
