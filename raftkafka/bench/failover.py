"""The controller failover workload: time from ``kill -9`` of the active controller to the next committed change.

The workload starts its own cluster (``controllers`` voters and one broker, real processes). Each round
lets the quorum sit idle for ``idle_s`` seconds, finds the active controller with QUORUM_STATUS, SIGKILLs
it and starts the clock. Every surviving controller is then asked for a change (CREATE_TOPICS of a new
one-partition topic, see ``bench.quorum``) every ``PROBE_INTERVAL_S``: a follower answers NOT_CONTROLLER at
once, the new leader once it is active and the record committed. The first success stops the clock, so
the figure is the quorum's (election, activation, one commit), not a client's retry backoff; asking every
survivor covers any NOT_CONTROLLER hint. The killed controller is then restarted on its data dir and the
next round waits until it has caught up with the leader's metadata offset.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from raftkafka.bench.local_cluster import LocalCluster, request
from raftkafka.bench.quorum import create_topic, leader_listener, open_connection
from raftkafka.bench.stats import percentile
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError, RaftKafkaError
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.net.eventloop import run

TARGETS = ("controller",)
CONTROLLER_COUNTS = (3, 5)
PROBE_INTERVAL_S = 0.005
PROBE_TIMEOUT_S = 5.0
"""How long one probe request may wait for its answer before the next is sent."""
FAILOVER_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 60.0
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class FailoverSettings:
    """Which role to kill, in a cluster of how many controllers, how often, after how long idle."""

    target: str = "controller"
    controllers: int = 3
    kills: int = 10
    idle_s: float = 10.0

    def validate(self) -> FailoverSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.target not in TARGETS:
            raise InvalidConfigError(f"--target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        if self.controllers not in CONTROLLER_COUNTS:
            raise InvalidConfigError(f"--controllers must be one of {CONTROLLER_COUNTS}, not {self.controllers}")
        if self.kills < 1 or self.idle_s < 0:
            raise InvalidConfigError("--kills must be >= 1 and --idle-s >= 0")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class KillResult:
    """One round: which controller was killed, which one committed next, and after how many seconds."""

    killed: int
    new_leader: int
    seconds: float


@dataclass(frozen=True, slots=True)
class FailoverSummary:
    """Failover times over all rounds, in seconds (nearest-rank percentiles)."""

    count: int
    mean_s: float
    p50_s: float
    p99_s: float
    max_s: float


def summarize_failovers(seconds: Sequence[float]) -> FailoverSummary:
    """The summary of per-round failover times."""
    if not seconds:
        raise ValueError("no failover samples")
    ordered = sorted(seconds)
    return FailoverSummary(
        count=len(ordered),
        mean_s=sum(ordered) / len(ordered),
        p50_s=percentile(ordered, 0.50),
        p99_s=percentile(ordered, 0.99),
        max_s=ordered[-1],
    )


@dataclass(frozen=True, slots=True)
class FailoverResult:
    """Every round of one run."""

    settings: FailoverSettings
    kills: tuple[KillResult, ...]

    @property
    def summary_s(self) -> FailoverSummary:
        return summarize_failovers([kill.seconds for kill in self.kills])

    def as_dict(self) -> dict[str, Any]:
        """One JSON-ready object (what ``--json`` prints)."""
        return {
            "workload": "failover",
            "target": self.settings.target,
            "measured": "kill -9 of the active controller -> next committed metadata change",
            "kills": [{**asdict(kill), "seconds": round(kill.seconds, 4)} for kill in self.kills],
            "seconds": {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self.summary_s).items()},
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One human line."""
        s = self.summary_s
        return (
            f"failover ({self.settings.target}, {self.settings.controllers} controllers, idle "
            f"{self.settings.idle_s:g} s): {s.count} kills, kill -9 -> next committed change in s: "
            f"mean {s.mean_s:.3f}, p50 {s.p50_s:.3f}, p99 {s.p99_s:.3f}, max {s.max_s:.3f}"
        )


async def quorum_status(addresses: Sequence[str]) -> dict[str, Any]:
    """The QUORUM_STATUS answer of the first of ``addresses`` that knows a leader."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while True:
        for address in addresses:
            try:
                status = await request(address, ApiKey.QUORUM_STATUS, {})
            except (RaftKafkaError, TimeoutError):
                continue
            if leader_listener(status, address) is not None:
                return status  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"no controller of {', '.join(addresses)} knows a leader")
        await asyncio.sleep(POLL_S)


async def first_commit(addresses: Sequence[str], names: Iterator[str]) -> str:
    """Ask every one of ``addresses`` for a change every ``PROBE_INTERVAL_S`` until one commits; its address."""
    connections: dict[str, Connection] = {}

    async def probe(address: str) -> str:
        while True:
            try:
                connection = connections.get(address)
                if connection is None or connection.closed:
                    connection = connections[address] = await open_connection(address)
                await create_topic(connection, next(names), PROBE_TIMEOUT_S)
                return address
            except TimeoutError:
                pass
            except RaftKafkaError as exc:
                if not exc.retriable:
                    raise
            await asyncio.sleep(PROBE_INTERVAL_S)

    tasks = [asyncio.create_task(probe(address)) for address in addresses]
    try:
        done, _ = await asyncio.wait(tasks, timeout=FAILOVER_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise KafkaTimeoutError(f"no controller committed a change within {FAILOVER_TIMEOUT_S:g}s")
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections.values():
            connection.close()


async def wait_caught_up(address: str, offset: int) -> None:
    """Wait until the controller at ``address`` has applied the metadata record at ``offset``."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        try:
            status = await request(address, ApiKey.QUORUM_STATUS, {})
            if status.get("metadata_offset", -1) >= offset:
                return
        except (RaftKafkaError, TimeoutError):
            pass
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"controller {address} did not catch up to offset {offset}")
        await asyncio.sleep(POLL_S)


async def kill_round(cluster: LocalCluster, names: Iterator[str]) -> KillResult:
    """Kill the active controller, time the next commit, restart the victim and wait until it caught up."""
    status = await quorum_status(cluster.controller_addresses)
    victim = cluster.controller(status["leader_id"])
    survivors = [node for node in cluster.controllers if node is not victim]
    start = time.perf_counter()
    victim.kill()
    winner = await first_commit([node.address for node in survivors], names)
    seconds = time.perf_counter() - start
    new_leader = next(node.node_id for node in survivors if node.address == winner)
    victim.start()
    await victim.wait_serving()
    leader_status = await request(winner, ApiKey.QUORUM_STATUS, {})
    await wait_caught_up(victim.address, leader_status["metadata_offset"])
    return KillResult(victim.node_id, new_leader, seconds)


async def measure(
    settings: FailoverSettings, *, on_kill: Callable[[int, KillResult], None] | None = None
) -> FailoverResult:
    """Start the cluster, run ``settings.kills`` rounds, and always remove the cluster."""
    prefix = f"bench-failover-{secrets.token_hex(4)}"
    names = (f"{prefix}-{i}" for i in itertools.count())
    kills = []
    async with LocalCluster(settings.controllers, brokers=1) as cluster:
        await first_commit(cluster.controller_addresses, names)  # the quorum has an active controller
        for index in range(settings.kills):
            await asyncio.sleep(settings.idle_s)
            kill = await kill_round(cluster, names)
            kills.append(kill)
            if on_kill is not None:
                on_kill(index, kill)
    return FailoverResult(settings, tuple(kills))


def run_failover(
    settings: FailoverSettings, *, on_kill: Callable[[int, KillResult], None] | None = None
) -> FailoverResult:
    """Run the workload; ``on_kill(index, kill)`` after each round (the CLI's progress)."""
    return run(measure(settings.validate(), on_kill=on_kill))
