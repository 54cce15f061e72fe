"""The benchmark's pure arithmetic and renderings."""

from __future__ import annotations

import io
import json

import pytest

from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import MB, percentile, summarize_latencies, throughput
from raftkafka.errors import InvalidConfigError


def test_percentile_is_nearest_rank() -> None:
    samples = list(range(1, 101))  # 1..100
    assert percentile(samples, 0.50) == 50
    assert percentile(samples, 0.99) == 99
    assert percentile(samples, 0.999) == 100
    assert percentile(samples, 1.0) == 100
    assert percentile([7], 0.5) == 7
    assert percentile(list(range(1, 1001)), 0.999) == 999


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_percentile_rejects_fractions_outside_unit_interval(fraction: float) -> None:
    with pytest.raises(ValueError):
        percentile([1, 2, 3], fraction)


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_latency_summary_converts_nanoseconds_to_milliseconds_and_sorts() -> None:
    samples_ns = [5_000_000, 1_000_000, 3_000_000, 2_000_000, 4_000_000]
    summary = summarize_latencies(samples_ns)
    assert summary.count == 5
    assert summary.mean_ms == pytest.approx(3.0)
    assert summary.p50_ms == pytest.approx(3.0)
    assert summary.p99_ms == pytest.approx(5.0)
    assert summary.p999_ms == pytest.approx(5.0)
    assert summary.max_ms == pytest.approx(5.0)


def test_throughput_rates() -> None:
    figures = throughput(records=1_000, record_size=MB // 1000, elapsed_ns=500_000_000)
    assert figures.seconds == pytest.approx(0.5)
    assert figures.records_per_s == pytest.approx(2_000)
    assert figures.mb_per_s == pytest.approx(1_000 * (MB // 1000) / MB / 0.5)
    assert throughput(records=0, record_size=100, elapsed_ns=0).records_per_s == 0.0


def test_settings_validation_names_the_bad_setting() -> None:
    good = BenchSettings(bootstrap="127.0.0.1:9092", topic="t", records=10, record_size=100)
    assert good.validate() is good
    for bad, flag in [
        (dict(records=0), "--records"),
        (dict(record_size=-1), "--record-size"),
        (dict(partitions=0), "--partitions"),
        (dict(compression="snappy"), "--compression"),
    ]:
        settings = BenchSettings(**{**good.as_dict(), **bad})
        with pytest.raises(InvalidConfigError, match=flag):
            settings.validate()


def test_payload_has_the_size_asked_for_and_is_reproducible() -> None:
    assert len(make_payload(100)) == 100
    assert make_payload(0) == b""
    assert make_payload(64, seed=1) == make_payload(64, seed=1)
    assert make_payload(64, seed=1) != make_payload(64, seed=2)


def test_result_json_and_summary() -> None:
    settings = BenchSettings(bootstrap="b:1", topic="t", records=4, record_size=10)
    result = BenchResult(
        workload="produce",
        settings=settings,
        throughput=throughput(4, 10, 2_000_000_000),
        latency=summarize_latencies([1_000_000, 2_000_000, 3_000_000, 4_000_000]),
    )
    data = json.loads(json.dumps(result.as_dict()))
    assert data["workload"] == "produce"
    assert data["records"] == 4 and data["bytes"] == 40
    assert data["records_per_s"] == 2.0
    assert data["latency_ms"]["p50_ms"] == 2.0 and data["latency_ms"]["count"] == 4
    assert data["settings"]["topic"] == "t"
    line = result.summary()
    assert "2 records/s" in line and "p99.9 4.000" in line
    no_latency = BenchResult(workload="consume", settings=settings, throughput=throughput(4, 10, 10**9))
    assert no_latency.as_dict()["latency_ms"] is None
    assert "latency" not in no_latency.summary()


def test_progress_writes_lines_to_a_pipe_and_nothing_when_disabled() -> None:
    stream = io.StringIO()
    progress = Progress("produce", 100, stream=stream)
    progress.finish(100)
    assert "produce: 100/100 records (100%)" in stream.getvalue()
    quiet = io.StringIO()
    disabled = Progress("produce", 100, enabled=False, stream=quiet)
    disabled.update(50)
    disabled.finish(100)
    assert quiet.getvalue() == ""
