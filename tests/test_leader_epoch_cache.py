"""The leader epoch cache: assignment, end offsets per epoch, truncation from both ends, persistence and
rebuild from the batch headers of a real partition log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from raftkafka.errors import CorruptBatchError
from raftkafka.storage.leader_epoch_cache import (
    LEADER_EPOCH_CHECKPOINT,
    UNDEFINED_EPOCH,
    UNDEFINED_OFFSET,
    EpochEntry,
    LeaderEpochCache,
)
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import encode_batch


def batch(count: int = 1, *, base_offset: int = 0, leader_epoch: int = -1) -> bytearray:
    records = [[0, None, b"x" * 10, []] for _ in range(count)]
    return bytearray(
        encode_batch(records, first_timestamp=1, max_timestamp=1, base_offset=base_offset, leader_epoch=leader_epoch)
    )


def cache_at(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache.load(tmp_path, [])
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


def test_assign_keeps_the_first_offset_of_each_epoch(tmp_path: Path) -> None:
    cache = cache_at(tmp_path, (0, 0), (0, 5), (2, 10), (2, 12), (5, 20))
    assert cache.entries == (EpochEntry(0, 0), EpochEntry(2, 10), EpochEntry(5, 20))
    assert cache.latest_epoch == 5
    assert not cache.assign(5, 30)
    assert not cache.assign(-1, 40)


def test_assign_that_contradicts_later_entries_replaces_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = cache_at(tmp_path, (0, 0), (2, 10), (5, 20))
    with caplog.at_level(logging.DEBUG, logger="raftkafka.storage.leader_epoch_cache"):
        assert cache.assign(3, 15)
        assert cache.entries == (EpochEntry(0, 0), EpochEntry(2, 10), EpochEntry(3, 15))
        assert cache.assign(4, 15)  # epoch 3 wrote nothing: replaced by the next one at the same offset
        assert cache.entries == (EpochEntry(0, 0), EpochEntry(2, 10), EpochEntry(4, 15))
        cache.assign(6, 10)
        assert cache.entries == (EpochEntry(0, 0), EpochEntry(6, 10))
    # only the replacements that drop records are warnings; an epoch that wrote nothing is routine
    assert [(r.levelname, r.getMessage().split(": ", 1)[1]) for r in caplog.records] == [
        ("WARNING", "epoch 3 at 15 replaces [EpochEntry(epoch=5, start_offset=20)]"),
        ("DEBUG", "epoch 4 at 15 replaces [EpochEntry(epoch=3, start_offset=15)]"),
        ("WARNING", "epoch 6 at 10 replaces [EpochEntry(epoch=2, start_offset=10), "
                    "EpochEntry(epoch=4, start_offset=15)]"),
    ]


def test_end_offset_for_an_epoch(tmp_path: Path) -> None:
    cache = cache_at(tmp_path, (1, 0), (2, 10), (5, 20))
    assert cache.end_offset_for(5, 33) == (5, 33)  # the latest epoch ends at the log end
    assert cache.end_offset_for(2, 33) == (2, 20)
    assert cache.end_offset_for(3, 33) == (2, 20)  # an unknown epoch: the floor epoch, ending where 5 starts
    assert cache.end_offset_for(0, 33) == (0, 0)  # older than every entry: ends where the first starts
    assert cache.end_offset_for(6, 33) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    assert cache.end_offset_for(UNDEFINED_EPOCH, 33) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    (tmp_path / "empty").mkdir()
    assert cache_at(tmp_path / "empty").end_offset_for(0, 0) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def test_truncate_from_end_and_start(tmp_path: Path) -> None:
    cache = cache_at(tmp_path, (1, 0), (2, 10), (5, 20))
    cache.truncate_from_end(20)
    assert cache.entries == (EpochEntry(1, 0), EpochEntry(2, 10))
    cache.truncate_from_end(11)
    assert cache.entries == (EpochEntry(1, 0), EpochEntry(2, 10))
    cache.assign(5, 20)
    cache.truncate_from_start(15)
    assert cache.entries == (EpochEntry(2, 15), EpochEntry(5, 20))
    cache.truncate_from_start(20)
    assert cache.entries == (EpochEntry(5, 20),)
    cache.clear()
    assert cache.entries == () and cache.latest_epoch == UNDEFINED_EPOCH


def test_every_change_is_persisted_and_reloaded(tmp_path: Path) -> None:
    cache = cache_at(tmp_path, (1, 0), (2, 10), (5, 20))
    cache.truncate_from_end(20)
    loaded = LeaderEpochCache.load(tmp_path, [(9, 0)])  # the file wins: the batches are not read
    assert loaded.entries == (EpochEntry(1, 0), EpochEntry(2, 10))
    assert not (tmp_path / (LEADER_EPOCH_CHECKPOINT + ".tmp")).exists()


@pytest.mark.parametrize("content", ["", "0\n2\n1 0\n", "7\n1\n1 0\n", "0\n2\n2 10\n1 20\n", "0\n1\nx y\n"])
def test_a_malformed_checkpoint_is_rebuilt_from_the_batches(tmp_path: Path, content: str) -> None:
    (tmp_path / LEADER_EPOCH_CHECKPOINT).write_text(content)
    cache = LeaderEpochCache.load(tmp_path, [(0, 0), (0, 3), (4, 7)])
    assert cache.entries == (EpochEntry(0, 0), EpochEntry(4, 7))
    assert LeaderEpochCache.load(tmp_path, []).entries == cache.entries


def test_partition_log_keeps_the_cache_in_step(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=300)
    plog = PartitionLog.open(tmp_path, config)
    plog.append(batch(2), leader_epoch=0)
    plog.append(batch(2), leader_epoch=0)
    plog.assign_leader_epoch(3)
    plog.append(batch(3), leader_epoch=3)
    plog.append(batch(1), leader_epoch=3)
    assert plog.leader_epoch_cache.entries == (EpochEntry(0, 0), EpochEntry(3, 4))
    assert plog.end_offset_for_epoch(0) == (0, 4)
    assert plog.end_offset_for_epoch(3) == (3, 8)
    plog.close()

    # Rebuilt from the segments' batch headers when the checkpoint is gone.
    (tmp_path / LEADER_EPOCH_CHECKPOINT).unlink()
    plog = PartitionLog.open(tmp_path, config)
    assert plog.segment_count > 1
    assert plog.leader_epoch_cache.entries == (EpochEntry(0, 0), EpochEntry(3, 4))

    plog.truncate_to(4)
    assert plog.leader_epoch_cache.entries == (EpochEntry(0, 0),)
    plog.truncate_fully_and_start_at(10)
    assert (plog.log_start_offset, plog.log_end_offset, plog.leader_epoch_cache.entries) == (10, 10, ())
    plog.close()


def test_follower_append_keeps_offsets_and_epochs_and_rejects_gaps(tmp_path: Path) -> None:
    plog = PartitionLog.open(tmp_path / "p", LogConfig())
    fetched = batch(2, base_offset=0, leader_epoch=1) + batch(3, base_offset=2, leader_epoch=4)
    assert plog.append_as_follower(bytes(fetched)) == 5
    assert plog.read(0, 1 << 20) == bytes(fetched)  # stored exactly as the leader sent it
    assert plog.leader_epoch_cache.entries == (EpochEntry(1, 0), EpochEntry(4, 2))
    with pytest.raises(CorruptBatchError, match="does not follow"):
        plog.append_as_follower(bytes(batch(1, base_offset=6, leader_epoch=4)))
    with pytest.raises(CorruptBatchError, match="older"):
        plog.append_as_follower(bytes(batch(1, base_offset=5, leader_epoch=3)))
    corrupt = batch(1, base_offset=5, leader_epoch=4)
    corrupt[-1] ^= 0xFF
    with pytest.raises(CorruptBatchError, match="CRC"):
        plog.append_as_follower(bytes(corrupt))
    assert plog.log_end_offset == 5
    plog.close()
