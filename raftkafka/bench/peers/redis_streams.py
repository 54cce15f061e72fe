"""Redis Streams in ``bench compare``: a ``redis-server`` (Debian's package) with ``appendonly yes`` (fsync every
second, its default) and no RDB snapshots, driven with redis-py and its hiredis parser: ``XADD`` pipelined
``PIPELINE`` commands at a time (one packed command repeated, each reply read with ``Connection.read_response``:
redis-py's ``Pipeline`` costs about a third more per command), ``XRANGE`` ``READ_BATCH`` entries at a time from
after the last id read (replies left as hiredis parses them: redis-py's XRANGE callback, a dict per entry, halves
the rate), and for the round trips an asyncio ``XADD`` on one connection while ``XREAD BLOCK`` waits on another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from raftkafka.bench.local_cluster import HOST
from raftkafka.bench.peers.server_process import (
    ServerProcess,
    client_installed,
    find_binary,
    free_ports,
    not_installed,
)
from raftkafka.bench.progress import Progress
from raftkafka.errors import KafkaTimeoutError
from raftkafka.net.eventloop import run

BINARY = "redis-server"
INSTALL_SERVER = "apt-get install redis-server"
INSTALL_CLIENT = "pip install 'raftkafka[compare]'"
KEY = "compare"
E2E_KEY = "compare-e2e"
FIELD = "v"
PIPELINE = 1_000
READ_BATCH = 10_000
BLOCK_MS = 10_000


class RedisClient:
    """One sync connection for produce and consume; two asyncio ones for the round trips."""

    def __init__(self, port: int) -> None:
        import redis

        self.port = port
        self.redis = redis.Redis(host=HOST, port=port)
        self.redis.response_callbacks.pop("XRANGE", None)
        self.connection = self.redis.connection_pool.get_connection()
        self.last_id = b"-"

    def produce(self, count: int, payload: bytes, progress: Progress) -> None:
        connection = self.connection
        packed = connection.pack_command("XADD", KEY, "*", FIELD, payload)  # bytes, or a list of chunks
        done = 0
        while done < count:
            size = min(PIPELINE, count - done)
            connection.send_packed_command(packed * size)
            for _ in range(size):
                reply = connection.read_response()
                if isinstance(reply, Exception):
                    raise reply
            done += size
            progress.update(done)

    def consume(self, warmup: int, count: int, progress: Progress) -> int:
        self.read(warmup, Progress.silent())
        start = time.perf_counter_ns()
        self.read(count, progress)
        return time.perf_counter_ns() - start

    def read(self, count: int, progress: Progress) -> None:
        """Read the next ``count`` entries of the stream."""
        done = 0
        while done < count:
            size = min(READ_BATCH, count - done)
            entries = self.redis.execute_command("XRANGE", KEY, self.last_id, "+", "COUNT", size)
            if not entries:
                raise KafkaTimeoutError(f"the stream ended after {done} of {count} records")
            self.last_id = b"(" + entries[-1][0]
            done += len(entries)
            progress.update(done)

    def round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        return run(self._round_trips(warmup, count, payload, progress))

    async def _round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        import redis.asyncio

        producer = redis.asyncio.Redis(host=HOST, port=self.port)
        consumer = redis.asyncio.Redis(host=HOST, port=self.port)
        last_id = b"0-0"

        async def read(after: bytes) -> tuple[Any, int]:
            entries = await consumer.execute_command("XREAD", "COUNT", 1, "BLOCK", BLOCK_MS, "STREAMS", E2E_KEY, after)
            return entries, time.perf_counter_ns()

        samples: list[int] = []
        try:
            for index in range(warmup + count):
                start = time.perf_counter_ns()
                reading = asyncio.ensure_future(read(last_id))
                last_id = await producer.execute_command("XADD", E2E_KEY, "*", FIELD, payload)
                entries, received = await reading
                if not entries:
                    raise KafkaTimeoutError(f"record {index} was not read within {BLOCK_MS} ms")
                if index >= warmup:
                    samples.append(received - start)
                    progress.update(index + 1 - warmup)
        finally:
            await producer.aclose()
            await consumer.aclose()
        return samples

    def close(self) -> None:
        self.redis.connection_pool.release(self.connection)
        self.redis.close()


class RedisStreams:
    """``redis-server`` from ``binary`` (default: found on the machine)."""

    def __init__(self, binary: str | None = None) -> None:
        self.override = binary

    def missing(self) -> str | None:
        if find_binary(BINARY, self.override) is None:
            return not_installed(BINARY, self.override, INSTALL_SERVER)
        if not client_installed("redis"):
            return f"the Python client redis is not installed: {INSTALL_CLIENT}"
        return None

    @contextmanager
    def running(self, directory: Path) -> Iterator[RedisClient]:
        binary = find_binary(BINARY, self.override)
        assert binary is not None
        (port,) = free_ports(1)
        command = [
            binary, "--port", str(port), "--bind", HOST, "--dir", str(directory), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--protected-mode", "no", "--daemonize", "no",
        ]  # fmt: skip
        server = ServerProcess("redis-server", command, directory, port).start()
        try:
            server.wait_listening()
            client = RedisClient(port)
            try:
                yield client
            finally:
                client.close()
        finally:
            server.stop()
