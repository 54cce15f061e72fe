"""The settings every benchmark workload shares, validated in one place."""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass
from typing import Any, Literal

from raftkafka.errors import InvalidConfigError
from raftkafka.net.idle_poll import validate_idle_poll_us

Acks = Literal["0", "1", "all"]
COMPRESSION_TYPES = ("none", "lz4", "zstd")
CLUSTER_KINDS = ("dev", "3x3")
"""Clusters a workload can start for itself: one ``raftkafka dev`` process, or 3 controllers and 3 brokers."""
CLUSTER_BROKERS = {"dev": 1, "3x3": 3}
MIN_INSYNC_REPLICAS = 2
"""``min.insync.replicas`` of a created topic (lowered to its replication factor when that is smaller)."""


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """What to run: against which cluster, on which topic, how many records of which size, client tuning.

    ``cluster`` names a cluster the workload starts for itself (``bootstrap`` is then ignored until the
    cluster's own is filled in); ``replication_factor`` None means every broker of an own cluster, else 1.
    ``duration_s`` (produce and consume) times that many seconds instead of ``records`` records; ``clients``
    (produce) is the number of client processes sharing the work. ``servers`` are the ``(name, pid)`` of the
    server processes whose CPU the run reports (``--pid``, or every process of an own cluster).
    ``idle_poll_us`` (e2e) is the idle-poll window of the client and of an own cluster's brokers.
    """

    bootstrap: str
    topic: str
    records: int
    record_size: int
    partitions: int = 1
    replication_factor: int | None = None
    acks: Acks = "1"
    linger_ms: int = 5
    batch_size: int = 256 * 1024
    compression: str = "none"
    warmup_records: int = 10_000
    cluster: str | None = None
    duration_s: float | None = None
    clients: int = 1
    servers: tuple[tuple[str, int], ...] = ()
    idle_poll_us: int = 0

    @property
    def planned_records(self) -> int | None:
        """The records a run moves, or None when it lasts ``duration_s`` instead."""
        return self.records if self.duration_s is None else None

    @property
    def replicas(self) -> int:
        """The replication factor a created topic gets."""
        if self.replication_factor is not None:
            return self.replication_factor
        return 1 if self.cluster is None else CLUSTER_BROKERS[self.cluster]

    def topic_config(self) -> dict[str, str]:
        """The config a created topic gets: ``min.insync.replicas`` 2 (at most the replication factor)."""
        return {"min.insync.replicas": str(min(MIN_INSYNC_REPLICAS, self.replicas))}

    def broker_args(self) -> list[str]:
        """Command-line arguments an own cluster's brokers get."""
        return ["--idle-poll-us", str(self.idle_poll_us)] if self.idle_poll_us else []

    def validate(self) -> BenchSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.records < 1:
            raise InvalidConfigError(f"--records must be >= 1, not {self.records}")
        if self.record_size < 0:
            raise InvalidConfigError(f"--record-size must be >= 0, not {self.record_size}")
        if self.partitions < 1:
            raise InvalidConfigError(f"--partitions must be >= 1, not {self.partitions}")
        if self.linger_ms < 0 or self.batch_size < 1 or self.warmup_records < 0:
            raise InvalidConfigError("--linger-ms and --warmup-records must be >= 0 and --batch-size >= 1")
        if self.compression not in COMPRESSION_TYPES:
            raise InvalidConfigError(f"--compression must be one of {', '.join(COMPRESSION_TYPES)}")
        if self.cluster is not None and self.cluster not in CLUSTER_KINDS:
            raise InvalidConfigError(f"--cluster must be one of {', '.join(CLUSTER_KINDS)}, not {self.cluster!r}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise InvalidConfigError(f"--duration must be > 0 seconds, not {self.duration_s}")
        if self.clients < 1:
            raise InvalidConfigError(f"--clients must be >= 1, not {self.clients}")
        validate_idle_poll_us(self.idle_poll_us)
        if self.replicas < 1:
            raise InvalidConfigError(f"--replication-factor must be >= 1, not {self.replicas}")
        if self.cluster is not None and self.replicas > CLUSTER_BROKERS[self.cluster]:
            raise InvalidConfigError(
                f"--replication-factor {self.replicas} needs more brokers than --cluster {self.cluster} has"
            )
        return self

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-ready values (the replication factor resolved; the servers are in the
        result's CPU figures)."""
        settings = {**asdict(self), "replication_factor": self.replicas}
        del settings["servers"]
        return settings


def make_payload(size: int, seed: int = 0) -> bytes:
    """``size`` bytes of random capital letters (compressible like text, not trivially), reproducible by seed."""
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_uppercase, k=size)).encode("ascii")
