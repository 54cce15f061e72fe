"""The metadata workload: committed metadata changes per second and commit latency, at several depths.

A change is one CREATE_TOPICS round trip for a new one-partition, replication-factor-1 topic, sent to
the active controller itself (found with QUORUM_STATUS), so the figures are the quorum's: decide, commit
one record through Raft, answer. At each in-flight level, ``in_flight`` requests are kept outstanding
over a few pipelined connections (at most ``PER_CONNECTION`` each, below the server's per-connection
limit); latency is send-to-answer per change. A warm-up of one-at-a-time changes comes first; the
topics of each level are deleted after it, outside the clock, so every level starts from the same image.

Against ``--cluster N`` the workload starts its own N controllers and one broker (placement needs a
live broker) and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from raftkafka.bench.local_cluster import LocalCluster
from raftkafka.bench.progress import Progress
from raftkafka.bench.quorum import create_topic, delete_topics, find_active_controller, open_connection
from raftkafka.bench.stats import LatencySummary, summarize_latencies
from raftkafka.client.bootstrap import parse_bootstrap
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError, NotControllerError, RaftKafkaError
from raftkafka.net.connection import Connection
from raftkafka.net.eventloop import run

log = logging.getLogger(__name__)

PER_CONNECTION = 100
"""Requests in flight per connection (the server stops reading a connection at 128)."""
CHANGE_TIMEOUT_S = 35.0
WARMUP_DEADLINE_S = 30.0
WARMUP_RETRY_S = 0.05
PROGRESS_EVERY = 64
CLUSTER_SIZES = (1, 3, 5)


@dataclass(frozen=True, slots=True)
class MetadataSettings:
    """What to run: where (``cluster`` controllers of our own, else ``bootstrap``), how many changes, how deep."""

    bootstrap: str
    cluster: int | None = None
    changes: int = 2_000
    in_flight: tuple[int, ...] = (1, 200)
    warmup_changes: int = 200

    def validate(self) -> MetadataSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.cluster is not None and self.cluster not in CLUSTER_SIZES:
            raise InvalidConfigError(f"--cluster must be one of {CLUSTER_SIZES}, not {self.cluster}")
        if self.changes < 1 or self.warmup_changes < 0:
            raise InvalidConfigError("--changes must be >= 1 and --warmup-changes >= 0")
        if not self.in_flight or min(self.in_flight) < 1:
            raise InvalidConfigError("--in-flight must list depths >= 1")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {**asdict(self), "in_flight": list(self.in_flight)}


def parse_in_flight(text: str) -> tuple[int, ...]:
    """The depths of ``"1,200"``; ``InvalidConfigError`` unless each is an int >= 1."""
    try:
        depths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise InvalidConfigError(f"--in-flight must be comma-separated integers, not {text!r}") from None
    if not depths or min(depths) < 1:
        raise InvalidConfigError(f"--in-flight must list depths >= 1, not {text!r}")
    return depths


def connection_shares(in_flight: int, per_connection: int = PER_CONNECTION) -> list[int]:
    """How many of ``in_flight`` requests go on each connection: as few connections as allowed, evenly filled."""
    count = math.ceil(in_flight / per_connection)
    base, extra = divmod(in_flight, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


@dataclass(frozen=True, slots=True)
class LevelResult:
    """The figures at one in-flight depth."""

    in_flight: int
    connections: int
    changes: int
    seconds: float
    latency: LatencySummary

    @property
    def changes_per_s(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "connections": self.connections,
            "changes": self.changes,
            "seconds": round(self.seconds, 6),
            "changes_per_s": round(self.changes_per_s, 1),
            "latency_ms": {k: round(v, 4) for k, v in asdict(self.latency).items()},
        }

    def summary(self) -> str:
        lat = self.latency
        return (
            f"in flight {self.in_flight:>4} ({self.connections} conn): {self.changes} changes in {self.seconds:.2f} s, "
            f"{self.changes_per_s:,.0f} changes/s, commit latency ms: p50 {lat.p50_ms:.3f}, p99 {lat.p99_ms:.3f}, "
            f"max {lat.max_ms:.3f}"
        )


@dataclass(frozen=True, slots=True)
class MetadataResult:
    """The figures of every in-flight depth, and which controller answered them."""

    settings: MetadataSettings
    controller: str
    levels: tuple[LevelResult, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """One JSON-ready object (what ``--json`` prints)."""
        return {
            "workload": "metadata",
            "change": "CREATE_TOPICS of one 1-partition RF=1 topic (one committed metadata record)",
            "controller": self.controller,
            "levels": [level.as_dict() for level in self.levels],
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One line per depth."""
        head = f"metadata: changes committed by the active controller at {self.controller}"
        return "\n".join([head, *(f"  {level.summary()}" for level in self.levels)])


async def warm_up(address: str, names: Sequence[str]) -> None:
    """Commit ``names`` one at a time, retrying retriable failures until the first succeeds (activation)."""
    connection = await open_connection(address)
    deadline = time.monotonic() + WARMUP_DEADLINE_S
    try:
        for name in names:
            while True:
                try:
                    await create_topic(connection, name, CHANGE_TIMEOUT_S)
                    break
                except RaftKafkaError as exc:
                    if not exc.retriable or time.monotonic() >= deadline:
                        raise
                    if connection.closed:
                        connection = await open_connection(address)
                    await asyncio.sleep(WARMUP_RETRY_S)
    finally:
        connection.close()


async def commit_changes(
    connections: Sequence[Connection], shares: Sequence[int], names: Sequence[str], progress: Progress
) -> list[int]:
    """Create ``names`` keeping ``sum(shares)`` in flight (``shares[i]`` on ``connections[i]``); latencies in ns."""
    latencies = [0] * len(names)
    work = iter(enumerate(names))
    done = 0
    clock = time.perf_counter_ns

    async def lane(connection: Connection) -> None:
        nonlocal done
        for index, name in work:
            start = clock()
            await create_topic(connection, name, CHANGE_TIMEOUT_S)
            latencies[index] = clock() - start
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress.update(done)

    lanes = [lane(connection) for connection, share in zip(connections, shares, strict=True) for _ in range(share)]
    await asyncio.gather(*lanes)
    return latencies


async def measure_level(address: str, in_flight: int, names: Sequence[str], *, show_progress: bool) -> LevelResult:
    """Time ``names`` changes at ``in_flight`` depth against ``address``."""
    shares = connection_shares(in_flight)
    connections = [await open_connection(address) for _ in shares]
    progress = Progress(f"metadata, {in_flight} in flight", len(names), enabled=show_progress)
    try:
        start = time.perf_counter_ns()
        latencies = await commit_changes(connections, shares, names, progress)
        elapsed = time.perf_counter_ns() - start
    finally:
        for connection in connections:
            connection.close()
    progress.finish(len(names))
    return LevelResult(in_flight, len(shares), len(names), elapsed / 1e9, summarize_latencies(latencies))


async def measure(settings: MetadataSettings, addresses: Sequence[str], *, show_progress: bool) -> MetadataResult:
    """Find the active controller through ``addresses``, warm up, then time each in-flight level."""
    controller = await find_active_controller(addresses)
    prefix = f"bench-metadata-{secrets.token_hex(4)}"
    warmup = [f"{prefix}-warmup-{i}" for i in range(settings.warmup_changes)]
    levels = []
    try:
        await warm_up(controller, warmup)
        for depth in settings.in_flight:
            names = [f"{prefix}-{depth}-{i}" for i in range(settings.changes)]
            try:
                levels.append(await measure_level(controller, depth, names, show_progress=show_progress))
            finally:
                await remove_topics(controller, names)
    finally:
        await remove_topics(controller, warmup)
    return MetadataResult(settings, controller, tuple(levels))


async def remove_topics(address: str, names: Sequence[str]) -> None:
    """Delete the run's topics (not timed); a failure is logged, never raised over the run's own outcome."""
    try:
        await delete_topics(address, names)
    except (RaftKafkaError, TimeoutError) as exc:
        log.warning("could not delete the benchmark's topics %s..: %s", names[0] if names else "", exc)


async def run_against_own_cluster(settings: MetadataSettings, *, show_progress: bool) -> MetadataResult:
    """Start ``settings.cluster`` controllers and one broker, measure, and always remove them."""
    assert settings.cluster is not None
    async with LocalCluster(settings.cluster, brokers=1) as cluster:
        return await measure(settings, cluster.controller_addresses, show_progress=show_progress)


def run_metadata(settings: MetadataSettings, *, show_progress: bool) -> MetadataResult:
    """Run the workload as the settings say (own cluster or ``bootstrap``)."""
    settings.validate()
    try:
        if settings.cluster is not None:
            return run(run_against_own_cluster(settings, show_progress=show_progress))
        addresses = [f"{host}:{port}" for host, port in parse_bootstrap(settings.bootstrap)]
        return run(measure(settings, addresses, show_progress=show_progress))
    except TimeoutError:
        raise KafkaTimeoutError("a metadata change was not answered in time") from None
    except NotControllerError as exc:
        raise NotControllerError(
            f"the active controller changed during the run ({exc.message}); an overloaded machine can starve "
            "Raft heartbeats into an election: run again at a quieter moment"
        ) from None
