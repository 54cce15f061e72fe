"""Pure consumer-group decisions: from the metadata image and a request to ``GroupChange``,
``CommitOffsets`` and ``DeleteGroup`` records (the group coordinator supplies clocks and membership).

No sockets, no clocks, no randomness: every function here is a function of its arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from raftkafka.controller.assignors import STRATEGIES, assign
from raftkafka.errors import (
    GroupIdNotFoundError,
    IllegalGenerationError,
    InvalidGroupIdError,
    NonEmptyGroupError,
    RaftKafkaError,
    UnknownMemberIdError,
    UnknownTopicError,
)
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import CommitOffsets, DeleteGroup, GroupChange, GroupMember

MAX_GROUP_ID_LENGTH = 255
NO_GENERATION = -1
"""The generation (with member id "") of a commit for a group without members."""

PartitionOffset = tuple[str, int, int]
"""``(topic, partition, offset)``."""


def check_group_id(group_id: str) -> None:
    """``InvalidGroupIdError`` unless ``group_id`` is a non-empty id of at most 255 characters."""
    if not group_id or len(group_id) > MAX_GROUP_ID_LENGTH:
        raise InvalidGroupIdError(f"a group id must have 1 to {MAX_GROUP_ID_LENGTH} characters")


def common_strategy(preferences: Iterable[Sequence[str]]) -> str | None:
    """The strategy every member supports, first in the first member's order of preference; None if none."""
    lists = [list(dict.fromkeys(p)) for p in preferences]
    if not lists:
        return None
    shared = set(STRATEGIES).intersection(*map(set, lists))
    return next((name for name in lists[0] if name in shared), None)


def partition_counts(image: MetadataImage, topics: Iterable[str]) -> dict[str, int]:
    """Partition count of each of ``topics`` that exists."""
    counts: dict[str, int] = {}
    for name in topics:
        topic = image.topics.get(name)
        if topic is not None:
            counts[name] = len(topic.partitions)
    return counts


def next_generation(
    image: MetadataImage, group_id: str, strategy: str, members: Sequence[GroupMember], now_ms: int
) -> GroupChange:
    """The group's next generation with ``members`` (their ``assignment`` ignored) and a fresh assignment.

    ``sticky`` keeps partitions with the members that held them in the current generation.
    """
    group = image.groups.get(group_id)
    previous = {m.member_id: m.assignment for m in group.members} if group is not None else {}
    subscriptions = {m.member_id: m.topics for m in members}
    counts = partition_counts(image, {topic for m in members for topic in m.topics})
    assignment = assign(strategy, subscriptions, counts, previous) if members else {}
    generation = (group.generation if group is not None else 0) + 1
    assigned = tuple(m._replace(assignment=tuple(assignment.get(m.member_id, ()))) for m in members)
    return GroupChange(group_id, generation, strategy if members else "", assigned, now_ms)


def commit_offsets(
    image: MetadataImage,
    group_id: str,
    member_id: str,
    generation: int,
    offsets: Sequence[PartitionOffset],
    now_ms: int,
) -> tuple[list[CommitOffsets], list[tuple[str, int, RaftKafkaError | None]]]:
    """The record committing ``offsets`` and a ``(topic, partition, error)`` result per entry.

    Raises ``UnknownMemberIdError`` / ``IllegalGenerationError`` when the member is not in the group's
    current generation (a commit at ``NO_GENERATION`` with member "" only for a group without members).
    """
    check_group_id(group_id)
    group = image.groups.get(group_id)
    if generation == NO_GENERATION and not member_id:
        if group is not None and group.members:
            raise UnknownMemberIdError(f"group {group_id!r} has members: only they may commit")
    elif group is None or group.member(member_id) is None:
        raise UnknownMemberIdError(f"{member_id!r} is not a member of group {group_id!r}")
    elif generation != group.generation:
        raise IllegalGenerationError(
            f"generation {generation} of group {group_id!r} is over (now {group.generation}): rejoin"
        )
    accepted: list[PartitionOffset] = []
    results: list[tuple[str, int, RaftKafkaError | None]] = []
    for topic, partition, offset in offsets:
        existing = image.topics.get(topic)
        if existing is None or not 0 <= partition < len(existing.partitions):
            results.append((topic, partition, UnknownTopicError(f"{topic}-{partition} does not exist")))
        else:
            accepted.append((topic, partition, offset))
            results.append((topic, partition, None))
    records = [CommitOffsets(group_id, generation, member_id, tuple(accepted), now_ms)] if accepted else []
    return records, results


def delete_groups(
    image: MetadataImage, group_ids: Sequence[str], live: Mapping[str, int]
) -> tuple[list[DeleteGroup], list[tuple[str, RaftKafkaError | None]]]:
    """Records deleting each group without members; ``live`` counts the members the coordinator knows per group
    (members joining are not in the image yet)."""
    records: list[DeleteGroup] = []
    results: list[tuple[str, RaftKafkaError | None]] = []
    for group_id in group_ids:
        try:
            check_group_id(group_id)
        except InvalidGroupIdError as exc:
            results.append((group_id, exc))
            continue
        group = image.groups.get(group_id)
        if group is None:
            results.append((group_id, GroupIdNotFoundError(f"group {group_id!r} does not exist")))
        elif group.members or live.get(group_id, 0):
            results.append((group_id, NonEmptyGroupError(f"group {group_id!r} has active members")))
        else:
            records.append(DeleteGroup(group_id))
            results.append((group_id, None))
    return records, results


def expired_groups(image: MetadataImage, now_ms: int, retention_ms: int, live: Mapping[str, int]) -> list[DeleteGroup]:
    """Groups without members, past ``retention_ms`` since their last change or commit: their offsets expire."""
    return [
        DeleteGroup(group.group_id)
        for group in image.groups.values()
        if not group.members and not live.get(group.group_id, 0) and now_ms - group.activity_ms >= retention_ms
    ]
