"""The consumer group APIs on the wire (shapes in ``raftkafka.net.api``): bodies in, validated, to the
``GroupCoordinator``; bodies out. Served by controllers, and by the ``dev`` broker in process.

Event loop thread only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from raftkafka.controller.group_coordinator import GroupCoordinator, JoinRequest, JoinResult
from raftkafka.errors import GroupIdNotFoundError, InvalidRequestError, RaftKafkaError
from raftkafka.metadata.records import GroupMember
from raftkafka.net.api import ApiKey, field, topic_partition_lists

GROUP_APIS = (
    ApiKey.OFFSET_COMMIT,
    ApiKey.OFFSET_FETCH,
    ApiKey.JOIN_GROUP,
    ApiKey.HEARTBEAT,
    ApiKey.LEAVE_GROUP,
    ApiKey.LIST_GROUPS,
    ApiKey.DESCRIBE_GROUPS,
    ApiKey.DELETE_GROUPS,
)
JOIN_TIMEOUT_MARGIN_S = 5.0
"""How much longer than the rebalance timeout a forwarded join may take."""
DEFAULT_TIMEOUT_S = 30.0


def request_timeout_s(api_key: int, body: Any) -> float:
    """How long a forwarded group request may take: a join waits for the whole rebalance."""
    if api_key == ApiKey.JOIN_GROUP and isinstance(body, dict):
        rebalance_timeout_ms = body.get("rebalance_timeout_ms")
        if type(rebalance_timeout_ms) is int and rebalance_timeout_ms > 0:
            return rebalance_timeout_ms / 1000 + JOIN_TIMEOUT_MARGIN_S
    return DEFAULT_TIMEOUT_S


class GroupApi:
    """Handles the group API bodies with a coordinator."""

    def __init__(self, coordinator: GroupCoordinator) -> None:
        self.coordinator = coordinator
        self._handlers: dict[int, Callable[[Any], Awaitable[Any]]] = {
            ApiKey.OFFSET_COMMIT: self.offset_commit,
            ApiKey.OFFSET_FETCH: self.offset_fetch,
            ApiKey.JOIN_GROUP: self.join_group,
            ApiKey.HEARTBEAT: self.heartbeat,
            ApiKey.LEAVE_GROUP: self.leave_group,
            ApiKey.LIST_GROUPS: self.list_groups,
            ApiKey.DESCRIBE_GROUPS: self.describe_groups,
            ApiKey.DELETE_GROUPS: self.delete_groups,
        }

    def handle(self, api_key: int, body: Any) -> Awaitable[Any]:
        """The answer body to a group API request (errors raised as ``RaftKafkaError``)."""
        try:
            handler = self._handlers[api_key]
        except KeyError:
            raise InvalidRequestError(f"API {api_key} is not a group API") from None
        return handler(body)

    async def join_group(self, body: Any) -> Any:
        request = JoinRequest(
            field(body, "group_id", str),
            field(body, "member_id", str),
            field(body, "client_id", str, ""),
            _strings(body, "topics"),
            _strings(body, "strategies"),
            field(body, "session_timeout_ms", int),
            field(body, "rebalance_timeout_ms", int),
        )
        result: JoinResult = await self.coordinator.join(request)
        return {
            "generation": result.generation,
            "member_id": result.member_id,
            "strategy": result.strategy,
            "assignment": _by_topic(result.assignment),
            "members": result.members,
        }

    async def heartbeat(self, body: Any) -> Any:
        group_id = field(body, "group_id", str)
        self.coordinator.heartbeat(group_id, field(body, "member_id", str), field(body, "generation", int))
        return {}

    async def leave_group(self, body: Any) -> Any:
        await self.coordinator.leave(field(body, "group_id", str), field(body, "member_id", str))
        return {}

    async def offset_commit(self, body: Any) -> Any:
        group_id = field(body, "group_id", str)
        member_id = field(body, "member_id", str)
        generation = field(body, "generation", int)
        offsets: list[tuple[str, int, int]] = []
        for topic, entries in topic_partition_lists(body, "offsets"):
            for entry in entries:
                if len(entry) != 2 or type(entry[1]) is not int or entry[1] < 0:
                    raise InvalidRequestError(f"offsets of {topic!r} must be [partition, offset >= 0] pairs")
                offsets.append((topic, entry[0], entry[1]))
        results = await self.coordinator.commit_offsets(group_id, member_id, generation, offsets)
        by_topic: dict[str, list[list[Any]]] = {}
        for topic, partition, error in results:
            by_topic.setdefault(topic, []).append([partition, _code(error)])
        return {"topics": [[topic, entries] for topic, entries in by_topic.items()]}

    async def offset_fetch(self, body: Any) -> Any:
        group_id = field(body, "group_id", str)
        wanted = field(body, "topics", (list, type(None)), None)
        committed = self.coordinator.committed_offsets(group_id)
        if wanted is None:
            return {"topics": _offsets_by_topic(committed)}
        answer = []
        for entry in wanted:
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not isinstance(entry[0], str)
                or not isinstance(entry[1], list)
                or not all(type(p) is int for p in entry[1])
            ):
                raise InvalidRequestError("each entry of 'topics' must be [topic, [partition, ...]]")
            topic, partitions = entry
            answer.append([topic, [[p, committed.get((topic, p), -1)] for p in partitions]])
        return {"topics": answer}

    async def list_groups(self, body: Any) -> Any:
        return {"groups": [list(entry) for entry in self.coordinator.list_groups()]}

    async def describe_groups(self, body: Any) -> Any:
        described = []
        for group_id in _strings(body, "groups"):
            state, group = self.coordinator.describe_group(group_id)
            entry: dict[str, Any] = {"group_id": group_id, "error": 0, "state": state, "strategy": "",
                                     "generation": -1, "members": [], "offsets": []}  # fmt: skip
            if group is None:
                entry["error"] = GroupIdNotFoundError.code
            else:
                entry.update(
                    strategy=group.strategy,
                    generation=group.generation,
                    members=[_describe_member(m) for m in group.members],
                    offsets=_offsets_by_topic(dict(group.offsets)),
                )
            described.append(entry)
        return {"groups": described}

    async def delete_groups(self, body: Any) -> Any:
        results = await self.coordinator.delete_groups(_strings(body, "groups"))
        return {"groups": [[group_id, _code(error), error.message if error else ""] for group_id, error in results]}


def _describe_member(member: GroupMember) -> dict[str, Any]:
    return {
        "member_id": member.member_id,
        "client_id": member.client_id,
        "topics": list(member.topics),
        "assignment": _by_topic(member.assignment),
    }


def _strings(body: Any, name: str) -> tuple[str, ...]:
    values = field(body, name, list)
    if not all(isinstance(value, str) for value in values):
        raise InvalidRequestError(f"{name!r} must be a list of strings")
    return tuple(values)


def _code(error: RaftKafkaError | None) -> int:
    return 0 if error is None else error.code


def _by_topic(partitions: Iterable[tuple[str, int]]) -> list[list[Any]]:
    grouped: dict[str, list[int]] = {}
    for topic, partition in partitions:
        grouped.setdefault(topic, []).append(partition)
    return [[topic, sorted(ids)] for topic, ids in sorted(grouped.items())]


def _offsets_by_topic(offsets: dict[tuple[str, int], int]) -> list[list[Any]]:
    grouped: dict[str, list[list[int]]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        grouped.setdefault(topic, []).append([partition, offset])
    return [[topic, entries] for topic, entries in grouped.items()]
