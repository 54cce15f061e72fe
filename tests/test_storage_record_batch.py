"""The record-batch format: encoding, validation, stamping, walking and decoding."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkafka.errors import CorruptBatchError, MessageTooLargeError
from raftkafka.storage.compression import Compression
from raftkafka.storage.record_batch import (
    CRC_START,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    decode_records,
    encode_batch,
    encode_columns,
    iter_batches,
    read_header,
    stamp,
    validate_batch,
    validate_batches,
)

RECORDS = [[0, b"k1", b"v1", []], [5, None, b"v2", [["h", b"x"]]], [7, b"k3", None, []]]


def _batch(records: list | None = None, **kwargs: object) -> bytes:
    return encode_batch(records or RECORDS, first_timestamp=1000, max_timestamp=1007, **kwargs)


def test_header_layout() -> None:
    assert HEADER_SIZE == 61
    assert LOG_OVERHEAD == 12
    raw = _batch(producer_id=7, producer_epoch=2, base_sequence=40, base_offset=9, leader_epoch=3)
    header = validate_batch(raw)
    assert header.size == len(raw)
    assert header.batch_length == len(raw) - 12
    assert header.magic == MAGIC
    assert (header.base_offset, header.leader_epoch) == (9, 3)
    assert (header.record_count, header.last_offset_delta) == (3, 2)
    assert (header.last_offset, header.next_offset) == (11, 12)
    assert (header.first_timestamp, header.max_timestamp) == (1000, 1007)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 2, 40)
    assert header.compression == Compression.NONE
    assert struct.unpack_from(">q", raw, 0)[0] == 9


@pytest.mark.parametrize("codec", list(Compression))
def test_round_trip_each_codec(codec: Compression) -> None:
    records = [[i, f"k{i}".encode(), bytes(100) + bytes([i]), []] for i in range(200)]
    raw = _batch(records, compression=codec)
    header = validate_batch(raw)
    assert header.compression == codec
    assert decode_records(raw, 0, header) == records


def test_stamp_keeps_crc_valid() -> None:
    buf = bytearray(_batch())
    stamp(buf, 0, 123456789, 42)
    header = validate_batch(buf)
    assert (header.base_offset, header.leader_epoch) == (123456789, 42)


@pytest.mark.parametrize(
    ("pos", "value", "message"),
    [(16, 1, "magic"), (8, 10, "length"), (CRC_START + 10, 0x7F, "CRC"), (HEADER_SIZE + 2, 0x55, "CRC")],
)
def test_validate_rejects_corruption(pos: int, value: int, message: str) -> None:
    buf = bytearray(_batch())
    if pos == 8:
        struct.pack_into(">i", buf, 8, value)
    else:
        buf[pos] ^= value
    with pytest.raises(CorruptBatchError, match=message):
        validate_batch(buf)


def test_validate_rejects_truncation_and_bad_counts() -> None:
    raw = _batch()
    for cut in (0, 10, HEADER_SIZE, len(raw) - 1):
        with pytest.raises(CorruptBatchError, match="truncated"):
            validate_batch(raw[:cut])
    bad = bytearray(raw)
    struct.pack_into(">i", bad, 57, 5)  # record_count != last_offset_delta + 1
    with pytest.raises(CorruptBatchError, match="last offset delta"):
        validate_batch(bad)
    with pytest.raises(MessageTooLargeError):
        validate_batch(raw, max_size=len(raw) - 1)


def test_validate_batches_covers_whole_blob() -> None:
    a, b = _batch(), _batch(compression=Compression.LZ4)
    headers = validate_batches(a + b)
    assert [h.position for h in headers] == [0, len(a)]
    with pytest.raises(CorruptBatchError):
        validate_batches(a + b[:-1])
    with pytest.raises(CorruptBatchError):
        validate_batches(a + b"\x00" * 3)
    with pytest.raises(CorruptBatchError):
        validate_batches(b"")


def test_iter_batches_stops_at_incomplete_tail() -> None:
    a, b = _batch(base_offset=0), _batch(base_offset=3)
    blob = a + b
    assert [h.base_offset for h in iter_batches(blob)] == [0, 3]
    for cut in range(len(a), len(blob)):
        assert [h.base_offset for h in iter_batches(blob[:cut])] == [0]
    assert read_header(blob, len(a)).base_offset == 3


def test_empty_batch_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        encode_batch([], first_timestamp=0, max_timestamp=0)


def test_decode_rejects_count_mismatch() -> None:
    buf = bytearray(_batch())
    header = validate_batch(buf)
    forged = read_header(buf)
    wrong = forged._replace(record_count=4)
    with pytest.raises(CorruptBatchError, match="declares 4"):
        decode_records(buf, 0, wrong)
    assert decode_records(buf, 0, header) == RECORDS


def test_keys_and_headers_columns_may_be_nil_but_not_the_others() -> None:
    raw = encode_columns([0, 4], None, [b"a", b"b"], None, first_timestamp=5, max_timestamp=9)
    assert decode_records(raw, 0, validate_batch(raw)) == [[0, None, b"a", []], [4, None, b"b", []]]
    with pytest.raises(ValueError, match="same length"):
        encode_columns([0, 4], [b"k"], [b"a", b"b"], None, first_timestamp=5, max_timestamp=9)
    for columns in ([None, None, [b"a"], None], [[0], None, None, None]):
        forged = bytearray(_batch([[0, None, b"a", []]]))
        payload = msgpack.packb(columns)
        forged[HEADER_SIZE:] = payload
        forged[8:12] = (HEADER_SIZE - LOG_OVERHEAD + len(payload)).to_bytes(4, "big")
        with pytest.raises(CorruptBatchError, match="four columns"):
            decode_records(bytes(forged), 0, read_header(forged))


_record = st.tuples(
    st.integers(0, 2**31),
    st.none() | st.binary(max_size=30),
    st.none() | st.binary(max_size=300),
    st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=8)).map(list), max_size=3),
).map(list)


@settings(max_examples=60, deadline=None)
@given(records=st.lists(_record, min_size=1, max_size=30), codec=st.sampled_from(list(Compression)))
def test_any_records_round_trip(records: list, codec: Compression) -> None:
    raw = _batch(records, compression=codec)
    header = validate_batch(raw)
    assert decode_records(raw, 0, header) == records
