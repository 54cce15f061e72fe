"""Pure decisions about topics: ``(image, request) -> (records, result)``.

Nothing here draws ids or random numbers: the caller passes the new topic's id and the placement
start index, so a decision can be replayed and tested exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from raftkafka.controller.placement import place_replicas
from raftkafka.errors import (
    NONE,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    RaftKafkaError,
    TopicAlreadyExistsError,
    UnknownTopicError,
    from_wire,
)
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import CreatePartitions, CreateTopic, DeleteTopic, MetadataRecord
from raftkafka.storage.log_config import LogConfig
from raftkafka.topic_name import validate_topic_name

MAX_PARTITIONS = 10_000
"""Partitions per topic: each is a directory with open files on every replica."""


@dataclass(frozen=True, slots=True)
class NewTopic:
    """A request to create a topic (fields are checked by ``create_topic``, not trusted)."""

    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> NewTopic:
        """The request from a CREATE_TOPICS wire entry ``{"name", "partitions", "replication_factor", "config"}``."""
        return cls(body.get("name"), body.get("partitions"), body.get("replication_factor"), body.get("config", {}))  # type: ignore[arg-type]


class TopicResult(NamedTuple):
    """The outcome for one topic, shaped like the wire: ``(name, error_code, message)``."""

    name: str
    error_code: int = NONE
    message: str | None = None

    @classmethod
    def failed(cls, name: str, error: RaftKafkaError) -> TopicResult:
        """The result carrying ``error``."""
        return cls(name, error.code, error.message)

    @property
    def error(self) -> RaftKafkaError | None:
        """The error as an exception instance, or None on success."""
        return None if self.error_code == NONE else from_wire(self.error_code, self.message)


def _validate_config(config: object) -> dict[str, str]:
    if not isinstance(config, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in config.items()):
        raise InvalidConfigError("topic config must map strings to strings")
    LogConfig.from_topic_config(config)
    return dict(config)


def _require_int(value: object, what: str, error: type[RaftKafkaError]) -> int:
    if type(value) is not int:
        raise error(f"{what} must be an int, got {value!r}")
    return value


def create_topic(
    image: MetadataImage, request: NewTopic, topic_id: str, start_index: int
) -> tuple[list[MetadataRecord], TopicResult]:
    """The ``CreateTopic`` record for ``request`` over ``image``'s live brokers, or a failed result.

    Initial state per partition: leader = first replica, ISR = all replicas, leader epoch 0.
    """
    name = request.name if isinstance(request.name, str) else repr(request.name)
    try:
        validate_topic_name(request.name)
        if request.name in image.topics:
            raise TopicAlreadyExistsError(f"topic {request.name!r} already exists")
        partitions = _require_int(request.partitions, "number of partitions", InvalidPartitionsError)
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise InvalidPartitionsError(f"number of partitions must be in 1..{MAX_PARTITIONS}, got {partitions}")
        replication_factor = _require_int(
            request.replication_factor, "replication factor", InvalidReplicationFactorError
        )
        config = _validate_config(request.config)
        live = [broker.node_id for broker in image.live_brokers()]
        replicas = place_replicas(partitions, replication_factor, live, start_index)
    except RaftKafkaError as exc:
        return [], TopicResult.failed(name, exc)
    return [CreateTopic(request.name, topic_id, replicas, config)], TopicResult(name)


@dataclass(frozen=True, slots=True)
class NewPartitions:
    """A request to grow topic ``name`` to ``count`` partitions (fields are checked, not trusted)."""

    name: str
    count: int

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> NewPartitions:
        """The request from a CREATE_PARTITIONS wire entry ``{"name", "count"}``."""
        return cls(body.get("name"), body.get("count"))  # type: ignore[arg-type]


def create_partitions(
    image: MetadataImage, request: NewPartitions, start_index: int
) -> tuple[list[MetadataRecord], TopicResult]:
    """The ``CreatePartitions`` record growing the topic to ``request.count`` partitions, placed over the live
    brokers with the topic's replication factor, or a failed result (a topic never shrinks)."""
    name = request.name if isinstance(request.name, str) else repr(request.name)
    try:
        topic = image.topic(request.name) if isinstance(request.name, str) else None
        if topic is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        count = _require_int(request.count, "number of partitions", InvalidPartitionsError)
        current = len(topic.partitions)
        if not current < count <= MAX_PARTITIONS:
            raise InvalidPartitionsError(
                f"topic {name!r} has {current} partitions: the new count must be in {current + 1}..{MAX_PARTITIONS}"
            )
        live = [broker.node_id for broker in image.live_brokers()]
        replicas = place_replicas(count - current, len(topic.partitions[0].replicas), live, start_index)
    except RaftKafkaError as exc:
        return [], TopicResult.failed(name, exc)
    return [CreatePartitions(topic.name, topic.topic_id, replicas)], TopicResult(name)


def delete_topic(image: MetadataImage, name: str) -> tuple[list[MetadataRecord], TopicResult]:
    """The ``DeleteTopic`` record for ``name``, or ``UNKNOWN_TOPIC``."""
    topic = image.topic(name) if isinstance(name, str) else None
    if topic is None:
        return [], TopicResult.failed(str(name), UnknownTopicError(f"topic {name!r} does not exist"))
    return [DeleteTopic(topic.name, topic.topic_id)], TopicResult(name)
