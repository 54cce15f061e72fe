"""What a failover run is told to do and what it found: settings, per-kill results and their summary (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from raftkafka.bench.stats import percentile
from raftkafka.errors import InvalidConfigError

MEASURED = {
    "controller": "kill -9 of the active controller -> next committed metadata change",
    "broker": "kill -9 of the partition's leader broker -> next acknowledged acks=all write on that partition",
}
"""What one round's seconds are, per target."""
TARGETS = tuple(MEASURED)
CONTROLLER_COUNTS = (3, 5)
BROKERS = {"controller": 1, "broker": 3}
"""Brokers the cluster of each target gets (the broker target's topic has replication factor 3)."""


@dataclass(frozen=True, slots=True)
class FailoverSettings:
    """Which role to kill, in a cluster of how many controllers, how often, after how long idle.

    ``broker_session_timeout_ms`` / ``broker_heartbeat_interval_ms`` (None: the controller's defaults, 9 s and
    2 s as in Kafka) are passed to every controller.
    """

    target: str = "controller"
    controllers: int = 3
    kills: int = 10
    idle_s: float = 10.0
    broker_session_timeout_ms: int | None = None
    broker_heartbeat_interval_ms: int | None = None

    @property
    def brokers(self) -> int:
        return BROKERS[self.target]

    def controller_args(self) -> list[str]:
        """The extra command-line flags of every controller."""
        args = []
        if self.broker_session_timeout_ms is not None:
            args += ["--broker-session-timeout-ms", str(self.broker_session_timeout_ms)]
        if self.broker_heartbeat_interval_ms is not None:
            args += ["--broker-heartbeat-interval-ms", str(self.broker_heartbeat_interval_ms)]
        return args

    def validate(self) -> FailoverSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.target not in TARGETS:
            raise InvalidConfigError(f"--target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        if self.controllers not in CONTROLLER_COUNTS:
            raise InvalidConfigError(f"--controllers must be one of {CONTROLLER_COUNTS}, not {self.controllers}")
        if self.kills < 1 or self.idle_s < 0:
            raise InvalidConfigError("--kills must be >= 1 and --idle-s >= 0")
        for name, value in (
            ("--broker-session-timeout-ms", self.broker_session_timeout_ms),
            ("--broker-heartbeat-interval-ms", self.broker_heartbeat_interval_ms),
        ):
            if value is not None and value < 1:
                raise InvalidConfigError(f"{name} must be >= 1, not {value}")
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values."""
        return {**asdict(self), "brokers": self.brokers}


@dataclass(frozen=True, slots=True)
class KillResult:
    """One round: which node was killed, which one served next (controller or partition leader), after how long."""

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
            "measured": MEASURED[self.settings.target],
            "kills": [{**asdict(kill), "seconds": round(kill.seconds, 4)} for kill in self.kills],
            "seconds": {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self.summary_s).items()},
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One human line."""
        s = self.summary_s
        settings = self.settings
        cluster = f"{settings.controllers} controllers"
        if settings.target == "broker":
            cluster += f", {settings.brokers} brokers, RF=3 min.insync.replicas=2"
        if settings.broker_session_timeout_ms is not None:
            cluster += f", broker session timeout {settings.broker_session_timeout_ms} ms"
        return (
            f"failover ({settings.target}, {cluster}, idle {settings.idle_s:g} s): {s.count} kills, "
            f"{MEASURED[settings.target]} in s: mean {s.mean_s:.3f}, p50 {s.p50_s:.3f}, p99 {s.p99_s:.3f}, "
            f"max {s.max_s:.3f}"
        )
