"""The outcome of one benchmark run and its two renderings: a human summary and a JSON object."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from raftkafka.bench.settings import BenchSettings
from raftkafka.bench.stats import LatencySummary, Throughput


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Figures of one workload, measured after its warm-up."""

    workload: str
    settings: BenchSettings
    throughput: Throughput
    latency: LatencySummary | None = None

    def as_dict(self) -> dict[str, Any]:
        """One flat-ish JSON-ready object (what ``--json`` prints)."""
        return {
            "workload": self.workload,
            "records": self.throughput.records,
            "bytes": self.throughput.bytes,
            "seconds": round(self.throughput.seconds, 6),
            "records_per_s": round(self.throughput.records_per_s, 1),
            "mb_per_s": round(self.throughput.mb_per_s, 3),
            "latency_ms": None if self.latency is None else {k: round(v, 4) for k, v in asdict(self.latency).items()},
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """One human line in the manner of Kafka's perf tools."""
        line = (
            f"{self.workload}: {self.throughput.records} records in {self.throughput.seconds:.2f} s, "
            f"{self.throughput.records_per_s:,.0f} records/s ({self.throughput.mb_per_s:.2f} MB/s)"
        )
        if self.latency is not None:
            lat = self.latency
            line += (
                f", latency ms: mean {lat.mean_ms:.3f}, p50 {lat.p50_ms:.3f}, p99 {lat.p99_ms:.3f}, "
                f"p99.9 {lat.p999_ms:.3f}, max {lat.max_ms:.3f}"
            )
        return line
