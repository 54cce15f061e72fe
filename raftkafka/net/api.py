"""API keys, their supported versions and the shapes of their bodies.

Bodies are msgpack maps with string keys (partition lists are positional arrays, for speed):

=================  ==========================================================================================
API                request body → response body
=================  ==========================================================================================
API_VERSIONS       ``{}`` → ``{"apis": [[key, min_version, max_version], ...]}``
METADATA           ``{"topics": [name, ...] | None, "include_config": bool}`` →
                   ``{"cluster_id", "controller_id", "brokers": [[node_id, host, port], ...],
                   "topics": [{"name", "error", "message", "topic_id",
                   "partitions": [[id, leader, leader_epoch, replicas, isr], ...], "config": {k: v}}]}``
PRODUCE            ``{"acks": 0|1|-1, "timeout_ms", "topics": [[topic, [[partition, batches_bytes], ...]], ...]}``
                   → ``{"topics": [[topic, [[partition, error, base_offset, message], ...]], ...]}``;
                   no response at all when acks is 0
FETCH              ``{"max_wait_ms", "min_bytes", "max_bytes",
                   "topics": [[topic, [[partition, offset, partition_max_bytes], ...]], ...]}`` →
                   ``{"topics": [[topic, [[partition, error, high_watermark, log_start_offset, records], ...]]]}``
LIST_OFFSETS       ``{"topics": [[topic, [[partition, timestamp], ...]], ...]}`` (timestamp -1 latest,
                   -2 earliest) → ``{"topics": [[topic, [[partition, error, offset, timestamp], ...]], ...]}``
CREATE_TOPICS      ``{"topics": [{"name", "partitions", "replication_factor", "config": {k: v}}],
                   "timeout_ms", "validate_only"}`` → ``{"topics": [[name, error, message], ...]}``
DELETE_TOPICS      ``{"topics": [name, ...], "timeout_ms"}`` → ``{"topics": [[name, error, message], ...]}``
=================  ==========================================================================================

Controller APIs (served by every controller; followers answer ``NOT_CONTROLLER`` with the message
``"leader=<node_id>@<host>:<port>"`` when they know the active controller's listener). Every controller
response body carries ``"controller_epoch"`` (the Raft term it answered in); brokers and clients drop
responses older than the newest epoch they have seen. Brokers forward CREATE_TOPICS and DELETE_TOPICS to
the active controller unchanged.

=================  ==========================================================================================
BROKER_REGISTER    ``{"node_id", "host", "port", "incarnation_id"}`` → ``{"broker_epoch", "controller_epoch"}``
BROKER_HEARTBEAT   ``{"node_id", "broker_epoch", "metadata_offset", "want_shutdown": bool}`` →
                   ``{"fenced": bool, "should_shutdown": bool, "controller_epoch"}``
METADATA_LOG       ``{"offset": next offset wanted, "max_wait_ms", "max_records"}`` →
                   ``{"controller_epoch", "high_offset", "first_offset", "records": bytes | None,
                   "snapshot": bytes | None}``: ``records`` (``metadata.records.encode_records``) start at
                   ``first_offset == offset``; when ``offset`` is older than what is kept, ``snapshot``
                   (``MetadataImage.to_bytes()``) replaces the broker's image and records follow later
QUORUM_STATUS      ``{}`` → ``{"controller_epoch", "leader_id", "voters": [{"node_id", "raft", "listener",
                   "committed_offset", "lag"}]}``
=================  ==========================================================================================

A request that fails as a whole is answered with its error code and the body ``{"message": str}``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

from raftkafka.errors import InvalidRequestError


class ApiKey(IntEnum):
    """Wire API keys."""

    API_VERSIONS = 0
    METADATA = 1
    PRODUCE = 2
    FETCH = 3
    LIST_OFFSETS = 4
    CREATE_TOPICS = 5
    DELETE_TOPICS = 6
    BROKER_REGISTER = 20
    BROKER_HEARTBEAT = 21
    METADATA_LOG = 22
    QUORUM_STATUS = 23


SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {key: (0, 0) for key in ApiKey}
"""Inclusive (min, max) version per API key this build speaks."""

ACKS_ALL = -1
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1

T = TypeVar("T")


def field(body: Any, name: str, kind: type[T] | tuple[type, ...], default: Any = ...) -> T:
    """``body[name]`` checked to be of ``kind``; ``InvalidRequestError`` naming the field otherwise.

    ``bool`` is never accepted where ``int`` is asked for.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a map, not {type(body).__name__}")
    value = body.get(name, default)
    if value is ...:
        raise InvalidRequestError(f"missing field {name!r}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidRequestError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value  # type: ignore[return-value]


def topic_partition_lists(body: Any, name: str = "topics") -> list[tuple[str, list[list[Any]]]]:
    """The ``[[topic, [[partition, ...], ...]], ...]`` list shared by produce, fetch and list offsets."""
    entries = field(body, name, list)
    out: list[tuple[str, list[list[Any]]]] = []
    for entry in entries:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
        ):
            raise InvalidRequestError(f"each entry of {name!r} must be [topic, [partition entries]]")
        for part in entry[1]:
            if not isinstance(part, list) or not part or type(part[0]) is not int:
                raise InvalidRequestError(f"partition entries of {entry[0]!r} must be lists starting with an int")
        out.append((entry[0], entry[1]))
    return out
