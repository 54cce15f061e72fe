"""The metadata record codec: round trips, and untrusted bytes only ever raise MetadataDecodeError."""

from __future__ import annotations

import pickle

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkafka.metadata.records import (
    ConfigChange,
    CreateTopic,
    DeleteTopic,
    FenceBroker,
    MetadataDecodeError,
    MetadataRecord,
    PartitionChange,
    RegisterBroker,
    SetClusterId,
    UnfenceBroker,
    decode_records,
    encode_record,
    encode_records,
    join_encoded,
)

ids = st.integers(min_value=-1, max_value=2**31)
names = st.text(max_size=20)
int_tuples = st.lists(ids, max_size=5).map(tuple)
configs = st.dictionaries(names, names, max_size=4)

records: st.SearchStrategy[MetadataRecord] = st.one_of(
    st.builds(RegisterBroker, ids, names, ids, names, st.booleans()),
    st.builds(FenceBroker, ids),
    st.builds(UnfenceBroker, ids),
    st.builds(CreateTopic, names, names, st.lists(int_tuples, max_size=5).map(tuple), configs),
    st.builds(DeleteTopic, names, names),
    st.builds(PartitionChange, names, ids, ids, int_tuples, ids, int_tuples),
    st.builds(ConfigChange, names, configs),
    st.builds(SetClusterId, names),
)


@given(st.lists(records, max_size=10))
def test_round_trip(batch: list[MetadataRecord]) -> None:
    data = encode_records(batch)
    assert decode_records(data) == batch
    assert join_encoded([encode_record(r) for r in batch]) == data


def test_every_kind_has_a_distinct_tag() -> None:
    kinds = [RegisterBroker, FenceBroker, UnfenceBroker, CreateTopic, DeleteTopic, PartitionChange, ConfigChange,
             SetClusterId]
    assert len({cls.KIND for cls in kinds}) == len(kinds)


def test_records_are_frozen_and_slotted() -> None:
    record = FenceBroker(1)
    with pytest.raises(AttributeError):
        record.node_id = 2  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_encoding_a_foreign_object_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_records([object()])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",  # never-used msgpack byte
        msgpack.packb([[99, 1]]),  # unknown kind
        msgpack.packb([[]]),  # empty record
        msgpack.packb([[FenceBroker.KIND]]),  # missing field
        msgpack.packb([[FenceBroker.KIND, 1, 2]]),  # extra field
        msgpack.packb([[FenceBroker.KIND, True]]),  # bool is not an int
        msgpack.packb([[FenceBroker.KIND, "1"]]),
        msgpack.packb([[CreateTopic.KIND, "t", "id", [[1, "x"]], {}]]),
        msgpack.packb([[CreateTopic.KIND, "t", "id", [[1]], {"k": 1}]]),
        msgpack.packb([[ConfigChange.KIND, "t", {1: "a"}]], strict_types=False),
        msgpack.packb({"not": "a list"}),
        msgpack.packb([1, 2]) + b"trailing",
        msgpack.packb([[RegisterBroker.KIND, 1, b"bytes-not-str", 1, "x", False]]),
        b"\x91\xa2\xff\xfe",  # invalid UTF-8 string
        b"\x91" * 100_000,  # deeply nested arrays
        pickle.dumps([FenceBroker(1)]),
    ],
)
def test_malformed_batches_raise_decode_error(payload: bytes) -> None:
    with pytest.raises(MetadataDecodeError):
        decode_records(payload)


def test_non_bytes_input_raises_decode_error() -> None:
    with pytest.raises(MetadataDecodeError):
        decode_records("text")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        decode_records(data)
    except MetadataDecodeError:
        pass


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5) | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(st.integers(0, 9), st.lists(msgpack_values, max_size=7))
def test_well_formed_msgpack_of_the_wrong_shape_raises_only_decode_error(kind: int, fields: list[object]) -> None:
    try:
        decode_records(msgpack.packb([[kind, *fields]]))
    except MetadataDecodeError:
        pass


def test_topics_touched_names_topic_records_and_gives_up_on_others() -> None:
    from raftkafka.metadata.records import (
        ConfigChange,
        CreateTopic,
        DeleteTopic,
        PartitionChange,
        RegisterBroker,
        topics_touched,
    )

    records = [
        CreateTopic("a", "id-a", ((1,),), {}),
        DeleteTopic("b", "id-b"),
        PartitionChange("c", 0, 1, (1,), 1, (1,)),
        ConfigChange("d", {}),
    ]
    assert topics_touched(records) == {"a", "b", "c", "d"}
    assert topics_touched([*records, RegisterBroker(1, "h", 1, "inc")]) is None
    assert topics_touched([]) == set()
