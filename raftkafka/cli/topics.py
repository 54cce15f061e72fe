"""``raftkafka topics``: create, list, describe and delete topics.

``describe`` prints Kafka's ``kafka-topics --describe`` layout (``Topic: … PartitionCount: … Configs: …``
then one ``Partition: … Leader: … Replicas: … Isr: …`` line per partition); ``--output json`` prints the
same facts as JSON. ``list`` prints one topic name per line, as ``kafka-topics --list`` does.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from raftkafka.cli.options import (
    bootstrap_option,
    config_option,
    load_config_file,
    log_level_option,
    run_command,
    setup_logging,
)
from raftkafka.structs import TopicDescription
from raftkafka.topic_name import validate_topic_name

output_option = click.option(
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Print a Kafka-style table or JSON.",
)


def parse_config_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    """``{"k": "v"}`` from ``("k=v", ...)`` (later entries win)."""
    return dict(pair.split("=", 1) for pair in pairs)


def _ids(ids: list[int]) -> str:
    return ",".join(map(str, ids))


def describe_lines(description: TopicDescription) -> list[str]:
    """The lines ``kafka-topics --describe`` prints for one topic."""
    replication_factor = max((len(p.replicas) for p in description.partitions), default=0)
    configs = ",".join(f"{k}={v}" for k, v in sorted(description.config.items()))
    lines = [
        f"Topic: {description.name}\tPartitionCount: {len(description.partitions)}\t"
        f"ReplicationFactor: {replication_factor}\tConfigs: {configs}"
    ]
    lines.extend(
        f"\tTopic: {description.name}\tPartition: {p.id}\tLeader: {p.leader if p.leader >= 0 else 'none'}\t"
        f"Replicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}"
        for p in sorted(description.partitions, key=lambda p: p.id)
    )
    return lines


def describe_json(description: TopicDescription) -> dict[str, Any]:
    """One topic as a JSON-ready object with Kafka's field names in snake case."""
    return {
        "topic": description.name,
        "partition_count": len(description.partitions),
        "replication_factor": max((len(p.replicas) for p in description.partitions), default=0),
        "configs": dict(sorted(description.config.items())),
        "partitions": [
            {"partition": p.id, "leader": p.leader, "replicas": list(p.replicas), "isr": list(p.isr)}
            for p in sorted(description.partitions, key=lambda p: p.id)
        ],
    }


REQUEST_TIMEOUT_MS = 10_000
"""How long the commands wait for any one answer, so that a dead server fails them in bounded time."""


def open_admin(bootstrap: str) -> Any:
    """An ``Admin`` client with the commands' request timeout."""
    from raftkafka.client import Admin  # imported on use: the server commands need not load the client

    return Admin(bootstrap=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)


def require_topic(bootstrap: str, name: str) -> TopicDescription:
    """The description of topic ``name``, failing at once (``UnknownTopicError``) when there is none."""
    validate_topic_name(name)
    with open_admin(bootstrap) as admin:
        return admin.describe_topic(name)


@click.group()
def topics() -> None:
    """Create, list, describe and delete topics."""


CONFIG_ENTRY = re.compile(r"[A-Za-z0-9._-]+=")


def split_config_values(values: tuple[str, ...]) -> tuple[list[str], tuple[str, ...]]:
    """Split ``--config`` values of ``topics create`` into TOML file paths and ``KEY=VALUE`` topic entries.

    A value that starts with a config key and ``=`` (``retention.ms=3600000``) is a topic config entry;
    anything else is a TOML file of command settings (write ``./a=b.toml`` for a file named like an entry).
    """
    files = [v for v in values if not CONFIG_ENTRY.match(v)]
    entries = tuple(v for v in values if CONFIG_ENTRY.match(v))
    return files, entries


def _create_config_callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    files, entries = split_config_values(values)
    for path in files:
        load_config_file(ctx, path)
    return entries


@topics.command()
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=1), default=1, show_default=True, help="Number of partitions.")
@click.option(
    "--replication-factor", type=click.IntRange(min=1), default=1, show_default=True, help="Replicas per partition."
)
@click.option(
    "topic_config",
    "--config",
    multiple=True,
    is_eager=True,
    callback=_create_config_callback,
    metavar="KEY=VALUE|FILE",
    help="A topic config entry such as retention.ms=3600000 (repeatable), or a TOML file of settings.",
)
@bootstrap_option
@log_level_option
def create(
    *,
    name: str,
    partitions: int,
    replication_factor: int,
    topic_config: tuple[str, ...],
    bootstrap: str,
    log_level: str,
) -> None:
    """Create topic NAME."""
    setup_logging(log_level)

    def run() -> None:
        validate_topic_name(name)
        with open_admin(bootstrap) as admin:
            admin.create_topic(
                name,
                partitions=partitions,
                replication_factor=replication_factor,
                config=parse_config_pairs(topic_config),
            )
        click.echo(f"Created topic {name}.")

    run_command(run)


@topics.command(name="list")
@output_option
@bootstrap_option
@config_option
@log_level_option
def list_(output: str, bootstrap: str, log_level: str) -> None:
    """List topic names, one per line."""
    setup_logging(log_level)

    def run() -> None:
        with open_admin(bootstrap) as admin:
            names = sorted(admin.list_topics())
        if output == "json":
            click.echo(json.dumps(names))
        else:
            for name in names:
                click.echo(name)

    run_command(run)


@topics.command()
@click.argument("name", required=False)
@output_option
@bootstrap_option
@config_option
@log_level_option
def describe(name: str | None, output: str, bootstrap: str, log_level: str) -> None:
    """Describe topic NAME (every topic when NAME is left out): partitions, leaders, replicas, ISR, configs."""
    setup_logging(log_level)

    def run() -> None:
        if name is not None:
            validate_topic_name(name)
        with open_admin(bootstrap) as admin:
            names = [name] if name is not None else sorted(admin.list_topics())
            descriptions = [admin.describe_topic(n) for n in names]
        if output == "json":
            click.echo(json.dumps([describe_json(d) for d in descriptions], indent=2))
        else:
            for description in descriptions:
                click.echo("\n".join(describe_lines(description)))

    run_command(run)


@topics.command()
@click.argument("name")
@bootstrap_option
@config_option
@log_level_option
def delete(name: str, bootstrap: str, log_level: str) -> None:
    """Delete topic NAME and all its data."""
    setup_logging(log_level)

    def run() -> None:
        validate_topic_name(name)
        with open_admin(bootstrap) as admin:
            admin.delete_topic(name)
        click.echo(f"Deleted topic {name}.")

    run_command(run)


@topics.command()
@click.argument("name")
@click.option("--partitions", type=click.IntRange(min=2), required=True, help="The new, larger number of partitions.")
@bootstrap_option
@config_option
@log_level_option
def alter(name: str, partitions: int, bootstrap: str, log_level: str) -> None:
    """Grow topic NAME to more partitions (keyed records may map to other partitions from then on)."""
    setup_logging(log_level)

    def run() -> None:
        validate_topic_name(name)
        with open_admin(bootstrap) as admin:
            admin.create_partitions(name, partitions)
        click.echo(f"Topic {name} now has {partitions} partitions.")

    run_command(run)
