"""The metadata workload: committed metadata changes per second and commit latency, at several depths.

A change is one round trip to the active controller itself (found with QUORUM_STATUS) that commits one
metadata record, so the figures are the quorum's: decide, commit one record through Raft, answer. What
the change is comes from ``bench.changes``: CREATE_TOPICS of a new one-partition, replication-factor-1
topic (``--change topics``, the default), or OFFSET_COMMIT of one offset for a group without members
(``--change offsets``). At each in-flight level, ``in_flight`` requests are kept outstanding over a few
pipelined connections (at most ``PER_CONNECTION`` each, below the server's per-connection limit); latency
is send-to-answer per change. A warm-up of one-at-a-time changes comes first; what each level made is
deleted after it, outside the clock, so every level starts from the same image.

Against ``--cluster N`` the workload starts its own N controllers and one broker (placement needs a
live broker) and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from raftkafka.bench.changes import CHANGE_KINDS, Change, ChangeKind, SetUp, change_kind, describe_change
from raftkafka.bench.local_cluster import LocalCluster
from raftkafka.bench.progress import Progress
from raftkafka.bench.quorum import find_active_controller, open_connection
from raftkafka.bench.stats import LatencySummary, summarize_latencies
from raftkafka.client.bootstrap import parse_bootstrap
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError, NotControllerError, RaftKafkaError
from raftkafka.net.connection import Connection
from raftkafka.net.eventloop import run

PER_CONNECTION = 100
"""Requests in flight per connection (the server stops reading a connection at 128)."""
CHANGE_TIMEOUT_S = 35.0
WARMUP_DEADLINE_S = 30.0
WARMUP_RETRY_S = 0.05
PROGRESS_EVERY = 64
CLUSTER_SIZES = (1, 3, 5)
WARMUP_LEVEL = "warmup"


@dataclass(frozen=True, slots=True)
class MetadataSettings:
    """What to run: where (``cluster`` controllers of our own, else ``bootstrap``), which ``change`` (one of
    ``CHANGE_KINDS``), how many, how deep."""

    bootstrap: str
    cluster: int | None = None
    changes: int = 2_000
    in_flight: tuple[int, ...] = (1, 200)
    warmup_changes: int = 200
    change: str = "topics"

    def validate(self) -> MetadataSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.cluster is not None and self.cluster not in CLUSTER_SIZES:
            raise InvalidConfigError(f"--cluster must be one of {CLUSTER_SIZES}, not {self.cluster}")
        if self.changes < 1 or self.warmup_changes < 0:
            raise InvalidConfigError("--changes must be >= 1 and --warmup-changes >= 0")
        if not self.in_flight or min(self.in_flight) < 1:
            raise InvalidConfigError("--in-flight must list depths >= 1")
        if self.change not in CHANGE_KINDS:
            raise InvalidConfigError(f"--change must be one of {', '.join(CHANGE_KINDS)}, not {self.change!r}")
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
            "change": describe_change(self.settings.change),
            "controller": self.controller,
            "levels": [level.as_dict() for level in self.levels],
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One line per depth."""
        head = f"metadata ({self.settings.change}): changes committed by the active controller at {self.controller}"
        return "\n".join([head, *(f"  {level.summary()}" for level in self.levels)])


async def until_committed(address: str, attempts: Sequence[SetUp]) -> None:
    """Commit each of ``attempts`` in turn, retrying retriable failures until ``WARMUP_DEADLINE_S`` (activation)."""
    connection = await open_connection(address)
    deadline = time.monotonic() + WARMUP_DEADLINE_S
    try:
        for attempt in attempts:
            while True:
                try:
                    await attempt(connection, CHANGE_TIMEOUT_S)
                    break
                except RaftKafkaError as exc:
                    if not exc.retriable or time.monotonic() >= deadline:
                        raise
                    if connection.closed:
                        connection = await open_connection(address)
                    await asyncio.sleep(WARMUP_RETRY_S)
    finally:
        connection.close()


async def warm_up(address: str, kind: ChangeKind, count: int) -> None:
    """Prepare ``kind``, then commit ``count`` changes one at a time (retrying until the controller is active)."""
    set_up = kind.set_up_step()
    attempts = [] if set_up is None else [set_up]
    if count:
        change = kind.change(WARMUP_LEVEL, 0)
        attempts += [partial(change_at, change, index) for index in range(count)]
    await until_committed(address, attempts)


async def change_at(change: Change, index: int, connection: Connection, timeout_s: float) -> None:
    """Change number ``index`` (a ``SetUp`` step once ``index`` is bound)."""
    await change(connection, index, timeout_s)


async def commit_changes(
    connections: Sequence[Connection], changes: Sequence[Change], shares: Sequence[int], count: int, progress: Progress
) -> list[int]:
    """Commit ``count`` changes keeping ``sum(shares)`` in flight (``shares[i]`` on ``connections[i]``, each made
    by ``changes[i]``); latencies in ns."""
    latencies = [0] * count
    work = iter(range(count))
    done = 0
    clock = time.perf_counter_ns

    async def lane(connection: Connection, change: Change) -> None:
        nonlocal done
        for index in work:
            start = clock()
            await change(connection, index, CHANGE_TIMEOUT_S)
            latencies[index] = clock() - start
            done += 1
            if done % PROGRESS_EVERY == 0:
                progress.update(done)

    lanes = [
        lane(connection, change)
        for connection, change, share in zip(connections, changes, shares, strict=True)
        for _ in range(share)
    ]
    await asyncio.gather(*lanes)
    return latencies


async def measure_level(
    address: str, kind: ChangeKind, in_flight: int, count: int, *, show_progress: bool
) -> LevelResult:
    """Time ``count`` changes of ``kind`` at ``in_flight`` depth against ``address``."""
    shares = connection_shares(in_flight)
    changes = [kind.change(str(in_flight), lane) for lane in range(len(shares))]
    connections = [await open_connection(address) for _ in shares]
    progress = Progress(f"metadata ({kind.name}), {in_flight} in flight", count, enabled=show_progress)
    try:
        start = time.perf_counter_ns()
        latencies = await commit_changes(connections, changes, shares, count, progress)
        elapsed = time.perf_counter_ns() - start
    finally:
        for connection in connections:
            connection.close()
    progress.finish(count)
    return LevelResult(in_flight, len(shares), count, elapsed / 1e9, summarize_latencies(latencies))


async def measure(settings: MetadataSettings, addresses: Sequence[str], *, show_progress: bool) -> MetadataResult:
    """Find the active controller through ``addresses``, warm up, then time each in-flight level."""
    controller = await find_active_controller(addresses)
    kind = change_kind(settings.change, f"bench-metadata-{secrets.token_hex(4)}")
    levels = []
    try:
        await warm_up(controller, kind, settings.warmup_changes)
        for depth in settings.in_flight:
            try:
                levels.append(
                    await measure_level(controller, kind, depth, settings.changes, show_progress=show_progress)
                )
            finally:
                await kind.clean_up(controller, str(depth))
    finally:
        await kind.clean_up(controller, WARMUP_LEVEL)
        await kind.tear_down(controller)
    return MetadataResult(settings, controller, tuple(levels))


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
