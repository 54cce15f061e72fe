"""The machine's loopback round trip that ``bench e2e`` reports its latency against."""

from __future__ import annotations

from raftkafka.bench.baseline import loopback_round_trip
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings
from raftkafka.bench.stats import LatencySummary, Throughput


def test_round_trips_to_an_echo_process_are_timed() -> None:
    summary = loopback_round_trip(size=10_000, count=50)  # larger than one recv may return
    assert summary.count == 50
    assert 0 < summary.p50_ms <= summary.p99_ms <= summary.max_ms < 1_000


def test_a_result_reports_its_latency_as_multiples_of_the_baseline() -> None:
    def latency(p50: float, p99: float) -> LatencySummary:
        return LatencySummary(count=10, mean_ms=p50, p50_ms=p50, p99_ms=p99, p999_ms=p99, max_ms=p99)

    result = BenchResult(
        "e2e", BenchSettings("127.0.0.1:9092", "t", 10, 100), Throughput(10, 1000, 1.0),
        latency=latency(0.3, 0.9), baseline=latency(0.1, 0.45),
    )  # fmt: skip
    figures = result.as_dict()
    assert figures["latency_vs_baseline"] == {"p50": 3.0, "p99": 2.0}
    assert figures["baseline_round_trip_ms"]["p50_ms"] == 0.1
    assert "p50 3.0x the machine's loopback round trip" in result.summary()
    assert "baseline_round_trip_ms" not in BenchResult(result.workload, result.settings, result.throughput).as_dict()
