"""The offset index: sparse (relative offset -> file position of the batch starting there)."""

from __future__ import annotations

from bisect import bisect_right

from raftkafka.storage.sparse_index import SparseIndex

INDEX_SUFFIX = ".index"


class OffsetIndex(SparseIndex):
    """Entries ``(relative base offset u32, file position u32)`` of some batches of one segment."""

    KEY_CODE = "I"
    VALUE_CODE = "I"
    ENTRY_FORMAT = "II"

    def position_before(self, relative_offset: int) -> int:
        """The file position of the last indexed batch starting at or before ``relative_offset`` (0 if none)."""
        i = bisect_right(self.keys, relative_offset) - 1
        return self.values[i] if i >= 0 else 0

    def is_consistent(self, segment_size: int) -> bool:
        """True if entries are ordered and every position lies inside a segment of ``segment_size`` bytes."""
        return self.is_sorted() and (not self.values or self.values[-1] < segment_size)
