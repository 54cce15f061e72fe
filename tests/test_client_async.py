"""The asyncio twins (``raftkafka.aio``) against a real ``raftkafka dev`` process."""

from __future__ import annotations

import asyncio

import pytest

from raftkafka.aio import AsyncAdmin, AsyncConsumer, AsyncProducer, Record, RecordMetadata, TopicPartition
from raftkafka.errors import BrokerNotAvailableError, InvalidTopicError
from tests.processes import free_port


async def test_async_admin_producer_consumer_round_trip(dev_server: str) -> None:
    async with AsyncAdmin(bootstrap=dev_server) as admin:
        await admin.create_topic("aio", partitions=3)
        assert "aio" in await admin.list_topics()
        assert len((await admin.describe_topic("aio")).partitions) == 3
        with pytest.raises(InvalidTopicError):
            await admin.create_topic("no/slashes")
    async with AsyncProducer(bootstrap=dev_server, linger_ms=1) as producer:
        futures = [
            await producer.send("aio", b"v%d" % i, key=b"k%d" % (i % 5), headers=[("i", b"%d" % i)])
            for i in range(300)
        ]
        metas = await asyncio.gather(*futures)
        assert all(isinstance(m, RecordMetadata) and m.offset >= 0 for m in metas)
        last = await producer.send_and_wait("aio", b"last", partition=0, timestamp_ms=123)
        assert (last.partition, last.timestamp) == (0, 123)
    async with AsyncConsumer("aio", bootstrap=dev_server, auto_offset_reset="earliest", consumer_timeout_ms=500) as c:
        records = [record async for record in c]
        assert len(records) == 301 and all(isinstance(r, Record) for r in records)
        by_value = {r.value: r for r in records}
        for i, meta in enumerate(metas):
            record = by_value[b"v%d" % i]
            assert (record.partition, record.offset, record.key, record.headers) == (
                meta.partition, meta.offset, b"k%d" % (i % 5), (("i", b"%d" % i),)
            )
        assert by_value[b"last"][1:4] == (0, last.offset, 123)
        tp = TopicPartition("aio", 0)
        c.seek(tp, last.offset)
        assert await c.position(tp) == last.offset
        assert [r.value for r in await c.poll(timeout_ms=5000)] == [b"last"]
        assert await c.end_offsets([tp]) == {tp: last.offset + 1}


async def test_async_flush_and_close_resolve_every_future(dev_server: str) -> None:
    async with AsyncAdmin(bootstrap=dev_server) as admin:
        await admin.create_topic("aflush")
    producer = AsyncProducer(bootstrap=dev_server, linger_ms=60_000, acks=1)
    await producer.start()
    first = [await producer.send("aflush", b"a") for _ in range(5)]
    await producer.flush(timeout=10)
    assert all(f.done() for f in first)
    second = [await producer.send("aflush", b"b") for _ in range(5)]
    await producer.close()
    assert [(await f).offset for f in first + second] == list(range(10))


async def test_async_unreachable_bootstrap() -> None:
    with pytest.raises(BrokerNotAvailableError):
        async with AsyncProducer(bootstrap=f"127.0.0.1:{free_port()}"):
            pass
    with pytest.raises(BrokerNotAvailableError):
        async with AsyncConsumer(bootstrap=f"127.0.0.1:{free_port()}"):
            pass
