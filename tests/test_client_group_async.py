"""Consumer groups with ``AsyncConsumer`` against a real ``raftkafka dev`` process: pattern subscriptions
(a new matching topic makes the member rejoin), coroutine listeners, ``commit_async``, ``unsubscribe``,
and a closed member's partitions going to the others at once."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from raftkafka.aio import AsyncAdmin, AsyncConsumer, AsyncProducer, ConsumerRebalanceListener, Record, TopicPartition
from raftkafka.errors import RaftKafkaError, UnknownTopicError
from tests.test_client_group_sync import FAST, tps

pytestmark = pytest.mark.timeout(120)


async def create(bootstrap: str, *topics: tuple[str, int]) -> None:
    async with AsyncAdmin(bootstrap=bootstrap) as admin:
        for name, partitions in topics:
            await admin.create_topic(name, partitions=partitions)


async def produce(bootstrap: str, topic: str, partitions: int, per_partition: int) -> None:
    async with AsyncProducer(bootstrap=bootstrap, linger_ms=2) as producer:
        futures = [
            await producer.send(topic, b"%d-%d" % (p, i), partition=p)
            for i in range(per_partition)
            for p in range(partitions)
        ]
        await asyncio.gather(*futures)


async def poll_until(
    consumers: list[AsyncConsumer], done: Callable[[], bool], timeout: float = 20.0, sink: list[Record] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not met in time"
        for consumer in consumers:
            records = await consumer.poll(timeout_ms=100)
            if sink is not None:
                sink += records


class AsyncRecorder(ConsumerRebalanceListener):
    def __init__(self) -> None:
        self.calls: list[tuple[str, set[TopicPartition]]] = []

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await asyncio.sleep(0)
        self.calls.append(("revoked", revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await asyncio.sleep(0)
        self.calls.append(("assigned", assigned))


async def test_pattern_subscription_picks_up_new_matching_topics(dev_server: str) -> None:
    await create(dev_server, ("orders-eu", 2), ("orders-us", 1), ("audit", 1))
    listener = AsyncRecorder()
    async with AsyncConsumer(bootstrap=dev_server, group_id="g", metadata_max_age_ms=300, **FAST) as consumer:
        consumer.subscribe(re.compile(r"orders-.*"), listener=listener)
        await poll_until([consumer], lambda: len(consumer.assignment()) == 3)
        assert consumer.assignment() == tps("orders-eu", 2) | tps("orders-us", 1)
        assert consumer.subscription() == {"orders-eu", "orders-us"}
        assert listener.calls == [("assigned", consumer.assignment())]
        await create(dev_server, ("orders-asia", 2), ("not-orders", 1))
        await produce(dev_server, "orders-asia", 2, 5)
        records: list[Record] = []
        await poll_until([consumer], lambda: len(records) >= 10, sink=records)
        assert {r.topic for r in records} == {"orders-asia"}
        assert consumer.subscription() == {"orders-eu", "orders-us", "orders-asia"}
        assert listener.calls[1:] == [("revoked", tps("orders-eu", 2) | tps("orders-us", 1)), (
            "assigned", tps("orders-eu", 2) | tps("orders-us", 1) | tps("orders-asia", 2)
        )]  # fmt: skip


async def test_commit_async_unsubscribe_and_the_async_iterator(dev_server: str) -> None:
    await create(dev_server, ("events", 2))
    await produce(dev_server, "events", 2, 100)
    settings: dict[str, Any] = {**FAST, "enable_auto_commit": False, "max_poll_records": 50}
    done: asyncio.Future[tuple[dict[TopicPartition, int], RaftKafkaError | None]] = asyncio.Future()
    async with AsyncConsumer("events", bootstrap=dev_server, group_id="g", **settings) as consumer:
        seen: list[Record] = []
        async for record in consumer:  # takes batches of 50, yields one by one
            seen.append(record)
            if len(seen) == 30:
                break
        consumer.commit_async(callback=lambda offsets, error: done.set_result((offsets, error)))
        offsets, error = await asyncio.wait_for(done, 10)
        assert error is None
        for tp in tps("events", 2):
            yielded = [r.offset for r in seen if r.partition == tp.partition]
            position = yielded[-1] + 1 if yielded else 0
            assert offsets[tp] == position == await consumer.committed(tp)
            assert await consumer.position(tp) == position
        failed: asyncio.Future[RaftKafkaError | None] = asyncio.Future()
        await consumer.commit_async({TopicPartition("events", 7): 1}, lambda _, e: failed.set_result(e))
        assert isinstance(await failed, UnknownTopicError)
        await consumer.unsubscribe()
        assert consumer.assignment() == set() and consumer.subscription() == set()
        assert await consumer.poll(timeout_ms=200) == []
        consumer.assign([TopicPartition("events", 0)])  # allowed once unsubscribed


async def test_a_closed_member_hands_its_partitions_over_at_once(dev_server: str) -> None:
    await create(dev_server, ("handover", 4))
    settings = {**FAST, "session_timeout_ms": 30_000, "heartbeat_interval_ms": 300}
    async with AsyncConsumer("handover", bootstrap=dev_server, group_id="g", **settings) as staying:
        leaving = AsyncConsumer("handover", bootstrap=dev_server, group_id="g", **settings)
        await leaving.start()
        try:
            await poll_until(
                [staying, leaving], lambda: len(staying.assignment()) == 2 and len(leaving.assignment()) == 2
            )
        finally:
            await leaving.close()
        started = time.monotonic()
        await poll_until([staying], lambda: len(staying.assignment()) == 4)
        assert time.monotonic() - started < 10  # long before the 30 s session timeout: the member left
