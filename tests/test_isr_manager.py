"""The leader's ISR decisions (``proposed_isr``) and the ISR manager's one-in-flight bookkeeping, on an injected
clock and a recording controller channel."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from raftkafka.broker.isr_manager import MAX_CHECK_INTERVAL_MS, IsrManager, proposed_isr
from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult
from raftkafka.errors import NONE, InvalidUpdateVersionError, NotControllerError

LAG_MS = 2000


@dataclass
class Follower:
    node_id: int
    log_end_offset: int = -1
    last_caught_up_ms: int = 0


@dataclass
class Led:
    """A led partition 1, 2, 3 with leader 1 (the shape ``IsrManager`` reads off ``broker.partition.Partition``)."""

    topic: str = "t"
    partition: int = 0
    is_leader: bool = True
    leader_epoch: int = 3
    partition_epoch: int = 7
    replicas: tuple[int, ...] = (1, 2, 3)
    isr: tuple[int, ...] = (1, 2, 3)
    high_watermark: int = 100
    followers: dict[int, Follower] = field(default_factory=lambda: {2: Follower(2, 100, 0), 3: Follower(3, 100, 0)})


def propose(
    p: Led, now_ms: int, epoch_start: int = 0, eligible: frozenset[int] = frozenset({1, 2, 3})
) -> tuple[int, ...] | None:
    return proposed_isr(1, p.replicas, p.isr, p.followers, p.high_watermark, epoch_start, now_ms, LAG_MS, eligible)


def test_a_fenced_follower_is_never_proposed_back() -> None:
    # the controller fenced broker 3 and took it out of the ISR: its log end offset still equals the (idle)
    # high watermark and it caught up recently, but a proposal would hold the high watermark back for nothing
    p = Led(isr=(1, 2))
    assert propose(p, now_ms=10, eligible=frozenset({1, 2})) is None
    assert propose(p, now_ms=10) == (1, 2, 3)  # once unfenced it may rejoin


def test_in_sync_followers_keep_the_isr() -> None:
    assert propose(Led(), now_ms=LAG_MS) is None


def test_a_follower_that_has_not_caught_up_for_the_lag_time_leaves() -> None:
    p = Led()
    p.followers[2].last_caught_up_ms = 5000
    p.followers[3].last_caught_up_ms = 6000
    assert propose(p, now_ms=5000 + LAG_MS) is None  # exactly the lag time: still in
    assert propose(p, now_ms=5000 + LAG_MS + 1) == (1, 3)
    assert propose(p, now_ms=6000 + LAG_MS + 1) == (1,)  # shrinking to the leader alone is allowed


def test_a_follower_rejoins_once_at_the_high_watermark_and_the_epoch_start() -> None:
    p = Led(isr=(1, 2))
    now = 10_000
    p.followers[2].last_caught_up_ms = now
    p.followers[3] = Follower(3, log_end_offset=100, last_caught_up_ms=now - LAG_MS - 1)
    assert propose(p, now_ms=now) is None  # at the high watermark but silent for the lag time (dead)
    p.followers[3] = Follower(3, log_end_offset=99, last_caught_up_ms=now)
    assert propose(p, now_ms=now) is None  # below the high watermark
    p.followers[3].log_end_offset = 100
    assert propose(p, now_ms=now) == (1, 2, 3)
    assert propose(p, now_ms=now, epoch_start=120) is None  # has not reached the leader's epoch start
    p.followers[3].log_end_offset = -1  # not fetched in this epoch yet
    p.high_watermark = 0
    assert propose(p, now_ms=now) is None


def test_shrink_and_expand_in_one_proposal_in_replica_order() -> None:
    p = Led(replicas=(3, 1, 2), isr=(1, 2))
    p.followers = {2: Follower(2, 100, 0), 3: Follower(3, 100, 10)}
    assert propose(p, now_ms=LAG_MS + 1) == (3, 1)


class Channel:
    """Records requests and answers each with ``answer(change)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, list[IsrChange]]] = []
        self.error: Exception | None = None
        self.refuse = False

    async def alter_partition(
        self, broker_id: int, broker_epoch: int, changes: Sequence[IsrChange]
    ) -> list[IsrChangeResult]:
        self.sent.append((broker_id, broker_epoch, list(changes)))
        if self.error is not None:
            raise self.error
        code = InvalidUpdateVersionError.code if self.refuse else NONE
        return [
            IsrChangeResult(c.topic, c.partition, code, 1, c.leader_epoch, c.new_isr, c.partition_epoch + 1)
            for c in changes
        ]


def manager(partitions: list[Led], channel: Channel, clock: list[int]) -> IsrManager:
    return IsrManager(1, channel, lambda: partitions, lambda: 42, lambda p: 0, lambda: {1, 2, 3},
                      lag_time_max_ms=LAG_MS, clock_ms=lambda: clock[0])  # fmt: skip


def test_one_proposal_in_flight_per_partition_until_the_image_shows_it() -> None:
    p, other = Led(), Led(partition=1, is_leader=False)
    channel, clock = Channel(), [LAG_MS + 1]
    isr = manager([p, other], channel, clock)
    assert isr.check_interval_ms == min(LAG_MS // 2, MAX_CHECK_INTERVAL_MS)
    changes = isr.check()
    assert changes == [IsrChange("t", 0, 3, 7, (1,))]  # both followers lag; the follower partition is skipped
    asyncio.run(isr.send(changes))
    assert channel.sent == [(1, 42, changes)]
    assert isr.check() == []  # accepted, but not in the image yet
    p.isr, p.partition_epoch = (1,), 8  # the image shows the commit
    assert isr.check() == []
    p.followers[2].last_caught_up_ms = clock[0]  # 2 fetched again, at the high watermark
    p.followers[3].last_caught_up_ms = clock[0]
    assert isr.check() == [IsrChange("t", 0, 3, 8, (1, 2, 3))]


def test_refused_or_failed_proposals_are_made_again_on_the_next_check() -> None:
    p = Led()
    channel, clock = Channel(), [LAG_MS + 1]
    isr = manager([p], channel, clock)
    channel.refuse = True
    asyncio.run(isr.send(isr.check()))
    channel.refuse, channel.error = False, NotControllerError("election")
    asyncio.run(isr.send(isr.check()))
    assert len(channel.sent) == 2 and isr.check() == [IsrChange("t", 0, 3, 7, (1,))]


def test_a_new_leader_epoch_or_the_in_flight_timeout_clears_a_proposal() -> None:
    p = Led()
    channel, clock = Channel(), [LAG_MS + 1]
    isr = manager([p], channel, clock)
    assert isr.check() and not isr.check()
    p.leader_epoch = 4
    assert isr.check() == [IsrChange("t", 0, 4, 7, (1,))]
    clock[0] += 30_000
    assert isr.check() == [IsrChange("t", 0, 4, 7, (1,))]
