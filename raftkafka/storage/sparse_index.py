"""A sparse index file: fixed-size (key, value) entries, both columns non-decreasing, kept in memory.

The shared mechanics of ``OffsetIndex`` and ``TimeIndex``: in-memory arrays searched with bisect,
persisted whole (written to a temporary file, then renamed) when a segment is sealed or closed.
An index only ever speeds up a scan of its segment: an empty index, or a valid prefix of one, is
still correct, so a lost or partial file costs time, never correctness.
"""

from __future__ import annotations

import contextlib
import os
import struct
from array import array
from itertools import chain, pairwise
from pathlib import Path
from typing import ClassVar


class SparseIndex:
    """Entries of ``(key, value)``; subclasses name the column types and the lookup rule.

    Called only by its ``LogSegment``, on the owning partition log's thread.
    """

    KEY_CODE: ClassVar[str]
    VALUE_CODE: ClassVar[str]
    ENTRY_FORMAT: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys = array(self.KEY_CODE)
        self.values = array(self.VALUE_CODE)
        self.saved = False

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        """Drop every entry."""
        del self.keys[:]
        del self.values[:]
        self.saved = False

    def append(self, key: int, value: int) -> None:
        """Add an entry after the others."""
        self.keys.append(key)
        self.values.append(value)
        self.saved = False

    def is_sorted(self) -> bool:
        """True if keys and values are each non-decreasing (keys strictly increasing)."""
        return all(a < b for a, b in pairwise(self.keys)) and all(a <= b for a, b in pairwise(self.values))

    def load(self, max_entries: int) -> bool:
        """Read the file; False (and empty) if it is missing, torn, or holds more than ``max_entries``."""
        self.clear()
        entry_size = struct.calcsize(">" + self.ENTRY_FORMAT)
        try:
            size = self.path.stat().st_size
            if size % entry_size or size // entry_size > max_entries:
                return False
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) != size:
            return False
        flat = struct.unpack(">" + self.ENTRY_FORMAT * (size // entry_size), data)
        self.keys.extend(flat[0::2])
        self.values.extend(flat[1::2])
        self.saved = True
        return True

    def save(self) -> None:
        """Write the entries to the file (atomically: a temporary file renamed over it)."""
        if self.saved:
            return
        pairs = chain.from_iterable(zip(self.keys, self.values, strict=True))
        data = struct.pack(">" + self.ENTRY_FORMAT * len(self.keys), *pairs)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)
        self.saved = True

    def delete(self) -> None:
        """Remove the file if it exists."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
