"""The group coordinator of a real QuorumController (single-voter MetadataLog): joins, rebalances, sessions,
generation-fenced commits, restarts, partition changes, deletion and offsets retention."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from raftkafka.controller.controller import QuorumController
from raftkafka.controller.group_coordinator import STATE_EMPTY, STATE_STABLE, GroupLimits, JoinRequest, JoinResult
from raftkafka.controller.topics import NewTopic
from raftkafka.errors import (
    GroupIdNotFoundError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    InvalidGroupIdError,
    InvalidSessionTimeoutError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from tests.test_controller_quorum import controller

pytestmark = pytest.mark.timeout(60)

FAST = GroupLimits(tick_s=0.02)


def join(
    member_id: str, *topics: str, session_ms: int = 10_000, strategies: tuple[str, ...] = ("range",)
) -> JoinRequest:
    return JoinRequest("g", member_id, "test", topics or ("events",), strategies, session_ms, 10_000)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def rejoin_all(
    quorum: QuorumController,
    requests: list[JoinRequest],
    started: dict[str, asyncio.Future[JoinResult]] | None = None,
    timeout: float = 10.0,
) -> list[JoinResult]:
    """Join with every request (but those whose join already ``started``) and act as the members' clients
    would (heartbeat; join again when told) until all of them are in one generation, stable; their results
    in request order."""
    deadline = time.monotonic() + timeout
    joins = {
        r.member_id: asyncio.ensure_future(quorum.groups.join(r))
        for r in requests
        if r.member_id not in (started or {})
    }
    joins.update(started or {})
    results: dict[str, JoinResult] = {}
    while True:
        await asyncio.sleep(0.02)
        assert time.monotonic() < deadline, "the group did not settle in time"
        for r in requests:
            join = joins.get(r.member_id)
            if join is not None and join.done():
                results[r.member_id] = join.result()
                del joins[r.member_id]
            elif join is None:
                try:
                    quorum.groups.heartbeat("g", r.member_id, results[r.member_id].generation)
                except (RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError):
                    joins[r.member_id] = asyncio.ensure_future(quorum.groups.join(r))
        if not joins and len({result.generation for result in results.values()}) == 1:
            return [results[r.member_id] for r in requests]


def owners(results: list[JoinResult]) -> dict[tuple[str, int], str]:
    owned: dict[tuple[str, int], str] = {}
    for result in results:
        for tp in result.assignment:
            assert tp not in owned, f"{tp} has two owners"
            owned[tp] = result.member_id
    return owned


async def with_topic(quorum: QuorumController, partitions: int = 6, name: str = "events") -> None:
    [result] = await quorum.create_topics([NewTopic(name, partitions, 1)])
    assert result.error_code == 0


def test_members_share_partitions_and_a_new_member_rebalances_the_group(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            await with_topic(quorum)
            first = await rejoin_all(quorum, [join("a"), join("b"), join("c")])
            generations = {r.generation for r in first}
            assert len(generations) == 1
            assert sorted(len(r.assignment) for r in first) == [2, 2, 2]
            assert len(owners(first)) == 6
            assert all(r.members == 3 for r in first)
            generation = generations.pop()
            quorum.groups.heartbeat("g", "a", generation)  # stable: no error

            joining = asyncio.ensure_future(quorum.groups.join(join("d")))
            await asyncio.sleep(0)
            with pytest.raises(RebalanceInProgressError):
                quorum.groups.heartbeat("g", "a", generation)
            second = await rejoin_all(quorum, [join("a"), join("b"), join("c"), join("d")], {"d": joining})
            assert {r.generation for r in second} == {generation + 1}
            assert sorted(len(r.assignment) for r in second) == [1, 1, 2, 2]
            assert len(owners(second)) == 6
            with pytest.raises(IllegalGenerationError):
                quorum.groups.heartbeat("g", "a", generation)

    asyncio.run(main())


def test_a_silent_member_is_removed_and_its_partitions_move(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            await with_topic(quorum, 4)
            [a, b] = await rejoin_all(quorum, [join("a", session_ms=5_000), join("b", session_ms=600)])

            async def b_expired() -> bool:
                quorum.groups.heartbeat("g", "a", a.generation) if not _rebalancing(quorum) else None
                return _rebalancing(quorum)

            await until(b_expired)
            with pytest.raises(UnknownMemberIdError):
                quorum.groups.heartbeat("g", "b", b.generation)
            with pytest.raises(UnknownMemberIdError):  # a removed member is fenced before the next generation
                await quorum.groups.commit_offsets("g", "b", b.generation, [("events", 0, 1)])
            [alone] = await rejoin_all(quorum, [join("a", session_ms=5_000)])
            assert (alone.generation, len(alone.assignment)) == (a.generation + 1, 4)

    asyncio.run(main())


def _rebalancing(quorum: QuorumController) -> bool:
    return quorum.groups.list_groups()[0][1] == "PreparingRebalance"


def test_commits_are_fenced_by_generation(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            await with_topic(quorum, 2)
            [a] = await rejoin_all(quorum, [join("a")])
            results = await quorum.groups.commit_offsets("g", "a", a.generation, [("events", 0, 5), ("events", 7, 1)])
            assert [(t, p, e is None) for t, p, e in results] == [("events", 0, True), ("events", 7, False)]
            assert quorum.groups.committed_offsets("g") == {("events", 0): 5}

            joining = asyncio.ensure_future(quorum.groups.join(join("b")))
            await asyncio.sleep(0)
            await quorum.groups.commit_offsets("g", "a", a.generation, [("events", 0, 6)])  # allowed while rebalancing
            await rejoin_all(quorum, [join("a"), join("b")], {"b": joining})
            with pytest.raises(IllegalGenerationError):  # a's old generation can no longer overwrite anything
                await quorum.groups.commit_offsets("g", "a", a.generation, [("events", 0, 1)])
            with pytest.raises(UnknownMemberIdError):
                await quorum.groups.commit_offsets("g", "", -1, [("events", 0, 1)])  # the group has members
            assert quorum.groups.committed_offsets("g") == {("events", 0): 6}

    asyncio.run(main())


def test_groups_and_offsets_survive_a_controller_restart(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            await with_topic(quorum, 2)
            [a, b] = await rejoin_all(quorum, [join("a"), join("b")])
            await quorum.groups.commit_offsets("g", "a", a.generation, [("events", 0, 11)])
        async with controller(tmp_path, group_limits=FAST) as quorum:
            quorum.groups.heartbeat("g", "a", a.generation)  # members carry on in their generation
            quorum.groups.heartbeat("g", "b", b.generation)
            assert quorum.groups.committed_offsets("g") == {("events", 0): 11}
            assert quorum.groups.describe_group("g")[0] == STATE_STABLE
            [again] = await rejoin_all(quorum, [join("a")])  # unchanged subscription: answered at once
            assert (again.generation, again.assignment) == (a.generation, a.assignment)
            assert len(a.assignment) == len(b.assignment) == 1

    asyncio.run(main())


def test_partition_changes_of_subscribed_topics_rebalance(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            [a] = await rejoin_all(quorum, [join("a", "later")])
            assert a.assignment == ()  # subscribed to a topic that does not exist yet
            await with_topic(quorum, 3, "later")

            async def rebalancing() -> bool:
                return _rebalancing(quorum)

            await until(rebalancing)
            [a2] = await rejoin_all(quorum, [join("a", "later")])
            assert sorted(a2.assignment) == [("later", 0), ("later", 1), ("later", 2)]

    asyncio.run(main())


def test_delete_groups_and_offsets_retention(tmp_path: Path) -> None:
    limits = GroupLimits(tick_s=0.02, offsets_retention_ms=300, retention_check_interval_s=0.05)

    async def main() -> None:
        async with controller(tmp_path, group_limits=limits) as quorum:
            await with_topic(quorum, 1)
            [a] = await rejoin_all(quorum, [join("a")])
            [(_, error)] = await quorum.groups.delete_groups(["g"])
            assert isinstance(error, NonEmptyGroupError)
            [(_, error)] = await quorum.groups.delete_groups(["nope"])
            assert isinstance(error, GroupIdNotFoundError)
            await quorum.groups.commit_offsets("g", "a", a.generation, [("events", 0, 3)])
            await quorum.groups.leave("g", "a")

            async def expired() -> bool:
                return "g" not in quorum.image.groups

            await until(expired)  # empty, and past offsets retention

            await quorum.groups.commit_offsets("solo", "", -1, [("events", 0, 1)])
            assert quorum.groups.describe_group("solo")[0] == STATE_EMPTY

    asyncio.run(main())


def test_bad_joins_are_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, group_limits=FAST) as quorum:
            with pytest.raises(InvalidGroupIdError):
                await quorum.groups.join(JoinRequest("", "m", "c", ("t",), ("range",), 10_000, 10_000))
            with pytest.raises(InvalidSessionTimeoutError):
                await quorum.groups.join(join("a", session_ms=1))
            with pytest.raises(InconsistentGroupProtocolError):
                await quorum.groups.join(join("a", strategies=("magic",)))
            await quorum.groups.join(join("a", strategies=("roundrobin",)))
            with pytest.raises(InconsistentGroupProtocolError):
                await quorum.groups.join(join("b", strategies=("range",)))
            await quorum.groups.leave("g", "nobody")  # not an error

    asyncio.run(main())
