"""The producer against a server that answers PRODUCE with malformed bodies: every record fails with a clear
error at once instead of waiting forever (a real ``RequestServer`` on loopback with stand-in handlers, since a
real broker never sends such answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from raftkafka.aio import AsyncProducer
from raftkafka.errors import UnknownServerError
from raftkafka.net.api import ApiKey
from raftkafka.net.server import RequestServer

MALFORMED = [
    {"no": "topics"},
    {"topics": [["t", [[0, 0, "not an offset", None]]]]},
    {"topics": [["t", [[0]]]]},
    {"topics": 7},
]


@pytest.fixture
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """One broker (node 1) hosting topic ``t`` (one partition) that answers PRODUCE with ``request.param``."""
    address: list[Any] = []

    def metadata(version: int, body: Any) -> Any:
        host, port = address
        return {"brokers": [[1, host, port]], "controller_id": 1,
                "topics": [{"name": "t", "partitions": [[0, 1, 0, [1], [1]]]}]}  # fmt: skip

    def produce(version: int, body: Any) -> Any:
        return request.param

    server = RequestServer({ApiKey.METADATA: metadata, ApiKey.PRODUCE: produce})
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
