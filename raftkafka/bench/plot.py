"""``--plot FILE.png``: throughput over time and the latency distribution of one or more runs (matplotlib, an
optional extra: ``pip install 'raftkafka[plot]'``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from raftkafka.bench.result import BenchResult
from raftkafka.bench.stats import percentile, rate_series

INSTALL = "pip install 'raftkafka[plot]'"
WINDOWS = 50
"""Windows the run's time is cut into for the throughput curve."""
LATENCY_BINS = 60
LATENCY_LABELS = {"produce": "send → acknowledgement", "e2e": "produce → consumed"}


def missing_matplotlib() -> str | None:
    """Why ``--plot`` cannot draw (matplotlib is not installed, with the command that installs it), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"--plot needs matplotlib, which is not installed: {INSTALL}"
    return None


def log_bins(low: float, high: float, count: int = LATENCY_BINS) -> list[float]:
    """``count + 1`` bin edges spaced evenly on a log scale from ``low`` to ``high`` (both > 0)."""
    if high <= low:
        high = low * 1.01
    return [low * (high / low) ** (index / count) for index in range(count + 1)]


def draw(results: Sequence[BenchResult], path: str | Path) -> None:
    """Draw the runs into ``path`` (PNG): records/s over each run's time, and a histogram of latencies if measured."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import FuncFormatter

    first = results[0]
    with_latency = any(run.latency_samples_ns for run in results)
    figure, axes = pyplot.subplots(1, 2 if with_latency else 1, figsize=(12 if with_latency else 8, 4.5), squeeze=False)
    label = (lambda index: f"run {index}") if len(results) > 1 else (lambda index: None)
    throughput_axes = axes[0][0]
    for index, run in enumerate(results, 1):
        series = rate_series(run.timeline, min(WINDOWS, max(1, len(run.timeline))))
        throughput_axes.plot([t for t, _ in series], [rate for _, rate in series], label=label(index))
    throughput_axes.set(title="throughput over time", xlabel="seconds since the start", ylabel="records/s")
    throughput_axes.set_ylim(bottom=0)
    throughput_axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    throughput_axes.grid(alpha=0.3)
    if with_latency:
        draw_latencies(axes[0][1], results, label)
    if len(results) > 1:
        throughput_axes.legend()
    settings = first.settings
    where = f"--cluster {settings.cluster}" if settings.cluster else settings.bootstrap
    acks = "" if first.workload == "consume" else f", acks={settings.acks}"
    figure.suptitle(
        f"raftkafka bench {first.workload}: {settings.record_size}-byte records{acks}, "
        f"{settings.partitions} partition(s), {where}",
        fontsize="medium",
    )
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    pyplot.close(figure)


def draw_latencies(axes: Any, results: Sequence[BenchResult], label: Any) -> None:
    """A histogram per run on log-spaced bins, with the p50 and p99 of all runs together marked."""
    from matplotlib.ticker import LogFormatter

    samples = [run.latency_samples_ms() for run in results]
    every = sorted(sample for run in samples for sample in run if sample > 0)
    if not every:
        return
    bins = log_bins(every[0], every[-1])
    for index, run in enumerate(samples, 1):
        axes.hist(run, bins=bins, histtype="step", label=label(index))
    for fraction, style in ((0.50, "--"), (0.99, ":")):
        value = percentile(every, fraction)
        axes.axvline(value, color="black", linestyle=style, linewidth=1, label=f"p{fraction * 100:g} {value:.3f} ms")
    axes.set_xscale("log")
    axes.xaxis.set_major_formatter(LogFormatter())  # plain numbers ("30"): the default "3x10^1" labels overlap
    axes.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False))
    what = LATENCY_LABELS.get(results[0].workload, "latency")
    axes.set(title=f"latency distribution ({what})", xlabel="ms (log scale)", ylabel="records")
    axes.grid(alpha=0.3)
    axes.legend()
