"""The benchmark's pure arithmetic and renderings."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest

from raftkafka.bench.produce_clients import shares
from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult, RepeatedResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import MB, percentile, rate_series, records_at, spread, summarize_latencies, throughput
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


def test_spread_is_median_range_and_inclusive_quartiles() -> None:
    figure = spread([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (figure.median, figure.min, figure.max, figure.q1, figure.q3) == (3.0, 1.0, 5.0, 2.0, 4.0)
    single = spread([7.0])
    assert (single.median, single.min, single.max, single.q1, single.q3) == (7.0, 7.0, 7.0, 7.0, 7.0)
    pair = spread([1.0, 3.0])
    assert pair.median == 2.0 and 1.0 <= pair.q1 <= pair.q3 <= 3.0
    with pytest.raises(ValueError):
        spread([])


def test_rate_series_interpolates_the_timeline_into_equal_windows() -> None:
    timeline = [(1.0, 100), (2.0, 100), (4.0, 500)]  # 100/s, then idle, then 200/s
    assert records_at(timeline, 0.5) == 50
    assert records_at(timeline, 1.5) == 100
    assert records_at(timeline, 3.0) == 300
    assert records_at(timeline, 9.0) == 500
    assert records_at([], 1.0) == 0.0
    assert rate_series(timeline, 4) == [(0.5, 100.0), (1.5, 0.0), (2.5, 200.0), (3.5, 200.0)]
    assert rate_series([], 4) == []


def test_repeated_result_gives_every_run_and_the_median_and_spread_of_the_headline_figures() -> None:
    settings = BenchSettings(bootstrap="b:1", topic="t", records=4, record_size=10)
    runs = tuple(
        BenchResult(
            workload="produce",
            settings=settings,
            throughput=throughput(4, 10, seconds * 1_000_000_000),
            latency=summarize_latencies([seconds * 1_000_000]),
        )
        for seconds in (1, 2, 4)
    )
    repeated = RepeatedResult(runs)
    data = json.loads(json.dumps(repeated.as_dict()))
    assert data["workload"] == "produce" and data["repeat"] == 3 and len(data["runs"]) == 3
    assert data["runs"][0] == runs[0].as_dict()
    assert data["summary"]["records_per_s"] == {"median": 2.0, "min": 1.0, "max": 4.0, "q1": 1.5, "q3": 3.0}
    assert data["summary"]["p50_ms"]["median"] == 2.0
    assert set(data["summary"]) == {"records_per_s", "mb_per_s", "p50_ms", "p99_ms", "p999_ms"}
    text = repeated.summary()
    assert text.startswith("run 1/3: produce: 4 records") and "produce, 3 runs:" in text
    assert "records/s: median 2 (min 1, max 4; IQR 2 to 3)" in text
    consume = RepeatedResult(tuple(BenchResult("consume", settings, run.throughput) for run in runs))
    assert set(consume.as_dict()["summary"]) == {"records_per_s", "mb_per_s"}


def test_settings_refuse_a_non_positive_duration_and_no_clients() -> None:
    good = BenchSettings(bootstrap="127.0.0.1:9092", topic="t", records=10, record_size=100)
    assert replace(good, duration_s=0.5, clients=3).validate().clients == 3
    with pytest.raises(InvalidConfigError, match="--duration"):
        replace(good, duration_s=0.0).validate()
    with pytest.raises(InvalidConfigError, match="--clients"):
        replace(good, clients=0).validate()
    assert shares(10, 3) == [4, 3, 3] and shares(2, 3) == [1, 1, 0]


def test_progress_keeps_its_timeline_when_not_shown_and_a_silent_one_keeps_nothing() -> None:
    quiet = io.StringIO()
    progress = Progress("consume", None, enabled=False, stream=quiet)
    progress.update(10)
    progress.finish(25)
    assert [done for _, done in progress.timeline] == [10, 25]
    assert progress.timeline[0][0] <= progress.timeline[1][0] and quiet.getvalue() == ""
    shown = io.StringIO()
    Progress("consume", None, stream=shown).finish(25)
    assert "consume: 25 records in" in shown.getvalue()
    silent = Progress.silent()
    silent.update(5)
    silent.finish(5)
    assert silent.timeline == []
