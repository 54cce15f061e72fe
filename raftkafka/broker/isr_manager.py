"""The partition leader's side of ISR changes (Kafka's AlterPartition manager, KIP-497).

For every partition this broker leads, ``IsrManager.check`` (run every ``check_interval_ms``, by default
the shorter of ``replica.lag.time.max.ms / 2`` and ``MAX_CHECK_INTERVAL_MS``) proposes a new ISR with
``proposed_isr``: without the followers that have not caught up for longer than
``replica.lag.time.max.ms`` (shrink), plus the out-of-sync followers that caught up recently and whose
log end offset reached both the high watermark and the start offset of the leader's epoch (expand: they
hold everything the leader may have acknowledged). Proposals go to the active controller in one
ALTER_PARTITION request per round; at most one is in flight per partition. The committed result is never
applied here: the partition takes its ISR and partition epoch from the metadata image, and a proposal
stays in flight until the image shows a newer partition epoch or leader epoch (or the controller refused
it, or ``in_flight_timeout_ms`` passed). Shrinking below ``min.insync.replicas`` is allowed: that is
what makes ``acks=all`` fail with ``NOT_ENOUGH_REPLICAS``.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult
from raftkafka.errors import NONE, RaftKafkaError, for_code

if TYPE_CHECKING:
    from .partition import Partition

log = logging.getLogger(__name__)

MAX_CHECK_INTERVAL_MS = 250
"""Expansion is checked at least this often, so a follower that caught up rejoins the ISR promptly."""

ClockMs = Callable[[], int]


class FollowerProgress(Protocol):
    """What the leader knows of one follower (``broker.partition.FollowerState``)."""

    node_id: int
    log_end_offset: int
    last_caught_up_ms: int


class LedPartition(Protocol):
    """The parts of a ``broker.partition.Partition`` the ISR manager reads."""

    topic: str
    partition: int
    is_leader: bool
    leader_epoch: int
    partition_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    pending_isr: tuple[int, ...] | None
    followers: Mapping[int, FollowerProgress]

    @property
    def high_watermark(self) -> int: ...


class IsrChannel(Protocol):
    """The active controller, as far as ISR changes go."""

    async def alter_partition(
        self, broker_id: int, broker_epoch: int, changes: Sequence[IsrChange]
    ) -> list[IsrChangeResult]:
        """One result per change, after the commit."""
        ...


def proposed_isr(
    leader_id: int,
    replicas: Sequence[int],
    isr: Sequence[int],
    followers: Mapping[int, FollowerProgress],
    high_watermark: int,
    epoch_start_offset: int,
    now_ms: int,
    lag_time_max_ms: int,
    eligible: AbstractSet[int],
) -> tuple[int, ...] | None:
    """The ISR the leader should ask for (in replica order), or None when the current one is right.

    A follower lags when it has not caught up for longer than ``lag_time_max_ms``; an out-of-sync one
    rejoins when it does not lag, its log end offset reached the high watermark and the start offset
    of the leader's epoch (so a dead follower whose log end offset still equals an idle high watermark
    does not flap back in), and it is ``eligible``: a registered, unfenced broker (Kafka's KIP-841). A
    fenced broker the controller took out of the ISR is never proposed again while fenced: the proposal
    would be refused, and while it is pending the high watermark waits for that dead replica.
    """
    members = set(isr)
    lagging = {
        node_id
        for node_id, follower in followers.items()
        if node_id != leader_id and now_ms - follower.last_caught_up_ms > lag_time_max_ms
    }
    caught_up = {
        node_id
        for node_id, follower in followers.items()
        if node_id not in members
        and node_id in eligible
        and node_id not in lagging
        and follower.log_end_offset >= 0
        and follower.log_end_offset >= high_watermark
        and follower.log_end_offset >= epoch_start_offset
    }
    wanted = (members - lagging) | caught_up | {leader_id}
    if wanted == members:
        return None
    return tuple(node_id for node_id in replicas if node_id in wanted)


def leader_epoch_start_offset(partition: Partition) -> int:
    """The offset the partition's current leader epoch starts at in its log (the log end offset, to be safe,
    when the epoch cache does not name it)."""
    entries = partition.log.leader_epoch_cache.entries
    return next(
        (entry.start_offset for entry in reversed(entries) if entry.epoch == partition.leader_epoch),
        partition.log.log_end_offset,
    )


@dataclass(frozen=True, slots=True)
class _InFlight:
    leader_epoch: int
    partition_epoch: int
    sent_ms: int


class IsrManager:
    """Proposes ISR shrinks and expansions for the partitions ``node_id`` leads."""

    def __init__(
        self,
        node_id: int,
        channel: IsrChannel,
        partitions: Callable[[], Iterable[LedPartition]],
        broker_epoch: Callable[[], int],
        epoch_start_offset: Callable[[LedPartition], int],
        eligible: Callable[[], AbstractSet[int]],
        *,
        lag_time_max_ms: int,
        clock_ms: ClockMs,
        check_interval_ms: int | None = None,
        in_flight_timeout_ms: int = 30_000,
    ) -> None:
        if lag_time_max_ms <= 0:
            raise ValueError("replica.lag.time.max.ms must be positive")
        self.node_id = node_id
        self.lag_time_max_ms = lag_time_max_ms
        self.check_interval_ms = check_interval_ms or max(1, min(lag_time_max_ms // 2, MAX_CHECK_INTERVAL_MS))
        self._channel = channel
        self._partitions = partitions
        self._broker_epoch = broker_epoch
        self._epoch_start_offset = epoch_start_offset
        self._eligible = eligible
        self._clock_ms = clock_ms
        self._in_flight_timeout_ms = in_flight_timeout_ms
        self._in_flight: dict[tuple[str, int], _InFlight] = {}
        self._requests: set[asyncio.Task[None]] = set()

    def check(self) -> list[IsrChange]:
        """The ISR changes to ask for now (each partition then counts as in flight until answered or applied)."""
        now = self._clock_ms()
        eligible = self._eligible()
        changes = []
        for partition in self._partitions():
            if not partition.is_leader:
                continue
            key = (partition.topic, partition.partition)
            pending = self._in_flight.get(key)
            if pending is not None:
                if (
                    pending.leader_epoch == partition.leader_epoch
                    and pending.partition_epoch == partition.partition_epoch
                    and now - pending.sent_ms < self._in_flight_timeout_ms
                ):
                    continue
                del self._in_flight[key]
            new_isr = proposed_isr(
                self.node_id,
                partition.replicas,
                partition.isr,
                partition.followers,
                partition.high_watermark,
                self._epoch_start_offset(partition),
                now,
                self.lag_time_max_ms,
                eligible,
            )
            partition.pending_isr = new_isr
            if new_isr is None:
                continue
            log.info("proposing ISR %s for %s-%d (was %s)", list(new_isr), *key, list(partition.isr))
            self._in_flight[key] = _InFlight(partition.leader_epoch, partition.partition_epoch, now)
            changes.append(IsrChange(*key, partition.leader_epoch, partition.partition_epoch, new_isr))
        return changes

    async def run(self) -> None:
        """Check every ``check_interval_ms`` and send what ``check`` proposes, until cancelled."""
        try:
            while True:
                await asyncio.sleep(self.check_interval_ms / 1000)
                changes = self.check()
                if changes:
                    request = asyncio.create_task(self.send(changes))
                    self._requests.add(request)
                    request.add_done_callback(self._requests.discard)
        finally:
            for request in self._requests:
                request.cancel()

    async def send(self, changes: Sequence[IsrChange]) -> None:
        """Send ``changes`` (from ``check``); refused ones stop counting as in flight, accepted ones wait for
        the image."""
        try:
            results = await self._channel.alter_partition(self.node_id, self._broker_epoch(), changes)
        except RaftKafkaError as exc:
            log.warning("ISR change request failed (retried on a later check): %s", exc)
            for change in changes:
                self._in_flight.pop((change.topic, change.partition), None)
            return
        for result in results:
            if result.error_code != NONE:
                log.info("ISR change of %s-%d refused: %s", result.topic, result.partition,
                         for_code(result.error_code).name)  # fmt: skip
                self._in_flight.pop((result.topic, result.partition), None)
