"""Pure benchmark arithmetic: latency percentiles and throughput figures (no clocks, no I/O)."""

from __future__ import annotations

import math
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
