"""NATS JetStream in ``bench compare``: ``nats-server`` (Debian's package) with JetStream and file storage, one
server with streams of 1 replica (R1) or a 3-server cluster with streams of 3 replicas (R3), driven with nats-py on
one asyncio loop. Produce: core publishes with a reply subject each, their JetStream acks counted by one
subscription, at most ``MAX_PENDING`` unacknowledged (nats-py's ``publish_async`` makes a future per message and
reaches about 60% of that rate). Consume: an ordered push consumer (no acks) counting messages in its callback
(``fetch`` on a pull consumer, or ``next_msg``, reach about a quarter of it). Round trips: ``publish_async`` while
an ordered push consumer of new messages waits for the record."""

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
from raftkafka.net.eventloop import new_event_loop

BINARY = "nats-server"
INSTALL_SERVER = "apt-get install nats-server"
INSTALL_CLIENT = "pip install 'raftkafka[compare]'"
STREAM, SUBJECT = "COMPARE", "compare"
E2E_STREAM, E2E_SUBJECT = "COMPARE_E2E", "compare-e2e"
MAX_PENDING = 4_000
"""Published messages whose ack is still awaited (as nats-py's ``publish_async`` allows by default)."""
STALL_TIMEOUT_S = 30.0
ROUND_TRIP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0
PROGRESS_EVERY = 4096
PROGRESS_S = 0.5


def server_config(name: str, port: int, store: Path, cluster: list[tuple[str, int]] | None) -> str:
    """A nats-server configuration: JetStream on ``store``; ``cluster`` is every member's (name, route port)."""
    lines = [f"server_name: {name}", f"listen: {HOST}:{port}", f'jetstream {{ store_dir: "{store}" }}']
    if cluster is not None:
        route_port = dict(cluster)[name]
        routes = ", ".join(f"nats-route://{HOST}:{other}" for member, other in cluster if member != name)
        lines.append(f"cluster {{ name: compare, listen: {HOST}:{route_port}, routes: [{routes}] }}")
    return "\n".join(lines) + "\n"


class Delivered:
    """Counts the messages a push subscription's callback is handed, and notes the time when the warm-up's last
    and the timed part's last arrive (the subscription runs ahead of any reader, so only it can tell)."""

    def __init__(self, warmup: int, count: int) -> None:
        self.warmup = warmup
        self.end = warmup + count
        self.count = 0
        self.start_ns = time.perf_counter_ns()
        self.end_ns = 0
        self.done = asyncio.Event()

    async def on_message(self, message: Any) -> None:
        self.count += 1
        if self.count == self.warmup:
            self.start_ns = time.perf_counter_ns()
        if self.count == self.end:
            self.end_ns = time.perf_counter_ns()
            self.done.set()

    async def wait(self, progress: Progress) -> int:
        """The nanoseconds from the warm-up's last message to the timed part's last; ``KafkaTimeoutError`` if no
        messages come for ``STALL_TIMEOUT_S``."""
        stall_deadline = time.monotonic() + STALL_TIMEOUT_S
        while not self.done.is_set():
            before = self.count
            try:
                await asyncio.wait_for(self.done.wait(), PROGRESS_S)
            except TimeoutError:
                pass
            progress.update(max(0, min(self.count, self.end) - self.warmup))
            if self.count > before:
                stall_deadline = time.monotonic() + STALL_TIMEOUT_S
            elif time.monotonic() >= stall_deadline:
                raise KafkaTimeoutError(f"no messages for {STALL_TIMEOUT_S:g} s after {self.count} of {self.end}")
        return self.end_ns - self.start_ns


class NatsClient:
    """One connection on an event loop of its own that lives as long as the client."""

    def __init__(self, urls: list[str], replicas: int) -> None:
        self.urls = urls
        self.replicas = replicas
        self.runner = asyncio.Runner(loop_factory=new_event_loop)
        self.nc: Any = None
        self.js: Any = None
        self.runner.run(self._connect())

    async def _connect(self) -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig

        self.nc = await nats.connect(servers=self.urls, connect_timeout=5)
        self.js = self.nc.jetstream(publish_async_max_pending=MAX_PENDING)
        deadline = time.monotonic() + READY_TIMEOUT_S
        for name, subject in ((STREAM, SUBJECT), (E2E_STREAM, E2E_SUBJECT)):
            config = StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE, num_replicas=self.replicas)
            while True:  # a cluster just started has no JetStream leader yet
                try:
                    await self.js.add_stream(config)
                    break
                except Exception:
                    if time.monotonic() >= deadline:
                        raise
                    await asyncio.sleep(0.1)

    def produce(self, count: int, payload: bytes, progress: Progress) -> None:
        self.runner.run(self._produce(count, payload, progress))

    async def _produce(self, count: int, payload: bytes, progress: Progress) -> None:
        window = asyncio.Semaphore(MAX_PENDING)
        acked = 0
        errors: list[bytes] = []
        all_acked = asyncio.Event()

        async def on_ack(message: Any) -> None:
            nonlocal acked
            acked += 1
            if b'"error"' in message.data:
                errors.append(message.data)
            window.release()
            if acked == count:
                all_acked.set()

        inbox = self.nc.new_inbox()
        subscription = await self.nc.subscribe(f"{inbox}.*", cb=on_ack)
        publish = self.nc.publish
        try:
            for index in range(count):
                await window.acquire()
                await publish(SUBJECT, payload, reply=f"{inbox}.{index}")
                if index % PROGRESS_EVERY == 0:
                    progress.update(acked)
            if count:
                await asyncio.wait_for(all_acked.wait(), STALL_TIMEOUT_S)
        finally:
            await subscription.unsubscribe()
        if errors:
            raise RuntimeError(f"{len(errors)} publishes failed, the first: {errors[0].decode(errors='replace')}")

    def consume(self, warmup: int, count: int, progress: Progress) -> int:
        return self.runner.run(self._consume(warmup, count, progress))

    async def _consume(self, warmup: int, count: int, progress: Progress) -> int:
        delivered = Delivered(warmup, count)
        subscription = await self.js.subscribe(SUBJECT, stream=STREAM, ordered_consumer=True, cb=delivered.on_message)
        try:
            return await delivered.wait(progress)
        finally:
            await subscription.unsubscribe()

    def round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        return self.runner.run(self._round_trips(warmup, count, payload, progress))

    async def _round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        from nats.js.api import DeliverPolicy

        subscription = await self.js.subscribe(
            E2E_SUBJECT, stream=E2E_STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        samples: list[int] = []
        try:
            for index in range(warmup + count):
                start = time.perf_counter_ns()
                acked = await self.js.publish_async(E2E_SUBJECT, payload)
                try:
                    await subscription.next_msg(timeout=ROUND_TRIP_TIMEOUT_S)
                except TimeoutError:
                    raise KafkaTimeoutError(f"record {index} not delivered within {ROUND_TRIP_TIMEOUT_S:g} s") from None
                received = time.perf_counter_ns()
                await acked
                if index >= warmup:
                    samples.append(received - start)
                    progress.update(index + 1 - warmup)
        finally:
            await subscription.unsubscribe()
        return samples

    def close(self) -> None:
        try:
            if self.nc is not None:
                self.runner.run(self.nc.close())
        finally:
            self.runner.close()


class NatsJetStream:
    """``nats-server`` from ``binary`` (default: found on the machine), one server (``replicas`` 1) or three."""

    def __init__(self, binary: str | None = None, *, replicas: int = 1) -> None:
        self.override = binary
        self.replicas = replicas

    def missing(self) -> str | None:
        if find_binary(BINARY, self.override) is None:
            return not_installed(BINARY, self.override, INSTALL_SERVER)
        if not client_installed("nats"):
            return f"the Python client nats-py is not installed: {INSTALL_CLIENT}"
        return None

    @contextmanager
    def running(self, directory: Path) -> Iterator[NatsClient]:
        binary = find_binary(BINARY, self.override)
        assert binary is not None
        names = [f"n{index}" for index in range(1, self.replicas + 1)]
        ports = free_ports(2 * len(names))
        client_ports = ports[: len(names)]
        cluster = list(zip(names, ports[len(names) :], strict=True)) if self.replicas > 1 else None
        servers = []
        for name, port in zip(names, client_ports, strict=True):
            config = directory / f"{name}.conf"
            config.write_text(server_config(name, port, directory / name, cluster))
            servers.append(ServerProcess(f"nats-server-{name}", [binary, "-c", str(config)], directory, port))
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_listening()
            client = NatsClient([f"nats://{HOST}:{port}" for port in client_ports], self.replicas)
            try:
                yield client
            finally:
                client.close()
        finally:
            for server in servers:
                server.stop()
