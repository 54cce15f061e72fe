"""The time index: sparse (largest timestamp so far -> relative offset of the batch where it was noted)."""

from __future__ import annotations

from bisect import bisect_left

from raftkafka.storage.sparse_index import SparseIndex

TIME_INDEX_SUFFIX = ".timeindex"
NO_TIMESTAMP = -1


class TimeIndex(SparseIndex):
    """Entries ``(timestamp i64, relative offset u32)``: every batch up to and including the one at the
    relative offset has a max timestamp at or below the entry's timestamp."""

    KEY_CODE = "q"
    VALUE_CODE = "I"
    ENTRY_FORMAT = "qI"

    @property
    def last_timestamp(self) -> int:
        """The largest indexed timestamp (``NO_TIMESTAMP`` if empty)."""
        return self.keys[-1] if self.keys else NO_TIMESTAMP

    def scan_start(self, timestamp: int) -> int:
        """A relative offset from which a forward scan finds the first batch with max timestamp >= ``timestamp``."""
        i = bisect_left(self.keys, timestamp) - 1
        return self.values[i] if i >= 0 else 0

    def is_consistent(self, next_relative_offset: int) -> bool:
        """True if entries are ordered and every offset lies before ``next_relative_offset``."""
        return self.is_sorted() and (not self.values or self.values[-1] < next_relative_offset)
