"""The group coordinator, run by the active controller: membership, rebalances, heartbeats, offset commits.

Soft state — which members are alive, which have joined the running rebalance — lives here in memory.
Everything that must outlive a controller is a record in the metadata log: each generation's members
and assignment (``GroupChange``) and the committed offsets (``CommitOffsets``). When this controller
becomes active in a new term it rebuilds the soft state from the image: every member of each group's
current generation gets a fresh session, so a controller failover costs members nothing; a rebalance
that was running starts again with the members' next join.

A rebalance (the classic "eager" protocol, with the assignment computed here): a join, a leave, an
expired session, a changed subscription or a changed partition count of a subscribed topic starts one;
heartbeats then answer ``REBALANCE_IN_PROGRESS`` and members join again. Once every member has joined
(members that have not joined by the rebalance deadline are removed), the next generation with its
assignment is committed and every waiting join answered. The member ids are chosen by the clients, so a
retried join is the same member. Decisions (assignment, commit checks, deletion, retention) are the pure
functions of ``groups``.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from raftkafka.controller.assignors import STRATEGIES
from raftkafka.controller.groups import (
    NO_GENERATION,
    PartitionOffset,
    check_group_id,
    commit_offsets,
    common_strategy,
    delete_groups,
    expired_groups,
    next_generation,
    partition_counts,
)
from raftkafka.errors import (
    GroupMaxSizeReachedError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidRequestError,
    InvalidSessionTimeoutError,
    NotControllerError,
    RaftKafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from raftkafka.metadata.image import GroupImage, MetadataImage
from raftkafka.metadata.records import GroupChange, GroupMember, MetadataRecord

logger = logging.getLogger(__name__)

MAX_MEMBER_ID_LENGTH = 255
STATE_EMPTY = "Empty"
STATE_PREPARING = "PreparingRebalance"
STATE_STABLE = "Stable"
STATE_DEAD = "Dead"


@dataclass(frozen=True, slots=True)
class GroupLimits:
    """Coordinator settings (Kafka's ``group.*`` and ``offsets.retention.*`` broker settings)."""

    min_session_timeout_ms: int = 500
    max_session_timeout_ms: int = 1_800_000
    max_size: int = 1_000
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    retention_check_interval_s: float = 60.0
    tick_s: float = 0.05


@dataclass(frozen=True, slots=True)
class JoinRequest:
    """A member asking to join (or rejoin) a group."""

    group_id: str
    member_id: str
    client_id: str
    topics: tuple[str, ...]
    strategies: tuple[str, ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int


@dataclass(frozen=True, slots=True)
class JoinResult:
    """The generation a join ended in, and the member's partitions in it."""

    generation: int
    member_id: str
    strategy: str
    assignment: tuple[tuple[str, int], ...]
    members: int


@dataclass(slots=True)
class _Member:
    request: JoinRequest
    expires: float
    joined: bool = False  # joined the running rebalance
    waiter: asyncio.Future[JoinResult] | None = None

    def to_record(self) -> GroupMember:
        r = self.request
        return GroupMember(r.member_id, r.client_id, r.topics, r.session_timeout_ms, r.rebalance_timeout_ms, ())

    def answer(self, result: JoinResult | RaftKafkaError) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        if isinstance(result, RaftKafkaError):
            waiter.set_exception(result)
        else:
            waiter.set_result(result)


@dataclass(slots=True)
class _Group:
    group_id: str
    members: dict[str, _Member] = field(default_factory=dict)
    rebalancing: bool = False
    rebalance_deadline: float = 0.0
    completing: asyncio.Task[None] | None = None
    again: bool = False  # something changed while the last rebalance was committing
    partition_counts: dict[str, int] = field(default_factory=dict)  # subscribed topics at the last generation

    @property
    def busy(self) -> bool:
        return self.rebalancing or self.completing is not None

    def subscribed(self) -> set[str]:
        return {topic for member in self.members.values() for topic in member.request.topics}


class GroupCoordinator:
    """Coordinates every consumer group while its controller is active (see the module doc)."""

    def __init__(
        self,
        active_term: Callable[[], int | None],
        decision_image: Callable[[], MetadataImage],
        committed_image: Callable[[], MetadataImage],
        commit: Callable[[Sequence[MetadataRecord]], Awaitable[None]],
        limits: GroupLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._active_term = active_term
        self._decision_image = decision_image
        self._committed_image = committed_image
        self._commit = commit
        self.limits = limits or GroupLimits()
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._term: int | None = None
        self._groups: dict[str, _Group] = {}
        self._next_retention_check = 0.0

    # -- membership --

    async def join(self, request: JoinRequest) -> JoinResult:
        """Join or rejoin; the answer comes once the rebalance completed (at once for a current member whose
        subscription is unchanged while no rebalance runs)."""
        self._validate(request)
        self._current()
        group = self._groups.setdefault(request.group_id, _Group(request.group_id))
        member = group.members.get(request.member_id)
        if member is None and len(group.members) >= self.limits.max_size:
            raise GroupMaxSizeReachedError(f"group {request.group_id!r} has {self.limits.max_size} members")
        others = [m.request.strategies for m in group.members.values() if m.request.member_id != request.member_id]
        if common_strategy([request.strategies, *others]) is None:
            raise InconsistentGroupProtocolError(
                f"none of {list(request.strategies)} is supported by every member of group {request.group_id!r}"
            )
        now = self._clock()
        current = self._decision_image().groups.get(request.group_id)
        committed = current.member(request.member_id) if current is not None else None
        if member is not None and not group.busy and committed is not None and committed.topics == request.topics:
            member.request = request
            member.expires = now + request.session_timeout_ms / 1000
            return _result(current, committed)  # type: ignore[arg-type]
        if member is None:
            member = group.members[request.member_id] = _Member(request, now + request.session_timeout_ms / 1000)
            logger.info("member %s joins group %s", request.member_id, request.group_id)
        else:
            member.request = request
            member.answer(RebalanceInProgressError("a newer join of this member replaced this one"))
        member.joined = True
        waiter = member.waiter = asyncio.get_running_loop().create_future()
        self._start_rebalance(group, now)
        self._maybe_complete(group)
        return await asyncio.shield(waiter)

    def heartbeat(self, group_id: str, member_id: str, generation: int) -> None:
        """Keep the member's session alive; ``RebalanceInProgressError`` / ``UnknownMemberIdError`` /
        ``IllegalGenerationError``: the member must join again."""
        self._current()
        member = self._member(group_id, member_id)
        member.expires = self._clock() + member.request.session_timeout_ms / 1000
        if self._groups[group_id].busy:
            raise RebalanceInProgressError(f"group {group_id!r} is rebalancing: join again")
        current = self._decision_image().groups.get(group_id)
        if current is None or current.generation != generation or current.member(member_id) is None:
            raise IllegalGenerationError(f"generation {generation} of group {group_id!r} is over: join again")

    async def leave(self, group_id: str, member_id: str) -> None:
        """Remove the member (if it is one); the group rebalances without it. When it was the last member, the
        answer waits for the empty generation to commit, so the group reads as empty right after."""
        self._current()
        group = self._groups.get(group_id)
        if group is None or member_id not in group.members:
            return
        logger.info("member %s leaves group %s", member_id, group_id)
        self._remove(group, [member_id], UnknownMemberIdError("the member left the group"))
        if not group.members and group.completing is not None:
            await asyncio.wait([group.completing])  # neither cancels it nor raises its cancellation
            self._current()

    # -- offsets --

    async def commit_offsets(
        self, group_id: str, member_id: str, generation: int, offsets: Sequence[PartitionOffset]
    ) -> list[tuple[str, int, RaftKafkaError | None]]:
        """Commit ``offsets`` for a member of the current generation (or, with member "" and generation -1, for a
        group without members); a result per entry, after the commit."""
        self._current()
        group = self._groups.get(group_id)
        if member_id or generation != NO_GENERATION:
            member = self._member(group_id, member_id)  # removed members are fenced before the next generation
            member.expires = self._clock() + member.request.session_timeout_ms / 1000
        elif group is not None and group.members:
            raise UnknownMemberIdError(f"group {group_id!r} has members: only they may commit")
        records, results = commit_offsets(
            self._decision_image(), group_id, member_id, generation, offsets, self._wall_clock_ms()
        )
        await self._commit(records)
        return results

    def committed_offsets(self, group_id: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets (empty for an unknown group)."""
        self._current()
        group = self._committed_image().groups.get(group_id)
        return dict(group.offsets) if group is not None else {}

    # -- administration --

    def list_groups(self) -> list[tuple[str, str, int]]:
        """``(group_id, state, member count)`` of every group."""
        self._current()
        image = self._committed_image()
        ids = sorted(set(image.groups) | {g for g, group in self._groups.items() if group.members})
        return [(g, self._state(g, image), self._member_count(g, image)) for g in ids]

    def describe_group(self, group_id: str) -> tuple[str, GroupImage | None]:
        """The group's state and its committed generation (``STATE_DEAD`` and None when it does not exist)."""
        self._current()
        image = self._committed_image()
        group = image.groups.get(group_id)
        if group is None and not self._member_count(group_id, image):
            return STATE_DEAD, None
        return self._state(group_id, image), group

    async def delete_groups(self, group_ids: Sequence[str]) -> list[tuple[str, RaftKafkaError | None]]:
        """Delete groups without members and their offsets; a result per group."""
        self._current()
        records, results = delete_groups(self._decision_image(), group_ids, self._live_counts())
        await self._commit(records)
        return results

    # -- time --

    async def run(self) -> None:
        """Expire sessions, enforce rebalance deadlines, notice partition count changes and expire offsets of
        empty groups, every ``limits.tick_s`` while active. Runs until cancelled."""
        while True:
            await asyncio.sleep(self.limits.tick_s)
            if self._active_term() is None:
                continue
            try:
                await self.tick()
            except RaftKafkaError as exc:  # retried on the next tick
                logger.info("group coordinator tick failed: %s", exc)

    async def tick(self) -> None:
        """One round of ``run``."""
        self._current()
        now = self._clock()
        image = self._decision_image()
        for group in list(self._groups.values()):
            if group.completing is not None:
                continue
            expired = [m for m, member in group.members.items() if member.expires <= now and not member.joined]
            late = [m for m, member in group.members.items() if not member.joined]
            if expired:
                logger.info("group %s: session of %s expired", group.group_id, ", ".join(expired))
                self._remove(group, expired, UnknownMemberIdError("the member's session expired"))
            elif group.rebalancing and now >= group.rebalance_deadline and late:
                logger.info("group %s: %s did not rejoin in time", group.group_id, ", ".join(late))
                self._remove(group, late, UnknownMemberIdError("the member did not rejoin in time"))
            elif not group.rebalancing and group.members and partition_counts(image, group.subscribed()) != (
                group.partition_counts
            ):
                logger.info("group %s: partitions of its topics changed", group.group_id)
                self._start_rebalance(group, now)
            elif not group.members and not group.busy:
                del self._groups[group.group_id]
        if now >= self._next_retention_check:
            self._next_retention_check = now + self.limits.retention_check_interval_s
            expired_offsets = expired_groups(
                image, self._wall_clock_ms(), self.limits.offsets_retention_ms, self._live_counts()
            )
            if expired_offsets:
                logger.info("offsets of %d empty group(s) expired", len(expired_offsets))
                await self._commit(expired_offsets)

    # -- internals --

    def _validate(self, request: JoinRequest) -> None:
        check_group_id(request.group_id)
        if not request.member_id or len(request.member_id) > MAX_MEMBER_ID_LENGTH:
            raise InvalidRequestError(f"a member id must have 1 to {MAX_MEMBER_ID_LENGTH} characters")
        limits = self.limits
        if not limits.min_session_timeout_ms <= request.session_timeout_ms <= limits.max_session_timeout_ms:
            raise InvalidSessionTimeoutError(
                f"session_timeout_ms must be within {limits.min_session_timeout_ms}-{limits.max_session_timeout_ms}"
            )
        if request.rebalance_timeout_ms <= 0:
            raise InvalidRequestError("rebalance_timeout_ms must be positive")
        if not set(request.strategies) & set(STRATEGIES):
            raise InconsistentGroupProtocolError(f"strategies must include one of {', '.join(STRATEGIES)}")

    def _current(self) -> None:
        """``NotControllerError`` unless active; after a term change, the soft state rebuilt from the image."""
        term = self._active_term()
        if term is None:
            if self._term is not None:
                self._reset(NotControllerError("this controller is no longer active"))
            raise NotControllerError("this node is not the active controller (the group coordinator)")
        if term == self._term:
            return
        self._reset(NotControllerError("the controller changed"))
        self._term = term
        now = self._clock()
        image = self._decision_image()
        for image_group in image.groups.values():
            if not image_group.members:
                continue
            group = self._groups[image_group.group_id] = _Group(image_group.group_id)
            for m in image_group.members:
                request = JoinRequest(
                    image_group.group_id, m.member_id, m.client_id, m.topics, (image_group.strategy,),
                    m.session_timeout_ms, m.rebalance_timeout_ms,
                )  # fmt: skip
                group.members[m.member_id] = _Member(request, now + m.session_timeout_ms / 1000)
            group.partition_counts = partition_counts(image, group.subscribed())

    def _reset(self, error: RaftKafkaError) -> None:
        for group in self._groups.values():
            if group.completing is not None:
                group.completing.cancel()
            for member in group.members.values():
                member.answer(error)
        self._groups.clear()
        self._term = None

    def _member(self, group_id: str, member_id: str) -> _Member:
        group = self._groups.get(group_id)
        member = group.members.get(member_id) if group is not None else None
        if member is None:
            raise UnknownMemberIdError(f"{member_id!r} is not a member of group {group_id!r}: join again")
        return member

    def _remove(self, group: _Group, member_ids: Sequence[str], error: RaftKafkaError) -> None:
        for member_id in member_ids:
            member = group.members.pop(member_id, None)
            if member is not None:
                member.answer(error)
        self._start_rebalance(group, self._clock())
        self._maybe_complete(group)

    def _start_rebalance(self, group: _Group, now: float) -> None:
        if group.completing is not None:
            group.again = True
        elif not group.rebalancing:
            group.rebalancing = True
            timeouts = [m.request.rebalance_timeout_ms for m in group.members.values()]
            group.rebalance_deadline = now + max(timeouts, default=0) / 1000
            logger.info("group %s rebalancing (%d member(s))", group.group_id, len(group.members))

    def _maybe_complete(self, group: _Group) -> None:
        if not group.rebalancing or group.completing is not None:
            return
        if not all(member.joined for member in group.members.values()):
            return
        members = [group.members[m] for m in sorted(group.members)]
        group.completing = asyncio.ensure_future(self._complete(group, members))

    async def _complete(self, group: _Group, members: list[_Member]) -> None:
        try:
            image = self._decision_image()
            counts = partition_counts(image, {topic for m in members for topic in m.request.topics})
            current = image.groups.get(group.group_id)
            record: GroupChange | None = None
            if members or (current is not None and current.members):
                strategy = common_strategy(m.request.strategies for m in members) or STRATEGIES[0]
                record = next_generation(
                    image, group.group_id, strategy, [m.to_record() for m in members], self._wall_clock_ms()
                )
                await self._commit([record])
        except RaftKafkaError as exc:
            for member in members:
                member.joined = False
                member.answer(exc)
            group.completing = None
            group.rebalance_deadline = self._clock() + max(
                (m.request.rebalance_timeout_ms for m in group.members.values()), default=0
            ) / 1000
            return
        group.completing = None
        group.rebalancing = False
        now = self._clock()
        group.partition_counts = counts  # what the assignment saw: later changes start another rebalance
        if record is not None:
            logger.info("group %s: generation %d with %d member(s)", group.group_id, record.generation, len(members))
            for member, assigned in zip(members, record.members, strict=True):
                member.joined = False
                member.expires = now + member.request.session_timeout_ms / 1000
                result = JoinResult(record.generation, assigned.member_id, record.strategy, assigned.assignment,
                                    len(members))  # fmt: skip
                member.answer(result)
        if group.again:
            group.again = False
            self._start_rebalance(group, now)
            self._maybe_complete(group)

    def _state(self, group_id: str, image: MetadataImage) -> str:
        group = self._groups.get(group_id)
        if group is not None and group.busy:
            return STATE_PREPARING
        return STATE_STABLE if self._member_count(group_id, image) else STATE_EMPTY

    def _member_count(self, group_id: str, image: MetadataImage) -> int:
        group = self._groups.get(group_id)
        if group is not None:
            return len(group.members)
        committed = image.groups.get(group_id)
        return len(committed.members) if committed is not None else 0

    def _live_counts(self) -> dict[str, int]:
        return {group_id: len(group.members) for group_id, group in self._groups.items()}


def _result(group: GroupImage, member: GroupMember) -> JoinResult:
    return JoinResult(group.generation, member.member_id, group.strategy, member.assignment, len(group.members))
