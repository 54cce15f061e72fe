"""Pure decisions about ISR changes a partition leader asks for (Kafka's AlterPartition, KIP-497).

A leader shrinks the ISR when followers lag past ``replica.lag.time.max.ms`` and expands it when an
out-of-sync follower has caught up; the controller commits the new ISR as a ``PartitionChange`` with
the same leader and leader epoch (replaying it bumps the partition epoch). A request is accepted only
from the partition's current leader at the current leader epoch and partition epoch, so a deposed
leader or one acting on stale state cannot undo a newer decision; the new ISR must hold the leader,
lie within the replicas, and add only registered, unfenced brokers (KIP-841). Shrinking below
``min.insync.replicas`` is allowed: that is what makes ``acks=all`` answer ``NOT_ENOUGH_REPLICAS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from raftkafka.errors import (
    NONE,
    FencedLeaderEpochError,
    IneligibleReplicaError,
    InvalidRequestError,
    InvalidUpdateVersionError,
    RaftKafkaError,
    StaleBrokerEpochError,
    UnknownTopicError,
)
from raftkafka.metadata.image import NO_LEADER, MetadataImage, PartitionState, replay_all
from raftkafka.metadata.records import PartitionChange


@dataclass(frozen=True, slots=True)
class IsrChange:
    """A leader's request to set one partition's ISR to ``new_isr``, made at its leader and partition epochs."""

    topic: str
    partition: int
    leader_epoch: int
    partition_epoch: int
    new_isr: tuple[int, ...]


class IsrChangeResult(NamedTuple):
    """The outcome for one partition: the error code and the partition's state (after the change on success)."""

    topic: str
    partition: int
    error_code: int
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int

    @classmethod
    def of(cls, topic: str, state: PartitionState, error_code: int = NONE) -> IsrChangeResult:
        """The result carrying ``state`` and ``error_code``."""
        return cls(topic, state.partition, error_code, state.leader, state.leader_epoch, state.isr,
                   state.partition_epoch)  # fmt: skip


def _unknown(change: IsrChange) -> IsrChangeResult:
    return IsrChangeResult(change.topic, change.partition, UnknownTopicError.code, NO_LEADER, -1, (), -1)


def _check(image: MetadataImage, broker_id: int, state: PartitionState, change: IsrChange) -> None:
    """Raise the error that refuses ``change`` from ``broker_id``, if any."""
    if change.leader_epoch != state.leader_epoch:
        raise FencedLeaderEpochError(f"leader epoch {change.leader_epoch} is not the current {state.leader_epoch}")
    if broker_id != state.leader:
        raise InvalidRequestError(f"broker {broker_id} is not the leader ({state.leader})")
    if change.partition_epoch != state.partition_epoch:
        raise InvalidUpdateVersionError(
            f"partition epoch {change.partition_epoch} is not the current {state.partition_epoch}"
        )
    new_isr = change.new_isr
    if len(set(new_isr)) != len(new_isr) or not set(new_isr) <= set(state.replicas) or state.leader not in new_isr:
        raise InvalidRequestError(f"ISR {list(new_isr)} must be distinct replicas of {list(state.replicas)} "
                                  f"holding the leader {state.leader}")  # fmt: skip
    for node_id in set(new_isr) - set(state.isr):
        broker = image.brokers.get(node_id)
        if broker is None or broker.fenced:
            raise IneligibleReplicaError(f"broker {node_id} is not registered and unfenced")


def alter_isr(
    image: MetadataImage, broker_id: int, broker_epoch: int, changes: Sequence[IsrChange]
) -> tuple[list[PartitionChange], list[IsrChangeResult]]:
    """The ``PartitionChange`` records for ``changes`` from broker ``broker_id`` and one result per change.

    Later changes see the effect of earlier ones (a partition named twice must carry the new epoch the
    second time). Raises ``StaleBrokerEpochError`` when ``broker_epoch`` is not the broker's current
    registration (the whole request is refused).
    """
    broker = image.brokers.get(broker_id)
    if broker is None or broker.epoch != broker_epoch:
        raise StaleBrokerEpochError(f"broker {broker_id} epoch {broker_epoch} is not a current registration")
    records: list[PartitionChange] = []
    results: list[IsrChangeResult] = []
    for change in changes:
        topic = image.topics.get(change.topic)
        if topic is None or not 0 <= change.partition < len(topic.partitions):
            results.append(_unknown(change))
            continue
        state = topic.partitions[change.partition]
        try:
            _check(image, broker_id, state, change)
        except RaftKafkaError as exc:
            results.append(IsrChangeResult.of(change.topic, state, exc.code))
            continue
        if change.new_isr != state.isr:
            record = PartitionChange(change.topic, change.partition, state.leader, change.new_isr,
                                     state.leader_epoch, state.replicas)  # fmt: skip
            image = replay_all(image, [record], image.offset + 1)
            records.append(record)
            state = image.topics[change.topic].partitions[change.partition]
        results.append(IsrChangeResult.of(change.topic, state))
    return records, results


# -- the ALTER_PARTITION wire shapes (``net.api``) --


def _by_topic(entries: Sequence[tuple[str, list[object]]]) -> list[list[object]]:
    grouped: dict[str, list[object]] = {}
    for topic, entry in entries:
        grouped.setdefault(topic, []).append(entry)
    return [[topic, parts] for topic, parts in grouped.items()]


def _ints(values: object) -> bool:
    return isinstance(values, list) and all(type(value) is int for value in values)


def changes_to_wire(changes: Sequence[IsrChange]) -> list[list[object]]:
    """The request's ``topics`` list."""
    return _by_topic([(c.topic, [c.partition, c.leader_epoch, c.partition_epoch, list(c.new_isr)]) for c in changes])


def changes_from_wire(topics: Sequence[tuple[str, list[list[object]]]]) -> list[IsrChange]:
    """The changes of a request's ``topics`` (as split by ``net.api.topic_partition_lists``)."""
    changes = []
    for topic, entries in topics:
        for entry in entries:
            if len(entry) != 4 or not _ints(entry[:3]) or not _ints(entry[3]):
                raise InvalidRequestError("ALTER_PARTITION entries are [partition, leader_epoch, partition_epoch, isr]")
            partition, leader_epoch, partition_epoch, isr = entry
            changes.append(IsrChange(topic, partition, leader_epoch, partition_epoch, tuple(isr)))  # type: ignore[arg-type]
    return changes


def results_to_wire(results: Sequence[IsrChangeResult]) -> list[list[object]]:
    """The response's ``topics`` list."""
    return _by_topic(
        [
            (r.topic, [r.partition, r.error_code, r.leader, r.leader_epoch, list(r.isr), r.partition_epoch])
            for r in results
        ]
    )


def results_from_wire(topics: Sequence[tuple[str, list[list[object]]]]) -> list[IsrChangeResult]:
    """The results of a response's ``topics`` (as split by ``net.api.topic_partition_lists``)."""
    results = []
    for topic, entries in topics:
        for entry in entries:
            if len(entry) != 6 or not _ints([*entry[:4], entry[5]]) or not _ints(entry[4]):
                raise InvalidRequestError("malformed ALTER_PARTITION partition result")
            partition, error, leader, leader_epoch, isr, partition_epoch = entry
            results.append(
                IsrChangeResult(topic, partition, error, leader, leader_epoch, tuple(isr), partition_epoch)  # type: ignore[arg-type]
            )
    return results
