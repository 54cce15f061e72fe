"""raftkafka: a Kafka-style distributed commit log with a Raft quorum of controllers.

``from raftkafka import Producer, Consumer, Admin, TopicPartition``; the async client is in
``raftkafka.aio``. The client is imported on first use, so servers importing ``raftkafka.*`` stay lean.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raftkafka.structs import (
    GroupDescription,
    GroupListing,
    MemberDescription,
    PartitionInfo,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)

if TYPE_CHECKING:
    from raftkafka.client import Admin, Consumer, ConsumerRebalanceListener, Producer

__all__ = [
    "Admin",
    "Consumer",
    "ConsumerRebalanceListener",
    "GroupDescription",
    "GroupListing",
    "MemberDescription",
    "PartitionInfo",
    "Producer",
    "Record",
    "RecordMetadata",
    "TopicDescription",
    "TopicPartition",
]

_CLIENT = frozenset({"Admin", "Consumer", "ConsumerRebalanceListener", "Producer"})


def __getattr__(name: str) -> Any:
    if name in _CLIENT:
        import raftkafka.client

        return getattr(raftkafka.client, name)
    raise AttributeError(f"module 'raftkafka' has no attribute {name!r}")
