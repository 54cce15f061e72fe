"""The broker lifecycle (registration, heartbeats, re-registration, controlled shutdown) against a real
``QuorumController`` on a single-voter metadata log, with broker sessions on an injected clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from raftkafka.broker.lifecycle import BrokerLifecycle
from raftkafka.controller.controller import QuorumController
from raftkafka.controller.sessions import BrokerSessions
from raftkafka.controller.topics import NewTopic
from raftkafka.errors import DuplicateBrokerRegistrationError
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLog
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)
SESSION_S = 9.0


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def quorum(
    data_dir: Path, clock: ManualClock, sessions: BrokerSessions | None = None
) -> AsyncIterator[QuorumController]:
    log = MetadataLog(f"127.0.0.1:{free_port()}", [], data_dir, ensure_cluster_secret(data_dir))
    controller = QuorumController(log, sessions=sessions or BrokerSessions(SESSION_S, clock))
    try:
        await controller.start(10)
        yield controller
    finally:
        await controller.stop()


def lifecycle(controller: QuorumController, incarnation: str, **settings: Any) -> BrokerLifecycle:
    return BrokerLifecycle(
        controller,
        node_id=1,
        incarnation_id=incarnation,
        metadata_offset=lambda: controller.image.offset,
        **{"heartbeat_interval_ms": 50, **settings},
    )


def live_half_a_session_later(sessions: BrokerSessions, clock: ManualClock) -> bool:
    """True only if broker 1 heartbeated at the clock's current time."""
    clock.now += SESSION_S / 2
    try:
        return sessions.is_live(1)
    finally:
        clock.now -= SESSION_S / 2


async def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_heartbeats_keep_the_session_and_a_replaced_registration_is_renewed(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        sessions = BrokerSessions(SESSION_S, clock)

        async with quorum(tmp_path, clock, sessions) as controller:
            broker = lifecycle(controller, "a")
            await broker.register("127.0.0.1", 9001)
            assert broker.broker_epoch is not None and not controller.image.brokers[1].fenced
            broker.start_heartbeats()
            clock.now += SESSION_S / 2
            await poll(lambda: live_half_a_session_later(sessions, clock))
            clock.now += SESSION_S / 2
            assert await controller.fence_expired_brokers() == []

            # The broker's registration is replaced (a partition hid it for a session; another incarnation
            # registered and went away): its next heartbeat is refused as stale, and it registers anew.
            await broker.stop()
            clock.now += SESSION_S
            assert await controller.fence_expired_brokers() == [1]
            other_epoch = await controller.register_broker(1, "127.0.0.1", 9001, "b")
            clock.now += SESSION_S
            broker.start_heartbeats()
            await poll(lambda: (broker.broker_epoch or 0) > other_epoch)
            assert controller.image.brokers[1].incarnation_id == "a"
            assert not controller.image.brokers[1].fenced
            await broker.stop()

    asyncio.run(main())


def test_a_live_duplicate_is_refused_after_the_duplicate_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        async with quorum(tmp_path, clock) as controller:
            await controller.register_broker(1, "127.0.0.1", 9001, "first")
            started = time.monotonic()
            with pytest.raises(DuplicateBrokerRegistrationError):
                await lifecycle(controller, "second", duplicate_timeout_s=0.3).register("127.0.0.1", 9002)
            assert 0.3 <= time.monotonic() - started < 3
            assert controller.image.brokers[1].incarnation_id == "first"

    asyncio.run(main())


def test_controlled_shutdown_moves_leadership_off(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        async with quorum(tmp_path, clock) as controller:
            broker = lifecycle(controller, "a")
            await broker.register("127.0.0.1", 9001)
            await controller.register_broker(2, "127.0.0.1", 9002, "other")
            await controller.create_topics([NewTopic("t", 4, 2)])
            assert controller.image.partitions_led_by(1)
            broker.start_heartbeats()
            assert await broker.controlled_shutdown()
            image = controller.image
            assert image.brokers[1].fenced and image.partitions_led_by(1) == ()
            assert all(p.leader == 2 for p in image.topics["t"].partitions)

    asyncio.run(main())


def test_controlled_shutdown_is_bounded_when_no_controller_answers(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        async with quorum(tmp_path, clock) as controller:
            broker = lifecycle(controller, "a", shutdown_timeout_s=0.5)
            await broker.register("127.0.0.1", 9001)
        started = time.monotonic()  # the controller is stopped: every heartbeat fails with NOT_CONTROLLER
        assert not await broker.controlled_shutdown()
        assert time.monotonic() - started < 2

    asyncio.run(main())


def test_a_shorter_interval_requested_by_the_controller_wins(tmp_path: Path) -> None:
    async def main() -> None:
        clock = ManualClock()
        sessions = BrokerSessions(SESSION_S, clock)
        async with quorum(tmp_path, clock, sessions) as controller:
            broker = lifecycle(controller, "a", heartbeat_interval_ms=600_000, requested_interval_ms=lambda: 20)
            await broker.register("127.0.0.1", 9001)
            broker.start_heartbeats()
            clock.now += SESSION_S / 2
            await poll(lambda: live_half_a_session_later(sessions, clock))  # not 10 minutes later
            await broker.stop()

    asyncio.run(main())
