"""The machine's limits that benchmark figures are reported against: the loopback round trip (``bench e2e``) and
the streaming ceiling (``bench produce`` and ``bench consume``)."""

from __future__ import annotations

import pytest

from raftkafka.bench.baseline import (
    STREAM_FRAME_BYTES,
    STREAM_FRAME_RECORDS,
    STREAM_RECORDS,
    STREAM_ROUNDS,
    STREAM_WINDOW,
    frame_records,
    loopback_round_trip,
    stream_ceiling,
)
from raftkafka.bench.result import BenchResult, RepeatedResult
from raftkafka.bench.settings import BenchSettings
from raftkafka.bench.stats import LatencySummary, Throughput
from raftkafka.client import record_decoder
from raftkafka.client.compiled import compiled_parts

SETTINGS = BenchSettings("127.0.0.1:9092", "t", 10, 100)


def test_round_trips_to_an_echo_process_are_timed() -> None:
    summary = loopback_round_trip(size=10_000, count=50)  # larger than one recv may return
    assert summary.count == 50
    assert 0 < summary.p50_ms <= summary.p99_ms <= summary.max_ms < 1_000


def test_a_result_reports_its_latency_as_multiples_of_the_baseline() -> None:
    def latency(p50: float, p99: float) -> LatencySummary:
        return LatencySummary(count=10, mean_ms=p50, p50_ms=p50, p99_ms=p99, p999_ms=p99, max_ms=p99)

    result = BenchResult(
        "e2e", SETTINGS, Throughput(10, 1000, 1.0), latency=latency(0.3, 0.9), baseline=latency(0.1, 0.45),
    )  # fmt: skip
    figures = result.as_dict()
    assert figures["latency_vs_baseline"] == {"p50": 3.0, "p99": 2.0}
    assert figures["baseline_round_trip_ms"]["p50_ms"] == 0.1
    assert "p50 3.0x the machine's loopback round trip" in result.summary()
    assert "baseline_round_trip_ms" not in BenchResult(result.workload, result.settings, result.throughput).as_dict()


@pytest.mark.parametrize("workload", ["produce", "consume"])
def test_the_streaming_ceiling_moves_whole_frames_of_records_through_a_child_process(workload: str) -> None:
    """Producing, the child checks it wrote every byte sent; consuming, this side counts every record read."""
    frames = STREAM_WINDOW * 2 + 1  # per round: more frames than may wait for their acknowledgement
    figures = stream_ceiling(workload, record_size=10, count=STREAM_FRAME_RECORDS * frames * STREAM_ROUNDS - 1)
    assert figures.records == STREAM_FRAME_RECORDS * frames  # one round, the fastest
    assert figures.bytes == figures.records * 10 and figures.records_per_s > 0


def test_the_streaming_ceiling_is_capped_and_known_only_for_throughput_workloads() -> None:
    assert stream_ceiling("produce", record_size=0, count=1).records == STREAM_FRAME_RECORDS
    assert stream_ceiling("produce", record_size=0).records == STREAM_RECORDS // STREAM_ROUNDS
    assert frame_records(STREAM_FRAME_BYTES // 5) == 5 and frame_records(STREAM_FRAME_BYTES * 2) == 1
    assert stream_ceiling("consume", record_size=STREAM_FRAME_BYTES // 5, count=12).records == 5
    with pytest.raises(ValueError, match="no stream ceiling for workload 'e2e'"):
        stream_ceiling("e2e", record_size=100)


def test_a_result_reports_its_throughput_as_a_fraction_of_the_ceiling() -> None:
    result = BenchResult("produce", SETTINGS, Throughput(1000, 100_000, 2.0), ceiling=Throughput(5000, 500_000, 1.0))
    figures = result.as_dict()
    assert figures["ceiling_records_per_s"] == 5000.0 and figures["throughput_vs_ceiling"] == 0.1
    assert "500 records/s (0.05 MB/s; 0.100x the machine's ceiling for one Python process" in result.summary()
    assert result.headline()["vs_ceiling"] == pytest.approx(0.1)
    repeated = RepeatedResult((result, BenchResult("produce", SETTINGS, Throughput(1000, 100_000, 1.0),
                                                   ceiling=Throughput(5000, 500_000, 1.0))))  # fmt: skip
    assert repeated.spreads()["vs_ceiling"].median == pytest.approx(0.15)
    assert "records/s vs the machine's ceiling: median 0.150" in repeated.summary()
    bare = BenchResult("consume", SETTINGS, Throughput(1000, 100_000, 2.0))
    assert "ceiling_records_per_s" not in bare.as_dict() and "vs_ceiling" not in bare.headline()
    assert "ceiling" not in bare.summary()


def test_a_result_says_which_compiled_parts_of_the_client_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    result = BenchResult("produce", SETTINGS, Throughput(1000, 100_000, 2.0))
    assert result.as_dict()["client_compiled"] == compiled_parts()
    assert ("client not compiled" in result.summary()) == (not all(compiled_parts().values()))
    monkeypatch.setattr(record_decoder, "build_records", None)  # as installed without a C compiler
    assert result.as_dict()["client_compiled"]["record_building"] is False
    assert "client not compiled (record_building" in result.summary()
