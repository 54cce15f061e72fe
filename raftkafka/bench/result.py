"""The outcome of one benchmark run, or of ``--repeat N`` runs, and their two renderings: a human summary and a
JSON object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from raftkafka.bench.cpu import ProcessCpu
from raftkafka.bench.settings import BenchSettings
from raftkafka.bench.stats import NS_PER_MS, LatencySummary, Spread, Throughput, spread
from raftkafka.client.compiled import compiled_parts


@dataclass(frozen=True, slots=True)
class BenchResult:
    """Figures of one workload, measured after its warm-up.

    ``cpu`` is what the client and the watched servers spent meanwhile; ``baseline`` (e2e) is the machine's
    loopback round trip between two Python processes and ``ceiling`` (produce, consume) the machine's
    throughput for the same records streamed between two Python processes, each measured in the same run
    (``baseline.py``). ``timeline`` (``(seconds,
    records done)`` points) and ``latency_samples_ns`` are the raw data ``--plot`` draws; they stay out of the
    JSON.
    """

    workload: str
    settings: BenchSettings
    throughput: Throughput
    latency: LatencySummary | None = None
    cpu: tuple[ProcessCpu, ...] = ()
    baseline: LatencySummary | None = None
    ceiling: Throughput | None = None
    timeline: tuple[tuple[float, int], ...] = field(default=(), repr=False, compare=False)
    latency_samples_ns: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def headline(self) -> dict[str, float]:
        """The figures ``--repeat`` summarises: records/s, MB/s and the latency percentiles (when measured)."""
        figures = {"records_per_s": self.throughput.records_per_s, "mb_per_s": self.throughput.mb_per_s}
        if self.ceiling is not None:
            figures["vs_ceiling"] = self.vs_ceiling()
        if self.latency is not None:
            figures.update(p50_ms=self.latency.p50_ms, p99_ms=self.latency.p99_ms, p999_ms=self.latency.p999_ms)
        return figures

    def vs_ceiling(self) -> float:
        """Records/s as a fraction of the machine's streaming ceiling (0 when it was not measured)."""
        ceiling = 0.0 if self.ceiling is None else self.ceiling.records_per_s
        return self.throughput.records_per_s / ceiling if ceiling > 0 else 0.0

    def latency_samples_ms(self) -> list[float]:
        """The latency samples in milliseconds."""
        return [sample / NS_PER_MS for sample in self.latency_samples_ns]

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
            "cpu": [process.as_dict(self.throughput.records) for process in self.cpu],
            **self._against_baseline(),
            **self._against_ceiling(),
            "client_compiled": compiled_parts(),
            "settings": self.settings.as_dict(),
        }

    def _against_baseline(self) -> dict[str, Any]:
        if self.baseline is None or self.latency is None:
            return {}
        base = self.baseline
        return {
            "baseline_round_trip_ms": {k: round(v, 4) for k, v in asdict(base).items()},
            "latency_vs_baseline": {
                "p50": round(self.latency.p50_ms / base.p50_ms, 2), "p99": round(self.latency.p99_ms / base.p99_ms, 2),
            },
        }  # fmt: skip

    def _against_ceiling(self) -> dict[str, Any]:
        if self.ceiling is None:
            return {}
        return {
            "ceiling_records_per_s": round(self.ceiling.records_per_s, 1),
            "throughput_vs_ceiling": round(self.vs_ceiling(), 4),
        }

    def summary(self) -> str:
        """One human line in the manner of Kafka's perf tools."""
        line = (
            f"{self.workload}: {self.throughput.records} records in {self.throughput.seconds:.2f} s, "
            f"{self.throughput.records_per_s:,.0f} records/s ({self.throughput.mb_per_s:.2f} MB/s"
        )
        if self.ceiling is not None:
            line += (
                f"; {self.vs_ceiling():.3f}x the machine's ceiling for one Python process streaming these records, "
                f"{self.ceiling.records_per_s:,.0f} records/s"
            )
        line += ")"
        if self.latency is not None:
            lat = self.latency
            line += (
                f", latency ms: mean {lat.mean_ms:.3f}, p50 {lat.p50_ms:.3f}, p99 {lat.p99_ms:.3f}, "
                f"p99.9 {lat.p999_ms:.3f}, max {lat.max_ms:.3f}"
            )
        if self.baseline is not None and self.latency is not None:
            line += (
                f" (p50 {self.latency.p50_ms / self.baseline.p50_ms:.1f}x the machine's loopback round trip between "
                f"two Python processes, {self.baseline.p50_ms:.3f} ms)"
            )
        if self.cpu:
            line += "; CPU per record: " + "; ".join(process.brief(self.throughput.records) for process in self.cpu)
        interpreted = [part for part, compiled in compiled_parts().items() if not compiled]
        if interpreted:
            line += f"; client not compiled ({', '.join(interpreted)}: installed without a C compiler, see README.md)"
        return line


HEADLINE_LABELS = {
    "records_per_s": ("records/s", ",.0f"),
    "mb_per_s": ("MB/s", ".2f"),
    "vs_ceiling": ("records/s vs the machine's ceiling", ".3f"),
    "p50_ms": ("latency p50 ms", ".3f"),
    "p99_ms": ("latency p99 ms", ".3f"),
    "p999_ms": ("latency p99.9 ms", ".3f"),
}


@dataclass(frozen=True, slots=True)
class RepeatedResult:
    """The same workload run ``len(runs)`` times: every run, and the median and spread of the headline figures."""

    runs: tuple[BenchResult, ...]

    @property
    def workload(self) -> str:
        return self.runs[0].workload

    def spreads(self) -> dict[str, Spread]:
        """Median, min/max and quartiles of each headline figure over the runs."""
        names = self.runs[0].headline()
        return {name: spread([run.headline()[name] for run in self.runs]) for name in names}

    def as_dict(self) -> dict[str, Any]:
        """Every run's object, and the summary: per figure its median, min, max, q1 and q3."""
        return {
            "workload": self.workload,
            "repeat": len(self.runs),
            "runs": [run.as_dict() for run in self.runs],
            "summary": {
                name: {key: round(value, 4) for key, value in asdict(figure).items()}
                for name, figure in self.spreads().items()
            },
            "settings": self.runs[0].settings.as_dict(),
        }

    def summary(self) -> str:
        """One line per run, then one per headline figure: its median, min, max and interquartile range."""
        lines = [f"run {index}/{len(self.runs)}: {run.summary()}" for index, run in enumerate(self.runs, 1)]
        lines.append(f"{self.workload}, {len(self.runs)} runs:")
        for name, figure in self.spreads().items():
            label, spec = HEADLINE_LABELS[name]
            lines.append(
                f"  {label}: median {figure.median:{spec}} (min {figure.min:{spec}}, max {figure.max:{spec}}; "
                f"IQR {figure.q1:{spec}} to {figure.q3:{spec}})"
            )
        return "\n".join(lines)
