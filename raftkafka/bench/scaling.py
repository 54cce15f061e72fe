"""How throughput scales: the produce and consume workloads run once per record size (on 1 partition) and once per
partition count (with 100-byte records), each on a topic of its own, every run moving at most ``max_records``
records and ``max_mb`` MB so that it takes a few seconds.

The consume run of a point reads what its produce run wrote (warm-up included), so nothing is filled twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from raftkafka.bench.consume import run_consume
from raftkafka.bench.local_cluster import own_cluster
from raftkafka.bench.produce import run_produce
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import CLUSTER_KINDS, BenchSettings
from raftkafka.bench.stats import MB
from raftkafka.errors import InvalidConfigError

RECORD_SIZES = (10, 100, 1_000, 10_000, 100_000)
PARTITION_COUNTS = (1, 4, 16, 64)
BASE_SIZE = 100
"""The record size of the partition scan."""
BASE_PARTITIONS = 1
"""The partition count of the record-size scan."""
WARMUP_FRACTION = 10
"""Each run warms up with a tenth of its records."""


def parse_counts(text: str, what: str, minimum: int = 1) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``; ``InvalidConfigError`` naming the option ``what`` unless there is at least
    one item and every item is an integer >= ``minimum``."""
    try:
        values = tuple(int(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise InvalidConfigError(f"{what} must be comma-separated integers, not {text!r}") from None
    if not values or min(values) < minimum:
        raise InvalidConfigError(f"{what} must name at least one integer, each >= {minimum}: {text!r}")
    return values


@dataclass(frozen=True, slots=True)
class ScalingSettings:
    """Which points to measure, where, and how much each run moves."""

    bootstrap: str
    cluster: str | None = None
    sizes: tuple[int, ...] = RECORD_SIZES
    partitions: tuple[int, ...] = PARTITION_COUNTS
    max_records: int = 1_000_000
    max_mb: float = 500.0
    topic_prefix: str = "raftkafka-bench-scaling"

    def validate(self) -> ScalingSettings:
        if self.cluster is not None and self.cluster not in CLUSTER_KINDS:
            raise InvalidConfigError(f"--cluster must be one of {', '.join(CLUSTER_KINDS)}, not {self.cluster!r}")
        if self.max_records < 1 or not self.max_mb > 0:
            raise InvalidConfigError("--max-records must be >= 1 and --max-mb > 0")
        return self

    def records_for(self, size: int) -> int:
        """Records a run of ``size``-byte records times: ``max_records``, or fewer to stay within ``max_mb``."""
        return max(1, min(self.max_records, int(self.max_mb * MB) // max(size, 1)))

    def points(self) -> list[tuple[str, int, int]]:
        """``(scan, record size, partitions)`` for each point: the size scan, then the partition scan."""
        return [("size", size, BASE_PARTITIONS) for size in self.sizes] + [
            ("partitions", BASE_SIZE, count) for count in self.partitions
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bootstrap": self.bootstrap, "cluster": self.cluster, "sizes": list(self.sizes),
            "partitions": list(self.partitions), "max_records": self.max_records, "max_mb": self.max_mb,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ScalingPoint:
    """One point: its scan, record size and partitions, and the produce and consume figures measured there."""

    scan: str
    record_size: int
    partitions: int
    produce: BenchResult
    consume: BenchResult

    def as_dict(self) -> dict[str, Any]:
        figures = {}
        for name, run in (("produce", self.produce), ("consume", self.consume)):
            figures[name] = {
                "records": run.throughput.records,
                "seconds": round(run.throughput.seconds, 4),
                "records_per_s": round(run.throughput.records_per_s, 1),
                "mb_per_s": round(run.throughput.mb_per_s, 2),
            }
        return {"scan": self.scan, "record_size": self.record_size, "partitions": self.partitions, **figures}


@dataclass(frozen=True, slots=True)
class ScalingResult:
    """Every point measured, and the two tables."""

    settings: ScalingSettings
    points: tuple[ScalingPoint, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": "scaling",
            "points": [point.as_dict() for point in self.points],
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """Two markdown tables: by record size (1 partition), by partitions (100 B)."""
        lines: list[str] = []
        for scan, title in (("size", "record size (1 partition)"), ("partitions", "partitions (100-byte records)")):
            rows = [point for point in self.points if point.scan == scan]
            if not rows:
                continue
            if lines:
                lines.append("")
            lines.append(
                f"| {title} | records | produce records/s | produce MB/s | consume records/s | consume MB/s |"
            )
            lines.append("|---|---|---|---|---|---|")
            for point in rows:
                label = _size_label(point.record_size) if scan == "size" else str(point.partitions)
                p, c = point.produce.throughput, point.consume.throughput
                lines.append(
                    f"| {label} | {p.records:,} | {p.records_per_s:,.0f} | {p.mb_per_s:,.1f} | "
                    f"{c.records_per_s:,.0f} | {c.mb_per_s:,.1f} |"
                )
        return "\n".join(lines)


def _size_label(size: int) -> str:
    if size >= 1000 and size % 1000 == 0:
        return f"{size // 1000} KB"
    return f"{size} B"


PointCallback = Callable[[ScalingPoint], None]


def measure_point(
    settings: ScalingSettings, base: BenchSettings, scan: str, size: int, partitions: int, *, show_progress: bool
) -> ScalingPoint:
    """Produce, then consume the same records, at one point on a topic of its own."""
    records = settings.records_for(size)
    point = replace(
        base,
        topic=f"{settings.topic_prefix}-{scan}-{size}b-{partitions}p",
        records=records,
        record_size=size,
        partitions=partitions,
        warmup_records=records // WARMUP_FRACTION,
    ).validate()
    produce = run_produce(point, show_progress=show_progress)
    consume = run_consume(point, show_progress=show_progress)
    return ScalingPoint(scan, size, partitions, produce, consume)


def run_scaling(
    settings: ScalingSettings, *, show_progress: bool, on_point: PointCallback = lambda _: None
) -> ScalingResult:
    """Measure every point against ``settings.bootstrap``, or on one cluster of its own (always removed)."""
    settings.validate()

    def measure(bootstrap: str) -> ScalingResult:
        base = BenchSettings(bootstrap=bootstrap, topic="", records=1, record_size=0, cluster=settings.cluster)
        points = []
        for scan, size, partitions in settings.points():
            points.append(measure_point(settings, base, scan, size, partitions, show_progress=show_progress))
            on_point(points[-1])
        return ScalingResult(settings, tuple(points))

    if settings.cluster is None:
        return measure(settings.bootstrap)
    with own_cluster(settings.cluster) as cluster:
        return replace(measure(cluster.bootstrap), settings=replace(settings, bootstrap=cluster.bootstrap))

