"""Pure benchmark arithmetic: latency percentiles and throughput figures (no clocks, no I/O)."""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MB = 1024 * 1024
"""Bytes in the "MB" of MB/s, as in Kafka's perf tools."""

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def percentile(sorted_samples: Sequence[int | float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of samples already sorted ascending."""
    if not sorted_samples:
        raise ValueError("no samples")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"percentile fraction must be in (0, 1], not {fraction}")
    rank = math.ceil(fraction * len(sorted_samples))
    return float(sorted_samples[max(rank, 1) - 1])


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency percentiles of one run, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def summarize_latencies(samples_ns: Sequence[int]) -> LatencySummary:
    """Percentiles (nearest rank) of latency samples given in nanoseconds."""
    if not samples_ns:
        raise ValueError("no latency samples")
    ordered = sorted(samples_ns)
    return LatencySummary(
        count=len(ordered),
        mean_ms=sum(ordered) / len(ordered) / NS_PER_MS,
        p50_ms=percentile(ordered, 0.50) / NS_PER_MS,
        p99_ms=percentile(ordered, 0.99) / NS_PER_MS,
        p999_ms=percentile(ordered, 0.999) / NS_PER_MS,
        max_ms=ordered[-1] / NS_PER_MS,
    )


@dataclass(frozen=True, slots=True)
class Throughput:
    """How many records and bytes moved in how long."""

    records: int
    bytes: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        """Records per second (0 for an empty interval)."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        """Payload megabytes (2**20 bytes) per second."""
        return self.bytes / MB / self.seconds if self.seconds > 0 else 0.0


def throughput(records: int, record_size: int, elapsed_ns: int) -> Throughput:
    """The throughput of ``records`` records of ``record_size`` payload bytes moved in ``elapsed_ns``."""
    return Throughput(records=records, bytes=records * record_size, seconds=elapsed_ns / NS_PER_S)


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of one figure over repeated runs, its range and its interquartile range."""

    median: float
    min: float
    max: float
    q1: float
    q3: float


def spread(values: Sequence[float]) -> Spread:
    """Median, min/max and quartiles (inclusive method: the quartiles of 1 or 2 runs lie within their range)."""
    if not values:
        raise ValueError("no values")
    if len(values) == 1:
        q1 = q3 = float(values[0])
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Spread(median=statistics.median(values), min=min(values), max=max(values), q1=q1, q3=q3)


def records_at(timeline: Sequence[tuple[float, int]], seconds: float) -> float:
    """Records done at ``seconds``, interpolated linearly along a timeline of ``(seconds, records done)`` points
    sorted by time (0 records at 0 s before its first point; its last count after its last point)."""
    if not timeline:
        return 0.0
    index = bisect.bisect_right(timeline, seconds, key=lambda point: point[0])
    if index >= len(timeline):
        return float(timeline[-1][1])
    t0, d0 = timeline[index - 1] if index > 0 else (0.0, 0)
    t1, d1 = timeline[index]
    return d0 + (d1 - d0) * (seconds - t0) / (t1 - t0) if t1 > t0 else float(d0)


def rate_series(timeline: Sequence[tuple[float, int]], windows: int = 50) -> list[tuple[float, float]]:
    """Throughput over time: ``(middle of the window in s, records/s)`` for ``windows`` equal windows from 0 to the
    timeline's last point (``(seconds, records done)`` pairs sorted by time, starting from 0 records at 0 s)."""
    if not timeline or timeline[-1][0] <= 0:
        return []
    width = timeline[-1][0] / windows
    series = []
    for index in range(windows):
        start, end = index * width, (index + 1) * width
        series.append(((start + end) / 2, (records_at(timeline, end) - records_at(timeline, start)) / width))
    return series
