"""One partition's log: a directory of segments, appended at the tail and read by offset."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from raftkafka.errors import CorruptBatchError, KafkaStorageError, OffsetOutOfRangeError
from raftkafka.storage.leader_epoch_cache import LeaderEpochCache
from raftkafka.storage.log_config import NEVER, LogConfig
from raftkafka.storage.offset_index import INDEX_SUFFIX
from raftkafka.storage.record_batch import (
    HEADER_SIZE,
    BatchHeader,
    complete_prefix,
    iter_batches,
    read_header,
    stamp,
    validate_batches,
)
from raftkafka.storage.segment import LogSegment, parse_segment_name
from raftkafka.storage.time_index import TIME_INDEX_SUFFIX

logger = logging.getLogger(__name__)

EPOCH_SCAN_CHUNK = 1 << 20
"""Bytes read at a time when rebuilding the leader epoch cache from batch headers."""
POSITION_CACHE_SIZE = 64
"""How many (offset -> file position) hints to keep for sequential readers at or near the tail."""

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class PartitionLog:
    """The segments of one partition, oldest first; the last one is the active (appended) segment.

    Not thread-safe: only the broker's event loop thread may call it. After a failed write, fsync or
    file operation the log is *offline*: every later call raises ``KafkaStorageError`` (a failed
    fsync is never retried; the partition is recovered from disk on restart or from replicas).

    ``leader_epoch_cache`` follows the log: appends record new epochs, truncation and retention trim it.
    """

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: list[LogSegment],
        clock_ms: Clock,
        leader_epoch_cache: LeaderEpochCache,
    ) -> None:
        self.directory = directory
        self.config = config
        self.leader_epoch_cache = leader_epoch_cache
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]
        self._clock_ms = clock_ms
        self._positions: dict[int, tuple[LogSegment, int]] = {}
        self._unflushed_records = 0
        self._last_flush_ms = clock_ms()
        self._directory_dirty = False
        self._offline_reason: str | None = None

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, clock_ms: Clock = wall_clock_ms) -> PartitionLog:
        """Open (or create) the log in ``directory``: recover the last segment, load the others.

        Raises ``KafkaStorageError`` if the directory cannot be read or the segments do not join up.
        """
        config.validate()
        segments: list[LogSegment] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
            bases = _clean_directory(directory)
            for i, base in enumerate(bases):
                segment = LogSegment.open(directory, base, config.index_interval_bytes)
                segments.append(segment)
                if i == len(bases) - 1:
                    truncated = segment.recover()
                    if truncated:
                        logger.warning("truncated %d bytes of torn or corrupt tail from %s", truncated, segment.path)
                else:
                    segment.load()
            for before, after in itertools.pairwise(segments):
                if before.next_offset != after.base_offset:
                    raise KafkaStorageError(
                        f"segments of {directory} do not join: {before.path.name} ends at offset "
                        f"{before.next_offset} but the next starts at {after.base_offset}"
                    )
            if not segments:
                segments.append(LogSegment.create(directory, 0, config.index_interval_bytes))
            epoch_cache = LeaderEpochCache.load(directory, _batch_epochs(segments))
            epoch_cache.truncate_from_end(segments[-1].next_offset)
            epoch_cache.truncate_from_start(segments[0].base_offset)
        except (OSError, KafkaStorageError) as exc:
            for segment in segments:
                with contextlib.suppress(OSError):
                    segment.close()
            if isinstance(exc, KafkaStorageError):
                raise
            raise KafkaStorageError(f"cannot open the log in {directory}: {exc}") from exc
        return cls(directory, config, segments, clock_ms, epoch_cache)

    # -- state --------------------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        """The first offset still in the log."""
        return self._segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record will get."""
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        """Total bytes of all segment files."""
        return sum(segment.size for segment in self._segments)

    @property
    def segment_count(self) -> int:
        """How many segments the log has (the active one included)."""
        return len(self._segments)

    @property
    def offline(self) -> bool:
        """True once a disk failure has taken this log out of service."""
        return self._offline_reason is not None

    def update_config(self, config: LogConfig) -> None:
        """Use ``config`` from now on (new index interval applies to batches appended later)."""
        config.validate()
        self.config = config
        self._segments[-1].index_interval_bytes = config.index_interval_bytes

    # -- append -------------------------------------------------------------------------------------

    def append(
        self, batches: bytearray, *, leader_epoch: int, headers: list[BatchHeader] | None = None
    ) -> tuple[int, int]:
        """Append one or more concatenated batches; return ``(base_offset, last_offset)``.

        The batches are validated (unless ``headers`` from ``validate_batches`` are given), their
        base offsets and leader epoch stamped in place, and written in one write.
        """
        self._check_online()
        if headers is None:
            headers = validate_batches(batches, max_size=self.config.max_message_bytes)
        record_count = 0
        max_timestamp = headers[0].max_timestamp
        base_offset = self.log_end_offset
        for header in headers:
            stamp(batches, header.position, base_offset + record_count, leader_epoch)
            record_count += header.record_count
            max_timestamp = max(max_timestamp, header.max_timestamp)
        self._write(batches, headers, base_offset, record_count, max_timestamp, [(leader_epoch, base_offset)])
        return base_offset, base_offset + record_count - 1

    def append_as_follower(self, batches: bytes | bytearray | memoryview) -> int:
        """Append batches fetched from the leader as they are (offsets and leader epochs already stamped);
        return the new log end offset.

        Every batch is validated with its CRC; ``CorruptBatchError`` unless the first starts at the log end
        offset, each starts where the previous ends and leader epochs never decrease.
        """
        self._check_online()
        headers = validate_batches(batches)
        expected = base_offset = self.log_end_offset
        epoch = self.leader_epoch_cache.latest_epoch
        epoch_starts = []
        max_timestamp = headers[0].max_timestamp
        for header in headers:
            if header.base_offset != expected:
                raise CorruptBatchError(
                    f"fetched batch at offset {header.base_offset} does not follow {expected} in {self.directory.name}"
                )
            if header.leader_epoch != epoch:
                if header.leader_epoch < epoch:
                    raise CorruptBatchError(
                        f"fetched batch at offset {header.base_offset} has leader epoch {header.leader_epoch}, "
                        f"older than {epoch} in {self.directory.name}"
                    )
                epoch = header.leader_epoch
                epoch_starts.append((epoch, header.base_offset))
            expected = header.next_offset
            max_timestamp = max(max_timestamp, header.max_timestamp)
        self._write(batches, headers, base_offset, expected - base_offset, max_timestamp, epoch_starts)
        return expected

    def _write(
        self,
        batches: bytes | bytearray | memoryview,
        headers: list[BatchHeader],
        base_offset: int,
        record_count: int,
        max_timestamp: int,
        epoch_starts: list[tuple[int, int]],
    ) -> None:
        """Write stamped ``batches`` at the log end, note new leader epochs, flush by the policy."""
        try:
            if self._segments[-1].should_roll(self.config, len(batches), record_count, max_timestamp):
                self._roll()
            active = self._segments[-1]
            position = active.size
            active.append(batches, headers, base_offset)
            for epoch, start_offset in epoch_starts:
                self.leader_epoch_cache.assign(epoch, start_offset)
        except OSError as exc:
            raise self._go_offline(f"cannot append to {self._segments[-1].path}", exc) from exc
        self._remember(base_offset, active, position)
        self._unflushed_records += record_count
        if self._unflushed_records >= self.config.flush_messages:
            self.flush()
        elif self.config.flush_ms != NEVER:
            self.flush_if_due(self._clock_ms())

    def assign_leader_epoch(self, epoch: int) -> None:
        """Note that ``epoch`` writes from the log end offset on (a new leader, before its first append)."""
        self._check_online()
        try:
            self.leader_epoch_cache.assign(epoch, self.log_end_offset)
        except OSError as exc:
            raise self._go_offline(f"cannot write the leader epochs of {self.directory}", exc) from exc

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """``(epoch found, end offset)`` of ``epoch`` in this log (see ``LeaderEpochCache.end_offset_for``)."""
        return self.leader_epoch_cache.end_offset_for(epoch, self.log_end_offset)

    def _roll(self) -> None:
        old = self._segments[-1]
        old.seal()
        segment = LogSegment.create(self.directory, old.next_offset, self.config.index_interval_bytes)
        self._segments.append(segment)
        self._bases.append(segment.base_offset)
        self._directory_dirty = True
        logger.debug("rolled %s at offset %d", self.directory, segment.base_offset)

    # -- read ---------------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` (but always the first
        whole batch, however large), none holding an offset at or after ``max_offset``.

        Empty at the log end offset (or at/after ``max_offset``); ``OffsetOutOfRangeError`` outside
        ``[log_start_offset, log_end_offset]``.
        """
        self._check_online()
        end = self.log_end_offset
        if offset < self.log_start_offset or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside the log [{self.log_start_offset}, {end}] of {self.directory.name}"
            )
        if offset == end or (max_offset is not None and offset >= max_offset):
            return b""
        try:
            return self._read(offset, max_bytes, max_offset)
        except OSError as exc:
            raise self._go_offline(f"cannot read {self.directory}", exc) from exc

    def _read(self, offset: int, max_bytes: int, max_offset: int | None) -> bytes:
        segment, position = self._locate(offset)
        available = segment.size - position
        wanted = min(max(max_bytes, HEADER_SIZE), available)
        data = segment.read(position, wanted)
        if wanted == available and (max_offset is None or max_offset >= segment.next_offset):
            length, next_offset = len(data), segment.next_offset
        else:
            length, next_offset = complete_prefix(data, max_offset=max_offset)
        if length == 0:  # the first batch alone is larger than max_bytes: return it whole anyway
            first = read_header(data)
            if max_offset is not None and first.next_offset > max_offset:
                return b""
            data = segment.read(position, first.size)
            length, next_offset = first.size, first.next_offset
        self._remember(next_offset, segment, position + length)
        return data if length == len(data) else data[:length]

    def _locate(self, offset: int) -> tuple[LogSegment, int]:
        hint = self._positions.get(offset)
        if hint is not None:
            return hint
        segment = self._segments[bisect.bisect_right(self._bases, offset) - 1]
        header = segment.find_batch(offset)
        if header is None:
            raise KafkaStorageError(f"offset {offset} is missing from {segment.path}")
        return segment, header.position

    def _remember(self, offset: int, segment: LogSegment, position: int) -> None:
        if offset >= segment.next_offset:  # the end of a segment: the next batch starts the next segment
            return
        positions = self._positions
        if len(positions) >= POSITION_CACHE_SIZE and offset not in positions:
            del positions[next(iter(positions))]
        positions[offset] = (segment, position)

    def offset_for_timestamp(self, timestamp: int, *, max_offset: int | None = None) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first batch whose max timestamp is at or after ``timestamp``
        (its base offset and max timestamp), or None; batches at/after ``max_offset`` are ignored."""
        self._check_online()
        try:
            for segment in self._segments:
                header = segment.find_timestamp(timestamp)
                if header is not None:
                    if max_offset is not None and header.next_offset > max_offset:
                        return None
                    return header.base_offset, header.max_timestamp
        except OSError as exc:
            raise self._go_offline(f"cannot read {self.directory}", exc) from exc
        return None

    # -- retention, truncation ----------------------------------------------------------------------

    def apply_retention(self, now_ms: int) -> int:
        """Delete the oldest inactive segments past ``retention.ms`` (by their largest timestamp) or
        while the log exceeds ``retention.bytes``; return how many were deleted."""
        self._check_online()
        deleted = 0
        config = self.config
        while len(self._segments) > 1:
            oldest = self._segments[0]
            expired = config.retention_ms >= 0 and now_ms - oldest.largest_timestamp > config.retention_ms
            oversized = config.retention_bytes >= 0 and self.size_bytes - oldest.size >= config.retention_bytes
            if not (expired or oversized):
                break
            self._delete_oldest()
            deleted += 1
        return deleted

    def _delete_oldest(self) -> None:
        segment = self._segments.pop(0)
        self._bases.pop(0)
        self._positions.clear()
        try:
            segment.delete()
        except OSError as exc:
            raise self._go_offline(f"cannot delete {segment.path}", exc) from exc
        self._directory_dirty = True
        try:
            self.leader_epoch_cache.truncate_from_start(self.log_start_offset)
        except OSError as exc:
            raise self._go_offline(f"cannot write the leader epochs of {self.directory}", exc) from exc
        logger.info("deleted segment %s; log start offset is now %d", segment.path, self.log_start_offset)

    def truncate_to(self, offset: int) -> int:
        """Drop every batch holding an offset at or after ``offset`` (a batch holding ``offset`` goes
        whole); return the new log end offset. Below the log start the log restarts empty at ``offset``.
        Leader epochs starting at or after ``offset`` are forgotten even when no batch is dropped."""
        self._check_online()
        if offset >= self.log_end_offset:
            try:
                self.leader_epoch_cache.truncate_from_end(offset)
            except OSError as exc:
                raise self._go_offline(f"cannot write the leader epochs of {self.directory}", exc) from exc
            return self.log_end_offset
        self._positions.clear()
        try:
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                self._segments.pop().delete()
                self._bases.pop()
            if offset <= self.log_start_offset:
                self._restart_at(offset)
            else:
                self._segments[-1].truncate_to(offset)
                self.leader_epoch_cache.truncate_from_end(self.log_end_offset)
            self._segments[-1].index_interval_bytes = self.config.index_interval_bytes
            self._directory_dirty = True
        except OSError as exc:
            raise self._go_offline(f"cannot truncate {self.directory}", exc) from exc
        return self.log_end_offset

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every batch and restart the log empty at ``offset`` (a follower behind the leader's log start)."""
        self._check_online()
        self._positions.clear()
        try:
            while len(self._segments) > 1:
                self._segments.pop().delete()
                self._bases.pop()
            self._restart_at(offset)
            self._directory_dirty = True
        except OSError as exc:
            raise self._go_offline(f"cannot truncate {self.directory}", exc) from exc

    def _restart_at(self, offset: int) -> None:
        """Replace the only segment by an empty one at ``offset``; forget every leader epoch."""
        self._segments.pop().delete()
        self._bases.pop()
        self._segments.append(LogSegment.create(self.directory, offset, self.config.index_interval_bytes))
        self._bases.append(offset)
        self.leader_epoch_cache.clear()

    # -- durability ---------------------------------------------------------------------------------

    def flush(self) -> None:
        """fsync every segment with unflushed writes (and the directory after segment changes)."""
        self._check_online()
        try:
            for segment in self._segments:
                if segment.dirty:
                    segment.flush()
            if self._directory_dirty:
                _fsync_directory(self.directory)
                self._directory_dirty = False
        except OSError as exc:
            raise self._go_offline(f"cannot fsync {self.directory}", exc) from exc
        self._unflushed_records = 0
        self._last_flush_ms = self._clock_ms()

    def flush_if_due(self, now_ms: int) -> bool:
        """Flush if ``flush.ms`` has passed since the last flush with writes pending; True if it did."""
        if self._unflushed_records and now_ms - self._last_flush_ms >= self.config.flush_ms:
            self.flush()
            return True
        return False

    def close(self) -> None:
        """Flush (unless offline) and close every segment, saving their indexes."""
        if not self.offline and self._unflushed_records:
            with contextlib.suppress(KafkaStorageError):
                self.flush()
        for segment in self._segments:
            try:
                segment.close()
            except OSError as exc:
                logger.error("cannot close %s cleanly: %s", segment.path, exc)

    def _check_online(self) -> None:
        if self._offline_reason is not None:
            raise KafkaStorageError(
                f"the log in {self.directory} is offline after a disk failure: {self._offline_reason}"
            )

    def _go_offline(self, action: str, exc: OSError) -> KafkaStorageError:
        self._offline_reason = f"{action}: {exc}"
        logger.error("taking the log in %s offline: %s", self.directory, self._offline_reason)
        return KafkaStorageError(self._offline_reason)


def _batch_epochs(segments: list[LogSegment]) -> Iterator[tuple[int, int]]:
    """``(leader_epoch, base_offset)`` of every batch of ``segments``, oldest first (headers only)."""
    for segment in segments:
        position = 0
        while position < segment.size:
            chunk = segment.read(position, EPOCH_SCAN_CHUNK)
            consumed = 0
            for header in iter_batches(chunk):
                yield header.leader_epoch, header.base_offset
                consumed = header.end
            if consumed == 0:  # one batch larger than the chunk: step over it by its header
                if len(chunk) < HEADER_SIZE:
                    return
                header = read_header(chunk)
                yield header.leader_epoch, header.base_offset
                consumed = header.size
            position += consumed


def _clean_directory(directory: Path) -> list[int]:
    """Base offsets of the segment files in ``directory``, oldest first; index files without a
    segment and leftover temporary files are removed."""
    bases = set()
    others = []
    for entry in os.scandir(directory):
        base = parse_segment_name(entry.name)
        if base is not None:
            bases.add(base)
        else:
            others.append(entry.name)
    for name in others:
        stem, _, suffix = name.partition(".")
        orphan = f".{suffix}" in (INDEX_SUFFIX, TIME_INDEX_SUFFIX) and (not stem.isdigit() or int(stem) not in bases)
        if orphan or name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
    return sorted(bases)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
