"""Small immutable value types shared by the client API and the CLI."""

from __future__ import annotations

from typing import NamedTuple

Headers = list[tuple[str, bytes]]
"""Headers a producer sends: ``(key, value)`` pairs."""
RecordHeaders = tuple[tuple[str, bytes], ...]
"""Headers a consumer reads: an immutable tuple of ``(key, value)`` pairs (empty for most records)."""


class TopicPartition(NamedTuple):
    """A partition of a topic."""

    topic: str
    partition: int


class RecordMetadata(NamedTuple):
    """Where an acknowledged record was stored (offset -1 when acks=0)."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class Record(NamedTuple):
    """A record as a consumer sees it; ``timestamp`` is milliseconds since the epoch."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: RecordHeaders


class PartitionInfo(NamedTuple):
    """One partition of a described topic; ``leader`` is -1 when it has none."""

    id: int
    leader: int
    replicas: list[int]
    isr: list[int]


class TopicDescription(NamedTuple):
    """A topic as ``Admin.describe_topic`` returns it."""

    name: str
    partitions: list[PartitionInfo]
    config: dict[str, str]


class BrokerInfo(NamedTuple):
    """A broker's node id and client listener."""

    node_id: int
    host: str
    port: int


class GroupListing(NamedTuple):
    """A consumer group as ``Admin.list_groups`` returns it; ``state`` is ``Empty``, ``PreparingRebalance``
    or ``Stable`` and ``members`` the number of members."""

    group_id: str
    state: str
    members: int


class MemberDescription(NamedTuple):
    """A member of a described group: its subscription (``topics``) and the partitions assigned to it."""

    member_id: str
    client_id: str
    topics: list[str]
    assignment: list[TopicPartition]


class GroupDescription(NamedTuple):
    """A consumer group as ``Admin.describe_group`` returns it: members of the current ``generation`` (0 when
    none has run yet) and the committed offsets (the next record to consume, per partition)."""

    group_id: str
    state: str
    strategy: str
    generation: int
    members: list[MemberDescription]
    offsets: dict[TopicPartition, int]
