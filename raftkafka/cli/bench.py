"""``raftkafka bench produce|consume|e2e|metadata|failover|rebalance|compare|soak|scaling``: one workload per
subcommand, one module per workload in ``raftkafka.bench``; figures on stdout (one JSON object with ``--json``),
progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import click

from raftkafka.bench.comparison import DEFAULT_SYSTEMS, SYSTEMS
from raftkafka.bench.settings import CLUSTER_KINDS, COMPRESSION_TYPES, BenchSettings
from raftkafka.cli.options import (
    bootstrap_option,
    config_option,
    fail,
    idle_poll_option,
    log_level_option,
    run_command,
    setup_logging,
)

if TYPE_CHECKING:
    from raftkafka.bench.workload import Workload

DEFAULT_TOPIC = "raftkafka-bench"


class Report(Protocol):
    """What every workload returns: a human summary and a JSON-ready object."""

    def summary(self) -> str: ...

    def as_dict(self) -> dict[str, Any]: ...


def report(measure: Callable[[], Report], *, as_json: bool, log_level: str) -> None:
    """Run ``measure`` (expected failures become one-line errors) and print its figures."""
    setup_logging(log_level)

    def run() -> None:
        result = measure()
        click.echo(json.dumps(result.as_dict()) if as_json else result.summary())

    run_command(run)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout (no progress).")


def cluster_option(doing: str = "", then: str = "") -> Callable[[Callable[..., Any]], Any]:
    """``--cluster dev|3x3``: the run starts its own cluster (``doing`` and ``then`` add to the help)."""
    return click.option(
        "--cluster",
        type=click.Choice(CLUSTER_KINDS),
        default=None,
        help=f"Start a cluster for the run instead of using --bootstrap{doing}: one `raftkafka dev` process, or 3 "
        f"controllers and 3 brokers.{then}",
    )


def pid_option(what: str) -> Callable[[Callable[..., Any]], Any]:
    """``--pid PID`` (repeatable): a server process to watch with --bootstrap, for ``what``."""
    return click.option(
        "--pid",
        "pids",
        type=click.IntRange(min=1),
        multiple=True,
        help=f"With --bootstrap: a server process to report {what} (repeat for several).",
    )


def workload_options(
    *,
    records: int,
    linger_ms: int,
    warmup: int,
    duration: bool = False,
    clients: bool = False,
    idle_poll: bool = False,
) -> Callable[[Callable[..., Any]], Any]:
    """The options every workload takes, with this workload's defaults; ``duration`` adds ``--duration``,
    ``clients`` adds ``--clients`` and ``idle_poll`` adds ``--idle-poll-us``."""
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
            "--replication-factor",
            type=click.IntRange(min=1),
            default=None,
            help="Replication factor when the topic is created  [default: 3 on --cluster 3x3, else 1].",
        ),
        cluster_option(then=" Topics get min.insync.replicas=2 (at most the replication factor)."),
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
        click.option(
            "--repeat",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Run this many times in a row (on one cluster with --cluster): every run, then the median and "
            "spread (min-max, interquartile range) of records/s, MB/s and latency.",
        ),
        click.option(
            "--plot",
            type=click.Path(dir_okay=False),
            default=None,
            help="Draw throughput over time and the latency distribution into this PNG file (needs matplotlib: "
            "pip install 'raftkafka[plot]').",
        ),
        json_option,
        pid_option("the CPU per record of (with --cluster: every process of it)"),
        bootstrap_option,
        config_option,
        log_level_option,
    ]
    if duration:
        options.insert(
            2,
            click.option(
                "--duration",
                "duration_s",
                type=click.FloatRange(min=0, min_open=True),
                default=None,
                help="Time this many seconds instead of --records records (consume reads the topic's --records "
                "records, going back to its beginning whenever it reaches the end).",
            ),
        )
    if clients:
        options.insert(
            2,
            click.option(
                "--clients",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Client processes sharing the records (each its own producer and warm-up share).",
            ),
        )

    if idle_poll:
        options.insert(
            2,
            idle_poll_option(
                "The client's idle-poll window (raftkafka dev --idle-poll-us), and with --cluster the brokers' too; "
                "with --bootstrap start the brokers with it yourself."
            ),
        )

    def decorate(func: Callable[..., Any]) -> Any:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_workload(
    workload: Workload,
    *,
    as_json: bool,
    log_level: str,
    repeat: int,
    plot: str | None,
    pids: tuple[int, ...] = (),
    **settings: Any,
) -> None:
    """Validate the settings, run the workload ``repeat`` times (on one own cluster with --cluster), draw the runs
    into ``plot`` if asked, and print the figures: one run's, or every run's and their median and spread. The CPU
    of the ``pids`` (or of the own cluster's processes) is reported with the client's."""
    from raftkafka.bench.plot import draw, missing_matplotlib
    from raftkafka.bench.result import RepeatedResult
    from raftkafka.bench.workload import run_repeated

    if plot is not None and (why := missing_matplotlib()) is not None:
        fail(why)
    if pids and settings.get("cluster") is not None:
        raise click.UsageError("--pid is for --bootstrap: with --cluster the run watches its own processes")
    settings["servers"] = tuple((f"pid {pid}", pid) for pid in pids)

    def measure() -> Report:
        runs = run_repeated(workload, BenchSettings(**settings), show_progress=not as_json, repeat=repeat)
        if plot is not None:
            draw(runs, plot)
        return runs[0] if len(runs) == 1 else RepeatedResult(tuple(runs))

    report(measure, as_json=as_json, log_level=log_level)


@click.group()
def bench() -> None:
    """Measure throughput, latency and failover (against a running cluster, or one of its own)."""


@bench.command()
@workload_options(records=1_000_000, linger_ms=5, warmup=50_000, duration=True, clients=True)
def produce(**options: Any) -> None:
    """Produce --records records of --record-size bytes (or for --duration seconds) as fast as possible: records/s,
    MB/s, ack latency. With --clients N, N processes share the records; the figure is all their records over the
    time from the start signal to the last one's final flush."""
    from raftkafka.bench.produce import run_produce

    run_workload(run_produce, **options)


@bench.command()
@workload_options(records=1_000_000, linger_ms=5, warmup=50_000, duration=True)
@click.option(
    "--group",
    default=None,
    help="Consume with this many consumer processes in group GROUP instead (its offsets are reset before the run "
    "and the group deleted after it; --warmup-records is not used).",
)
@click.option(
    "--consumers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Consumer processes in --group (a created topic gets this many partitions unless --partitions says).",
)
def consume(group: str | None, consumers: int, **options: Any) -> None:
    """Consume --records records from the beginning (producing them first if missing), or for --duration seconds:
    records/s, MB/s.

    With --group: --consumers processes, each a sync Consumer in the group, read the last --records records of
    the topic once the group is stable; the figure is all their records over the time from the start signal
    to the last record.
    """
    if group is None:
        if consumers != 1:
            raise click.UsageError("--consumers needs --group")
        from raftkafka.bench.consume import run_consume

        run_workload(run_consume, **options)
        return
    from raftkafka.bench.group_consume import GroupSettings, run_group_consume

    if options["repeat"] != 1 or options["plot"] is not None or options["duration_s"] is not None or options["pids"]:
        raise click.UsageError("--repeat, --plot, --duration and --pid do not apply to --group")
    options.pop("repeat")
    options.pop("plot")
    source = click.get_current_context().get_parameter_source("partitions")
    if source is click.core.ParameterSource.DEFAULT:
        options["partitions"] = consumers
    run_workload(partial(run_group_consume, group=GroupSettings(group, consumers)), repeat=1, plot=None, **options)


@bench.command()
@workload_options(records=10_000, linger_ms=0, warmup=1_000, idle_poll=True)
def e2e(**options: Any) -> None:
    """Produce then consume one record at a time: end-to-end latency p50/p99/p99.9."""
    from raftkafka.bench.e2e import run_e2e

    run_workload(run_e2e, **options)


@bench.command()
@click.option(
    "--cluster",
    type=click.Choice([str(size) for size in (1, 3, 5)]),
    default=None,
    help="Start this many local controllers (and one broker) for the run instead of using --bootstrap.",
)
@click.option(
    "--change",
    type=click.Choice(["topics", "offsets"]),
    default="topics",
    show_default=True,
    help="What one change is: create a 1-partition topic, or commit one offset for a group without members "
    '(OFFSET_COMMIT, member "" generation -1, one group per connection, on a 1-partition topic made first).',
)
@click.option("--changes", type=click.IntRange(min=1), default=2_000, show_default=True, help="Changes per depth.")
@click.option(
    "--in-flight", default="1,200", show_default=True, help="Comma-separated depths: changes kept outstanding."
)
@click.option(
    "--warmup-changes", type=click.IntRange(min=0), default=200, show_default=True, help="One-at-a-time changes first."
)
@json_option
@bootstrap_option
@config_option
@log_level_option
def metadata(
    cluster: str | None,
    change: str,
    changes: int,
    in_flight: str,
    warmup_changes: int,
    as_json: bool,
    bootstrap: str,
    log_level: str,
) -> None:
    """Committed metadata changes/s and commit latency p50/p99 at each depth (a change: one committed record).

    A change creates a 1-partition topic (--change topics) or commits an offset (--change offsets). --bootstrap
    may name brokers or controllers: the active controller is found and asked directly.
    """
    from raftkafka.bench.metadata import MetadataSettings, parse_in_flight, run_metadata

    report(
        lambda: run_metadata(
            MetadataSettings(
                bootstrap=bootstrap,
                cluster=None if cluster is None else int(cluster),
                changes=changes,
                in_flight=parse_in_flight(in_flight),
                warmup_changes=warmup_changes,
                change=change,
            ),
            show_progress=not as_json,
        ),
        as_json=as_json,
        log_level=log_level,
    )


@bench.command()
@click.option(
    "--target",
    type=click.Choice(["controller", "broker"]),
    default="controller",
    show_default=True,
    help="The role to kill: the active controller, or the leader broker of a partition written with acks=all.",
)
@click.option(
    "--controllers", type=click.Choice(["3", "5"]), default="3", show_default=True, help="Controllers to start."
)
@click.option("--kills", type=click.IntRange(min=1), default=10, show_default=True, help="Rounds of kill -9.")
@click.option(
    "--idle-s", type=click.FloatRange(min=0), default=10.0, show_default=True, help="Idle time before each kill."
)
@click.option(
    "--broker-session-timeout-ms",
    type=click.IntRange(min=1),
    default=None,
    help="Passed to every controller: a broker silent this long is fenced  [default: the controller's, 9000].",
)
@click.option(
    "--broker-heartbeat-interval-ms",
    type=click.IntRange(min=1),
    default=None,
    help="Passed to every controller: the heartbeat interval brokers are told to use  [default: the "
    "controller's, 2000].",
)
@json_option
@config_option
@log_level_option
def failover(
    target: str,
    controllers: str,
    kills: int,
    idle_s: float,
    broker_session_timeout_ms: int | None,
    broker_heartbeat_interval_ms: int | None,
    as_json: bool,
    log_level: str,
) -> None:
    """Start a local cluster; kill -9 a node --kills times and time how long until the cluster serves again.

    --target controller: each round waits --idle-s, kills the active controller (found with QUORUM_STATUS), asks
    every survivor for a metadata change until one commits, then restarts the killed one and waits until it caught
    up. --target broker: 3 brokers, a 1-partition topic with replication factor 3 and min.insync.replicas=2 written
    one record at a time with acks=all; each round waits --idle-s, kills the partition's leader (from METADATA),
    times the next acknowledged write sent after the kill, restarts the broker and waits until it is back in the ISR.
    """
    from raftkafka.bench.failover import run_failover
    from raftkafka.bench.failover_result import FailoverSettings, KillResult

    def show(index: int, kill: KillResult) -> None:
        if not as_json:
            served = "committed" if target == "controller" else "leads, next write acknowledged"
            click.echo(
                f"kill {index + 1}/{kills}: {target} {kill.killed} killed, {kill.new_leader} {served} after "
                f"{kill.seconds:.3f} s",
                err=True,
            )

    settings = FailoverSettings(
        target=target,
        controllers=int(controllers),
        kills=kills,
        idle_s=idle_s,
        broker_session_timeout_ms=broker_session_timeout_ms,
        broker_heartbeat_interval_ms=broker_heartbeat_interval_ms,
    )
    report(lambda: run_failover(settings, on_kill=show), as_json=as_json, log_level=log_level)


@bench.command()
@cluster_option()
@click.option("--topic", default="raftkafka-bench-rebalance", show_default=True, help="Topic (created when missing).")
@click.option("--group", default="raftkafka-bench-rebalance", show_default=True, help="Consumer group (deleted after).")
@click.option("--consumers", type=click.IntRange(min=2), default=3, show_default=True, help="Consumer processes.")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Partitions when the topic is created.",
)
@click.option("--kills", type=click.IntRange(min=1), default=3, show_default=True, help="Rounds of kill -9.")
@click.option(
    "--idle-s", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Idle time before each kill."
)
@click.option(
    "--session-timeout-ms",
    type=click.IntRange(min=1),
    default=6_000,
    show_default=True,
    help="The consumers' session.timeout.ms: a silent member is removed after this long.",
)
@click.option(
    "--heartbeat-interval-ms",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="The consumers' heartbeat.interval.ms.",
)
@json_option
@bootstrap_option
@config_option
@log_level_option
def rebalance(
    cluster: str | None,
    topic: str,
    group: str,
    consumers: int,
    partitions: int,
    kills: int,
    idle_s: float,
    session_timeout_ms: int,
    heartbeat_interval_ms: int,
    as_json: bool,
    bootstrap: str,
    log_level: str,
) -> None:
    """kill -9 one consumer of a group --kills times: time until the group's next generation is stable.

    --consumers processes (sync Consumers in --group) consume a topic of --partitions partitions. Each round waits
    --idle-s, kills the longest-running consumer and asks DESCRIBE_GROUPS until a newer generation is Stable with
    the survivors owning every partition; a new consumer then replaces the killed one. Prints p50/max over the
    kills and whether they are within the target: the session timeout + 1 s.
    """
    from raftkafka.bench.rebalance import RebalanceRound, RebalanceSettings, run_rebalance

    def show(index: int, kill: RebalanceRound) -> None:
        if not as_json:
            click.echo(
                f"kill {index + 1}/{kills}: {kill.killed} killed, generation {kill.generation_after} stable without "
                f"it after {kill.seconds:.3f} s (survivors consuming after {kill.consuming_s:.3f} s)",
                err=True,
            )

    settings = RebalanceSettings(
        bootstrap=bootstrap,
        cluster=cluster,
        topic=topic,
        group=group,
        consumers=consumers,
        partitions=partitions,
        kills=kills,
        idle_s=idle_s,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
    )
    report(lambda: run_rebalance(settings, on_round=show), as_json=as_json, log_level=log_level)


@bench.command()
@click.option(
    "--records",
    type=click.IntRange(min=1),
    default=200_000,
    show_default=True,
    help="Records each system produces, then consumes (timed).",
)
@click.option("--record-size", type=click.IntRange(min=0), default=100, show_default=True, help="Value bytes.")
@click.option(
    "--warmup-records",
    type=click.IntRange(min=0),
    default=10_000,
    show_default=True,
    help="Records produced and consumed first, untimed.",
)
@click.option(
    "--e2e-records",
    type=click.IntRange(min=1),
    default=5_000,
    show_default=True,
    help="Timed one-at-a-time round trips.",
)
@click.option(
    "--e2e-warmup-records",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Untimed round trips first.",
)
@click.option(
    "--systems",
    default=",".join(DEFAULT_SYSTEMS),
    show_default=True,
    help=f"Comma-separated systems to run, of: {', '.join(SYSTEMS)} (raftkafka always runs, first).",
)
@click.option(
    "--redis-server", default=None, help="The redis-server binary  [default: found on PATH or in /usr/sbin]."
)
@click.option("--nats-server", default=None, help="The nats-server binary  [default: found on PATH or in /usr/sbin].")
@json_option
@config_option
@log_level_option
def compare(
    records: int,
    record_size: int,
    warmup_records: int,
    e2e_records: int,
    e2e_warmup_records: int,
    systems: str,
    redis_server: str | None,
    nats_server: str | None,
    as_json: bool,
    log_level: str,
) -> None:
    """The same workload against raftkafka and its peers on this machine: produce records/s, consume records/s and
    one-at-a-time e2e latency p50/p99, with ratios against raftkafka.

    Each system's servers are started for the run on free 127.0.0.1 ports in a temporary directory and stopped
    after it: raftkafka dev (acks=1) and optionally raftkafka-3x3 (RF=3, acks=all); Redis Streams (redis-server,
    appendonly yes; XADD pipelined, XRANGE in batches); NATS JetStream with file storage, one server (nats) and a
    3-server cluster with 3 replicas (nats-r3). A peer that is not installed is reported with the command that
    installs it (apt-get install redis-server nats-server; pip install 'raftkafka[compare]'), and the others run.
    """
    from raftkafka.bench.compare import run_compare
    from raftkafka.bench.comparison import CompareSettings, SystemFigures

    def show(figures: SystemFigures) -> None:
        if not as_json and figures.status != "ok":
            click.echo(f"{figures.title}: {figures.status}: {figures.note}", err=True)

    settings = CompareSettings(
        records=records,
        record_size=record_size,
        warmup_records=warmup_records,
        e2e_records=e2e_records,
        e2e_warmup_records=e2e_warmup_records,
        systems=tuple(name.strip() for name in systems.split(",") if name.strip()),
        redis_server=redis_server,
        nats_server=nats_server,
    )
    report(
        lambda: run_compare(settings, show_progress=not as_json, on_system=show), as_json=as_json, log_level=log_level
    )


@bench.command()
@cluster_option(", and watch all its processes")
@pid_option("the memory of")
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    help="Seconds of load after the warm-up.",
)
@click.option(
    "--warmup-s",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds of load before the start sample.",
)
@click.option("--rate", type=click.IntRange(min=1), default=20_000, show_default=True, help="Records per second.")
@click.option(
    "--record-size", type=click.IntRange(min=8), default=100, show_default=True, help="Value bytes (>= 8)."
)
@click.option("--topic", default="raftkafka-bench-soak", show_default=True, help="Topic (created when missing).")
@click.option(
    "--partitions", type=click.IntRange(min=1), default=4, show_default=True, help="Partitions when created."
)
@click.option(
    "--replication-factor",
    type=click.IntRange(min=1),
    default=None,
    help="Replication factor when the topic is created  [default: 3 on --cluster 3x3, else 1].",
)
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True, help="Producer acks.")
@click.option(
    "--sample-s", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True, help="RSS sampling."
)
@click.option(
    "--growth-limit-mb",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="RSS growth (end - start) a process must stay below.",
)
@json_option
@bootstrap_option
@config_option
@log_level_option
def soak(
    cluster: str | None, pids: tuple[int, ...], as_json: bool, bootstrap: str, log_level: str, **options: Any
) -> None:
    """Produce and consume at once at a fixed --rate for --duration seconds and watch the servers' memory.

    Measures memory, not speed: every --sample-s seconds the RSS (VmRSS of /proc/PID/status) of each process of the
    own --cluster (or each --pid) is read. Each record carries a sequence number and goes to partition
    sequence % --partitions; the consumer, reading from where the topic ended, checks that every acknowledged record
    arrives once and in order per partition. Prints per process the RSS when idle, at the start (after --warmup-s of
    load), at the end and its max, the growth (end - start), and whether it stays below --growth-limit-mb (issue 6's
    target: 50 MB). Exits 1 when a record is missing or out of order or a growth is over the limit.
    """
    from raftkafka.bench.soak import ProcessMemory, SoakSettings, run_soak

    def show(seconds: float, produced: int, consumed: int, processes: Sequence[ProcessMemory]) -> None:
        if not as_json:
            rss = ", ".join(
                f"{p.name} {'-' if p.samples[-1][1] is None else f'{p.samples[-1][1] / 1024:.1f}'} MB"
                for p in processes
            )
            click.echo(
                f"soak {seconds:6.0f} s: {produced:,} produced, {consumed:,} consumed; RSS {rss or '(none)'}",
                err=True,
            )

    settings = SoakSettings(bootstrap=bootstrap, cluster=cluster, pids=pids, **options)
    result: list[Any] = []

    def measure() -> Report:
        result.append(run_soak(settings, on_sample=show))
        return result[0]  # type: ignore[no-any-return]

    report(measure, as_json=as_json, log_level=log_level)
    if result and not result[0].ok:
        raise SystemExit(1)


@bench.command()
@cluster_option()
@click.option(
    "--sizes", default="10,100,1000,10000,100000", show_default=True, help="Record sizes of the size scan (bytes)."
)
@click.option("--partitions", default="1,4,16,64", show_default=True, help="Partition counts of the partition scan.")
@click.option(
    "--max-records", type=click.IntRange(min=1), default=1_000_000, show_default=True, help="Records per run, at most."
)
@click.option(
    "--max-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=500.0,
    show_default=True,
    help="Payload MB per run, at most (fewer records for big ones).",
)
@json_option
@bootstrap_option
@config_option
@log_level_option
def scaling(
    cluster: str | None,
    sizes: str,
    partitions: str,
    max_records: int,
    max_mb: float,
    as_json: bool,
    bootstrap: str,
    log_level: str,
) -> None:
    """How produce and consume throughput scale with record size (on 1 partition) and partitions (100-byte records).

    Each point is one `bench produce` run (acks=1, linger 5 ms, 256 KiB batches) on a topic of its own, then one
    `bench consume` run reading those records back; each moves at most --max-records records and --max-mb MB (a
    tenth more as warm-up). Prints two tables of records/s and MB/s.
    """
    from raftkafka.bench.scaling import ScalingPoint, ScalingSettings, parse_counts, run_scaling

    def show(point: ScalingPoint) -> None:
        if not as_json:
            click.echo(
                f"scaling: {point.record_size} B x {point.partitions} partitions: produce "
                f"{point.produce.throughput.records_per_s:,.0f} records/s, consume "
                f"{point.consume.throughput.records_per_s:,.0f} records/s",
                err=True,
            )

    def measure() -> Report:
        settings = ScalingSettings(
            bootstrap=bootstrap,
            cluster=cluster,
            sizes=parse_counts(sizes, "--sizes", minimum=0),
            partitions=parse_counts(partitions, "--partitions"),
            max_records=max_records,
            max_mb=max_mb,
        )
        return run_scaling(settings, show_progress=not as_json, on_point=show)

    report(measure, as_json=as_json, log_level=log_level)
