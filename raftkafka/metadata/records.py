"""The typed records of the metadata log and their msgpack codec.

Every change to cluster metadata is one of these records. A record is encoded as a msgpack array
``[kind, field1, field2, ...]`` (fields in declaration order) and a batch as an array of records;
``kind`` is the small int ``KIND`` of the record class. Adding a record kind is declaring a frozen
dataclass with a new ``KIND`` under ``@record_kind`` (its field types must be in
``fields.READERS_BY_TYPE``). Decoding never trusts its input: anything malformed raises
``MetadataDecodeError`` (a ``ValueError``). Nothing here is ever pickled.

Records are state assignments, not increments, so re-applying a record whose commit outcome was
unknown is harmless.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, NamedTuple, TypeVar

import msgpack

from raftkafka.metadata.fields import (
    READERS_BY_TYPE,
    MetadataDecodeError,
    Reader,
    read_fields,
    read_int,
    read_list,
    read_str,
    read_str_tuple,
    unpack,
)

__all__ = [
    "CommitOffsets",
    "ConfigChange",
    "CreatePartitions",
    "CreateTopic",
    "DeleteGroup",
    "DeleteTopic",
    "FenceBroker",
    "GroupChange",
    "GroupMember",
    "MetadataDecodeError",
    "MetadataRecord",
    "PartitionChange",
    "ProducerIdsBlock",
    "RegisterBroker",
    "RegisterController",
    "SetClusterId",
    "UnfenceBroker",
    "decode_records",
    "encode_record",
    "encode_records",
    "join_encoded",
    "read_group_members",
    "topics_touched",
]


class MetadataRecord:
    """Base of every record kind; ``KIND`` is its tag on the wire."""

    __slots__ = ()
    KIND: ClassVar[int]


_R = TypeVar("_R", bound=type[MetadataRecord])
_KINDS: dict[int, tuple[type[MetadataRecord], tuple[str, ...], tuple[Reader, ...]]] = {}
_FIELD_NAMES: dict[type[MetadataRecord], tuple[str, ...]] = {}


def record_kind(cls: _R) -> _R:
    """Register a record dataclass with the codec under its ``KIND``."""
    kind = cls.KIND
    if kind in _KINDS:
        raise ValueError(f"record kind {kind} is taken by {_KINDS[kind][0].__name__}")
    hints = typing.get_type_hints(cls)
    names = tuple(field.name for field in dataclasses.fields(cls))
    readers = tuple(READERS_BY_TYPE[hints[name]] for name in names)
    _KINDS[kind] = (cls, names, readers)
    _FIELD_NAMES[cls] = names
    return cls


_record = dataclasses.dataclass(frozen=True, slots=True)


@record_kind
@_record
class RegisterBroker(MetadataRecord):
    """A broker process (``incarnation_id`` is unique per process start) registers its listener."""

    KIND: ClassVar[int] = 1
    node_id: int
    host: str
    port: int
    incarnation_id: str
    fenced: bool = False


@record_kind
@_record
class FenceBroker(MetadataRecord):
    """The broker may no longer lead or serve partitions (its session expired, or it shut down)."""

    KIND: ClassVar[int] = 2
    node_id: int


@record_kind
@_record
class UnfenceBroker(MetadataRecord):
    """The broker is alive and caught up again."""

    KIND: ClassVar[int] = 3
    node_id: int


@record_kind
@_record
class CreateTopic(MetadataRecord):
    """A new topic: one replica list per partition, the first replica being the preferred leader."""

    KIND: ClassVar[int] = 4
    name: str
    topic_id: str
    partitions: tuple[tuple[int, ...], ...]
    config: dict[str, str]


@record_kind
@_record
class DeleteTopic(MetadataRecord):
    """The topic ``name`` with id ``topic_id`` is gone (a re-created topic of that name is not)."""

    KIND: ClassVar[int] = 5
    name: str
    topic_id: str


@record_kind
@_record
class PartitionChange(MetadataRecord):
    """The new leader (-1 for none), ISR and replicas of one partition at ``leader_epoch``."""

    KIND: ClassVar[int] = 6
    topic: str
    partition: int
    leader: int
    isr: tuple[int, ...]
    leader_epoch: int
    replicas: tuple[int, ...]


@record_kind
@_record
class ConfigChange(MetadataRecord):
    """The whole new per-topic config of ``topic`` (it replaces the previous one)."""

    KIND: ClassVar[int] = 7
    topic: str
    config: dict[str, str]


@record_kind
@_record
class RegisterController(MetadataRecord):
    """A controller (a voter of the metadata quorum) serves the controller APIs at ``host:port``."""

    KIND: ClassVar[int] = 8
    node_id: int
    host: str
    port: int


@record_kind
@_record
class SetClusterId(MetadataRecord):
    """The cluster's id, drawn by the first active controller of the quorum (the first one committed stays)."""

    KIND: ClassVar[int] = 9
    cluster_id: str


@record_kind
@_record
class ProducerIdsBlock(MetadataRecord):
    """The active controller reserved the producer ids below ``next_producer_id`` (from the image's previous
    ``next_producer_id`` on) to hand out to idempotent producers; no controller hands them out again."""

    KIND: ClassVar[int] = 10
    next_producer_id: int


@record_kind
@_record
class CreatePartitions(MetadataRecord):
    """Topic ``topic`` (id ``topic_id``) grows by one partition per replica list, numbered after its last."""

    KIND: ClassVar[int] = 14
    topic: str
    topic_id: str
    partitions: tuple[tuple[int, ...], ...]


class GroupMember(NamedTuple):
    """A consumer group member of one generation: its subscription, timeouts and assigned partitions."""

    member_id: str
    client_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    assignment: tuple[tuple[str, int], ...]


def _read_topic_partitions(value: Any) -> tuple[tuple[str, int], ...]:
    return tuple((read_str(item[0]), read_int(item[1])) for item in map(_pair, read_list(value)))


def _pair(value: Any) -> list[Any]:
    items = read_list(value)
    if len(items) != 2:
        raise MetadataDecodeError(f"expected [topic, partition], got {len(items)} items")
    return items


def read_group_members(value: Any) -> tuple[GroupMember, ...]:
    """An array of ``GroupMember`` arrays."""
    readers = (read_str, read_str, read_str_tuple, read_int, read_int, _read_topic_partitions)
    return tuple(GroupMember(*read_fields(item, readers)) for item in read_list(value))


READERS_BY_TYPE[tuple[GroupMember, ...]] = read_group_members


@record_kind
@_record
class GroupChange(MetadataRecord):
    """Consumer group ``group_id`` enters ``generation`` with these members (none: the group is empty) and
    assignment, decided by its coordinator (the active controller) at ``timestamp_ms``."""

    KIND: ClassVar[int] = 11
    group_id: str
    generation: int
    strategy: str
    members: tuple[GroupMember, ...]
    timestamp_ms: int


@record_kind
@_record
class CommitOffsets(MetadataRecord):
    """A member of ``generation`` of the group committed ``(topic, partition, offset)`` entries (``generation``
    -1 with ``member_id`` "": a commit for a group without members)."""

    KIND: ClassVar[int] = 12
    group_id: str
    generation: int
    member_id: str
    offsets: tuple[tuple[str, int, int], ...]
    timestamp_ms: int


@record_kind
@_record
class DeleteGroup(MetadataRecord):
    """The group (without members) and its committed offsets are gone."""

    KIND: ClassVar[int] = 13
    group_id: str


def _fields_of(record: MetadataRecord) -> list[Any]:
    try:
        names = _FIELD_NAMES[type(record)]
    except KeyError:
        raise TypeError(f"{type(record).__name__} is not a registered metadata record") from None
    return [record.KIND, *(getattr(record, name) for name in names)]


def encode_record(record: MetadataRecord) -> bytes:
    """msgpack bytes of one record (join several with ``join_encoded``)."""
    return msgpack.packb(_fields_of(record), use_bin_type=True)


def join_encoded(encoded: Sequence[bytes]) -> bytes:
    """A batch made of records already encoded one by one with ``encode_record``."""
    header = msgpack.Packer(use_bin_type=True).pack_array_header(len(encoded))
    return header + b"".join(encoded)


def encode_records(records: Iterable[MetadataRecord]) -> bytes:
    """msgpack bytes of a batch of records."""
    return msgpack.packb([_fields_of(record) for record in records], use_bin_type=True)


def _decode_record(value: Any) -> MetadataRecord:
    items = read_list(value)
    if not items:
        raise MetadataDecodeError("empty record")
    kind = read_int(items[0])
    try:
        cls, names, readers = _KINDS[kind]
    except KeyError:
        raise MetadataDecodeError(f"unknown record kind {kind}") from None
    if len(items) != len(readers) + 1:
        raise MetadataDecodeError(f"{cls.__name__} needs {len(readers)} fields, got {len(items) - 1}")
    make: Callable[..., MetadataRecord] = cls
    return make(**{name: reader(item) for name, reader, item in zip(names, readers, items[1:], strict=True)})


def decode_records(data: bytes | bytearray | memoryview) -> list[MetadataRecord]:
    """The records of a batch; ``MetadataDecodeError`` if ``data`` is not a valid batch."""
    return [_decode_record(item) for item in read_list(unpack(data))]


def topics_touched(records: Iterable[MetadataRecord]) -> set[str] | None:
    """Names of the topics ``records`` change, or None when they change anything else (brokers,
    controllers, the cluster id) — then a reader must look at the whole image. Producer ids and
    consumer groups change no topic."""
    names: set[str] = set()
    for record in records:
        if isinstance(record, (CreateTopic, DeleteTopic)):
            names.add(record.name)
        elif isinstance(record, (PartitionChange, ConfigChange, CreatePartitions)):
            names.add(record.topic)
        elif not isinstance(record, ProducerIdsBlock | GroupChange | CommitOffsets | DeleteGroup):
            return None
    return names
