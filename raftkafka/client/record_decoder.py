"""Decoding fetched record batches into ``Record``s: pure functions over the bytes of a fetch response.

A batch's records are four columns (see ``storage/record_batch.py``), unpacked with one msgpack call per
batch; the ``Record`` tuples are then built from the columns by C iterators alone (``zip`` of the columns,
``map`` of ``tuple.__new__``), with no Python-level step per record. Headers stay the tuples msgpack made
(``tuple()`` of a tuple is the tuple itself), so a record without headers holds the shared empty tuple.
Records below the fetch position (a batch fetched from its start) are sliced off the columns before any is
built. The cyclic garbage collector is paused while a fetched chunk is decoded (msgpack's own performance
advice): the thousands of young, acyclic objects built at once would otherwise trigger collections that cost
about a third of the time. When the package was built with a C compiler, ``_records.build`` makes the records
instead, in one C loop, and out of the collector's sight: a ``Record`` holds only immutable values made before
it, so it can never be part of a reference cycle, yet as a tuple subclass CPython would track it for good, and a
consumer holding many records would pay for them in every collection (15% of its CPU in ``bench consume``).
"""

from __future__ import annotations

import gc
from itertools import repeat
from operator import add

from raftkafka.errors import CorruptBatchError, MessageTooLargeError
from raftkafka.storage.record_batch import LOG_OVERHEAD, check_crc, check_header, iter_batches, unpack_columns
from raftkafka.structs import Record

try:
    from raftkafka.client._records import build as build_records
except ImportError:  # built without a C compiler: C iterators build the records, and the collector tracks them
    build_records = None  # type: ignore[assignment]

_new_record = tuple.__new__


def decode_fetched(
    topic: str, partition: int, buf: bytes, position: int, *, check_crcs: bool = True
) -> tuple[list[Record], int]:
    """The records at or after ``position`` in the complete batches of ``buf``, and the offset to fetch next.

    Raises ``CorruptBatchError`` for a batch failing its CRC (when ``check_crcs``) or its decoding, and
    ``MessageTooLargeError`` when ``buf`` holds data but not one complete batch.
    """
    if not gc.isenabled():
        return _decode(topic, partition, buf, position, check_crcs)
    gc.disable()
    try:
        return _decode(topic, partition, buf, position, check_crcs)
    finally:
        gc.enable()


def _decode(topic: str, partition: int, buf: bytes, position: int, check_crcs: bool) -> tuple[list[Record], int]:
    out: list[Record] = []
    next_offset = position
    complete = False
    for header in iter_batches(buf):
        complete = True
        if header.next_offset <= position:
            continue
        if check_crcs:  # iter_batches saw the whole batch; its header is checked here, not read again
            start = header.position
            check_header(header, len(buf) - start)
            check_crc(header, memoryview(buf)[start : start + header.batch_length + LOG_OVERHEAD])
        base = header.base_offset
        deltas, keys, values, headers = unpack_columns(buf, header.position, header)
        if base < position:
            skip = position - base
            deltas, values = deltas[skip:], values[skip:]
            keys = None if keys is None else keys[skip:]
            headers = None if headers is None else headers[skip:]
            base = position
        try:
            if build_records is not None:
                first = header.first_timestamp
                build_records(out, Record, topic, partition, base, first, deltas, keys, values, headers)
            else:
                out += map(_new_record, repeat(Record), zip(
                    repeat(topic), repeat(partition), range(base, base + len(values)),
                    map(add, repeat(header.first_timestamp), deltas),
                    repeat(None) if keys is None else keys,
                    values,
                    repeat(()) if headers is None else map(tuple, headers),
                ))
        except (TypeError, OverflowError) as exc:  # a delta that is no (64-bit) integer, headers that are no array
            raise CorruptBatchError(f"batch at offset {header.base_offset} holds malformed records: {exc}") from exc
        next_offset = header.next_offset
    if buf and not complete:
        raise MessageTooLargeError(
            f"{topic}-{partition} at offset {position}: the next batch is larger than the fetch size "
            f"({len(buf)} bytes); raise max_partition_fetch_bytes"
        )
    return out, next_offset
