"""Key hashing, sticky partitioning and bootstrap address parsing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from raftkafka.client.bootstrap import parse_bootstrap
from raftkafka.client.partitioner import StickyPartitioner, partition_for_key


def test_key_hash_is_stable_and_spreads() -> None:
    # Fixed expectations: a key's partition must never change between processes or releases.
    assert [partition_for_key(k, 3) for k in (b"user-1", b"user-2", b"", b"\x00" * 8)] == [
        partition_for_key(k, 3) for k in (b"user-1", b"user-2", b"", b"\x00" * 8)
    ]
    assert partition_for_key(b"user-1", 3) == 2116437524 % 3  # zlib.crc32(b"user-1")
    counts = Counter(partition_for_key(f"key-{i}".encode(), 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3} and min(counts.values()) > 800


def test_sticky_partition_holds_until_its_batch_is_full_then_moves() -> None:
    sticky = StickyPartitioner(random.Random(1))
    first = sticky.partition("t", 3)
    assert all(sticky.partition("t", 3) == first for _ in range(10))
    sticky.batch_full(("t", (first + 1) % 3))  # another partition's batch: no move
    assert sticky.partition("t", 3) == first
    seen = {first}
    for _ in range(30):
        before = sticky.partition("t", 3)
        sticky.batch_full(("t", before))
        after = sticky.partition("t", 3)
        assert after != before and 0 <= after < 3
        seen.add(after)
    assert seen == {0, 1, 2}
    assert sticky.partition("one", 1) == 0
    sticky.batch_full(("one", 0))
    assert sticky.partition("one", 1) == 0
    assert sticky.partition("t", 1) == 0  # the partition count shrank below the sticky choice


def test_parse_bootstrap() -> None:
    assert parse_bootstrap("127.0.0.1:9092") == [("127.0.0.1", 9092)]
    assert parse_bootstrap("a:1, b:2,a:1,") == [("a", 1), ("b", 2)]
    assert parse_bootstrap(["a:1", "b"]) == [("a", 1), ("b", 9092)]
    assert parse_bootstrap("[::1]:9093") == [("::1", 9093)]
    for bad in ("", "a:x", "a:70000", ":1", "[::1"):
        with pytest.raises(ValueError):
            parse_bootstrap(bad)
