"""Compression codecs: round trips, config names, and bounded decompression."""

from __future__ import annotations

import os

import pytest
import zstandard

from raftkafka.errors import CorruptBatchError
from raftkafka.storage.compression import Compression, compress, decompress
from raftkafka.storage.record_batch import decode_records, encode_batch, validate_batch

CODECS = [Compression.GZIP, Compression.LZ4, Compression.ZSTD]


@pytest.mark.parametrize("codec", list(Compression))
def test_round_trip(codec: Compression) -> None:
    data = os.urandom(5000) + bytes(20000)
    assert decompress(codec, compress(codec, data), len(data)) == data


def test_from_name() -> None:
    assert [Compression.from_name(n) for n in ("none", "gzip", "LZ4", " zstd ")] == [
        Compression.NONE, Compression.GZIP, Compression.LZ4, Compression.ZSTD,
    ]
    assert [int(c) for c in Compression] == [0, 1, 3, 4]
    with pytest.raises(ValueError, match="snappy"):
        Compression.from_name("snappy")


@pytest.mark.parametrize("codec", CODECS)
def test_bomb_refused(codec: Compression) -> None:
    bomb = compress(codec, bytes(32 * 1024 * 1024))
    assert len(bomb) < 2 * 1024 * 1024
    with pytest.raises(CorruptBatchError, match="limit"):
        decompress(codec, bomb, 1024 * 1024)


def test_zstd_bomb_without_declared_size_refused() -> None:
    stream = zstandard.ZstdCompressor().compressobj()
    bomb = stream.compress(bytes(16 * 1024 * 1024)) + stream.flush()
    assert zstandard.frame_content_size(bomb) == -1
    with pytest.raises(CorruptBatchError):
        decompress(Compression.ZSTD, bomb, 1024 * 1024)


@pytest.mark.parametrize("codec", CODECS)
def test_garbage_and_truncation_refused(codec: Compression) -> None:
    good = compress(codec, os.urandom(3000))
    for bad in (b"garbage that is not compressed", good[: len(good) // 2]):
        with pytest.raises(CorruptBatchError):
            decompress(codec, bad, 1 << 20)


@pytest.mark.parametrize("codec", CODECS)
def test_decode_records_bounded(codec: Compression) -> None:
    records = [[0, None, bytes(1 << 20), []] for _ in range(8)]
    raw = encode_batch(records, first_timestamp=0, max_timestamp=0, compression=codec)
    header = validate_batch(raw)
    with pytest.raises(CorruptBatchError):
        decode_records(raw, 0, header, max_uncompressed=1 << 20)
    assert decode_records(raw, 0, header, max_uncompressed=16 << 20) == records
