"""Idempotent appends on a ``Partition`` over a real log: duplicates answered with the stored offsets and not
appended, sequence errors, follower replay, truncation, and a new leader (or a restarted broker) rebuilding
the producers' state from the log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftkafka.broker.partition import Partition
from raftkafka.errors import InvalidRequestError, OutOfOrderSequenceError, UnknownProducerIdError
from raftkafka.metadata.image import PartitionState
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import encode_batch, validate_batches

PID = 42


def batch(seq: int, count: int = 2, *, pid: int = PID, epoch: int = 0) -> bytes:
    return encode_batch([[0, None, b"v%d" % (seq + i), []] for i in range(count)], first_timestamp=1,
                        max_timestamp=1, producer_id=pid, producer_epoch=epoch, base_sequence=seq)


def state(leader: int, epoch: int) -> PartitionState:
    return PartitionState(0, (1, 2), (1, 2), leader, epoch, epoch)


def append(partition: Partition, *batches: bytes) -> int:
    data = bytearray(b"".join(batches))
    return partition.append_as_leader(data, validate_batches(data))


def open_partition(directory: Path, node_id: int) -> Partition:
    return Partition("t", 0, "id", PartitionLog.open(directory, LogConfig()), node_id)


@pytest.fixture
def leader(tmp_path: Path) -> Iterator[Partition]:
    partition = open_partition(tmp_path / "leader" / "t-0", 1)
    partition.update(state(1, 0))
    yield partition
    partition.log.close()


def test_a_retried_batch_is_answered_with_its_offset_and_not_appended(leader: Partition) -> None:
    assert append(leader, batch(0)) == 0
    assert append(leader, batch(2)) == 2
    assert append(leader, batch(0)) == 0
    assert append(leader, batch(2)) == 2
    assert leader.log.log_end_offset == 4
    assert append(leader, batch(4, 3)) == 4
    assert leader.log.log_end_offset == 7


def test_sequence_errors_append_nothing(leader: Partition) -> None:
    append(leader, batch(0))
    with pytest.raises(OutOfOrderSequenceError):
        append(leader, batch(5))
    with pytest.raises(UnknownProducerIdError):
        append(leader, batch(3, pid=7))
    with pytest.raises(InvalidRequestError):  # an idempotent batch must come alone
        append(leader, batch(2), batch(4))
    assert leader.log.log_end_offset == 2
    assert append(leader, batch(2)) == 2


def test_batches_without_a_producer_id_are_not_checked(leader: Partition) -> None:
    plain = encode_batch([[0, None, b"x", []]], first_timestamp=1, max_timestamp=1)
    assert append(leader, plain, plain) == 0
    assert append(leader, plain) == 2
    assert leader.producer_state is None  # never built: no idempotent batch was led here


def test_a_new_leader_rebuilds_the_state_from_its_log(tmp_path: Path, leader: Partition) -> None:
    """The follower replica got the leader's batches by replication (before it ever built any state); when it
    leads, a retry of a batch the old leader stored is a duplicate, and the next sequence follows on."""
    for seq in range(0, 12, 2):
        append(leader, batch(seq))
    follower = open_partition(tmp_path / "follower" / "t-0", 2)
    try:
        follower.update(state(1, 0))
        follower.append_as_follower(leader.log.read(0, 1 << 20))
        assert follower.producer_state is None
        follower.update(state(2, 1))
        assert append(follower, batch(10)) == 10
        assert append(follower, batch(4)) == 4
        assert append(follower, batch(12)) == 12
        assert follower.log.log_end_offset == 14
    finally:
        follower.log.close()


def test_a_restarted_leader_rebuilds_the_state(tmp_path: Path) -> None:
    directory = tmp_path / "t-0"
    first = open_partition(directory, 1)
    first.update(state(1, 0))
    append(first, batch(0))
    append(first, batch(2))
    first.log.close()
    again = open_partition(directory, 1)
    try:
        again.update(state(1, 1))
        assert append(again, batch(2)) == 2
        assert append(again, batch(4)) == 4
    finally:
        again.log.close()


def test_a_former_leader_keeps_its_state_in_step_as_a_follower(tmp_path: Path, leader: Partition) -> None:
    """The former leader's divergent tail is truncated and the new leader's batches replicated to it: its state
    follows its log, so when it leads again it answers duplicates of what it holds and accepts what follows."""
    append(leader, batch(0))
    append(leader, batch(2))  # offsets 2-3: never replicated, lost in the failover
    other = open_partition(tmp_path / "other" / "t-0", 2)
    try:
        other.update(state(1, 0))
        other.append_as_follower(leader.log.read(0, 2))  # only the first batch
        other.update(state(2, 1))
        assert append(other, batch(2, 3)) == 2  # the producer's retry, now three records (a new batch)
        leader.update(state(2, 1))
        leader.truncate_to(2)
        assert leader.producer_state is not None
        leader.append_as_follower(other.log.read(2, 1 << 20))
        leader.update(state(1, 2))
        assert append(leader, batch(2, 3)) == 2
        with pytest.raises(OutOfOrderSequenceError):
            append(leader, batch(4))  # the old leader's lost batch is not a duplicate anymore
        assert append(leader, batch(5)) == 5
    finally:
        other.log.close()


def test_a_truncation_that_loses_a_producer_rebuilds_from_the_log(leader: Partition) -> None:
    for seq in range(0, 14, 2):  # seven batches: the first two are no longer cached
        append(leader, batch(seq))
    leader.update(state(2, 1))
    leader.truncate_to(4)  # keeps batches 0 and 2, which only the log still knows of
    assert leader.producer_state is None
    leader.update(state(1, 2))
    assert append(leader, batch(2)) == 2
    assert append(leader, batch(4)) == 4
