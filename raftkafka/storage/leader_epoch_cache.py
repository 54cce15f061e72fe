"""A partition's leader epoch cache: which leader epoch wrote the log from which offset on (Kafka's
``LeaderEpochFileCache``).

Entries ``(epoch, start_offset)`` have strictly increasing epochs and start offsets. They are persisted
atomically to ``leader-epoch-checkpoint`` in the partition directory after every change (changes are
rare: one per leader epoch), and rebuilt from the batch headers when that file is missing or malformed.
``end_offset_for`` answers OFFSETS_FOR_LEADER_EPOCH: where a given epoch's records end in this log.

Not thread-safe: called by its ``PartitionLog`` on the broker's event loop thread.
"""

from __future__ import annotations

import bisect
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from raftkafka.storage.checkpoint_file import read_checkpoint, write_checkpoint

logger = logging.getLogger(__name__)

LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@dataclass(frozen=True, slots=True)
class EpochEntry:
    """Leader ``epoch`` wrote the log from ``start_offset`` until the next entry's start offset."""

    epoch: int
    start_offset: int


class LeaderEpochCache:
    """The epoch entries of one partition log, kept in step with its checkpoint file."""

    def __init__(self, path: Path, entries: Iterable[EpochEntry] = ()) -> None:
        self.path = path
        self._entries: list[EpochEntry] = list(entries)

    @classmethod
    def load(cls, directory: Path, batches: Iterable[tuple[int, int]]) -> LeaderEpochCache:
        """The cache of the log in ``directory``: from its checkpoint file, or rebuilt from ``batches``
        (``(leader_epoch, base_offset)`` of every batch, oldest first, read only when needed).

        Raises ``OSError`` if a rebuilt cache cannot be written.
        """
        path = directory / LEADER_EPOCH_CHECKPOINT
        rows = read_checkpoint(path, 2)
        if rows is not None:
            try:
                entries = [EpochEntry(int(epoch), int(offset)) for epoch, offset in rows]
            except ValueError:
                entries = None
            if entries is not None and _well_formed(entries):
                return cls(path, entries)
            logger.warning("rebuilding malformed %s", path)
        cache = cls(path)
        for epoch, base_offset in batches:
            cache._assign(epoch, base_offset)
        if cache._entries or path.exists():  # a new, empty log needs no file (two fsyncs per new partition)
            cache.flush()
        return cache

    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        """Every entry, oldest first."""
        return tuple(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch (``UNDEFINED_EPOCH`` for an empty cache)."""
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Note that ``epoch`` writes from ``start_offset`` on (persisted); True if the cache changed.

        A repeat of the latest epoch changes nothing; an entry that contradicts later ones (an epoch or
        start offset not above theirs) replaces them, as in Kafka.
        """
        if not self._assign(epoch, start_offset):
            return False
        self.flush()
        return True

    def _assign(self, epoch: int, start_offset: int) -> bool:
        if epoch < 0 or start_offset < 0:
            return False
        entries = self._entries
        if entries and entries[-1].epoch == epoch and entries[-1].start_offset <= start_offset:
            return False
        kept = [e for e in entries if e.epoch < epoch and e.start_offset < start_offset]
        if len(kept) != len(entries):
            removed = entries[len(kept) :]
            # An epoch that wrote nothing, followed by a newer one at the same offset (every leader election
            # without records in between, e.g. each restart of a one-broker cluster), is routine; anything else
            # means records were truncated (Kafka's LeaderEpochFileCache logs alike).
            routine = len(removed) == 1 and removed[0].start_offset == start_offset
            logger.log(
                logging.DEBUG if routine else logging.WARNING,
                "%s: epoch %d at %d replaces %s", self.path, epoch, start_offset, removed,
            )
        kept.append(EpochEntry(epoch, start_offset))
        self._entries = kept
        return True

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """``(epoch found, end offset)``: for the latest epoch, the log end offset; else the largest epoch at
        or below ``epoch`` and the start offset of the first epoch above ``epoch``. ``(UNDEFINED_EPOCH,
        UNDEFINED_OFFSET)`` when ``epoch`` is undefined or newer than every entry."""
        entries = self._entries
        if epoch == UNDEFINED_EPOCH or not entries:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == entries[-1].epoch:
            return epoch, log_end_offset
        higher = bisect.bisect_right([e.epoch for e in entries], epoch)
        if higher == len(entries):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        floor_epoch = entries[higher - 1].epoch if higher > 0 else epoch
        return floor_epoch, entries[higher].start_offset

    def truncate_from_end(self, end_offset: int) -> None:
        """Forget the entries starting at or after ``end_offset`` (the log was truncated there)."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        if len(kept) != len(self._entries):
            self._entries = kept
            self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Forget the entries wholly before ``start_offset`` (the log now starts there); the entry covering
        ``start_offset`` is moved to start there."""
        entries = self._entries
        floor = bisect.bisect_right([e.start_offset for e in entries], start_offset)
        if floor == 0 or (floor == 1 and entries[0].start_offset == start_offset):
            return
        self._entries = [EpochEntry(entries[floor - 1].epoch, start_offset), *entries[floor:]]
        self.flush()

    def clear(self) -> None:
        """Forget every entry (the log restarted empty)."""
        if self._entries:
            self._entries = []
            self.flush()

    def flush(self) -> None:
        """Write the entries to the checkpoint file atomically; raises ``OSError``."""
        write_checkpoint(self.path, ((e.epoch, e.start_offset) for e in self._entries))


def _well_formed(entries: list[EpochEntry]) -> bool:
    return all(e.epoch >= 0 and e.start_offset >= 0 for e in entries) and all(
        a.epoch < b.epoch and a.start_offset < b.start_offset for a, b in itertools.pairwise(entries)
    )
