"""The clients against a server whose PRODUCE and FETCH answers are malformed: the producer's records fail with a
clear error at once instead of waiting forever, and the consumer backs off instead of fetching in a tight loop (a
real ``RequestServer`` on loopback with stand-in handlers, since a real broker never sends such answers)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from raftkafka.aio import AsyncConsumer, AsyncProducer
from raftkafka.errors import UnknownServerError
from raftkafka.net.api import ApiKey
from raftkafka.net.server import RequestServer
from raftkafka.structs import TopicPartition

MALFORMED = [
    {"no": "topics"},
    {"topics": [["t", [[0, 0, "not an offset", None]]]]},
    {"topics": [["t", [[0]]]]},
    {"topics": 7},
]


@pytest.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """One broker (node 1) hosting topic ``t`` (one partition) that answers PRODUCE and FETCH with
    ``request.param``; the requests it answered are ``request.node.answered``."""
    address: list[Any] = []

    def metadata(version: int, body: Any) -> Any:
        host, port = address
        return {"brokers": [[1, host, port]], "controller_id": 1,
                "topics": [{"name": "t", "partitions": [[0, 1, 0, [1], [1]]]}]}  # fmt: skip

    def answer(version: int, body: Any) -> Any:
        fetches.append(body)
        return request.param

    fetches: list[Any] = []
    server = RequestServer({ApiKey.METADATA: metadata, ApiKey.PRODUCE: answer, ApiKey.FETCH: answer})
    request.node.answered = fetches
    address.extend(await server.start("127.0.0.1", 0))
    yield f"{address[0]}:{address[1]}"
    await server.close()


@pytest.mark.parametrize("broker", MALFORMED, indirect=True)
async def test_a_malformed_produce_answer_fails_its_records_at_once(broker: str) -> None:
    async with AsyncProducer(broker, acks=1, linger_ms=0, delivery_timeout_ms=60_000) as producer:
        futures = [await producer.send("t", b"v%d" % i) for i in range(3)]
        for future in futures:
            with pytest.raises(UnknownServerError, match="malformed PRODUCE answer"):
                await future


@pytest.mark.parametrize("broker", MALFORMED, indirect=True)
async def test_a_malformed_fetch_answer_makes_the_consumer_back_off(
    broker: str, request: pytest.FixtureRequest
) -> None:
    async with AsyncConsumer(bootstrap=broker, retry_backoff_ms=100) as consumer:
        consumer.assign([TopicPartition("t", 0)])
        consumer.seek(TopicPartition("t", 0), 0)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert await consumer.poll(timeout_ms=100) == []
    fetched = len(request.node.answered)
    assert 2 <= fetched <= 20  # retried after each 100 ms backoff, not in a tight loop
