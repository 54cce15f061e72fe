"""The metadata image (immutable cluster state) and the delta that replays records into the next one.

Pure: no sockets, threads, clocks or randomness. ``MetadataDelta.replay`` is the only place that
interprets records; a record that does not fit the image (a topic that does not exist, a stale
leader epoch, ...) is ignored, deterministically, so every replica computes the same image and
applying never raises. ``MetadataImage.offset`` is the log offset of the last record replayed.

Who may call: images are immutable and safe to share between threads; a delta belongs to one owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import msgpack

from raftkafka.metadata.fields import (
    MetadataDecodeError,
    read_bool,
    read_fields,
    read_int,
    read_int_tuple,
    read_list,
    read_optional_str,
    read_partition_offsets,
    read_str,
    read_str_dict,
    unpack,
)
from raftkafka.metadata.records import (
    CommitOffsets,
    ConfigChange,
    CreatePartitions,
    CreateTopic,
    DeleteGroup,
    DeleteTopic,
    FenceBroker,
    GroupChange,
    GroupMember,
    MetadataRecord,
    PartitionChange,
    ProducerIdsBlock,
    RegisterBroker,
    RegisterController,
    SetClusterId,
    UnfenceBroker,
    read_group_members,
)

NO_LEADER = -1
IMAGE_FORMAT_VERSION = 5
"""Version 2 added the controllers, version 3 the cluster id, version 4 the next producer id, version 5 the
consumer groups; older images still load (without them)."""
_IMAGE_V1 = 1
_IMAGE_V2 = 2
_IMAGE_V3 = 3
_IMAGE_V4 = 4


def _frozen(mapping: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(mapping)


def _thaw(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """A writable copy of an image mapping. ``dict(proxy)`` copies key by key (~25x slower than ``proxy.copy()``,
    which copies the dict behind it), and deltas copy the topics once per change: this keeps that cheap."""
    return mapping.copy() if isinstance(mapping, dict | MappingProxyType) else dict(mapping)


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    """A registered broker; ``epoch`` is the log offset of its registration record."""

    node_id: int
    host: str
    port: int
    incarnation_id: str
    fenced: bool
    epoch: int


@dataclass(frozen=True, slots=True)
class ControllerRegistration:
    """A controller's listener for the controller APIs (the active one commits its own)."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition: ``leader`` is -1 when it has none; ``partition_epoch`` counts its changes."""

    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int


@dataclass(frozen=True, slots=True)
class TopicImage:
    """A topic with its partitions (indexed by partition id) and per-topic config."""

    name: str
    topic_id: str
    partitions: tuple[PartitionState, ...]
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class GroupImage:
    """A consumer group: its current generation (0 before the first) with members and assignment, and its
    committed offsets; ``activity_ms`` is when it last changed or committed (for offsets retention)."""

    group_id: str
    generation: int
    strategy: str
    members: tuple[GroupMember, ...]
    offsets: Mapping[tuple[str, int], int]
    activity_ms: int

    def member(self, member_id: str) -> GroupMember | None:
        """The member ``member_id`` of the current generation, or None."""
        return next((m for m in self.members if m.member_id == member_id), None)


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """The cluster metadata after the record at ``offset`` (-1: no record yet).

    ``cluster_id`` is None until the first active controller of the quorum has committed one.
    ``next_producer_id``: producer ids below it are reserved (``ProducerIdsBlock``), the next block starts there.
    ``groups``: consumer groups by id.
    """

    brokers: Mapping[int, BrokerRegistration] = field(default_factory=lambda: _frozen({}))
    topics: Mapping[str, TopicImage] = field(default_factory=lambda: _frozen({}))
    offset: int = -1
    controllers: Mapping[int, ControllerRegistration] = field(default_factory=lambda: _frozen({}))
    cluster_id: str | None = None
    next_producer_id: int = 0
    groups: Mapping[str, GroupImage] = field(default_factory=lambda: _frozen({}))

    def topic(self, name: str) -> TopicImage | None:
        """The topic called ``name``, or None."""
        return self.topics.get(name)

    def live_brokers(self) -> tuple[BrokerRegistration, ...]:
        """Registered, unfenced brokers, by node id."""
        return tuple(sorted((b for b in self.brokers.values() if not b.fenced), key=lambda b: b.node_id))

    def partitions_led_by(self, node_id: int) -> tuple[tuple[str, PartitionState], ...]:
        """``(topic name, partition)`` of every partition whose leader is ``node_id``."""
        return tuple(
            (topic.name, partition)
            for topic in self.topics.values()
            for partition in topic.partitions
            if partition.leader == node_id
        )

    def to_bytes(self) -> bytes:
        """msgpack bytes of the image (brokers by id, topics by name: equal images give equal bytes)."""
        brokers = [
            [b.node_id, b.host, b.port, b.incarnation_id, b.fenced, b.epoch] for _, b in sorted(self.brokers.items())
        ]
        topics = [
            [
                t.name,
                t.topic_id,
                dict(t.config),
                [[p.replicas, p.isr, p.leader, p.leader_epoch, p.partition_epoch] for p in t.partitions],
            ]
            for _, t in sorted(self.topics.items())
        ]
        controllers = [[c.node_id, c.host, c.port] for _, c in sorted(self.controllers.items())]
        groups = [
            [g.group_id, g.generation, g.strategy, list(g.members), [[*tp, o] for tp, o in sorted(g.offsets.items())],
             g.activity_ms]
            for _, g in sorted(self.groups.items())
        ]  # fmt: skip
        return msgpack.packb(
            [IMAGE_FORMAT_VERSION, self.offset, brokers, topics, controllers, self.cluster_id, self.next_producer_id,
             groups],
            use_bin_type=True,
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> MetadataImage:
        """The image encoded by ``to_bytes``; ``MetadataDecodeError`` if ``data`` is not one."""
        fields = read_list(unpack(data))
        version = read_int(fields[0]) if fields else None
        if version == _IMAGE_V1:
            fields = [*fields, [], None, 0, []]
        elif version == _IMAGE_V2:
            fields = [*fields, None, 0, []]
        elif version == _IMAGE_V3:
            fields = [*fields, 0, []]
        elif version == _IMAGE_V4:
            fields = [*fields, []]
        elif version != IMAGE_FORMAT_VERSION:
            raise MetadataDecodeError(f"unsupported metadata image format {version}")
        _, offset, broker_items, topic_items, controller_items, cluster_id, next_producer_id, group_items = (
            read_fields(fields, (read_int,) * 2 + (read_list,) * 3 + (read_optional_str, read_int, read_list))
        )
        brokers: dict[int, BrokerRegistration] = {}
        for item in broker_items:
            broker = BrokerRegistration(*read_fields(item, _BROKER_READERS))
            if broker.node_id in brokers:
                raise MetadataDecodeError(f"broker {broker.node_id} appears twice")
            brokers[broker.node_id] = broker
        topics: dict[str, TopicImage] = {}
        for item in topic_items:
            name, topic_id, config, partition_items = read_fields(item, _TOPIC_READERS)
            if name in topics:
                raise MetadataDecodeError(f"topic {name!r} appears twice")
            partitions = tuple(
                PartitionState(index, *read_fields(p, _PARTITION_READERS)) for index, p in enumerate(partition_items)
            )
            topics[name] = TopicImage(name, topic_id, partitions, _frozen(config))
        controllers: dict[int, ControllerRegistration] = {}
        for item in controller_items:
            controller = ControllerRegistration(*read_fields(item, _CONTROLLER_READERS))
            if controller.node_id in controllers:
                raise MetadataDecodeError(f"controller {controller.node_id} appears twice")
            controllers[controller.node_id] = controller
        groups: dict[str, GroupImage] = {}
        for item in group_items:
            group_id, generation, strategy, members, offset_items, activity_ms = read_fields(item, _GROUP_READERS)
            if group_id in groups:
                raise MetadataDecodeError(f"group {group_id!r} appears twice")
            offsets = {(topic, partition): committed for topic, partition, committed in offset_items}
            groups[group_id] = GroupImage(group_id, generation, strategy, members, _frozen(offsets), activity_ms)
        return cls(
            _frozen(brokers), _frozen(topics), offset, _frozen(controllers), cluster_id, next_producer_id,
            _frozen(groups),
        )  # fmt: skip


_BROKER_READERS = (read_int, read_str, read_int, read_str, read_bool, read_int)
_TOPIC_READERS = (read_str, read_str, read_str_dict, read_list)
_PARTITION_READERS = (read_int_tuple, read_int_tuple, read_int, read_int, read_int)
_CONTROLLER_READERS = (read_int, read_str, read_int)
_GROUP_READERS = (read_str, read_int, read_str, read_group_members, read_partition_offsets, read_int)

EMPTY_IMAGE = MetadataImage()


class MetadataDelta:
    """Committed records replayed on top of ``image``; ``apply()`` makes the next image.

    Copy-on-write: the base image is never touched. ``replay`` returns False when the record did not
    fit the image and was ignored (the offset still advances: the record is in the log).
    """

    def __init__(self, image: MetadataImage) -> None:
        self._image = image
        self._offset = image.offset
        self._brokers: dict[int, BrokerRegistration] | None = None
        self._topics: dict[str, TopicImage] | None = None
        self._controllers: dict[int, ControllerRegistration] | None = None
        self._cluster_id = image.cluster_id
        self._next_producer_id = image.next_producer_id
        self._groups: dict[str, GroupImage] | None = None
        self._changed_partitions: dict[str, dict[int, PartitionState]] = {}

    def replay(self, record: MetadataRecord, offset: int) -> bool:
        """Replay one committed record stored at log ``offset``."""
        self._offset = offset
        handler = _HANDLERS.get(type(record))
        return handler(self, record, offset) if handler is not None else False

    def apply(self) -> MetadataImage:
        """The image with every replayed record applied."""
        brokers = self._image.brokers if self._brokers is None else _frozen(self._brokers)
        topics: Mapping[str, TopicImage] = self._image.topics
        if self._topics is not None or self._changed_partitions:
            changed = self._writable_topics()
            for name, partitions in self._changed_partitions.items():
                topic = changed[name]
                merged = tuple(partitions.get(p.partition, p) for p in topic.partitions)
                changed[name] = TopicImage(topic.name, topic.topic_id, merged, topic.config)
            topics = _frozen(changed)
        controllers = self._image.controllers if self._controllers is None else _frozen(self._controllers)
        groups = self._image.groups if self._groups is None else _frozen(self._groups)
        return MetadataImage(
            brokers, topics, self._offset, controllers, self._cluster_id, self._next_producer_id, groups
        )

    # -- state views while replaying --

    def _broker_map(self) -> Mapping[int, BrokerRegistration]:
        return self._image.brokers if self._brokers is None else self._brokers

    def _writable_brokers(self) -> dict[int, BrokerRegistration]:
        if self._brokers is None:
            self._brokers = _thaw(self._image.brokers)
        return self._brokers

    def _topic_map(self) -> Mapping[str, TopicImage]:
        return self._image.topics if self._topics is None else self._topics

    def _writable_topics(self) -> dict[str, TopicImage]:
        if self._topics is None:
            self._topics = _thaw(self._image.topics)
        return self._topics

    # -- one handler per record kind --

    def _register_broker(self, record: RegisterBroker, offset: int) -> bool:
        self._writable_brokers()[record.node_id] = BrokerRegistration(
            record.node_id, record.host, record.port, record.incarnation_id, record.fenced, offset
        )
        return True

    def _set_fenced(self, node_id: int, fenced: bool) -> bool:
        broker = self._broker_map().get(node_id)
        if broker is None:
            return False
        if broker.fenced != fenced:
            self._writable_brokers()[node_id] = BrokerRegistration(
                broker.node_id, broker.host, broker.port, broker.incarnation_id, fenced, broker.epoch
            )
        return True

    def _fence_broker(self, record: FenceBroker, offset: int) -> bool:
        return self._set_fenced(record.node_id, True)

    def _unfence_broker(self, record: UnfenceBroker, offset: int) -> bool:
        return self._set_fenced(record.node_id, False)

    def _create_topic(self, record: CreateTopic, offset: int) -> bool:
        if record.name in self._topic_map() or not record.partitions:
            return False
        if not all(replicas and len(set(replicas)) == len(replicas) for replicas in record.partitions):
            return False
        partitions = tuple(
            PartitionState(index, replicas, replicas, replicas[0], 0, 0)
            for index, replicas in enumerate(record.partitions)
        )
        self._writable_topics()[record.name] = TopicImage(
            record.name, record.topic_id, partitions, _frozen(dict(record.config))
        )
        self._changed_partitions.pop(record.name, None)
        return True

    def _create_partitions(self, record: CreatePartitions, offset: int) -> bool:
        topic = self._topic_map().get(record.topic)
        if topic is None or topic.topic_id != record.topic_id or not record.partitions:
            return False
        if not all(replicas and len(set(replicas)) == len(replicas) for replicas in record.partitions):
            return False
        pending = self._changed_partitions.pop(record.topic, {})
        current = tuple(pending.get(p.partition, p) for p in topic.partitions)
        added = tuple(
            PartitionState(index, replicas, replicas, replicas[0], 0, 0)
            for index, replicas in enumerate(record.partitions, len(current))
        )
        self._writable_topics()[record.topic] = TopicImage(topic.name, topic.topic_id, current + added, topic.config)
        return True

    def _delete_topic(self, record: DeleteTopic, offset: int) -> bool:
        topic = self._topic_map().get(record.name)
        if topic is None or topic.topic_id != record.topic_id:
            return False
        del self._writable_topics()[record.name]
        self._changed_partitions.pop(record.name, None)
        for group in list(self._group_map().values()):  # committed offsets of a deleted topic go with it
            if any(topic == record.name for topic, _ in group.offsets):
                offsets = {tp: o for tp, o in group.offsets.items() if tp[0] != record.name}
                self._writable_groups()[group.group_id] = _with_offsets(group, offsets, group.activity_ms)
        return True

    def _change_partition(self, record: PartitionChange, offset: int) -> bool:
        topic = self._topic_map().get(record.topic)
        if topic is None or not 0 <= record.partition < len(topic.partitions):
            return False
        pending = self._changed_partitions.get(record.topic, {})
        current = pending.get(record.partition) or topic.partitions[record.partition]
        replicas, isr = record.replicas, record.isr
        if (
            record.leader_epoch < current.leader_epoch
            or not replicas
            or len(set(replicas)) != len(replicas)
            or not set(isr) <= set(replicas)
            or (record.leader != NO_LEADER and record.leader not in isr)
        ):
            return False
        self._changed_partitions.setdefault(record.topic, {})[record.partition] = PartitionState(
            record.partition, replicas, isr, record.leader, record.leader_epoch, current.partition_epoch + 1
        )
        return True

    def _register_controller(self, record: RegisterController, offset: int) -> bool:
        if self._controllers is None:
            self._controllers = _thaw(self._image.controllers)
        self._controllers[record.node_id] = ControllerRegistration(record.node_id, record.host, record.port)
        return True

    def _set_cluster_id(self, record: SetClusterId, offset: int) -> bool:
        if self._cluster_id is not None or not record.cluster_id:
            return False
        self._cluster_id = record.cluster_id
        return True

    def _reserve_producer_ids(self, record: ProducerIdsBlock, offset: int) -> bool:
        if record.next_producer_id <= self._next_producer_id:  # decided on an older image: nothing new reserved
            return False
        self._next_producer_id = record.next_producer_id
        return True

    def _group_map(self) -> Mapping[str, GroupImage]:
        return self._image.groups if self._groups is None else self._groups

    def _writable_groups(self) -> dict[str, GroupImage]:
        if self._groups is None:
            self._groups = _thaw(self._image.groups)
        return self._groups

    def _change_group(self, record: GroupChange, offset: int) -> bool:
        group = self._group_map().get(record.group_id)
        if group is not None and record.generation <= group.generation:  # decided on an older generation
            return False
        offsets = group.offsets if group is not None else _frozen({})
        self._writable_groups()[record.group_id] = GroupImage(
            record.group_id, record.generation, record.strategy, record.members, offsets, record.timestamp_ms
        )
        return True

    def _commit_offsets(self, record: CommitOffsets, offset: int) -> bool:
        group = self._group_map().get(record.group_id)
        if record.generation == -1:  # a commit for a group without members
            if group is not None and group.members:
                return False
            if group is None:
                group = GroupImage(record.group_id, 0, "", (), _frozen({}), record.timestamp_ms)
        elif group is None or group.generation != record.generation or group.member(record.member_id) is None:
            return False
        topics = self._topic_map()
        offsets = _thaw(group.offsets)
        for topic, partition, committed in record.offsets:
            topic_image = topics.get(topic)
            if topic_image is not None and 0 <= partition < len(topic_image.partitions) and committed >= 0:
                offsets[(topic, partition)] = committed
        self._writable_groups()[record.group_id] = _with_offsets(group, offsets, record.timestamp_ms)
        return True

    def _delete_group(self, record: DeleteGroup, offset: int) -> bool:
        group = self._group_map().get(record.group_id)
        if group is None or group.members:
            return False
        del self._writable_groups()[record.group_id]
        return True

    def _change_config(self, record: ConfigChange, offset: int) -> bool:
        topic = self._topic_map().get(record.topic)
        if topic is None:
            return False
        self._writable_topics()[record.topic] = TopicImage(
            topic.name, topic.topic_id, topic.partitions, _frozen(dict(record.config))
        )
        return True


def _with_offsets(group: GroupImage, offsets: dict[tuple[str, int], int], activity_ms: int) -> GroupImage:
    return GroupImage(group.group_id, group.generation, group.strategy, group.members, _frozen(offsets), activity_ms)


_HANDLERS: dict[type[MetadataRecord], Any] = {
    RegisterBroker: MetadataDelta._register_broker,
    FenceBroker: MetadataDelta._fence_broker,
    UnfenceBroker: MetadataDelta._unfence_broker,
    CreateTopic: MetadataDelta._create_topic,
    CreatePartitions: MetadataDelta._create_partitions,
    DeleteTopic: MetadataDelta._delete_topic,
    PartitionChange: MetadataDelta._change_partition,
    ConfigChange: MetadataDelta._change_config,
    RegisterController: MetadataDelta._register_controller,
    SetClusterId: MetadataDelta._set_cluster_id,
    ProducerIdsBlock: MetadataDelta._reserve_producer_ids,
    GroupChange: MetadataDelta._change_group,
    CommitOffsets: MetadataDelta._commit_offsets,
    DeleteGroup: MetadataDelta._delete_group,
}


def replay_all(image: MetadataImage, records: Iterable[MetadataRecord], first_offset: int) -> MetadataImage:
    """``image`` with ``records`` (stored from ``first_offset`` on, one offset each) applied."""
    delta = MetadataDelta(image)
    for offset, record in enumerate(records, first_offset):
        delta.replay(record, offset)
    return delta.apply()
