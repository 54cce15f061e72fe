"""Record-batch compression codecs, numbered as Kafka numbers them, with bounded decompression.

Compressor objects are reused per thread (zstandard's are not thread-safe); every decompression is
bounded by a limit the caller gives, so a small malicious payload can never expand without bound.
"""

from __future__ import annotations

import threading
import zlib
from enum import IntEnum

import lz4.frame
import zstandard

from raftkafka.errors import CorruptBatchError

_GZIP_WBITS = 31  # zlib's gzip container
_GZIP_LEVEL = 6
_ZSTD_LEVEL = 3


class Compression(IntEnum):
    """A record batch's compression codec (the low 3 bits of its attributes)."""

    NONE = 0
    GZIP = 1
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str) -> Compression:
        """The codec for a config string: ``none``, ``gzip``, ``lz4`` or ``zstd`` (case-insensitive)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown compression {name!r}; expected one of none, gzip, lz4, zstd") from None


CODECS = frozenset(int(c) for c in Compression)
"""The codec numbers this build can read."""


class _ZstdObjects(threading.local):
    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
        self.decompressor = zstandard.ZstdDecompressor()


_zstd = _ZstdObjects()


def compress(codec: Compression, data: bytes | memoryview) -> bytes:
    """``data`` compressed with ``codec`` (returned as is, as bytes, for ``NONE``)."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.LZ4:
        return lz4.frame.compress(data, store_size=True)
    if codec == Compression.ZSTD:
        return _zstd.compressor.compress(data)
    if codec == Compression.GZIP:
        return zlib.compress(data, _GZIP_LEVEL, _GZIP_WBITS)
    raise ValueError(f"unknown compression codec {codec!r}")


def decompress(codec: Compression | int, data: bytes | memoryview, max_size: int) -> bytes:
    """``data`` decompressed with ``codec``; raises ``CorruptBatchError`` if it is malformed or would
    expand beyond ``max_size`` bytes (the output is never allowed to grow past that bound)."""
    try:
        if codec == Compression.NONE:
            out = bytes(data)
        elif codec == Compression.LZ4:
            out = _lz4_decompress(data, max_size)
        elif codec == Compression.ZSTD:
            out = _zstd_decompress(data, max_size)
        elif codec == Compression.GZIP:
            out = _gzip_decompress(data, max_size)
        else:
            raise CorruptBatchError(f"unknown compression codec {codec}")
    except (zlib.error, RuntimeError, zstandard.ZstdError) as exc:
        raise CorruptBatchError(f"cannot decompress {Compression(codec).name} payload: {exc}") from exc
    if len(out) > max_size:
        raise _too_large(max_size)
    return out


def _too_large(max_size: int) -> CorruptBatchError:
    return CorruptBatchError(f"decompressed payload exceeds the limit of {max_size} bytes")


def _lz4_decompress(data: bytes | memoryview, max_size: int) -> bytes:
    declared = lz4.frame.get_frame_info(data).get("content_size", 0)
    if declared > max_size:
        raise _too_large(max_size)
    decompressor = lz4.frame.LZ4FrameDecompressor()
    out = decompressor.decompress(data, max_length=max_size + 1)
    if len(out) > max_size:
        raise _too_large(max_size)
    if not decompressor.eof:
        raise CorruptBatchError("truncated LZ4 payload")
    return out


def _zstd_decompress(data: bytes | memoryview, max_size: int) -> bytes:
    declared = zstandard.frame_content_size(data)
    if declared > max_size:
        raise _too_large(max_size)
    # With a declared size zstandard allocates exactly that; without one, at most max_output_size.
    return _zstd.decompressor.decompress(data, max_output_size=max_size)


def _gzip_decompress(data: bytes | memoryview, max_size: int) -> bytes:
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    out = decompressor.decompress(data, max_size + 1)
    if len(out) > max_size or decompressor.unconsumed_tail:
        raise _too_large(max_size)
    if not decompressor.eof:
        raise CorruptBatchError("truncated gzip payload")
    return out
