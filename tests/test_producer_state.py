"""The pure producer state of a partition: duplicates of each of the last 5 batches, out-of-order and unknown
sequences, epoch bumps and fencing, the bound on producers, truncation, and a rebuild from a real log."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftkafka.broker.producer_state import (
    MAX_CACHED_BATCHES,
    MAX_SEQUENCE,
    BatchMetadata,
    ProducerStateManager,
    last_sequence,
    scan_batch_headers,
)
from raftkafka.errors import (
    CorruptBatchError,
    InvalidProducerEpochError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
)
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import BatchHeader, encode_batch

PID = 7


def header(seq: int, count: int = 3, *, pid: int = PID, epoch: int = 0, base_offset: int = 0) -> BatchHeader:
    """A batch header as the leader sees it (offsets not stamped yet unless ``base_offset`` is given)."""
    return BatchHeader(base_offset, 100, 0, 2, 0, 0, count - 1, 1, 1, pid, epoch, seq, count)


def record_run(state: ProducerStateManager, batches: int, *, count: int = 3, epoch: int = 0, start: int = 0) -> int:
    """Append ``batches`` in-sequence batches of ``count`` records from offset ``start``; the next offset."""
    offset = start
    for i in range(batches):
        assert state.check_and_record(header(i * count, count, epoch=epoch), offset) is None
        offset += count
    return offset


def test_last_sequence_wraps_like_kafka() -> None:
    assert last_sequence(0, 1) == 0
    assert last_sequence(10, 5) == 14
    assert last_sequence(MAX_SEQUENCE, 1) == MAX_SEQUENCE
    assert last_sequence(MAX_SEQUENCE - 1, 4) == 1  # MAX-1, MAX, 0, 1


def test_in_sequence_batches_are_recorded_with_their_offsets() -> None:
    state = ProducerStateManager()
    assert record_run(state, 3) == 9
    entry = state.entry(PID)
    assert entry is not None and entry.epoch == 0 and entry.last_sequence == 8
    assert list(entry.batches) == [BatchMetadata(0, 2, 0, 2), BatchMetadata(3, 5, 3, 5), BatchMetadata(6, 8, 6, 8)]


@pytest.mark.parametrize("which", range(MAX_CACHED_BATCHES))
def test_a_retry_of_any_of_the_last_five_batches_is_a_duplicate(which: int) -> None:
    state = ProducerStateManager()
    record_run(state, 7, count=2, start=100)  # batches 2..6 are cached
    original = 2 + which
    duplicate = state.check_and_record(header(original * 2, 2), 999)
    assert duplicate == BatchMetadata(original * 2, original * 2 + 1, 100 + original * 2, 101 + original * 2)
    entry = state.entry(PID)
    assert entry is not None and entry.last_sequence == 13  # nothing recorded for the duplicate


def test_a_retry_older_than_the_cached_batches_is_out_of_order() -> None:
    state = ProducerStateManager()
    record_run(state, 7, count=2)
    with pytest.raises(OutOfOrderSequenceError):
        state.check_and_record(header(2, 2), 999)  # batch 1: no longer cached


def test_a_gap_or_an_overlapping_range_is_out_of_order_and_records_nothing() -> None:
    state = ProducerStateManager()
    record_run(state, 2)  # sequences 0..5
    for bad in (header(7), header(5), header(3, 2), header(4)):
        with pytest.raises(OutOfOrderSequenceError):
            state.check_and_record(bad, 50)
    entry = state.entry(PID)
    assert entry is not None and entry.last_sequence == 5 and len(entry.batches) == 2
    assert state.check_and_record(header(6), 6) is None


def test_an_unknown_producer_must_start_at_sequence_zero() -> None:
    state = ProducerStateManager()
    with pytest.raises(UnknownProducerIdError):
        state.check_and_record(header(3), 0)
    assert state.entry(PID) is None
    assert state.check_and_record(header(0), 0) is None


def test_epochs_fence_older_producers_and_a_new_epoch_restarts_at_zero() -> None:
    state = ProducerStateManager()
    record_run(state, 2, epoch=1)
    with pytest.raises(InvalidProducerEpochError):
        state.check_and_record(header(6, epoch=0), 6)
    with pytest.raises(OutOfOrderSequenceError):
        state.check_and_record(header(6, epoch=2), 6)  # a new epoch starts at 0
    assert state.check_and_record(header(0, epoch=2), 6) is None
    entry = state.entry(PID)
    assert entry is not None and entry.epoch == 2 and list(entry.batches) == [BatchMetadata(0, 2, 6, 8)]
    # The old epoch's batches are forgotten: its sequence 0 is no duplicate now, and its epoch is fenced.
    with pytest.raises(InvalidProducerEpochError):
        state.check_and_record(header(0, epoch=1), 9)


def test_producers_are_independent() -> None:
    state = ProducerStateManager()
    assert state.check_and_record(header(0, pid=1), 0) is None
    assert state.check_and_record(header(0, pid=2), 3) is None
    assert state.check_and_record(header(3, pid=1), 6) is None
    assert state.check_and_record(header(0, pid=2), 99) == BatchMetadata(0, 2, 3, 5)


def test_negative_sequence_or_epoch_is_a_corrupt_batch() -> None:
    state = ProducerStateManager()
    with pytest.raises(CorruptBatchError):
        state.check_and_record(header(-1), 0)
    with pytest.raises(CorruptBatchError):
        state.check_and_record(header(0, epoch=-1), 0)


def test_the_least_recently_written_producer_is_forgotten_past_the_bound() -> None:
    state = ProducerStateManager(max_producers=2)
    state.check_and_record(header(0, pid=1), 0)
    state.check_and_record(header(0, pid=2), 3)
    state.check_and_record(header(3, pid=1), 6)  # producer 1 wrote last
    state.check_and_record(header(0, pid=3), 9)
    assert len(state) == 2 and state.entry(2) is None and state.entry(1) is not None


def test_followers_replay_batches_without_checks() -> None:
    state = ProducerStateManager()
    state.replay(header(10, base_offset=40))  # whatever the leader stored is the truth
    state.replay(header(0, epoch=3, base_offset=43))
    entry = state.entry(PID)
    assert entry is not None and entry.epoch == 3 and list(entry.batches) == [BatchMetadata(0, 2, 43, 45)]


def test_truncation_drops_batches_at_and_after_the_offset() -> None:
    state = ProducerStateManager()
    record_run(state, 4)  # offsets 0..11, batches at 0, 3, 6, 9
    assert state.check_and_record(header(0, pid=2), 12) is None
    assert state.truncate_to(7)  # the batch holding offset 7 (6..8) goes whole
    entry = state.entry(PID)
    assert entry is not None and entry.last_sequence == 5
    assert state.entry(2) is None  # but it never had anything before: nothing lost
    assert state.check_and_record(header(6), 6) is None  # the producer's retry of the dropped batch fits again


def test_truncation_of_every_cached_batch_asks_for_a_rebuild() -> None:
    state = ProducerStateManager()
    record_run(state, 7)  # only the last 5 are cached
    assert not state.truncate_to(6)
    assert state.entry(PID) is None


def test_a_rebuild_from_the_log_reads_only_headers_and_finds_every_producer(tmp_path: Path) -> None:
    plog = PartitionLog.open(tmp_path / "t-0", LogConfig(segment_bytes=400))
    try:
        for seq in range(0, 30, 3):  # producer 7: ten batches of three, several segments
            batch = encode_batch([[0, None, b"v", []]] * 3, first_timestamp=1, max_timestamp=1,
                                 producer_id=PID, producer_epoch=2, base_sequence=seq)
            plog.append(bytearray(batch), leader_epoch=0)
        plog.append(bytearray(encode_batch([[0, None, b"x", []]], first_timestamp=1, max_timestamp=1)),
                    leader_epoch=0)  # not idempotent
        batch = encode_batch([[0, None, b"v", []]], first_timestamp=1, max_timestamp=1,
                             producer_id=8, producer_epoch=0, base_sequence=0)
        plog.append(bytearray(batch), leader_epoch=0)
        assert plog.segment_count > 2
        headers = list(scan_batch_headers(plog.read, plog.log_start_offset, plog.log_end_offset))
        assert [h.base_offset for h in headers] == [*range(0, 30, 3), 30, 31]
        state = ProducerStateManager.rebuild(headers)
    finally:
        plog.close()
    entry = state.entry(PID)
    assert entry is not None and entry.epoch == 2 and entry.last_sequence == 29
    assert [b.base_offset for b in entry.batches] == [15, 18, 21, 24, 27]
    assert state.check_and_record(header(27, epoch=2), 99) == BatchMetadata(27, 29, 27, 29)
    assert state.check_and_record(header(0, pid=8, count=1), 99) == BatchMetadata(0, 0, 31, 31)
    assert state.check_and_record(header(30, epoch=2), 32) is None


def test_truncation_past_an_epoch_bump_asks_for_a_rebuild() -> None:
    state = ProducerStateManager()
    record_run(state, 1, epoch=0)
    assert state.check_and_record(header(0, epoch=1), 3) is None
    assert not state.truncate_to(3)  # epoch 0's batch is only in the log now
