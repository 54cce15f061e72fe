"""Idle polling: the loop does not sleep while the window is open, stops by itself after it, and a broker and
clients configured with it serve records as without."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from raftkafka.aio import AsyncAdmin, AsyncConsumer, AsyncProducer
from raftkafka.broker.config import BrokerConfig
from raftkafka.errors import InvalidConfigError
from raftkafka.net.eventloop import new_event_loop
from raftkafka.net.idle_poll import MAX_IDLE_POLL_US, IdlePoll, idle_poll
from raftkafka.structs import TopicPartition
from tests.processes import DevServer

WINDOW_US = 100_000
"""Long enough to watch the loop not sleeping through 20 timers of 1 ms."""
TIMERS = 20


def sleeps_of_this_thread() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


async def sleeps_during_timers(count: int = TIMERS, seconds: float = 0.001) -> int:
    """How often this thread went to sleep while awaiting ``count`` timers in a row (asleep in epoll until
    each fires, unless the loop polls; waiting for the GIL held by another thread would count too)."""
    before = sleeps_of_this_thread()
    for _ in range(count):
        await asyncio.sleep(seconds)
    return sleeps_of_this_thread() - before


T = TypeVar("T")


def on_a_fresh_loop(make: Callable[[], Awaitable[T]]) -> T:
    """Run on a loop of the kind the clients and servers use (uvloop), not pytest-asyncio's."""
    loop = new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()


def test_the_loop_polls_instead_of_sleeping_while_the_window_is_open() -> None:
    async def measure() -> tuple[int, int]:
        poll = IdlePoll(WINDOW_US)
        poll.kick()
        polling = await sleeps_during_timers()
        deadline = time.monotonic() + 5
        while poll._handle is not None:  # the window closes by itself
            assert time.monotonic() < deadline, "still polling long after the window"
            await asyncio.sleep(0.01)
        sleeping = await sleeps_during_timers()
        return polling, sleeping

    polling, sleeping = on_a_fresh_loop(measure)
    assert polling <= TIMERS // 5  # none, unless another thread of the test process held the GIL meanwhile
    assert sleeping >= TIMERS // 2


def test_each_kick_extends_the_window_and_stop_ends_it() -> None:
    async def run() -> None:
        poll = IdlePoll(WINDOW_US)
        poll.kick()
        first = poll._until
        await asyncio.sleep(0)
        poll.kick()
        assert poll._until > first and poll._handle is not None
        poll.stop()
        assert poll._handle is None
        assert await sleeps_during_timers(count=1, seconds=0.01) >= 1

    on_a_fresh_loop(run)


@pytest.mark.parametrize("window_us", [-1, MAX_IDLE_POLL_US + 1])
def test_a_window_out_of_range_is_refused(window_us: int, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError):
        IdlePoll(window_us)
    with pytest.raises(InvalidConfigError):
        BrokerConfig(node_id=1, data_dir=tmp_path, idle_poll_us=window_us).validate()
    assert idle_poll(0) is None


async def test_a_polling_broker_and_polling_clients_deliver_records(tmp_path: Path) -> None:
    server = DevServer(tmp_path / "dev", "--idle-poll-us", "500").start()
    try:
        async with AsyncAdmin(server.bootstrap) as admin:
            await admin.create_topic("polled", partitions=1)
        async with (
            AsyncProducer(server.bootstrap, acks=1, linger_ms=0, idle_poll_us=500) as producer,
            AsyncConsumer(bootstrap=server.bootstrap, auto_offset_reset="earliest", idle_poll_us=500) as consumer,
        ):
            consumer.assign([TopicPartition("polled", 0)])
            for index in range(20):
                sent = await producer.send_and_wait("polled", b"%d" % index)
                records = await consumer.poll(5000, 1)
                assert [(r.offset, r.value) for r in records] == [(sent.offset, b"%d" % index)]
    finally:
        server.stop()
