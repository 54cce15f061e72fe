"""A leader ``Partition`` on a real log, driven by follower fetches and metadata states (an injected clock):
the high watermark, acks=all checks and waits, caught-up times, epoch fencing, follower truncation."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka.broker.partition import HIGH_WATERMARK_NEWS_DELAY_S, Partition
from raftkafka.broker.replica_manager import ReplicaManager
from raftkafka.errors import (
    FencedLeaderEpochError,
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    NotLeaderError,
    OffsetOutOfRangeError,
    UnknownLeaderEpochError,
)
from raftkafka.metadata.image import MetadataImage, PartitionState, TopicImage
from raftkafka.net.api import LATEST_TIMESTAMP
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.log_manager import LogManager
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import encode_batch, validate_batches

LEADER = 1


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def partition(tmp_path: Path, clock: Clock) -> Iterator[Partition]:
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(min_insync_replicas=2))
    replica = Partition("t", 0, "id", plog, LEADER, clock_ms=clock)
    replica.update(state(isr=(1, 2, 3)))
    yield replica
    plog.close()


def state(
    *, leader: int = LEADER, epoch: int = 0, isr: tuple[int, ...] = (1, 2, 3), version: int = 0
) -> PartitionState:
    return PartitionState(0, (1, 2, 3), isr, leader, epoch, version)


def append(partition: Partition, count: int = 1) -> int:
    batches = bytearray(encode_batch([[0, None, b"v", []]] * count, first_timestamp=1, max_timestamp=1))
    return partition.append_as_leader(batches, validate_batches(batches))


def test_high_watermark_is_the_lowest_isr_log_end_and_never_decreases(partition: Partition, clock: Clock) -> None:
    append(partition, 5)
    assert partition.high_watermark == 0  # no follower has fetched in this epoch
    assert partition.read_for_follower(2, 0, 1 << 20, 0)  # a follower reads up to the log end
    assert partition.read(0, 1 << 20) == b""  # a consumer sees nothing yet
    partition.read_for_follower(3, 3, 1 << 20, 0)
    assert partition.high_watermark == 0  # follower 2 is at 0
    partition.read_for_follower(2, 5, 1 << 20, 0)
    assert partition.high_watermark == 3
    partition.read_for_follower(3, 5, 1 << 20, 0)
    assert partition.high_watermark == 5 and partition.read(0, 1 << 20)
    with pytest.raises(OffsetOutOfRangeError):
        partition.read_for_follower(2, 6, 1 << 20, 0)

    # A follower out of the ISR does not hold the high watermark back; shrinking never lowers it.
    partition.update(state(isr=(1, 2), version=1))
    append(partition, 2)
    partition.read_for_follower(2, 7, 1 << 20, 0)
    assert partition.high_watermark == 7
    partition.read_for_follower(3, 1, 1 << 20, 0)
    assert partition.high_watermark == 7


def test_a_follower_proposed_for_the_isr_holds_the_high_watermark_before_the_change_commits(
    partition: Partition,
) -> None:
    partition.update(state(isr=(1, 2), version=1))
    append(partition, 4)
    partition.read_for_follower(3, 2, 1 << 20, 0)  # follower 3 (outside the ISR) has 2 of the 4 records
    partition.pending_isr = (1, 2, 3)  # the ISR manager proposed adding it; the controller has not answered
    partition.read_for_follower(2, 4, 1 << 20, 0)
    assert partition.high_watermark == 2  # Kafka's maximal ISR: 3 may be in the ISR when this is read
    partition.update(state(isr=(1, 2), version=2))  # the image answered (here: not added); the proposal is gone
    partition.read_for_follower(2, 4, 1 << 20, 0)
    assert partition.high_watermark == 4


def test_single_replica_commits_at_once(tmp_path: Path) -> None:
    plog = PartitionLog.open(tmp_path / "solo", LogConfig())
    replica = Partition("solo", 0, "id", plog, LEADER)
    replica.update(PartitionState(0, (1,), (1,), 1, 0, 0))
    append(replica, 3)
    assert replica.high_watermark == 3
    plog.close()


def test_caught_up_time_follows_kafkas_rule(partition: Partition, clock: Clock) -> None:
    follower = partition.followers[2]
    assert follower.last_caught_up_ms == 1_000  # ISR members start caught up in a new leader epoch
    append(partition, 4)
    clock.now = 2_000
    partition.read_for_follower(2, 0, 1 << 20, 0)  # behind the log end (4)
    assert (follower.log_end_offset, follower.last_caught_up_ms, follower.last_fetch_ms) == (0, 1_000, 2_000)
    append(partition, 1)
    clock.now = 3_000
    partition.read_for_follower(2, 4, 1 << 20, 0)  # reached the log end of its previous fetch
    assert follower.last_caught_up_ms == 2_000
    clock.now = 4_000
    partition.read_for_follower(2, 5, 1 << 20, 0)  # at the log end
    assert follower.last_caught_up_ms == 4_000


def test_acks_all_checks_the_isr_and_waits_for_the_high_watermark(partition: Partition) -> None:
    async def scenario() -> None:
        partition.check_enough_replicas()
        append(partition, 2)
        waiting = partition.wait_for_high_watermark(partition.log.log_end_offset)
        assert waiting is not None and not waiting.done()
        partition.read_for_follower(2, 2, 1 << 20, 0)
        assert not waiting.done()
        partition.read_for_follower(3, 2, 1 << 20, 0)
        await asyncio.wait_for(waiting, 1)
        assert partition.wait_for_high_watermark(2) is None

        # The ISR shrinks below min.insync.replicas while a batch waits: it fails, and later ones are refused.
        append(partition, 1)
        waiting = partition.wait_for_high_watermark(partition.log.log_end_offset)
        partition.update(state(isr=(1,), version=1))
        with pytest.raises(NotEnoughReplicasAfterAppendError):
            await asyncio.wait_for(waiting, 1)
        with pytest.raises(NotEnoughReplicasError):
            partition.check_enough_replicas()

        # Leadership moves while a batch waits: it fails with NOT_LEADER.
        partition.update(state(isr=(1, 2), version=2))
        append(partition, 1)
        waiting = partition.wait_for_high_watermark(partition.log.log_end_offset)
        partition.update(state(leader=2, epoch=1, isr=(1, 2), version=3))
        with pytest.raises(NotLeaderError):
            await asyncio.wait_for(waiting, 1)

    asyncio.run(scenario())


class Waiter:
    """A parked fetch, as ``Partition.add_reader`` sees it."""

    def __init__(self) -> None:
        self.woken = 0

    def done(self) -> bool:
        return False

    def wake(self) -> None:
        self.woken += 1


def test_waiting_followers_hear_of_a_new_high_watermark_with_the_next_records_or_after_a_short_delay(
    partition: Partition,
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        append(partition, 1)
        partition.read_for_follower(2, 1, 1 << 20, 0)
        follower = Waiter()
        partition.add_reader(follower, replica=True)
        partition.read_for_follower(3, 1, 1 << 20, 0)  # the ISR caught up: the high watermark moves to 1
        assert partition.high_watermark == 1 and follower.woken == 0
        append(partition, 1)  # records: the follower is answered at once, the news rides along
        assert follower.woken == 1

        partition.read_for_follower(2, 2, 1 << 20, 0)
        partition.add_reader(follower, replica=True)
        partition.read_for_follower(3, 2, 1 << 20, 0)
        moved = loop.time()
        mover = Waiter()  # the follower whose fetch moved it waits from now on
        partition.add_reader(mover, replica=True)
        assert partition.high_watermark == 2 and follower.woken == 1 and mover.woken == 0
        while follower.woken == 1:  # no records come: the news alone wakes both, a few milliseconds later
            assert loop.time() - moved < 1, "the follower never heard of the new high watermark"
            await asyncio.sleep(0.001)
        assert mover.woken == 1
        assert loop.time() - moved >= HIGH_WATERMARK_NEWS_DELAY_S * 0.9

    asyncio.run(scenario())


def test_fetches_are_fenced_by_leader_epoch(partition: Partition) -> None:
    partition.update(state(epoch=2, version=1))
    partition.check_leader(2)
    with pytest.raises(FencedLeaderEpochError):
        partition.read_for_follower(2, 0, 1024, 1)
    with pytest.raises(UnknownLeaderEpochError):
        partition.read_for_follower(2, 0, 1024, 3)
    partition.update(state(leader=2, epoch=3, version=2))
    with pytest.raises(NotLeaderError):
        partition.check_leader()
    assert partition.followers == {}


def test_new_leader_epoch_is_recorded_and_follower_truncation_lowers_the_high_watermark(partition: Partition) -> None:
    for _ in range(3):
        append(partition)
    partition.read_for_follower(2, 3, 1024, 0)
    partition.read_for_follower(3, 3, 1024, 0)
    partition.update(state(leader=2, epoch=1, version=1))
    assert partition.high_watermark == 3
    assert partition.truncate_to(1) == 1 and partition.high_watermark == 1
    partition.update(state(leader=LEADER, epoch=2, version=2))
    assert partition.log.end_offset_for_epoch(0) == (0, 1)
    assert partition.log.leader_epoch_cache.latest_epoch == 2


def test_high_watermark_checkpoint_survives_a_restart(tmp_path: Path) -> None:
    image = MetadataImage(topics={"t": TopicImage("t", "id", (state(),), {"min.insync.replicas": "2"})})

    def open_replicas() -> tuple[LogManager, ReplicaManager]:
        logs = LogManager(tmp_path / "logs", LogConfig())
        replicas = ReplicaManager(LEADER, logs, LogConfig())
        replicas.apply_image(image)
        return logs, replicas

    logs, replicas = open_replicas()
    leader = replicas.leader("t", 0)
    append(leader, 5)
    replicas.read_for_follower(2, "t", 0, 3, 1 << 20, 0)
    replicas.read_for_follower(3, "t", 0, 3, 1 << 20, 0)
    assert leader.high_watermark == 3
    replicas.close()
    logs.close()

    # Restarted, nobody has fetched yet: the committed prefix stays visible, the uncommitted tail stays hidden.
    logs, replicas = open_replicas()
    assert replicas.get("t", 0).high_watermark == 3
    assert replicas.list_offset("t", 0, LATEST_TIMESTAMP) == (3, -1)
    assert replicas.read("t", 0, 3, 1 << 20)[:2] == (0, 3)
    replicas.close()
    logs.close()
