"""Raft snapshots of the metadata image as msgpack files, through pysyncobj's serializer hooks.

pysyncobj's own snapshot is a pickle, and it has a crash window: it replaces the snapshot file, and
only on a later tick truncates the journal to it. A process that dies in between restarts with a
journal that does not start at the snapshot; pysyncobj then clears the journal and every committed
entry after the snapshot is lost (measured: acknowledged appends disappeared on restart). So:

- ``serialize`` writes ``[format, image bytes, entry at last applied, entry before it, voters]`` as
  msgpack (fsynced), after keeping the snapshot it replaces as ``<file>.prev``;
- at startup ``deserialize`` returns whichever of the two snapshots the journal's first two entries
  match (the journal is truncated to the last snapshot whose truncation happened). If neither
  matches and the journal still starts at index 1, it refuses to load, and pysyncobj replays the
  whole journal instead; both ways nothing committed is dropped.
- A snapshot received from the leader later is always the one just written, as pysyncobj expects.

Not covered (pysyncobj 0.3.17): after a snapshot, ``FileJournal.deleteEntriesTo`` rewrites the
journal in place (clear, then re-add the kept entries), so a kill -9 inside that rewrite loses the
entries not yet re-added. The window is microseconds once per compaction (5000 entries or 5 min by
default); closing it needs an atomic journal rewrite in pysyncobj.

Hooks run on pysyncobj's tick thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from raftkafka.metadata.fields import (
    MetadataDecodeError,
    read_fields,
    read_int,
    read_list,
    read_str,
    unpack,
)
from raftkafka.metadata.image import MetadataImage

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT_VERSION = 1
PREVIOUS_SUFFIX = ".prev"
_FIRST_JOURNAL_INDEX = 1

RaftEntry = tuple[bytes, int, int]
"""A pysyncobj log entry: (command, index, term)."""


class SnapshotMismatchError(RuntimeError):
    """No snapshot fits the journal, which still holds the whole log: replay the journal instead."""


def _read_entry(value: Any) -> RaftEntry:
    command, index, term = read_fields(value, (_read_bytes, read_int, read_int))
    return command, index, term


def _read_bytes(value: Any) -> bytes:
    if type(value) is not bytes:
        raise MetadataDecodeError(f"expected bytes, got {type(value).__name__}")
    return value


def _fsync_write(path: str, data: bytes) -> None:
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


class SnapshotFiles:
    """pysyncobj ``serializer``/``deserializer`` hooks for the metadata image."""

    def __init__(self, image: Callable[[], MetadataImage], restore: Callable[[MetadataImage], None]) -> None:
        self._image = image
        self._restore = restore
        self._journal: Sequence[RaftEntry] | None = None
        self._attached = threading.Event()
        self._loaded_once = False

    def attach_journal(self, journal: Sequence[RaftEntry]) -> None:
        """Give the startup load the Raft journal to match snapshots against."""
        self._journal = journal
        self._attached.set()

    def serialize(self, temporary_file: str, data: tuple[RaftEntry, RaftEntry, Any]) -> None:
        """Write the current image as the snapshot at ``data``'s entries (pysyncobj renames it into place)."""
        last, before, voters = data
        final = temporary_file.removesuffix(".tmp")
        if os.path.exists(final):
            staged = final + PREVIOUS_SUFFIX + ".tmp"
            if os.path.exists(staged):
                os.unlink(staged)
            os.link(final, staged)
            os.replace(staged, final + PREVIOUS_SUFFIX)
        payload = [
            SNAPSHOT_FORMAT_VERSION,
            self._image().to_bytes(),
            list(last),
            list(before),
            sorted(str(voter) for voter in voters),
        ]
        _fsync_write(temporary_file, msgpack.packb(payload, use_bin_type=True))

    def deserialize(self, file_name: str) -> tuple[RaftEntry, RaftEntry, list[str]]:
        """Load a snapshot into the image; pysyncobj's ``(last entry, entry before, voters)``."""
        startup = not self._loaded_once
        self._loaded_once = True
        chosen = self._read(file_name)
        if startup:
            chosen = self._match_journal(file_name, chosen)
        image, last, before, voters = chosen
        self._restore(image)
        return last, before, voters

    def _match_journal(
        self, file_name: str, newest: tuple[MetadataImage, RaftEntry, RaftEntry, list[str]]
    ) -> tuple[MetadataImage, RaftEntry, RaftEntry, list[str]]:
        if not self._attached.wait(timeout=30) or self._journal is None:
            return newest
        journal = self._journal
        head = (journal[0], journal[1]) if len(journal) >= 2 else None
        if head is None or head == (newest[2], newest[1]):
            return newest
        previous_file = file_name + PREVIOUS_SUFFIX
        if os.path.exists(previous_file):
            previous = self._read(previous_file)
            if head == (previous[2], previous[1]):
                log.warning("the last snapshot was never matched by the journal; loading the one before it")
                return previous
        if head[0][1] == _FIRST_JOURNAL_INDEX:
            raise SnapshotMismatchError("the journal holds the whole log; replaying it instead of the snapshot")
        log.error("no snapshot matches the Raft journal; entries after the snapshot may be lost")
        return newest

    @staticmethod
    def _read(file_name: str) -> tuple[MetadataImage, RaftEntry, RaftEntry, list[str]]:
        with open(file_name, "rb") as file:
            raw = file.read()
        version, image_bytes, last, before, voters = read_fields(
            unpack(raw), (read_int, _read_bytes, _read_entry, _read_entry, read_list)
        )
        if version != SNAPSHOT_FORMAT_VERSION:
            raise MetadataDecodeError(f"unsupported snapshot format {version}")
        return MetadataImage.from_bytes(image_bytes), last, before, [read_str(v) for v in voters]
