"""Broker sessions with an injected clock: expiry, fencing by the active controller, fresh sessions for
every broker after a leader change (a restarted single voter starts a new term), heartbeats and
controlled shutdown through a real single-voter metadata log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from raftkafka.controller.brokers import HeartbeatReply
from raftkafka.controller.controller import QuorumController
from raftkafka.controller.sessions import BrokerSessions
from raftkafka.controller.topics import NewTopic
from raftkafka.errors import DuplicateBrokerRegistrationError, StaleBrokerEpochError
from raftkafka.metadata.image import BrokerRegistration
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLog
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)
TIMEOUT_S = 9.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def test_sessions_expire_after_the_timeout() -> None:
    clock = FakeClock()
    sessions = BrokerSessions(TIMEOUT_S, clock)
    sessions.touch(1)
    clock.now += TIMEOUT_S - 0.01
    assert sessions.is_live(1) and sessions.live() == {1}
    assert sessions.expired([1, 2]) == []  # 2 had no session: it gets a fresh one
    clock.now += 0.01
    assert not sessions.is_live(1)
    assert sessions.expired([1, 2]) == [1]
    sessions.remove(2)
    assert not sessions.is_live(2)


def test_grant_all_starts_fresh_sessions_and_forgets_the_rest() -> None:
    clock = FakeClock()
    sessions = BrokerSessions(TIMEOUT_S, clock)
    sessions.touch(3)
    clock.now += 100
    sessions.grant_all([1, 2])
    assert sessions.live() == {1, 2}
    clock.now += TIMEOUT_S
    assert sessions.expired([1, 2]) == [1, 2]


@asynccontextmanager
async def active_controller(data_dir: Path, clock: FakeClock) -> AsyncIterator[QuorumController]:
    log = MetadataLog(f"127.0.0.1:{free_port()}", [], data_dir, ensure_cluster_secret(data_dir))
    controller = QuorumController(log, sessions=BrokerSessions(TIMEOUT_S, clock))
    try:
        await controller.start(10)
        assert controller.is_active
        yield controller
    finally:
        await controller.stop()


def test_silent_brokers_are_fenced_and_heartbeats_bring_them_back(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with active_controller(tmp_path, clock) as controller:
            epochs = {n: await controller.register_broker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in (1, 2)}
            await controller.create_topics([NewTopic("t", 2, 2)])
            clock.now += TIMEOUT_S / 2
            await controller.heartbeat(2, epochs[2], controller.image.offset, want_shutdown=False)
            clock.now += TIMEOUT_S / 2
            assert await controller.fence_expired_brokers() == [1]
            image = controller.image
            assert image.brokers[1].fenced and not image.brokers[2].fenced
            assert [p.leader for p in image.topics["t"].partitions] == [2, 2]
            assert await controller.fence_expired_brokers() == []

            with pytest.raises(StaleBrokerEpochError):
                await controller.heartbeat(1, epochs[1] + 100, image.offset, want_shutdown=False)
            reply = await controller.heartbeat(1, epochs[1], image.offset, want_shutdown=False)
            assert reply == HeartbeatReply(fenced=False, should_shutdown=False)
            assert not controller.image.brokers[1].fenced

    run(main())


def test_a_new_active_controller_grants_fresh_sessions_before_fencing(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with active_controller(tmp_path, clock) as controller:
            await controller.register_broker(1, "127.0.0.1", 9001, "i1")
            first_term = controller.epoch
        clock.now += 10 * TIMEOUT_S  # long silence while no controller was active
        async with active_controller(tmp_path, clock) as controller:
            assert controller.epoch > first_term
            assert await controller.fence_expired_brokers() == []  # the session started at activation
            clock.now += TIMEOUT_S
            assert await controller.fence_expired_brokers() == [1]

    run(main())


def test_a_session_granted_at_activation_does_not_hold_the_node_id(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with active_controller(tmp_path, clock) as controller:
            for n in (1, 2):
                await controller.register_broker(n, "127.0.0.1", 9000 + n, f"i{n}")
        async with active_controller(tmp_path, clock) as controller:
            # never heard from in this term: the restarted process takes its dead predecessor's place at once
            epoch = await controller.register_broker(1, "127.0.0.1", 9001, "i1-restarted")
            assert controller.image.brokers[1] == BrokerRegistration(1, "127.0.0.1", 9001, "i1-restarted", False, epoch)
            # heard from in this term: a live process, so another incarnation stays refused
            await controller.heartbeat(2, controller.image.brokers[2].epoch, controller.image.offset, False)
            with pytest.raises(DuplicateBrokerRegistrationError):
                await controller.register_broker(2, "127.0.0.1", 9002, "i2-impostor")
            with pytest.raises(DuplicateBrokerRegistrationError):
                await controller.register_broker(1, "127.0.0.1", 9001, "i1-impostor")

    run(main())


def test_controlled_shutdown_through_the_controller(tmp_path: Path) -> None:
    async def main() -> None:
        clock = FakeClock()
        async with active_controller(tmp_path, clock) as controller:
            epochs = {n: await controller.register_broker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in (1, 2)}
            await controller.create_topics([NewTopic("t", 2, 2)])
            reply = await controller.heartbeat(1, epochs[1], controller.image.offset, want_shutdown=True)
            assert reply == HeartbeatReply(fenced=True, should_shutdown=True)
            image = controller.image
            assert image.brokers[1].fenced and image.partitions_led_by(1) == ()
            assert all(p.isr == (2,) for p in image.topics["t"].partitions)
            # its session is gone: a restarted process may register at once
            await controller.register_broker(1, "127.0.0.1", 9001, "i1-next")

    run(main())


def test_without_sessions_nobody_is_fenced_for_silence(tmp_path: Path) -> None:
    async def main() -> None:
        log = MetadataLog(f"127.0.0.1:{free_port()}", [], tmp_path, ensure_cluster_secret(tmp_path))
        controller = QuorumController(log)  # raftkafka dev: the broker lives in this process
        try:
            await controller.start(10)
            await controller.register_broker(1, "127.0.0.1", 9001, "i1")
            assert await controller.fence_expired_brokers() == []
        finally:
            await controller.stop()

    run(main())
