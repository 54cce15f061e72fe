"""A bounded window of the most recent committed metadata records, by log offset.

The metadata log keeps one so any voter can serve ``METADATA_LOG`` fetches: records from an offset
inside the window, or "too old" (the caller then sends a snapshot of the image instead). Offsets in
the window are contiguous from ``start_offset`` to ``end_offset``; loading a snapshot empties it and
moves its start to just after the snapshot. Pure: no threads, clocks or I/O; one owner (the event
loop thread of the metadata log).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

from raftkafka.metadata.records import MetadataRecord


class RecordWindow:
    """The last ``max_records`` committed records (oldest dropped first)."""

    def __init__(self, max_records: int, next_offset: int = 0) -> None:
        if max_records < 1:
            raise ValueError("the record window must hold at least one record")
        self._records: deque[MetadataRecord] = deque(maxlen=max_records)
        self._next_offset = next_offset

    @property
    def start_offset(self) -> int:
        """The offset of the oldest record kept (== ``end_offset + 1`` when empty)."""
        return self._next_offset - len(self._records)

    @property
    def end_offset(self) -> int:
        """The offset of the newest record kept, or of the last record before the window."""
        return self._next_offset - 1

    def append(self, records: Sequence[MetadataRecord], first_offset: int) -> None:
        """Add a committed batch; a batch that does not follow the window restarts it at ``first_offset``."""
        if first_offset != self._next_offset:
            self.reset(first_offset)
        self._records.extend(records)
        self._next_offset = first_offset + len(records)

    def reset(self, next_offset: int) -> None:
        """Forget every record (a snapshot replaced the image); the next record will be at ``next_offset``."""
        self._records.clear()
        self._next_offset = next_offset

    def read(self, offset: int, max_records: int) -> list[MetadataRecord] | None:
        """Up to ``max_records`` records from ``offset`` on; None when ``offset`` is older than the window.

        An ``offset`` past the end gives an empty list.
        """
        start = self.start_offset
        if offset < start:
            return None
        skip = offset - start
        if skip >= len(self._records):
            return []
        if skip > len(self._records) // 2:  # deque slices walk from the nearer end
            tail = len(self._records) - skip
            chunk = list(itertools.islice(reversed(self._records), tail))
            chunk.reverse()
            return chunk[:max_records]
        return list(itertools.islice(self._records, skip, skip + max_records))
