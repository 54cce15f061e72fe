"""The asynchronous admin client: topics, consumer groups and their committed offsets, partition offsets.

Topic creation and deletion and every group request go to the active controller (the group coordinator)
when the metadata names it, to any broker otherwise (brokers forward them), and are retried after
``NOT_CONTROLLER``, ``COORDINATOR_NOT_AVAILABLE`` or a lost connection until the request timeout; listing
and describing topics read a broker's metadata; partition offsets are asked of each partition's leader.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from raftkafka.client.network import ClientNetwork
from raftkafka.errors import (
    BrokerNotAvailableError,
    CoordinatorNotAvailableError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    LeaderNotAvailableError,
    NetworkError,
    NonEmptyGroupError,
    NotControllerError,
    NotLeaderError,
    RaftKafkaError,
    UnknownMemberIdError,
    UnknownTopicError,
    for_code,
    from_wire,
)
from raftkafka.net.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, ApiKey
from raftkafka.structs import (
    BrokerInfo,
    GroupDescription,
    GroupListing,
    MemberDescription,
    TopicDescription,
    TopicPartition,
)

_REROUTE = (NotControllerError, CoordinatorNotAvailableError, BrokerNotAvailableError, NetworkError)
_LEADER_MOVED = (NotLeaderError, LeaderNotAvailableError, BrokerNotAvailableError, NetworkError)


class AsyncAdmin:
    """Manages topics and consumer groups. Use ``async with`` or ``start()``/``close()``; errors are
    ``raftkafka.errors`` classes (``TopicAlreadyExistsError``, ``UnknownTopicError``, ``GroupIdNotFoundError``,
    ``NonEmptyGroupError``, ...)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] = "127.0.0.1:9092",
        *,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
    ) -> None:
        self.request_timeout = request_timeout_ms / 1000
        self._network = ClientNetwork(
            bootstrap, request_timeout_ms=request_timeout_ms, retry_backoff_ms=retry_backoff_ms
        )

    async def start(self) -> None:
        """Connect (``BrokerNotAvailableError`` if no bootstrap server answers)."""
        try:
            await self._network.refresh([])
        except BaseException:
            await self._network.close()
            raise

    async def __aenter__(self) -> AsyncAdmin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._network.close()

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Create topic ``name``; returns once the controller has committed it."""
        entry = {
            "name": name,
            "partitions": partitions,
            "replication_factor": replication_factor,
            "config": {str(k): str(v) for k, v in (config or {}).items()},
        }
        body = {"topics": [entry], "timeout_ms": int(self.request_timeout * 1000), "validate_only": validate_only}
        _raise_entry_errors((await self._controller_request(ApiKey.CREATE_TOPICS, body))["topics"])

    async def create_partitions(self, name: str, count: int, *, validate_only: bool = False) -> None:
        """Grow topic ``name`` to ``count`` partitions (more than now); returns once the controller committed it.
        Keys map to partitions by the new count from then on."""
        body = {
            "topics": [{"name": name, "count": count}],
            "timeout_ms": int(self.request_timeout * 1000),
            "validate_only": validate_only,
        }
        _raise_entry_errors((await self._controller_request(ApiKey.CREATE_PARTITIONS, body))["topics"])

    async def delete_topic(self, name: str) -> None:
        """Delete topic ``name`` and all its data."""
        body = {"topics": [name], "timeout_ms": int(self.request_timeout * 1000)}
        _raise_entry_errors((await self._controller_request(ApiKey.DELETE_TOPICS, body))["topics"])

    async def list_topics(self) -> list[str]:
        """The names of every topic, sorted."""
        await self._network.refresh(all_topics=True)
        return sorted(self._network.cluster.topics)

    async def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (leader, replicas, ISR) and config of topic ``name`` (``UnknownTopicError`` if none)."""
        errors = await self._describe([name])
        if name in errors:
            raise errors[name]
        description = self._network.cluster.topics.get(name)
        if description is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        return description

    async def describe_cluster(self) -> list[BrokerInfo]:
        """The brokers of the cluster."""
        await self._network.refresh([])
        return sorted(self._network.cluster.brokers.values())

    # partition offsets ----------------------------------------------------------------------------------
    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset of each partition (``UnknownTopicError`` for one that does not exist)."""
        return await self._list_offsets(partitions, EARLIEST_TIMESTAMP)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end offset of each partition as consumers see it: its high watermark, the offset after
        the last record a consumer can read (``UnknownTopicError`` for one that does not exist)."""
        return await self._list_offsets(partitions, LATEST_TIMESTAMP)

    # consumer groups --------------------------------------------------------------------------------
    async def list_groups(self) -> list[GroupListing]:
        """Every consumer group the coordinator knows, sorted by id."""
        response = await self._controller_request(ApiKey.LIST_GROUPS, {})
        return sorted(GroupListing(group_id, state, count) for group_id, state, count in response["groups"])

    async def describe_group(self, group_id: str) -> GroupDescription:
        """State, members, assignment and committed offsets of ``group_id`` (``GroupIdNotFoundError`` if none)."""
        response = await self._controller_request(ApiKey.DESCRIBE_GROUPS, {"groups": [group_id]})
        for entry in response["groups"]:
            if entry["group_id"] != group_id:
                continue
            if entry.get("error"):
                raise from_wire(entry["error"], entry.get("message") or f"group {group_id!r} does not exist")
            members = [
                MemberDescription(m["member_id"], m["client_id"], list(m["topics"]), _partitions(m["assignment"]))
                for m in entry["members"]
            ]
            return GroupDescription(
                group_id,
                entry["state"],
                entry.get("strategy") or "",
                entry.get("generation", 0),
                members,
                _offsets(entry.get("offsets") or []),
            )
        raise GroupIdNotFoundError(f"group {group_id!r} does not exist")

    async def delete_group(self, group_id: str) -> None:
        """Delete ``group_id`` and its committed offsets (``NonEmptyGroupError`` while it has members,
        ``GroupIdNotFoundError`` if there is no such group)."""
        response = await self._controller_request(ApiKey.DELETE_GROUPS, {"groups": [group_id]})
        for name, error, message in response["groups"]:
            if name == group_id and error:
                if for_code(error) is NonEmptyGroupError:
                    raise _non_empty(group_id)
                raise from_wire(error, message or f"group {group_id!r}")

    async def list_group_offsets(self, group_id: str) -> dict[TopicPartition, int]:
        """The committed offset (the next record to consume) of every partition the group has committed
        (empty for a group that does not exist)."""
        response = await self._controller_request(ApiKey.OFFSET_FETCH, {"group_id": group_id, "topics": None})
        return _offsets(response["topics"])

    async def alter_group_offsets(self, group_id: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit ``offsets`` (the next record to consume per partition) for a group without members, as an
        offset reset does; creates the group if needed. ``NonEmptyGroupError`` while the group has members
        (their commits would race these), ``UnknownTopicError`` for a partition that does not exist."""
        by_topic: dict[str, list[list[int]]] = {}
        for tp, offset in offsets.items():
            if type(offset) is not int or offset < 0:
                raise ValueError(f"offset of {tp[0]}-{tp[1]} must be an int >= 0, not {offset!r}")
            by_topic.setdefault(tp[0], []).append([tp[1], offset])
        if not by_topic:
            return
        body = {"group_id": group_id, "member_id": "", "generation": -1, "offsets": list(by_topic.items())}
        try:
            response = await self._controller_request(ApiKey.OFFSET_COMMIT, body)
        except (UnknownMemberIdError, IllegalGenerationError):
            raise _non_empty(group_id) from None
        for topic, partitions in response["topics"]:
            for partition, error in partitions:
                if error:
                    raise from_wire(error, f"cannot commit an offset for {topic}-{partition}")

    # internals --------------------------------------------------------------------------------------
    async def _list_offsets(self, partitions: Iterable[TopicPartition], timestamp: int) -> dict[TopicPartition, int]:
        """LIST_OFFSETS of each partition from its leader, retried where leadership moved (until the request
        timeout); a topic or partition that does not exist fails at once."""
        wanted = {TopicPartition(*tp) for tp in partitions}
        if not wanted:
            return {}
        network = self._network
        deadline = time.monotonic() + self.request_timeout
        topics = sorted({tp.topic for tp in wanted})
        errors = await network.refresh(topics)
        for tp in sorted(wanted):
            if tp.topic in errors:
                raise errors[tp.topic]
            known = network.cluster.partitions(tp.topic)
            if known is None or tp not in known:
                raise UnknownTopicError(f"partition {tp.topic}-{tp.partition} does not exist")
        out: dict[TopicPartition, int] = {}
        while True:
            last: RaftKafkaError | None = None
            by_leader: dict[tuple[str, int], list[TopicPartition]] = {}
            for tp in sorted(wanted - out.keys()):
                leader = network.cluster.leader(tp)
                if leader is None:
                    last = LeaderNotAvailableError(f"{tp.topic}-{tp.partition} has no leader")
                else:
                    by_leader.setdefault((leader.host, leader.port), []).append(tp)
            answers = await asyncio.gather(
                *(self._list_offsets_at(address, tps, timestamp) for address, tps in by_leader.items()),
                return_exceptions=True,
            )
            for answer in answers:
                if isinstance(answer, _LEADER_MOVED):
                    last = answer
                elif isinstance(answer, BaseException):
                    raise answer
                else:
                    for tp, offset in answer.items():
                        if isinstance(offset, _LEADER_MOVED):
                            last = offset
                        elif isinstance(offset, RaftKafkaError):
                            raise offset
                        else:
                            out[tp] = offset
            if len(out) == len(wanted):
                return out
            if time.monotonic() + network.retry_backoff >= deadline:
                assert last is not None
                raise last.__class__(f"{last.message} (gave up after {self.request_timeout:g} s)")
            await asyncio.sleep(network.retry_backoff)
            try:
                await network.refresh(topics)
            except RaftKafkaError:
                pass  # the next attempt reports the failure if it persists

    async def _list_offsets_at(
        self, address: tuple[str, int], partitions: list[TopicPartition], timestamp: int
    ) -> dict[TopicPartition, int | RaftKafkaError]:
        topics: dict[str, list[list[int]]] = {}
        for tp in partitions:
            topics.setdefault(tp.topic, []).append([tp.partition, timestamp])
        response = await self._network.request(ApiKey.LIST_OFFSETS, {"topics": list(topics.items())}, address=address)
        out: dict[TopicPartition, int | RaftKafkaError] = {}
        for topic, entries in response["topics"]:
            for partition, error, offset, _timestamp in entries:
                out[TopicPartition(topic, partition)] = from_wire(error) if error else offset
        return out

    async def _describe(self, topics: list[str]) -> dict[str, RaftKafkaError]:
        body = await self._network.request(ApiKey.METADATA, {"topics": topics, "include_config": True})
        return self._network.cluster.update(body)

    async def _controller_request(self, api: ApiKey, body: dict[str, Any]) -> Any:
        """The response body of ``api`` from the active controller (through any broker when the metadata does
        not name it), retried after errors that mean it moved or is not there yet."""
        network = self._network
        deadline = time.monotonic() + self.request_timeout
        while True:
            try:
                return await network.request(api, body, address=network.address(network.cluster.controller_id))
            except _REROUTE:
                if time.monotonic() + network.retry_backoff >= deadline:
                    raise
            await asyncio.sleep(network.retry_backoff)
            try:
                await network.refresh([])
            except RaftKafkaError:
                pass  # the next attempt reports the failure if it persists


def _raise_entry_errors(entries: list[list[Any]]) -> None:
    for _name, error, message in entries:
        if error:
            raise from_wire(error, message)


def _partitions(entries: list[list[Any]]) -> list[TopicPartition]:
    """``[[topic, [partition, ...]], ...]`` as sorted partitions."""
    return sorted(TopicPartition(topic, p) for topic, partitions in entries for p in partitions)


def _offsets(entries: list[list[Any]]) -> dict[TopicPartition, int]:
    """``[[topic, [[partition, offset], ...]], ...]`` as a dict, without the -1 entries (nothing committed)."""
    return {
        TopicPartition(topic, p): offset
        for topic, partitions in sorted(entries)
        for p, offset in sorted(partitions)
        if offset >= 0
    }


def _non_empty(group_id: str) -> RaftKafkaError:
    return NonEmptyGroupError(f"group {group_id} has active members; stop them first")
