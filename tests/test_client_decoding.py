"""Decoding fetched batches into Records, and the client's metadata cache."""

from __future__ import annotations

import gc
import os

import pytest

from raftkafka.client import record_decoder
from raftkafka.client.cluster import ClusterMetadata
from raftkafka.client.record_decoder import decode_fetched
from raftkafka.errors import CorruptBatchError, MessageTooLargeError, UnknownTopicError
from raftkafka.storage.compression import Compression
from raftkafka.storage.record_batch import encode_batch, encode_columns, stamp
from raftkafka.structs import BrokerInfo, PartitionInfo, Record, TopicPartition


def _batch(base: int, values: list[bytes], compression: Compression = Compression.NONE) -> bytes:
    records = [[i, b"k%d" % i if i % 2 else None, v, [["h", b"x"]] if i == 0 else []] for i, v in enumerate(values)]
    buf = bytearray(encode_batch(records, first_timestamp=1000, max_timestamp=1000 + len(values) - 1,
                                 compression=compression))
    stamp(buf, 0, base, 0)
    return bytes(buf)


@pytest.mark.parametrize("compression", list(Compression))
def test_decode_skips_below_position_and_drops_partial_tail(compression: Compression) -> None:
    buf = _batch(10, [b"a", b"b", b"c"], compression) + _batch(13, [b"d", b"e"], compression)
    records, next_offset = decode_fetched("t", 2, buf + buf[:20], 11)
    assert next_offset == 15
    assert [r.offset for r in records] == [11, 12, 13, 14]
    assert records[0] == Record("t", 2, 11, 1001, b"k1", b"b", ())
    assert records[2] == Record("t", 2, 13, 1000, None, b"d", (("h", b"x"),))


def test_records_built_in_c_equal_the_fallbacks_and_are_out_of_the_collectors_sight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compiled builder (CI requires it) makes the same records as the interpreted one, none tracked by the
    cyclic collector; a full collection leaves every record, headers included, as it was."""
    if record_decoder.build_records is None:
        assert not os.environ.get("RAFTKAFKA_REQUIRE_COMPILED"), "the build did not compile raftkafka.client._records"
        pytest.skip("built without a C compiler")
    buf = _batch(10, [b"a", b"b", b"c"]) + _batch(13, [b"d", b"e"]) + _batch(15, [b"f"])
    keyless = bytearray(encode_columns([0, 3], None, [b"g", None], None, first_timestamp=7, max_timestamp=10))
    stamp(keyless, 0, 16, 0)
    buf += bytes(keyless)
    records, next_offset = decode_fetched("t", 2, buf, 11)
    assert len(records) == 7 and next_offset == 18 and not any(gc.is_tracked(record) for record in records)
    monkeypatch.setattr(record_decoder, "build_records", None)
    assert decode_fetched("t", 2, buf, 11) == (records, next_offset)
    assert all(type(a) is type(b) is Record for a, b in zip(records, decode_fetched("t", 2, buf, 11)[0], strict=True))
    expected = [tuple(record) for record in records]
    del buf
    gc.collect()
    assert [tuple(record) for record in records] == expected and records[-1] == Record("t", 2, 17, 10, None, None, ())


def test_decode_batches_without_keys_or_headers_columns() -> None:
    """A producer's batch where no record has a key or headers carries nil for those columns."""
    buf = bytearray(encode_columns([0, 2, 5], None, [b"a", b"b", None], None, first_timestamp=1000, max_timestamp=1005))
    stamp(buf, 0, 7, 0)
    records, next_offset = decode_fetched("t", 0, bytes(buf), 8)
    assert next_offset == 10
    assert records == [Record("t", 0, 8, 1002, None, b"b", ()), Record("t", 0, 9, 1005, None, None, ())]


def test_decode_empty_and_fully_consumed() -> None:
    assert decode_fetched("t", 0, b"", 5) == ([], 5)
    assert decode_fetched("t", 0, _batch(0, [b"a"]), 1) == ([], 1)


def test_decode_checks_crc_and_refuses_a_lone_partial_batch() -> None:
    buf = bytearray(_batch(0, [b"abc"]))
    buf[-1] ^= 0xFF
    with pytest.raises(CorruptBatchError):
        decode_fetched("t", 0, bytes(buf), 0)
    with pytest.raises(MessageTooLargeError):
        decode_fetched("t", 0, _batch(0, [b"abc" * 100])[:100], 0)


def test_cluster_metadata_update() -> None:
    cluster = ClusterMetadata()
    errors = cluster.update({
        "cluster_id": "c1", "controller_id": 1, "brokers": [[1, "127.0.0.1", 9092]],
        "topics": [
            {"name": "t", "error": 0, "partitions": [[1, 1, 0, [1], [1]], [0, -1, 0, [1], []]], "config": {"a": "b"}},
            {"name": "nope", "error": 3, "message": "unknown topic nope", "partitions": []},
        ],
    })
    assert isinstance(errors["nope"], UnknownTopicError)
    assert cluster.partition_counts == {"t": 2}
    assert cluster.partitions("t") == [TopicPartition("t", 0), TopicPartition("t", 1)]
    assert cluster.topics["t"].partitions[0] == PartitionInfo(0, -1, [1], [])
    assert cluster.leader(TopicPartition("t", 1)) == BrokerInfo(1, "127.0.0.1", 9092)
    assert cluster.leader(TopicPartition("t", 0)) is None
    cluster.update({"controller_id": 1, "brokers": [[1, "127.0.0.1", 9092]], "topics": []}, all_topics=True)
    assert cluster.partitions("t") is None and cluster.leader(TopicPartition("t", 1)) is None
