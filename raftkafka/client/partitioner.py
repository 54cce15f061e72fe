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
    race can do is switch partitions twice)."""

    __slots__ = ("_random", "_sticky")

    def __init__(self, rng: random.Random | None = None) -> None:
        self._sticky: dict[str, int] = {}
        self._random = rng or random.Random()

    def partition(self, topic: str, partitions: int) -> int:
        """The sticky partition of ``topic``."""
        current = self._sticky.get(topic)
        if current is None or current >= partitions:
            current = self._sticky[topic] = self._random.randrange(partitions)
        return current

    def batch_full(self, topic: str, partitions: int) -> None:
        """The sticky partition's batch is full: move ``topic`` to another partition."""
        if partitions < 2:
            return
        current = self._sticky.get(topic, -1)
        choice = self._random.randrange(partitions - 1)
        self._sticky[topic] = choice + 1 if 0 <= current <= choice else choice
