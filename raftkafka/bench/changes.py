"""What one change of the metadata workload is: a topic creation, or an offset commit of a group.

Both are one request to the active controller answered after exactly one record committed through the Raft
quorum, so ``bench.metadata`` times either the same way. A kind names its changes by level (``"warmup"`` or the
in-flight depth) and lane (the connection the change goes on), creates what it needs before the clock
(``set_up``), and removes what it made outside it (``clean_up`` after each level, ``tear_down`` at the end).

- ``topics``: CREATE_TOPICS of a new topic with one partition and replication factor 1 (a ``CreateTopic``
  record); the topics of a level are deleted after it.
- ``offsets``: OFFSET_COMMIT of one partition's offset with member "" and generation -1 (a commit for a group
  without members, one ``CommitOffsets`` record), for one group per connection, on a one-partition topic made
  by ``set_up``; the groups of a level are deleted after it, the topic at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from raftkafka.bench.quorum import ADMIN_TIMEOUT_MS, create_topic, delete_topics, open_connection
from raftkafka.errors import GroupIdNotFoundError, InvalidRequestError, RaftKafkaError, from_wire
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection

log = logging.getLogger(__name__)

NO_MEMBER = ""
NO_GENERATION = -1
"""OFFSET_COMMIT's member id and generation for a group without members (manual assignment)."""

Change = Callable[[Connection, int, float], Awaitable[None]]
"""Commit change number ``index`` on ``connection`` within ``timeout_s``; raise its error if it failed."""
SetUp = Callable[[Connection, float], Awaitable[None]]
"""One attempt at a kind's preparation on a connection to the active controller (retried like a change)."""


class ChangeKind(Protocol):
    """One kind of metadata change (see the module docstring)."""

    name: str
    description: str

    def set_up_step(self) -> SetUp | None:
        """What to commit once before the warm-up (None: nothing)."""

    def change(self, level: str, lane: int) -> Change:
        """The change function of connection ``lane`` at ``level``."""

    async def clean_up(self, address: str, level: str) -> None:
        """Remove what ``level``'s changes made (not timed)."""

    async def tear_down(self, address: str) -> None:
        """Remove what ``set_up_step`` made (not timed)."""


class TopicChanges:
    """A change creates topic ``{prefix}-{level}-{index}`` (one partition, replication factor 1)."""

    name = "topics"
    description = "CREATE_TOPICS of one 1-partition RF=1 topic (one committed metadata record)"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._made: dict[str, list[str]] = {}

    def set_up_step(self) -> SetUp | None:
        return None

    def change(self, level: str, lane: int) -> Change:
        made = self._made.setdefault(level, [])
        prefix = f"{self.prefix}-{level}"

        async def create(connection: Connection, index: int, timeout_s: float) -> None:
            name = f"{prefix}-{index}"
            made.append(name)
            await create_topic(connection, name, timeout_s)

        return create

    async def clean_up(self, address: str, level: str) -> None:
        names = self._made.pop(level, [])
        if names:
            await _logged(delete_topics(address, names), f"topics {names[0]}..")

    async def tear_down(self, address: str) -> None:
        return None


def offset_commit_body(group_id: str, topic: str, offset: int) -> dict[str, Any]:
    """The OFFSET_COMMIT body committing ``offset`` of ``topic``'s partition 0 for a group without members."""
    return {
        "group_id": group_id,
        "member_id": NO_MEMBER,
        "generation": NO_GENERATION,
        "offsets": [[topic, [[0, offset]]]],
    }


def partition_errors(answer: Any) -> list[RaftKafkaError | None]:
    """Per partition of an OFFSET_COMMIT answer, its error (None for success)."""
    topics = answer.get("topics") if isinstance(answer, dict) else None
    if not isinstance(topics, list):
        raise InvalidRequestError("malformed offset commit answer")
    errors: list[RaftKafkaError | None] = []
    for entry in topics:
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], list):
            raise InvalidRequestError("malformed offset commit result")
        for partition in entry[1]:
            if not isinstance(partition, list) or len(partition) != 2 or type(partition[1]) is not int:
                raise InvalidRequestError("malformed offset commit partition")
            code = partition[1]
            errors.append(from_wire(code, f"{entry[0]}-{partition[0]}") if code else None)
    return errors


async def commit_offset(connection: Connection, group_id: str, topic: str, offset: int, timeout_s: float) -> None:
    """Commit one offset (one ``CommitOffsets`` record); raise its error if it failed."""
    body = offset_commit_body(group_id, topic, offset)
    answer = await connection.request(ApiKey.OFFSET_COMMIT, 0, body, timeout=timeout_s)
    errors = partition_errors(answer)
    if len(errors) != 1:
        raise InvalidRequestError(f"an offset commit of one partition was answered for {len(errors)}")
    if errors[0] is not None:
        raise errors[0]


class OffsetChanges:
    """A change commits offset ``index`` of partition 0 of topic ``{prefix}-offsets`` for group
    ``{prefix}-{level}-{lane}`` (one group per connection)."""

    name = "offsets"
    description = "OFFSET_COMMIT of one offset for a group without members (one committed metadata record)"

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.topic = f"{prefix}-offsets"
        self._groups: dict[str, set[str]] = {}
        self._topic_made = False

    def set_up_step(self) -> SetUp | None:
        async def create(connection: Connection, timeout_s: float) -> None:
            await create_topic(connection, self.topic, timeout_s)
            self._topic_made = True

        return create

    def change(self, level: str, lane: int) -> Change:
        group_id = f"{self.prefix}-{level}-{lane}"
        self._groups.setdefault(level, set()).add(group_id)
        topic = self.topic

        async def commit(connection: Connection, index: int, timeout_s: float) -> None:
            await commit_offset(connection, group_id, topic, index, timeout_s)

        return commit

    async def clean_up(self, address: str, level: str) -> None:
        groups = sorted(self._groups.pop(level, ()))
        if groups:
            await _logged(delete_groups(address, groups), f"groups {groups[0]}..")

    async def tear_down(self, address: str) -> None:
        if self._topic_made:
            await _logged(delete_topics(address, [self.topic]), f"topic {self.topic}")


async def delete_groups(address: str, group_ids: Sequence[str]) -> None:
    """Delete ``group_ids`` (and their offsets) through ``address``; groups that do not exist are fine."""
    connection = await open_connection(address)
    try:
        answer = await connection.request(
            ApiKey.DELETE_GROUPS, 0, {"groups": list(group_ids)}, timeout=ADMIN_TIMEOUT_MS / 1000
        )
        for entry in answer.get("groups", []):
            if isinstance(entry, list) and len(entry) == 3 and entry[1]:
                error = from_wire(entry[1], entry[2] if isinstance(entry[2], str) else str(entry[0]))
                if not isinstance(error, GroupIdNotFoundError):
                    raise error
    finally:
        connection.close()


KINDS: dict[str, type[TopicChanges] | type[OffsetChanges]] = {"topics": TopicChanges, "offsets": OffsetChanges}
CHANGE_KINDS = tuple(KINDS)


def change_kind(name: str, prefix: str) -> ChangeKind:
    """The change kind called ``name`` (one of ``CHANGE_KINDS``), naming what it makes with ``prefix``."""
    return KINDS[name](prefix)


def describe_change(name: str) -> str:
    """What one change of kind ``name`` is, in words."""
    return KINDS[name].description


async def _logged(cleaning: Awaitable[None], what: str) -> None:
    """Await a clean-up; a failure is logged, never raised over the run's own outcome."""
    try:
        await cleaning
    except (RaftKafkaError, TimeoutError) as exc:
        log.warning("could not delete the benchmark's %s: %s", what, exc)
