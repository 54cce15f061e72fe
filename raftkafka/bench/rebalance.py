"""The rebalance workload: time from ``kill -9`` of one consumer process to its group's next stable generation.

``raftkafka bench rebalance``. A group of ``consumers`` processes (``bench.group_consumer``: the sync ``Consumer``
with ``group_id``, a short ``session_timeout_ms`` and ``heartbeat_interval_ms``) consumes a topic of
``partitions`` partitions. Once DESCRIBE_GROUPS shows the group Stable with every process consuming its share,
each round idles ``idle_s`` plus a random part of a heartbeat interval (so the kill falls anywhere in the
members' heartbeat cycle, which they share after joining together), SIGKILLs one process (in turn: the
longest-running) and starts the clock. Nothing tells the coordinator: the dead member's session expires
``session_timeout_ms`` after its last heartbeat, the coordinator starts a rebalance, the survivors learn it
from their next heartbeat and rejoin, and the next generation is committed. The clock stops at the first
DESCRIBE_GROUPS (asked every ``DESCRIBE_EVERY_S``; the time it was sent) that shows a newer generation,
Stable, with exactly the survivors as members owning every partition once. ``consuming_s`` is the client's
view: when the last survivor reported its new partitions (its rebalance listener ran), within milliseconds of
the other figure (the join answers go out when the generation commits; DESCRIBE_GROUPS is only polled). A new
process then replaces the killed one and the next round waits until the group settled again.
Target (issue 5): the rebalance completes within the session timeout + 1 s.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from raftkafka.bench.consumer_processes import ConsumerProcess, ConsumerProcesses, stable_owners
from raftkafka.bench.failover_result import FailoverSummary, summarize_failovers
from raftkafka.bench.local_cluster import own_cluster
from raftkafka.bench.settings import CLUSTER_KINDS, BenchSettings
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Admin
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError, RaftKafkaError

log = logging.getLogger(__name__)

DESCRIBE_EVERY_S = 0.02
REBALANCE_TIMEOUT_TARGETS = 3
REBALANCE_TIMEOUT_S = 30.0
"""A round waits for the next stable generation up to 3 targets + 30 s."""
CONSUMING_TIMEOUT_S = 30.0
"""How long survivors may take to report their new partitions after the generation is stable."""
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RebalanceSettings:
    """Where (``cluster`` of our own, else ``bootstrap``), which group on which topic, the consumers' timeouts,
    how many kills after how long idle."""

    bootstrap: str
    cluster: str | None = None
    topic: str = "raftkafka-bench-rebalance"
    group: str = "raftkafka-bench-rebalance"
    consumers: int = 3
    partitions: int = 6
    kills: int = 3
    idle_s: float = 1.0
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 500

    @property
    def target_s(self) -> float:
        """Issue 5's target: the rebalance completes within the session timeout + 1 s."""
        return self.session_timeout_ms / 1000 + 1.0

    def validate(self) -> RebalanceSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.cluster is not None and self.cluster not in CLUSTER_KINDS:
            raise InvalidConfigError(f"--cluster must be one of {', '.join(CLUSTER_KINDS)}, not {self.cluster!r}")
        if self.consumers < 2:
            raise InvalidConfigError(f"--consumers must be >= 2 (one is killed), not {self.consumers}")
        if self.partitions < self.consumers:
            raise InvalidConfigError("--partitions must be >= --consumers")
        if self.kills < 1 or self.idle_s < 0:
            raise InvalidConfigError("--kills must be >= 1 and --idle-s >= 0")
        if not 0 < self.heartbeat_interval_ms < self.session_timeout_ms:
            raise InvalidConfigError("--heartbeat-interval-ms must be positive and below --session-timeout-ms")
        if not self.group:
            raise InvalidConfigError("--group must not be empty")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RebalanceRound:
    """One kill: who, the generations before and after, kill -> stable generation, kill -> survivors consuming."""

    killed: str
    generation_before: int
    generation_after: int
    seconds: float
    consuming_s: float


def _rounded(summary: FailoverSummary) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(summary).items()}


@dataclass(frozen=True, slots=True)
class RebalanceResult:
    """Every round of one run."""

    settings: RebalanceSettings
    rounds: tuple[RebalanceRound, ...]

    @property
    def summary_s(self) -> FailoverSummary:
        return summarize_failovers([r.seconds for r in self.rounds])

    @property
    def consuming_summary_s(self) -> FailoverSummary:
        return summarize_failovers([r.consuming_s for r in self.rounds])

    @property
    def within_target(self) -> bool:
        return self.summary_s.max_s <= self.settings.target_s

    def as_dict(self) -> dict[str, Any]:
        """One JSON-ready object (what ``--json`` prints)."""
        return {
            "workload": "rebalance",
            "measured": "kill -9 of one consumer process -> the group's next generation Stable with the survivors "
            "owning every partition (DESCRIBE_GROUPS)",
            "kills": [
                {**asdict(r), "seconds": round(r.seconds, 4), "consuming_s": round(r.consuming_s, 4)}
                for r in self.rounds
            ],
            "seconds": _rounded(self.summary_s),
            "consuming_seconds": _rounded(self.consuming_summary_s),
            "target_s": self.settings.target_s,
            "within_target": self.within_target,
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One human line."""
        s, c, settings = self.summary_s, self.consuming_summary_s, self.settings
        verdict = "within" if self.within_target else "NOT within"
        return (
            f"rebalance ({settings.consumers} consumers, {settings.partitions} partitions, session "
            f"{settings.session_timeout_ms} ms, heartbeat {settings.heartbeat_interval_ms} ms): {s.count} kills, "
            f"kill -9 -> next stable generation in s: p50 {s.p50_s:.3f}, max {s.max_s:.3f} ({verdict} the target "
            f"{settings.target_s:g} s); survivors consuming: p50 {c.p50_s:.3f}, max {c.max_s:.3f}"
        )


OnRound = Callable[[int, RebalanceRound], None]


def wait_next_generation(
    processes: ConsumerProcesses, admin: Admin, survivors: list[str], after: int, settings: RebalanceSettings
) -> tuple[int, int]:
    """Ask DESCRIBE_GROUPS every ``DESCRIBE_EVERY_S`` until a generation newer than ``after`` is Stable with
    exactly ``survivors`` owning every partition; that generation and when the request showing it was sent."""
    timeout_s = settings.target_s * REBALANCE_TIMEOUT_TARGETS + REBALANCE_TIMEOUT_S
    deadline = time.monotonic() + timeout_s
    seen = "nothing"
    while True:
        asked_ns = time.monotonic_ns()
        try:
            description = admin.describe_group(processes.group)
            if description.generation > after and stable_owners(
                description, survivors, settings.partitions, processes.topic
            ):
                return description.generation, asked_ns
            members = sorted(m.client_id for m in description.members)
            seen = f"{description.state} generation {description.generation} with {', '.join(members) or 'no one'}"
        except RaftKafkaError as exc:
            log.debug("describe_group failed: %s", exc)
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(
                f"no stable generation without the killed consumer within {timeout_s:g} s (last seen: {seen}); "
                "does the group coordinator expire sessions?"
            )
        processes.pump(DESCRIBE_EVERY_S)


def kill_round(
    processes: ConsumerProcesses, admin: Admin, settings: RebalanceSettings, generation: int
) -> RebalanceRound:
    """Kill the longest-running consumer; time the next stable generation and the survivors taking it up."""
    victim = processes.alive[0]
    survivors: list[ConsumerProcess] = processes.alive[1:]
    killed_ns = victim.kill()
    after, stable_ns = wait_next_generation(processes, admin, [p.client_id for p in survivors], generation, settings)
    processes.wait_settled(admin, settings.partitions, CONSUMING_TIMEOUT_S)
    consuming_ns = max(p.assigned_ns or killed_ns for p in survivors)
    return RebalanceRound(
        victim.client_id, generation, after, (stable_ns - killed_ns) / NS_PER_S, (consuming_ns - killed_ns) / NS_PER_S
    )


def idle(processes: ConsumerProcesses, seconds: float) -> None:
    """Let ``seconds`` pass while applying the processes' events."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        processes.pump(remaining)


def measure(settings: RebalanceSettings, *, on_round: OnRound | None) -> RebalanceResult:
    """Make the topic, start the group, then run ``settings.kills`` rounds."""
    ensure_topic(
        BenchSettings(
            settings.bootstrap, settings.topic, records=1, record_size=0, partitions=settings.partitions,
            cluster=settings.cluster,
        )
    )  # fmt: skip
    log_level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    rounds = []
    with (
        Admin(bootstrap=settings.bootstrap) as admin,
        ConsumerProcesses(
            settings.bootstrap,
            settings.topic,
            settings.group,
            gate=False,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            log_level=log_level,
        ) as processes,
    ):
        for _ in range(settings.consumers):
            processes.start()
        generation = processes.wait_settled(admin, settings.partitions)
        for index in range(settings.kills):
            idle(processes, settings.idle_s + random.random() * settings.heartbeat_interval_ms / 1000)
            kill = kill_round(processes, admin, settings, generation)
            rounds.append(kill)
            if on_round is not None:
                on_round(index, kill)
            processes.start()
            generation = processes.wait_settled(admin, settings.partitions)
        processes.stop_all()
        try:
            admin.delete_group(settings.group)
        except RaftKafkaError as exc:
            log.warning("could not delete group %r after the run: %s", settings.group, exc)
    return RebalanceResult(settings, tuple(rounds))


def run_rebalance(settings: RebalanceSettings, *, on_round: OnRound | None = None) -> RebalanceResult:
    """Run the workload against ``settings.bootstrap``, or on a cluster of its own (always removed)."""
    settings.validate()
    if settings.cluster is None:
        return measure(settings, on_round=on_round)
    with own_cluster(settings.cluster) as cluster:
        return measure(replace(settings, bootstrap=cluster.bootstrap), on_round=on_round)
