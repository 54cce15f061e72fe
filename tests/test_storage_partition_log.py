"""PartitionLog: appends and reads across rolls and restarts, crash recovery, retention, lookups."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkafka.errors import CorruptBatchError, KafkaStorageError, OffsetOutOfRangeError
from raftkafka.storage.compression import Compression
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import decode_records, encode_batch, iter_batches, validate_batches

SMALL = LogConfig(segment_bytes=1500, index_interval_bytes=200)


class FakeClock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_batch(n: int, tag: int, timestamp: int = 1000, codec: Compression = Compression.NONE) -> bytearray:
    records = [[i, f"k{tag}-{i}".encode(), f"value {tag}-{i}".encode() * 3, []] for i in range(n)]
    return bytearray(
        encode_batch(records, first_timestamp=timestamp, max_timestamp=timestamp + n - 1, compression=codec)
    )


def read_all(log: PartitionLog, start: int | None = None, max_bytes: int = 700) -> list[tuple[int, list]]:
    """(offset, record) pairs from ``start`` to the end, read in fetches of ``max_bytes``."""
    out = []
    offset = log.log_start_offset if start is None else start
    while offset < log.log_end_offset:
        data = log.read(offset, max_bytes)
        assert data
        for header in iter_batches(data):
            validate_batches(data[header.position : header.end])
            for i, record in enumerate(decode_records(data, header.position, header)):
                out.append((header.base_offset + i, record))
            offset = header.next_offset
    return out


def fill(log: PartitionLog, batches: int, *, first_tag: int = 0) -> list[tuple[int, int]]:
    return [log.append(make_batch(1 + tag % 4, tag, 1000 + tag), leader_epoch=1)
            for tag in range(first_tag, first_tag + batches)]


# -- property: random appends read back identically across rolls and restarts ---------------------------

_record = st.tuples(
    st.integers(0, 1000),
    st.none() | st.binary(max_size=40),
    st.none() | st.binary(max_size=400),
    st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=5)).map(list), max_size=2),
).map(list)
_batch = st.tuples(st.lists(_record, min_size=1, max_size=12), st.sampled_from(list(Compression)), st.booleans())


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(_batch, min_size=1, max_size=25),
    segment_bytes=st.integers(200, 3000),
    interval=st.integers(0, 500),
    max_bytes=st.integers(1, 5000),
)
def test_random_appends_read_back(batches: list, segment_bytes: int, interval: int, max_bytes: int) -> None:
    config = LogConfig(segment_bytes=segment_bytes, index_interval_bytes=interval)
    expected: list[tuple[int, list]] = []
    with tempfile.TemporaryDirectory() as tmp:
        log = PartitionLog.open(Path(tmp), config)
        for records, codec, restart in batches:
            raw = bytearray(encode_batch(records, first_timestamp=5, max_timestamp=5, compression=codec))
            base, last = log.append(raw, leader_epoch=3)
            assert last - base + 1 == len(records)
            expected.extend((base + i, record) for i, record in enumerate(records))
            if restart:
                log.close()
                log = PartitionLog.open(Path(tmp), config)
        assert [offset for offset, _ in expected] == list(range(len(expected)))
        assert read_all(log, max_bytes=max_bytes) == expected
        log.close()
        log = PartitionLog.open(Path(tmp), config)
        assert read_all(log, max_bytes=max_bytes) == expected
        log.close()


# -- reads ----------------------------------------------------------------------------------------------

def test_read_at_every_offset_returns_the_batch_holding_it(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL)
    ranges = fill(log, 40)
    assert log.segment_count > 3
    for reopen in (False, True):
        if reopen:
            log.close()
            log = PartitionLog.open(tmp_path, SMALL)
        for base, last in ranges:
            for offset in range(base, last + 1):
                first = next(iter_batches(log.read(offset, 1)))
                assert (first.base_offset, first.last_offset) == (base, last)
                assert first.leader_epoch == 1
    assert log.read(log.log_end_offset, 1000) == b""
    with pytest.raises(OffsetOutOfRangeError):
        log.read(log.log_end_offset + 1, 1000)
    log.close()


def test_read_respects_max_bytes_and_max_offset(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(index_interval_bytes=100))
    ranges = [log.append(make_batch(3, tag), leader_epoch=0) for tag in range(10)]
    batch_size = len(make_batch(3, 0))
    whole = log.read(0, 10**6)
    assert [h.base_offset for h in iter_batches(whole)] == [b for b, _ in ranges]
    assert len(log.read(0, batch_size * 3 + 5)) == batch_size * 3
    assert len(log.read(0, 1)) == batch_size  # always one whole batch
    assert [h.base_offset for h in iter_batches(log.read(0, 10**6, max_offset=9))] == [0, 3, 6]
    assert [h.base_offset for h in iter_batches(log.read(4, 10**6, max_offset=8))] == [3]
    assert log.read(6, 10**6, max_offset=8) == b""  # the batch at 6 holds offset 8
    assert log.read(12, 10**6, max_offset=12) == b""
    # Sequential tail reads (the cached position path) see each new batch.
    offset = log.log_end_offset
    for tag in range(5):
        base, _ = log.append(make_batch(2, 100 + tag), leader_epoch=0)
        data = log.read(offset, 10**6)
        assert [h.base_offset for h in iter_batches(data)] == [base]
        offset = base + 2
    log.close()


def test_offset_for_timestamp(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL)
    timestamps = [1000, 1010, 1005, 1030, 1030, 1100, 990, 1200, 1150, 1300] * 4
    batches = []
    for tag, ts in enumerate(timestamps):
        base, _ = log.append(make_batch(2, tag, ts), leader_epoch=0)
        batches.append((base, ts + 1))  # (base offset, max timestamp)

    def expected(target: int) -> tuple[int, int] | None:
        return next(((base, mx) for base, mx in batches if mx >= target), None)

    for reopen in (False, True):
        if reopen:
            log.close()
            log = PartitionLog.open(tmp_path, SMALL)
        for target in [0, 999, 1000, 1002, 1011, 1031, 1101, 1150, 1201, 1301, 1302, 5000]:
            assert log.offset_for_timestamp(target) == expected(target), target
    assert log.offset_for_timestamp(1302) is None
    assert log.offset_for_timestamp(1201, max_offset=10) is None
    log.close()


# -- crash recovery -------------------------------------------------------------------------------------

def _build_log(directory: Path) -> tuple[list[tuple[int, list]], int, int, int]:
    """A log with a sealed segment and several batches in the active one; returns the records,
    the last batch's (base offset, start position, end position) in the active segment file."""
    log = PartitionLog.open(directory, SMALL)
    fill(log, 14)
    records = read_all(log)
    active = sorted(directory.glob("*.log"))[-1]
    data = active.read_bytes()
    headers = list(iter_batches(data))
    assert len(headers) >= 3 and log.segment_count >= 2
    last = headers[-1]
    log.close()
    return records, last.base_offset, last.position, last.end


def _check_survivors(directory: Path, records: list, lost_from: int) -> None:
    log = PartitionLog.open(directory, SMALL)
    assert log.log_end_offset == lost_from
    survivors = [r for r in records if r[0] < lost_from]
    assert read_all(log) == survivors
    for offset, _ in survivors:  # rebuilt indexes still find every offset
        first = next(iter_batches(log.read(offset, 1)))
        assert first.base_offset <= offset <= first.last_offset
    base, last = log.append(make_batch(2, 99), leader_epoch=2)
    assert (base, last) == (lost_from, lost_from + 1)
    assert [o for o, _ in read_all(log)] == list(range(lost_from + 2))
    log.close()
    log = PartitionLog.open(directory, SMALL)
    assert log.log_end_offset == lost_from + 2
    log.close()


def test_truncation_at_every_byte_of_the_last_batch_loses_only_it(tmp_path: Path) -> None:
    original = tmp_path / "original"
    records, last_base, start, end = _build_log(original)
    for cut in range(start, end):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(original, work)
        active = sorted(work.glob("*.log"))[-1]
        os.truncate(active, cut)
        _check_survivors(work, records, last_base)
        shutil.rmtree(work)


def test_byte_flip_in_the_last_batch_loses_only_it(tmp_path: Path) -> None:
    original = tmp_path / "original"
    records, last_base, start, end = _build_log(original)
    leader_epoch_field = range(start + 12, start + 16)  # outside the CRC by design (stamped by the broker)
    for pos in range(start, end):
        work = tmp_path / f"flip{pos}"
        shutil.copytree(original, work)
        active = sorted(work.glob("*.log"))[-1]
        with open(active, "r+b") as f:
            f.seek(pos)
            byte = f.read(1)[0]
            f.seek(pos)
            f.write(bytes([byte ^ 0xFF]))
        if pos in leader_epoch_field:
            log = PartitionLog.open(work, SMALL)
            assert read_all(log) == records
            log.close()
        else:
            _check_survivors(work, records, last_base)
        shutil.rmtree(work)


@pytest.mark.parametrize("damage", ["delete", "garbage", "torn"])
def test_index_rebuilt_when_missing_or_garbage(tmp_path: Path, damage: str) -> None:
    log = PartitionLog.open(tmp_path, SMALL)
    ranges = fill(log, 30)
    log.close()
    sealed = sorted(tmp_path.glob("*.index"))[:-1] + sorted(tmp_path.glob("*.timeindex"))[:-1]
    assert sealed
    for path in sealed:
        if damage == "delete":
            path.unlink()
        elif damage == "garbage":
            path.write_bytes(os.urandom(96))
        else:
            path.write_bytes(path.read_bytes()[:-3])
    log = PartitionLog.open(tmp_path, SMALL)
    for base, last in ranges:
        for offset in (base, last):
            first = next(iter_batches(log.read(offset, 1)))
            assert (first.base_offset, first.last_offset) == (base, last)
    max_timestamps = [1000 + tag + tag % 4 for tag in range(30)]  # see fill()
    for target in (1000, 1010, 1025, 1030):
        tag = next(t for t, mx in enumerate(max_timestamps) if mx >= target)
        assert log.offset_for_timestamp(target) == (ranges[tag][0], max_timestamps[tag])
    assert log.offset_for_timestamp(1031) is None
    log.close()


def test_corruption_in_a_sealed_segment_takes_the_log_offline(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL)
    fill(log, 30)
    log.close()
    first = sorted(tmp_path.glob("*.log"))[0]
    (tmp_path / first.name.replace(".log", ".index")).unlink()
    data = bytearray(first.read_bytes())
    data[200:260] = bytes(60)
    first.write_bytes(data)
    with pytest.raises(KafkaStorageError, match="middle of the log"):
        PartitionLog.open(tmp_path, SMALL)


# -- retention, roll, truncation --------------------------------------------------------------------------

def test_retention_by_time_deletes_whole_old_segments(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1500, retention_ms=10_000)
    log = PartitionLog.open(tmp_path, config)
    for tag in range(30):
        log.append(make_batch(2, tag, timestamp=tag * 1000), leader_epoch=0)
    segments_before = log.segment_count
    assert log.apply_retention(now_ms=10_000) == 0  # nothing older than 10 s yet
    deleted = log.apply_retention(now_ms=25_000)
    assert 0 < deleted < segments_before
    start = log.log_start_offset
    assert start > 0
    assert read_all(log)[0][0] == start
    assert start <= 2 * 15  # only batches older than 15 s (tags 0..14, two records each) may go
    with pytest.raises(OffsetOutOfRangeError):
        log.read(start - 1, 1000)
    log.apply_retention(now_ms=10**9)
    assert log.segment_count == 1  # the active segment is never deleted, however old
    end = log.log_end_offset
    log.close()
    log = PartitionLog.open(tmp_path, config)
    assert log.log_end_offset == end
    assert log.log_start_offset == log.log_end_offset - len(read_all(log))
    log.close()


def test_retention_by_bytes(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=1500, retention_bytes=3000, retention_ms=-1)
    log = PartitionLog.open(tmp_path, config)
    fill(log, 40)
    total = log.size_bytes
    assert total > 3000
    deleted = log.apply_retention(now_ms=10**12)
    assert deleted > 0
    assert log.size_bytes <= 3000 + 1500
    assert log.size_bytes >= 3000 or log.segment_count == 1
    assert read_all(log)[0][0] == log.log_start_offset
    log.close()


def test_roll_by_segment_ms(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig(segment_ms=1000))
    log.append(make_batch(1, 0, timestamp=0), leader_epoch=0)
    log.append(make_batch(1, 1, timestamp=1000), leader_epoch=0)
    assert log.segment_count == 1
    log.append(make_batch(1, 2, timestamp=1001), leader_epoch=0)
    assert log.segment_count == 2
    log.close()


def test_truncate_to(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, SMALL)
    ranges = fill(log, 30)
    middle_base, _ = ranges[15]
    assert log.truncate_to(middle_base + 1) == middle_base  # the batch holding the offset goes whole
    assert [o for o, _ in read_all(log)] == list(range(middle_base))
    assert log.append(make_batch(1, 7), leader_epoch=5) == (middle_base, middle_base)
    assert log.truncate_to(10**6) == middle_base + 1
    log.close()
    log = PartitionLog.open(tmp_path, SMALL)
    assert log.log_end_offset == middle_base + 1
    assert log.truncate_to(0) == 0
    assert log.read(0, 100) == b""
    assert log.append(make_batch(1, 8), leader_epoch=6) == (0, 0)
    log.close()


# -- validation, fsync policy, disk failures ---------------------------------------------------------------

def test_append_validates(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    bad = make_batch(2, 0)
    bad[-1] ^= 1
    with pytest.raises(CorruptBatchError):
        log.append(bad, leader_epoch=0)
    assert log.log_end_offset == 0
    two = make_batch(2, 0) + make_batch(3, 1)
    assert log.append(two, leader_epoch=0) == (0, 4)
    assert [(h.base_offset, h.record_count) for h in iter_batches(log.read(0, 10**6))] == [(0, 2), (2, 3)]
    log.close()


def test_flush_ms_policy(tmp_path: Path) -> None:
    clock = FakeClock()
    log = PartitionLog.open(tmp_path, LogConfig(flush_ms=100), clock_ms=clock)
    log.append(make_batch(1, 0), leader_epoch=0)
    assert not log.flush_if_due(clock.now + 50)
    assert log.flush_if_due(clock.now + 100)
    assert not log.flush_if_due(clock.now + 1000)  # nothing written since
    clock.now += 200
    log.append(make_batch(1, 1), leader_epoch=0)  # due: flushed by the append itself
    assert not log.flush_if_due(clock.now + 1)
    log.close()


def test_enospc_takes_the_log_offline(tmp_path: Path) -> None:
    log = PartitionLog.open(tmp_path, LogConfig())
    log.append(make_batch(1, 0), leader_epoch=0)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, log._segments[-1]._fd)  # every write to the segment now fails with ENOSPC
    finally:
        os.close(full)
    with pytest.raises(KafkaStorageError, match="No space"):
        log.append(make_batch(1, 1), leader_epoch=0)
    assert log.offline
    for call in (lambda: log.append(make_batch(1, 2), leader_epoch=0), lambda: log.read(0, 100), log.flush):
        with pytest.raises(KafkaStorageError, match="offline"):
            call()
    log.close()
    log = PartitionLog.open(tmp_path, LogConfig())
    assert log.log_end_offset == 1
    log.close()


def test_failed_roll_takes_the_log_offline(tmp_path: Path) -> None:
    config = LogConfig(segment_bytes=200)
    log = PartitionLog.open(tmp_path, config)
    _, last = log.append(make_batch(2, 0), leader_epoch=0)
    (tmp_path / f"{last + 1:020d}.log").mkdir()  # the next segment's file name is taken by a directory
    with pytest.raises(KafkaStorageError):
        log.append(make_batch(2, 1), leader_epoch=0)
    assert log.offline
    with pytest.raises(KafkaStorageError):
        log.append(make_batch(2, 2), leader_epoch=0)
    log.close()
