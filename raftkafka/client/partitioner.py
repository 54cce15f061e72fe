"""Choosing a partition for a record: a stable hash of the key, or a sticky partition for null keys.

Keyed records go to ``crc32(key) % partitions`` (zlib's CRC-32: stable across processes, versions and
platforms, and computed in C). Records without a key stick to one partition per topic until the batch
they fill is full, then move to another partition, so that null-key records form large batches.
"""

from __future__ import annotations

import random
import zlib


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of a keyed record: stable for a key and a partition count."""
    return zlib.crc32(key) % partitions


class StickyPartitioner:
    """The current partition per topic for null-key records. Safe to share between threads (the worst a
    race can do is switch partitions twice). ``current`` may be read directly on a hot path."""

    __slots__ = ("_counts", "_random", "current")

    def __init__(self, rng: random.Random | None = None) -> None:
        self.current: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._random = rng or random.Random()

    def partition(self, topic: str, partitions: int) -> int:
        """The sticky partition of ``topic`` among ``partitions`` (chosen at random the first time)."""
        current = self.current.get(topic)
        if current is None or current >= partitions:
            current = self.current[topic] = self._random.randrange(partitions)
        self._counts[topic] = partitions
        return current

    def batch_full(self, tp: tuple[str, int]) -> None:
        """A batch of ``tp`` is full: if ``tp`` is its topic's sticky partition, move to another one."""
        topic, partition = tp
        partitions = self._counts.get(topic, 1)
        if self.current.get(topic) != partition or partitions < 2:
            return
        choice = self._random.randrange(partitions - 1)
        self.current[topic] = choice + 1 if choice >= partition else choice

