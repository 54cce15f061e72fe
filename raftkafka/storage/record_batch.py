"""The record batch: the unit on the wire and on disk, byte for byte the same.

A batch is a fixed 61-byte big-endian header followed by the records as one msgpack array of four
columns, ``[timestamp_deltas, keys, values, headers]`` (each an array of ``record_count`` entries: record
``i`` is ``timestamp_deltas[i], keys[i], values[i], headers[i]``), compressed as a whole when the
attributes say so. ``keys`` is nil instead when no record has a key, ``headers`` nil when none has headers
(the common case costs no per-record entry to pack or unpack). The header keeps Kafka v2's field order so
that the CRC-32C (over everything from ``attributes`` to the end) does not cover the two fields the broker
stamps: ``base_offset`` and ``leader_epoch``.

Why columns rather than one ``[delta, key, value, headers]`` array per record: a Python client packs and
unpacks a column with one C call and no per-record container, and builds its ``Record`` tuples from the
columns with C iterators (``zip``/``map``) instead of a Python-level loop; that halves the client's
decoding cost per record (see bench/README.md). The bytes per record are the same.

The broker only reads headers, checks CRCs and stamps offsets; ``decode_records`` is for clients.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import crc32c
import msgpack

from raftkafka.errors import CorruptBatchError, MessageTooLargeError
from raftkafka.storage.compression import CODECS, Compression, compress, decompress

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
MAGIC = 2
LOG_OVERHEAD = 12
"""Bytes before and including ``batch_length``: ``batch_length`` counts the bytes after them."""

CRC_START = 21
"""The CRC covers ``bytes[CRC_START:]`` of a batch: attributes to the end."""
MIN_BATCH_LENGTH = HEADER_SIZE - LOG_OVERHEAD
COMPRESSION_MASK = 0x07
DEFAULT_MAX_UNCOMPRESSED = 64 * 1024 * 1024
"""Default bound on one batch's decompressed records (a decompression-bomb guard)."""

_PREFIX = struct.Struct(">qiibI")  # base_offset .. crc
_CRC_COVERED = struct.Struct(">hiqqqhii")  # attributes .. record_count
_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH = struct.Struct(">i")
_LEADER_EPOCH_POS = 12
_packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
_REQUIRED = (0, 2)
"""The columns a batch always has (timestamp deltas, values); keys and headers may be nil."""

Buffer = bytes | bytearray | memoryview


class BatchHeader(NamedTuple):
    """A decoded batch header; ``position`` is where the batch starts in the buffer it was read from.

    A named tuple: made from the unpacked fields by one C call (``_new_header``), which matters on the
    per-request paths (produce validation, fetch trimming, client decoding)."""

    base_offset: int
    batch_length: int
    leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    position: int = 0

    @property
    def compression(self) -> Compression:
        """The codec the records are compressed with."""
        return Compression(self.attributes & COMPRESSION_MASK)

    @property
    def size(self) -> int:
        """Total bytes of the batch, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        """Offset of the batch's last record."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """Offset right after the batch."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def end(self) -> int:
        """Position right after the batch in the buffer it was read from."""
        return self.position + self.batch_length + LOG_OVERHEAD


def encode_batch(
    records: Sequence[Sequence[Any]],
    *,
    first_timestamp: int,
    max_timestamp: int,
    compression: Compression = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    base_offset: int = 0,
    leader_epoch: int = -1,
) -> bytes:
    """One batch from ``records`` (``[timestamp_delta, key, value, headers]`` each), ready to send."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    return _encode(
        tuple(zip(*records, strict=True)), len(records), first_timestamp, max_timestamp, compression,
        producer_id, producer_epoch, base_sequence, base_offset, leader_epoch,
    )


def encode_columns(
    deltas: Sequence[int],
    keys: Sequence[bytes | None] | None,
    values: Sequence[bytes | None],
    headers: Sequence[Any] | None,
    *,
    first_timestamp: int,
    max_timestamp: int,
    compression: Compression = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    base_offset: int = 0,
    leader_epoch: int = -1,
) -> bytes:
    """One batch from parallel columns (record ``i`` is at ``first_timestamp + deltas[i]`` ms, ``keys[i]``,
    ``values[i]``, ``headers[i]``), ready to send: the producer's path, with no per-record Python work. ``keys``
    None: no record has a key; ``headers`` None: no record has headers."""
    count = len(values)
    if count == 0:
        raise ValueError("a record batch needs at least one record")
    if len(deltas) != count or any(c is not None and len(c) != count for c in (keys, headers)):
        raise ValueError("record columns must have the same length")
    return _encode(
        (deltas, keys, values, headers), count, first_timestamp, max_timestamp, compression,
        producer_id, producer_epoch, base_sequence, base_offset, leader_epoch,
    )


def _encode(
    columns: Sequence[Sequence[Any]],
    count: int,
    first_timestamp: int,
    max_timestamp: int,
    compression: Compression,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    base_offset: int,
    leader_epoch: int,
) -> bytes:
    payload = _packb(columns)
    if compression != Compression.NONE:
        payload = compress(compression, payload)
    covered = _CRC_COVERED.pack(
        int(compression), count - 1, first_timestamp, max_timestamp,
        producer_id, producer_epoch, base_sequence, count,
    )
    crc = crc32c.crc32c(payload, crc32c.crc32c(covered))
    batch_length = HEADER_SIZE - LOG_OVERHEAD + len(payload)
    return b"".join((_PREFIX.pack(base_offset, batch_length, leader_epoch, MAGIC, crc), covered, payload))


_new_header = tuple.__new__


def read_header(buf: Buffer, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``pos``, without any check (``struct.error`` if too short)."""
    return _new_header(BatchHeader, (*HEADER.unpack_from(buf, pos), pos))


def check_header(header: BatchHeader, available: int, *, max_size: int | None = None) -> None:
    """Check a header's magic, length, counts and codec against the ``available`` bytes from its start.

    Raises ``CorruptBatchError`` for a malformed header, ``MessageTooLargeError`` for a batch larger
    than ``max_size``. The CRC is not checked here.
    """
    pos = header.position
    if header.magic != MAGIC:
        raise CorruptBatchError(f"batch at position {pos} has magic {header.magic}, expected {MAGIC}")
    if header.batch_length < MIN_BATCH_LENGTH:
        raise CorruptBatchError(f"batch at position {pos} has impossible length {header.batch_length}")
    size = header.batch_length + LOG_OVERHEAD
    if max_size is not None and size > max_size:
        raise MessageTooLargeError(f"batch at position {pos} is {size} bytes; the limit is {max_size}")
    if size > available:
        raise CorruptBatchError(f"truncated batch at position {pos}: {available} of {size} bytes present")
    if header.record_count < 1:
        raise CorruptBatchError(f"batch at position {pos} has record count {header.record_count}")
    if header.last_offset_delta != header.record_count - 1:
        raise CorruptBatchError(
            f"batch at position {pos} has last offset delta {header.last_offset_delta} "
            f"for {header.record_count} records"
        )
    codec = header.attributes & COMPRESSION_MASK
    if codec not in CODECS:
        raise CorruptBatchError(f"batch at position {pos} has unknown compression codec {codec}")


def check_crc(header: BatchHeader, batch: Buffer) -> None:
    """Raise ``CorruptBatchError`` unless ``batch`` (exactly the batch's bytes) matches the header's CRC."""
    crc = crc32c.crc32c(memoryview(batch)[CRC_START:])
    if crc != header.crc:
        raise CorruptBatchError(
            f"batch at position {header.position} fails its CRC "
            f"(stored {header.crc:#010x}, computed {crc:#010x})"
        )


def validate_batch(buf: Buffer, pos: int = 0, *, max_size: int | None = None) -> BatchHeader:
    """The header of the batch at ``pos`` after checking magic, lengths, counts, codec and CRC.

    Raises ``CorruptBatchError`` for a malformed batch, ``MessageTooLargeError`` if it is larger
    than ``max_size`` bytes.
    """
    available = len(buf) - pos
    if available < HEADER_SIZE:
        raise CorruptBatchError(
            f"truncated batch at position {pos}: {available} bytes, the header needs {HEADER_SIZE}"
        )
    header = read_header(buf, pos)
    check_header(header, available, max_size=max_size)
    check_crc(header, memoryview(buf)[pos : pos + header.batch_length + LOG_OVERHEAD])
    return header


def validate_batches(buf: Buffer, *, max_size: int | None = None) -> list[BatchHeader]:
    """Headers of the one or more batches that must exactly cover ``buf``, each validated."""
    if not buf:
        raise CorruptBatchError("no record batch given")
    headers = []
    pos = 0
    end = len(buf)
    while pos < end:
        header = validate_batch(buf, pos, max_size=max_size)
        headers.append(header)
        pos += header.batch_length + LOG_OVERHEAD
    return headers


def stamp(buf: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Write the broker-assigned base offset and leader epoch in place (the CRC does not cover them)."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)
    _LEADER_EPOCH.pack_into(buf, pos + _LEADER_EPOCH_POS, leader_epoch)


def iter_batches(buf: Buffer, pos: int = 0) -> Iterator[BatchHeader]:
    """Headers of the complete batches from ``pos`` on, stopping silently at an incomplete tail.

    No CRC check: this walks already-validated log bytes (fetch trimming, client decoding).
    """
    end = len(buf)
    unpack = HEADER.unpack_from
    while end - pos >= HEADER_SIZE:
        header = _new_header(BatchHeader, (*unpack(buf, pos), pos))
        if header.batch_length < MIN_BATCH_LENGTH:
            return
        next_pos = pos + header.batch_length + LOG_OVERHEAD
        if next_pos > end:
            return
        yield header
        pos = next_pos


_BASE_AND_LENGTH = struct.Struct(">qi")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_LAST_OFFSET_DELTA_POS = 23


def complete_prefix(buf: Buffer, *, max_offset: int | None = None) -> tuple[int, int]:
    """``(length, next_offset)`` of the run of complete batches at the start of ``buf``.

    The run stops at an incomplete batch and before the first batch holding an offset at or after
    ``max_offset`` (exclusive bound, e.g. the high watermark); ``next_offset`` is -1 for an empty run.
    """
    end = len(buf)
    pos = 0
    next_offset = -1
    while end - pos >= HEADER_SIZE:
        base_offset, batch_length = _BASE_AND_LENGTH.unpack_from(buf, pos)
        if batch_length < MIN_BATCH_LENGTH:
            break
        batch_end = pos + batch_length + LOG_OVERHEAD
        if batch_end > end:
            break
        batch_next = base_offset + _LAST_OFFSET_DELTA.unpack_from(buf, pos + _LAST_OFFSET_DELTA_POS)[0] + 1
        if max_offset is not None and batch_next > max_offset:
            break
        pos = batch_end
        next_offset = batch_next
    return pos, next_offset


def unpack_columns(
    buf: Buffer,
    pos: int,
    header: BatchHeader,
    *,
    use_list: bool = False,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
) -> Sequence[Sequence[Any]]:
    """The four record columns ``(timestamp_deltas, keys, values, headers)`` of the batch at ``pos`` in
    ``buf`` (tuples, or lists with ``use_list``), each checked to hold ``header.record_count`` entries;
    ``keys`` or ``headers`` is None when no record has one.

    Raises ``CorruptBatchError`` when the payload does not decode to that shape.
    """
    payload: Buffer = memoryview(buf)[pos + HEADER_SIZE : pos + header.batch_length + LOG_OVERHEAD]
    codec = header.attributes & COMPRESSION_MASK
    if codec != Compression.NONE:
        payload = decompress(codec, payload, max_uncompressed)
    try:
        columns = msgpack.unpackb(payload, raw=False, use_list=use_list, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptBatchError(
            f"cannot decode the records of the batch at offset {header.base_offset}: {exc}"
        ) from exc
    kind = list if use_list else tuple
    count = header.record_count
    if (
        type(columns) is not kind
        or len(columns) != 4
        or any(
            (type(column) is not kind or len(column) != count) and (column is not None or index in _REQUIRED)
            for index, column in enumerate(columns)
        )
    ):
        raise CorruptBatchError(
            f"batch at offset {header.base_offset} declares {count} records but does not hold four columns of them"
        )
    return columns


def decode_records(
    buf: Buffer, pos: int, header: BatchHeader, *, max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED
) -> list[list[Any]]:
    """The batch's records as ``[timestamp_delta, key, value, headers]`` lists (client side only).

    Record ``i`` has offset ``header.base_offset + i`` and timestamp
    ``header.first_timestamp + timestamp_delta``.
    """
    deltas, keys, values, headers = unpack_columns(buf, pos, header, use_list=True, max_uncompressed=max_uncompressed)
    if keys is None:
        keys = [None] * len(values)
    if headers is None:
        headers = [[] for _ in values]
    return [list(record) for record in zip(deltas, keys, values, headers, strict=True)]
