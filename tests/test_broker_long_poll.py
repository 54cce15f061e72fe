"""A long-poll fetch wakes on the append that follows it, even when both arrive in one read of the socket."""

from __future__ import annotations

import asyncio

from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.storage.record_batch import encode_batch
from tests.processes import DevServer


async def test_fetch_then_produce_in_one_write_wakes_the_fetch(dev_process: DevServer) -> None:
    conn = await Connection.open("127.0.0.1", dev_process.port)
    created = await conn.request(
        ApiKey.CREATE_TOPICS, 0, {"topics": [{"name": "wake", "partitions": 1, "replication_factor": 1}]}
    )
    assert created["topics"][0][1] == 0
    batch = encode_batch([[0, None, b"v", []]], first_timestamp=1, max_timestamp=1)
    for offset in range(20):
        # Both frames go out in one write, so the server reads them in one step: the fetch must already be
        # registered for wake-ups when the produce appends.
        fetch = conn.send(ApiKey.FETCH, 0, {"max_wait_ms": 30_000, "min_bytes": 1, "max_bytes": 1 << 20,
                                            "topics": [["wake", [[0, offset, 1 << 20]]]]})
        produce = conn.send(ApiKey.PRODUCE, 0, {"acks": 1, "topics": [["wake", [[0, batch]]]]})
        async with asyncio.timeout(10):  # far below the 30 s long poll: only a missed wake-up gets here
            body = await fetch
        assert (await produce)["topics"][0][1][0][1] == 0
        (_, ((_, error, high_watermark, _, records),)), = body["topics"]
        assert error == 0 and high_watermark == offset + 1 and b"v" in records
    conn.close()
