"""``raftkafka bench produce|consume|e2e``: one workload per subcommand, one module per workload in
``raftkafka.bench``; figures on stdout (one JSON object with ``--json``), progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import COMPRESSION_TYPES, BenchSettings
from raftkafka.cli.options import bootstrap_option, config_option, log_level_option, run_command, setup_logging

Workload = Callable[..., BenchResult]
DEFAULT_TOPIC = "raftkafka-bench"


def workload_options(*, records: int, linger_ms: int, warmup: int) -> Callable[[Callable[..., Any]], Any]:
    """The options every workload takes, with this workload's defaults."""
    options = [
        click.option("--topic", default=DEFAULT_TOPIC, show_default=True, help="Topic (created when missing)."),
        click.option(
            "--records", type=click.IntRange(min=1), default=records, show_default=True, help="Records to time."
        ),
        click.option("--record-size", type=click.IntRange(min=0), default=100, show_default=True, help="Value bytes."),
        click.option(
            "--partitions",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Partitions when the topic is created.",
        ),
        click.option(
            "--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True, help="Producer acks."
        ),
        click.option(
            "--linger-ms", type=click.IntRange(min=0), default=linger_ms, show_default=True, help="Producer linger."
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=256 * 1024,
            show_default=True,
            help="Producer batch size in bytes.",
        ),
        click.option(
            "--compression",
            type=click.Choice(COMPRESSION_TYPES),
            default="none",
            show_default=True,
            help="Producer batch compression.",
        ),
        click.option(
            "--warmup-records",
            type=click.IntRange(min=0),
            default=warmup,
            show_default=True,
            help="Records run first and left out of the figures.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (no progress)."),
        bootstrap_option,
        config_option,
        log_level_option,
    ]

    def decorate(func: Callable[..., Any]) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_workload(workload: Workload, *, as_json: bool, log_level: str, **settings: Any) -> None:
    """Validate the settings, run the workload and print its figures."""
    setup_logging(log_level)

    def run() -> None:
        result = workload(BenchSettings(**settings).validate(), show_progress=not as_json)
        click.echo(json.dumps(result.as_dict()) if as_json else result.summary())

    run_command(run)


@click.group()
def bench() -> None:
    """Measure throughput and latency against a running cluster."""


@bench.command()
@workload_options(records=1_000_000, linger_ms=5, warmup=50_000)
def produce(**options: Any) -> None:
    """Produce --records records of --record-size bytes as fast as possible: records/s, MB/s, ack latency."""
    from raftkafka.bench.produce import run_produce

    run_workload(run_produce, **options)


@bench.command()
@workload_options(records=1_000_000, linger_ms=5, warmup=50_000)
def consume(**options: Any) -> None:
    """Consume --records records from the beginning (producing them first if missing): records/s, MB/s."""
    from raftkafka.bench.consume import run_consume

    run_workload(run_consume, **options)


@bench.command()
@workload_options(records=10_000, linger_ms=0, warmup=1_000)
def e2e(**options: Any) -> None:
    """Produce then consume one record at a time: end-to-end latency p50/p99/p99.9."""
    from raftkafka.bench.e2e import run_e2e

    run_workload(run_e2e, **options)
