"""One log segment: a file of record batches plus its sparse offset and time indexes.

Files are named by the zero-padded 20-digit base offset: ``00000000000000000000.log``, ``.index``,
``.timeindex``. Appends go through one ``os.write`` on an ``O_APPEND`` descriptor; reads use
``os.pread``. The broker never decodes records here: only headers are read.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import crc32c

from raftkafka.errors import CorruptBatchError, KafkaStorageError, MessageTooLargeError
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.offset_index import INDEX_SUFFIX, OffsetIndex
from raftkafka.storage.record_batch import (
    CRC_START,
    HEADER,
    HEADER_SIZE,
    MIN_BATCH_LENGTH,
    BatchHeader,
    check_header,
)
from raftkafka.storage.time_index import NO_TIMESTAMP, TIME_INDEX_SUFFIX, TimeIndex

logger = logging.getLogger(__name__)

LOG_SUFFIX = ".log"
SCAN_CHUNK = 1 << 20
"""Bytes read at a time when scanning a segment."""
LOOKUP_CHUNK = 16 * 1024
"""Bytes read at a time when walking from an index entry to the batch holding an offset."""
MAX_RELATIVE_OFFSET = 2**32 - 1


def segment_path(directory: Path, base_offset: int, suffix: str) -> Path:
    """``directory/<20-digit base offset><suffix>``."""
    return directory / f"{base_offset:020d}{suffix}"


def parse_segment_name(name: str) -> int | None:
    """The base offset of a ``.log`` file name, or None if ``name`` is not one."""
    stem, dot, suffix = name.partition(".")
    if dot and suffix == LOG_SUFFIX[1:] and len(stem) == 20 and stem.isdigit():
        return int(stem)
    return None


class LogSegment:
    """One segment's file descriptor, indexes and summary (next offset, largest timestamp, size).

    Called only by its ``PartitionLog``, on the broker's event loop thread. Methods that touch the
    disk let ``OSError`` propagate; the partition log decides what a failure means.
    """

    def __init__(self, directory: Path, base_offset: int, fd: int, index_interval_bytes: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.path = segment_path(directory, base_offset, LOG_SUFFIX)
        self.offset_index = OffsetIndex(segment_path(directory, base_offset, INDEX_SUFFIX))
        self.time_index = TimeIndex(segment_path(directory, base_offset, TIME_INDEX_SUFFIX))
        self.index_interval_bytes = index_interval_bytes
        self.size = os.fstat(fd).st_size
        self.next_offset = base_offset
        self.largest_timestamp = NO_TIMESTAMP
        self.rolling_base_timestamp: int | None = None
        self.dirty = False
        self._fd = fd
        self._bytes_since_index_entry = 0

    @classmethod
    def create(cls, directory: Path, base_offset: int, index_interval_bytes: int) -> LogSegment:
        """A new empty segment file (fails if one exists at that base offset)."""
        path = segment_path(directory, base_offset, LOG_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        segment = cls(directory, base_offset, fd, index_interval_bytes)
        segment.offset_index.delete()
        segment.time_index.delete()
        return segment

    @classmethod
    def open(cls, directory: Path, base_offset: int, index_interval_bytes: int) -> LogSegment:
        """An existing segment file, not yet scanned: call ``recover()`` or ``load()`` next."""
        path = segment_path(directory, base_offset, LOG_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        return cls(directory, base_offset, fd, index_interval_bytes)

    # -- opening ------------------------------------------------------------------------------------

    def recover(self) -> int:
        """Scan every batch with its CRC, truncate at the first torn or corrupt one, rebuild both
        indexes; return the number of bytes truncated."""
        file_size = os.fstat(self._fd).st_size
        self.size = file_size
        valid_end = self._rebuild(verify_crc=True)
        if valid_end < file_size:
            os.ftruncate(self._fd, valid_end)
            self.size = valid_end
            self.dirty = True
        return file_size - valid_end

    def load(self) -> None:
        """Load the index files of a sealed segment, rebuilding them if missing or inconsistent.

        Raises ``KafkaStorageError`` if the segment's batches do not run cleanly to its end: a
        sealed segment is never shortened, since that would open a hole in the middle of the log.
        """
        max_entries = self.size // HEADER_SIZE + 1
        if self._indexes_loaded(max_entries):
            return
        logger.warning("rebuilding the indexes of %s", self.path)
        if self._rebuild(verify_crc=False) != self.size:
            raise KafkaStorageError(f"corrupt batch in the middle of the log in {self.path}")

    def _indexes_loaded(self, max_entries: int) -> bool:
        if not (self.offset_index.load(max_entries) and self.time_index.load(max_entries)):
            return False
        if not self.offset_index.is_consistent(self.size):
            return False
        # Walk from the last indexed batch to the end of the file: it must land exactly on the end.
        tail_start = self.offset_index.values[-1] if self.offset_index.values else 0
        expected = self.base_offset + (self.offset_index.keys[-1] if self.offset_index.keys else 0)
        largest = self.time_index.last_timestamp
        position = tail_start
        for header in self._walk(tail_start, SCAN_CHUNK):
            if header.base_offset != expected or _header_problem(header, self.size - header.position):
                return False
            largest = max(largest, header.max_timestamp)
            expected = header.next_offset
            position = header.end
        if position != self.size or not self.time_index.is_consistent(expected - self.base_offset):
            return False
        self.next_offset = expected
        self.largest_timestamp = largest
        first = next(self._walk(0, HEADER_SIZE), None)
        self.rolling_base_timestamp = first.max_timestamp if first else None
        return True

    def _rebuild(self, *, verify_crc: bool) -> int:
        """Re-index the run of valid batches from the start; return the position where it ends."""
        self.offset_index.clear()
        self.time_index.clear()
        self.next_offset = self.base_offset
        self.largest_timestamp = NO_TIMESTAMP
        self.rolling_base_timestamp = None
        self._bytes_since_index_entry = 0
        position = 0
        for header in self._walk(0, SCAN_CHUNK):
            if header.base_offset != self.next_offset or _header_problem(header, self.size - header.position):
                break
            if verify_crc and self._crc(header) != header.crc:
                break
            self._track(header.position, header.base_offset, header.next_offset, header.max_timestamp, header.size)
            position = header.end
        return position

    # -- appending ----------------------------------------------------------------------------------

    def should_roll(self, config: LogConfig, batch_bytes: int, record_count: int, max_timestamp: int) -> bool:
        """True if a write of ``batch_bytes`` holding ``record_count`` records with the given max
        timestamp belongs in a new segment (size, age as Kafka measures it, or offset range)."""
        if self.size == 0:
            return False
        return (
            self.size + batch_bytes > config.segment_bytes
            or (
                self.rolling_base_timestamp is not None
                and max_timestamp - self.rolling_base_timestamp > config.segment_ms
            )
            or self.next_offset + record_count - 1 - self.base_offset > MAX_RELATIVE_OFFSET
        )

    def append(self, data: bytes | bytearray | memoryview, headers: list[BatchHeader], base_offset: int) -> None:
        """Write already-stamped batches (``headers`` give their positions inside ``data`` and
        ``base_offset`` is the first one's) in one ``os.write``, then index them."""
        written = os.write(self._fd, data)
        if written != len(data):
            self.size += written
            raise OSError(errno.EIO, f"short write to {self.path}: {written} of {len(data)} bytes")
        start = self.size
        self.size += written
        offset = base_offset
        for header in headers:
            next_offset = offset + header.record_count
            self._track(start + header.position, offset, next_offset, header.max_timestamp, header.size)
            offset = next_offset
        self.dirty = True

    def _track(self, position: int, base_offset: int, next_offset: int, max_timestamp: int, size: int) -> None:
        if self.rolling_base_timestamp is None:
            self.rolling_base_timestamp = max_timestamp
        self.largest_timestamp = max(self.largest_timestamp, max_timestamp)
        if self._bytes_since_index_entry >= self.index_interval_bytes:
            relative = base_offset - self.base_offset
            self.offset_index.append(relative, position)
            if self.largest_timestamp > self.time_index.last_timestamp:
                self.time_index.append(self.largest_timestamp, relative)
            self._bytes_since_index_entry = 0
        self._bytes_since_index_entry += size
        self.next_offset = next_offset

    # -- reading ------------------------------------------------------------------------------------

    def read(self, position: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``position``."""
        return os.pread(self._fd, length, position)

    def find_batch(self, offset: int) -> BatchHeader | None:
        """The header (with its file position) of the batch holding ``offset``, or None if past the end."""
        if offset >= self.next_offset:
            return None
        start = self.offset_index.position_before(max(offset - self.base_offset, 0))
        for header in self._walk(start, max(LOOKUP_CHUNK, self.index_interval_bytes + LOOKUP_CHUNK)):
            if header.next_offset > offset:
                return header
        return None

    def find_timestamp(self, timestamp: int) -> BatchHeader | None:
        """The first batch whose max timestamp is at or after ``timestamp``, or None."""
        if self.largest_timestamp < timestamp:
            return None
        start = self.offset_index.position_before(self.time_index.scan_start(timestamp))
        for header in self._walk(start, SCAN_CHUNK):
            if header.max_timestamp >= timestamp:
                return header
        return None

    def _walk(self, start: int, chunk: int) -> Iterator[BatchHeader]:
        """Headers (with file positions) of the batches from ``start``, read ``chunk`` bytes at a time;
        stops at an incomplete header or an impossible length. No other check."""
        buf = b""
        buf_start = start
        position = start
        while self.size - position >= HEADER_SIZE:
            at = position - buf_start
            if at + HEADER_SIZE > len(buf):
                buf = os.pread(self._fd, chunk, position)
                buf_start = position
                at = 0
                if len(buf) < HEADER_SIZE:
                    return
            header = BatchHeader(*HEADER.unpack_from(buf, at), position)
            if header.batch_length < MIN_BATCH_LENGTH:
                return
            yield header
            position = header.end

    def _crc(self, header: BatchHeader) -> int:
        """CRC-32C of a batch's covered bytes, read in bounded pieces (a corrupt length cannot force
        one huge read)."""
        crc = 0
        position = header.position + CRC_START
        end = header.end
        while position < end:
            piece = os.pread(self._fd, min(SCAN_CHUNK, end - position), position)
            if not piece:
                break
            crc = crc32c.crc32c(piece, crc)
            position += len(piece)
        return crc

    # -- changing the tail, persistence ---------------------------------------------------------------

    def truncate_to(self, offset: int) -> int:
        """Drop the batch holding ``offset`` and everything after it; return bytes removed."""
        header = self.find_batch(offset)
        if header is None:
            return 0
        removed = self.size - header.position
        os.ftruncate(self._fd, header.position)
        self.size = header.position
        self._rebuild(verify_crc=False)
        self.dirty = True
        return removed

    def seal(self) -> None:
        """Prepare to become read-only: note the largest timestamp in the time index and save both indexes."""
        if self.largest_timestamp > self.time_index.last_timestamp:
            self.time_index.append(self.largest_timestamp, self.next_offset - 1 - self.base_offset)
        self.offset_index.save()
        self.time_index.save()

    def flush(self) -> None:
        """fsync the segment file (indexes are rebuilt on recovery, so they need no fsync)."""
        os.fsync(self._fd)
        self.dirty = False

    def close(self) -> None:
        """Save the indexes and close the file."""
        try:
            self.offset_index.save()
            self.time_index.save()
        finally:
            os.close(self._fd)

    def delete(self) -> None:
        """Close and remove the segment's files (the log first, so a crash leaves no orphaned data)."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.offset_index.delete()
        self.time_index.delete()


def _header_problem(header: BatchHeader, available: int) -> bool:
    try:
        check_header(header, available)
    except (CorruptBatchError, MessageTooLargeError):
        return True
    return False
