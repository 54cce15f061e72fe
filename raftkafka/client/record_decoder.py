"""Decoding fetched record batches into ``Record``s: pure functions over the bytes of a fetch response.

Records are unpacked with one msgpack call per batch (as tuples, about twice as fast as lists) and turned
into ``Record``s by one list comprehension; records below the fetch position (a batch fetched from its
start) are skipped without being built. The cyclic garbage collector is paused while a fetched chunk is
decoded (msgpack's own performance advice): the thousands of young, acyclic objects built at once would
otherwise trigger collections that cost about a third of the decoding time.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack

from raftkafka.errors import CorruptBatchError, MessageTooLargeError
from raftkafka.storage.compression import Compression, decompress
from raftkafka.storage.record_batch import (
    COMPRESSION_MASK,
    DEFAULT_MAX_UNCOMPRESSED,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    iter_batches,
    validate_batch,
)
from raftkafka.structs import Record

_new_record = tuple.__new__


def _unpack_records(buf: bytes, header: BatchHeader) -> tuple[Any, ...]:
    pos = header.position
    payload: bytes | memoryview = memoryview(buf)[pos + HEADER_SIZE : pos + header.batch_length + LOG_OVERHEAD]
    codec = header.attributes & COMPRESSION_MASK
    if codec != Compression.NONE:
        payload = decompress(codec, payload, DEFAULT_MAX_UNCOMPRESSED)
    try:
        records = msgpack.unpackb(payload, raw=False, use_list=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise CorruptBatchError(
            f"cannot decode the records of the batch at offset {header.base_offset}: {exc}"
        ) from exc
    if not isinstance(records, tuple) or len(records) != header.record_count:
        raise CorruptBatchError(
            f"batch at offset {header.base_offset} declares {header.record_count} records and holds another number"
        )
    return records


@contextmanager
def _collector_paused() -> Iterator[None]:
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def decode_fetched(
    topic: str, partition: int, buf: bytes, position: int, *, check_crcs: bool = True
) -> tuple[list[Record], int]:
    """The records at or after ``position`` in the complete batches of ``buf``, and the offset to fetch next.

    Raises ``CorruptBatchError`` for a batch failing its CRC (when ``check_crcs``) or its decoding, and
    ``MessageTooLargeError`` when ``buf`` holds data but not one complete batch.
    """
    with _collector_paused():
        return _decode(topic, partition, buf, position, check_crcs)


def _decode(topic: str, partition: int, buf: bytes, position: int, check_crcs: bool) -> tuple[list[Record], int]:
    out: list[Record] = []
    next_offset = position
    complete = False
    for header in iter_batches(buf):
        complete = True
        if header.next_offset <= position:
            continue
        if check_crcs:
            validate_batch(buf, header.position)
        base = header.base_offset
        first_ts = header.first_timestamp
        records = _unpack_records(buf, header)
        if base < position:
            records = records[position - base :]
            base = position
        out += [
            _new_record(Record, (topic, partition, offset, first_ts + delta, key, value, list(hdrs) if hdrs else []))
            for offset, (delta, key, value, hdrs) in zip(range(base, base + len(records)), records, strict=True)
        ]
        next_offset = header.next_offset
    if buf and not complete:
        raise MessageTooLargeError(
            f"{topic}-{partition} at offset {position}: the next batch is larger than the fetch size "
            f"({len(buf)} bytes); raise max_partition_fetch_bytes"
        )
    return out, next_offset
