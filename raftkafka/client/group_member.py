"""A consumer's membership in its group: join, the heartbeat task, leave, and the group's offsets (commit and
fetch).

The active controller coordinates every group and any broker forwards group requests to it, so every
request here goes to any node (see "Consumer group APIs" in ``raftkafka.net.api``). The member chooses its
own id (``{client_id}-{uuid4}``) once and keeps it across rejoins, so a retried join is the same member.

The state machine (Kafka's eager protocol): ``join`` sends JOIN_GROUP until the coordinator answers with a
generation and this member's partitions, then starts the heartbeat task. A heartbeat answering
``REBALANCE_IN_PROGRESS`` sets ``rejoin_needed`` (the member keeps heartbeating: it is still in the group
until it joins again); ``UNKNOWN_MEMBER_ID`` or ``ILLEGAL_GENERATION`` mean it is out of the group
(generation -1, heartbeats stop). When the user has not polled for ``max_poll_interval_ms`` the heartbeat
task leaves the group, as Kafka's does, so the others can take the partitions over; the next poll joins
again. The consumer runs the rebalance itself (commit, revoke, join, assign) inside ``poll``; this module
does no callbacks. Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from raftkafka.client.network import ClientNetwork
from raftkafka.errors import (
    IllegalGenerationError,
    KafkaTimeoutError,
    RaftKafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    from_wire,
)
from raftkafka.net.api import ApiKey
from raftkafka.structs import TopicPartition

log = logging.getLogger(__name__)

STRATEGIES = ("range", "roundrobin", "sticky")
"""Assignment strategies the coordinator knows."""
NO_GENERATION = -1
JOIN_MARGIN = 5.0
"""Seconds a join may take beyond the rebalance timeout before the client gives up on the request."""
LEAVE_TIMEOUT = 5.0
"""Longest wait, in seconds, for the answer to a LEAVE_GROUP (best effort)."""

_OUT_OF_GROUP = (UnknownMemberIdError, IllegalGenerationError)
_REJOIN = (RebalanceInProgressError, UnknownMemberIdError, IllegalGenerationError)


def offsets_body(offsets: dict[TopicPartition, int]) -> list[list[Any]]:
    """``[[topic, [[partition, offset], ...]], ...]`` of an offsets map."""
    topics: dict[str, list[list[int]]] = {}
    for tp, offset in sorted(offsets.items()):
        topics.setdefault(tp.topic, []).append([tp.partition, offset])
    return [[topic, parts] for topic, parts in topics.items()]


class GroupMember:
    """One consumer's membership in group ``group_id`` (see the module docstring)."""

    def __init__(
        self,
        network: ClientNetwork,
        *,
        group_id: str,
        client_id: str,
        session_timeout_ms: float,
        heartbeat_interval_ms: float,
        max_poll_interval_ms: float,
        strategies: Sequence[str],
    ) -> None:
        self.network = network
        self.group_id = group_id
        self.client_id = client_id
        self.member_id = f"{client_id}-{uuid.uuid4()}"
        self.session_timeout_ms = int(session_timeout_ms)
        self.rebalance_timeout_ms = int(max_poll_interval_ms)
        self.heartbeat_interval = heartbeat_interval_ms / 1000
        self.max_poll_interval = max_poll_interval_ms / 1000
        self.strategies = list(strategies)
        self.generation = NO_GENERATION
        self.strategy = ""
        self.assignment: list[TopicPartition] = []
        self.joined_topics: list[str] | None = None
        """The subscription of the last successful join."""
        self.rejoin_needed = False
        self.on_rejoin_needed: Callable[[], None] = lambda: None
        """Called when the member finds it must join again (the consumer wakes a waiting ``poll``)."""
        self._in_group = False  # a join was sent and no leave since: close() should leave
        self._polling = 0
        self._last_poll = time.monotonic()
        self._heartbeat: asyncio.Task[None] | None = None

    # state ----------------------------------------------------------------------------------------
    def needs_join(self, topics: list[str] | None) -> bool:
        """Whether the member must (re)join to consume subscription ``topics`` (None: not resolved yet)."""
        return self.generation == NO_GENERATION or self.rejoin_needed or topics != self.joined_topics

    def request_rejoin(self, reason: str) -> None:
        """Make the next ``poll`` run a rebalance."""
        if not self.rejoin_needed:
            log.info("group %r: member %s must rejoin: %s", self.group_id, self.member_id, reason)
        self.rejoin_needed = True
        self.on_rejoin_needed()

    def _out_of_group(self, reason: str) -> None:
        self.generation = NO_GENERATION
        self.stop_heartbeat()
        self.request_rejoin(reason)

    def poll_started(self) -> None:
        self._polling += 1
        self._last_poll = time.monotonic()

    def poll_finished(self) -> None:
        self._polling -= 1
        self._last_poll = time.monotonic()

    def poll_expired(self) -> bool:
        """True when the user has been out of ``poll`` for longer than ``max_poll_interval_ms``."""
        return self._polling == 0 and time.monotonic() - self._last_poll > self.max_poll_interval

    # join, heartbeat, leave -----------------------------------------------------------------------
    async def join(self, topics: list[str]) -> list[TopicPartition]:
        """Join (again) with subscription ``topics``; returns this member's partitions in the new generation.

        Retries retriable errors with backoff and joins again on ``REBALANCE_IN_PROGRESS``; raises the
        errors that retrying cannot fix (``INVALID_GROUP_ID``, ``INVALID_SESSION_TIMEOUT``,
        ``INCONSISTENT_GROUP_PROTOCOL``, ``GROUP_MAX_SIZE_REACHED`` ...).
        """
        self.stop_heartbeat()
        self.rejoin_needed = False  # a reason to rejoin found from now on needs another join
        body = {
            "group_id": self.group_id,
            "member_id": self.member_id,
            "client_id": self.client_id,
            "topics": list(topics),
            "strategies": self.strategies,
            "session_timeout_ms": self.session_timeout_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
        }
        timeout = self.rebalance_timeout_ms / 1000 + JOIN_MARGIN
        log.info("group %r: member %s joining with topics %s", self.group_id, self.member_id, topics)
        again = 0
        while True:
            self._in_group = True
            try:
                answer = await self.network.request(ApiKey.JOIN_GROUP, body, timeout=timeout)
            except _REJOIN as exc:
                log.debug("group %r: join again: %s", self.group_id, exc)
                again += 1  # at once the first time; with backoff if the coordinator keeps answering so
                await asyncio.sleep(0 if again == 1 else self.network.retry_backoff)
                continue
            except RaftKafkaError as exc:
                if not exc.retriable:
                    raise
                log.info("group %r: join failed, retrying: %s", self.group_id, exc)
                await asyncio.sleep(self.network.retry_backoff)
                continue
            break
        self.generation = answer["generation"]
        self.strategy = answer.get("strategy", "")
        self.assignment = sorted(TopicPartition(topic, p) for topic, parts in answer["assignment"] for p in parts)
        self.joined_topics = list(topics)
        log.info(
            "group %r: member %s joined generation %d (%s, %s members), assigned %s",
            self.group_id,
            self.member_id,
            self.generation,
            self.strategy,
            answer.get("members", "?"),
            [f"{tp.topic}-{tp.partition}" for tp in self.assignment],
        )
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._heartbeat_loop(self.generation), name=f"raftkafka-heartbeat-{self.group_id}"
        )
        return self.assignment

    def stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _heartbeat_loop(self, generation: int) -> None:
        body = {"group_id": self.group_id, "member_id": self.member_id, "generation": generation}
        timeout = min(self.network.request_timeout, self.session_timeout_ms / 1000)
        delay = self.heartbeat_interval
        while True:
            await asyncio.sleep(delay)
            delay = self.heartbeat_interval
            if self.poll_expired():
                log.warning(
                    "group %r: member %s leaves the group: poll() was not called for max_poll_interval_ms "
                    "(%g ms); the next poll rejoins",
                    self.group_id,
                    self.member_id,
                    self.max_poll_interval * 1000,
                )
                self._heartbeat = None
                await self.leave("max_poll_interval_ms expired")
                self.request_rejoin("left the group after max_poll_interval_ms")
                return
            try:
                await self.network.request(ApiKey.HEARTBEAT, body, timeout=timeout)
            except RebalanceInProgressError:
                self.request_rejoin("the group is rebalancing")
            except _OUT_OF_GROUP as exc:
                self._heartbeat = None
                self._out_of_group(f"heartbeat answered {exc.name}")
                return
            except RaftKafkaError as exc:
                log.debug("group %r: heartbeat failed: %s", self.group_id, exc)
                delay = min(self.network.retry_backoff, self.heartbeat_interval)

    async def leave(self, reason: str) -> None:
        """Leave the group (best effort: errors are logged) and stop heartbeating."""
        self.stop_heartbeat()
        self.generation = NO_GENERATION
        if not self._in_group:
            return
        self._in_group = False
        body = {"group_id": self.group_id, "member_id": self.member_id}
        try:
            await self.network.request(
                ApiKey.LEAVE_GROUP, body, timeout=min(self.network.request_timeout, LEAVE_TIMEOUT)
            )
        except RaftKafkaError as exc:
            log.info("group %r: leave failed (the session timeout will remove the member): %s", self.group_id, exc)
        else:
            log.info("group %r: member %s left the group (%s)", self.group_id, self.member_id, reason)

    async def close(self) -> None:
        """Leave the group and wait for the heartbeat task to end."""
        task = self._heartbeat
        await self.leave("the consumer is closing")
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    # offsets --------------------------------------------------------------------------------------
    async def commit(self, offsets: dict[TopicPartition, int], *, as_member: bool, timeout: float | None) -> None:
        """Commit ``offsets`` (the next record to consume per partition).

        ``as_member``: as this member at its generation (subscriptions), else with member "" and generation
        -1 (manual assignment). Retriable errors are retried with backoff for ``timeout`` seconds (None:
        one attempt). A commit refused because the member is no longer in the group's current generation
        raises the wire error (``ILLEGAL_GENERATION``, ``UNKNOWN_MEMBER_ID``, ``REBALANCE_IN_PROGRESS``)
        and makes the next poll rejoin.
        """
        if not offsets:
            return
        if as_member and self.generation == NO_GENERATION:
            raise IllegalGenerationError(
                f"commit failed: member {self.member_id} is not in a generation of group {self.group_id!r} "
                "(it has not joined yet, or it left or was removed); the next poll() joins the group again"
            )
        body = {
            "group_id": self.group_id,
            "member_id": self.member_id if as_member else "",
            "generation": self.generation if as_member else NO_GENERATION,
            "offsets": offsets_body(offsets),
        }
        try:
            answer = await self._retrying(ApiKey.OFFSET_COMMIT, body, timeout)
        except _REJOIN as exc:
            if not as_member:
                raise
            if isinstance(exc, _OUT_OF_GROUP):
                self._out_of_group(f"offset commit answered {exc.name}")
            else:
                self.request_rejoin("offset commit answered REBALANCE_IN_PROGRESS")
            raise exc.__class__(
                f"commit failed: group {self.group_id!r} rebalanced since generation {body['generation']} "
                f"and may have given the partitions to another member ({exc.message}); the next poll() rejoins"
            ) from None
        for topic, parts in answer.get("topics", []):
            for partition, error in parts:
                if error:
                    raise from_wire(error, f"commit of {topic}-{partition} to group {self.group_id!r} failed")
        log.debug("group %r: committed %s", self.group_id, offsets)

    async def fetch_committed(
        self, partitions: Iterable[TopicPartition], *, timeout: float | None = None
    ) -> dict[TopicPartition, int | None]:
        """The group's committed offset of each partition (None where none is committed)."""
        wanted = sorted({TopicPartition(*tp) for tp in partitions})
        if not wanted:
            return {}
        topics: dict[str, list[int]] = {}
        for tp in wanted:
            topics.setdefault(tp.topic, []).append(tp.partition)
        body = {"group_id": self.group_id, "topics": [[topic, parts] for topic, parts in topics.items()]}
        answer = await self._retrying(ApiKey.OFFSET_FETCH, body, timeout)
        out: dict[TopicPartition, int | None] = dict.fromkeys(wanted)
        for topic, parts in answer.get("topics", []):
            for partition, offset in parts:
                tp = TopicPartition(topic, partition)
                if tp in out:
                    out[tp] = offset if offset >= 0 else None
        return out

    async def _retrying(self, api: ApiKey, body: Any, timeout: float | None) -> Any:
        """One request to any node, retried with backoff on retriable errors for ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return await self.network.request(api, body)
            except RaftKafkaError as exc:
                if not exc.retriable or deadline is None:
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise KafkaTimeoutError(
                        f"{api.name} for group {self.group_id!r} gave up after {timeout:g} s: {exc}"
                    ) from None
                log.debug("group %r: %s failed, retrying: %s", self.group_id, api.name, exc)
                await asyncio.sleep(min(self.network.retry_backoff, remaining))
