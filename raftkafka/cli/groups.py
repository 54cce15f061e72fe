"""``raftkafka groups``: list, describe, reset the offsets of and delete consumer groups.

``describe`` prints Kafka's ``kafka-consumer-groups --describe`` table (``GROUP TOPIC PARTITION
CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID CLIENT-ID``): one row per partition the group has committed,
is assigned or subscribes to; the log end offset is the partition's high watermark, the lag that minus the
committed offset, and ``-`` stands where there is no value. ``reset`` commits new offsets for a group
without members and prints them (``GROUP TOPIC PARTITION NEW-OFFSET``). Every table has ``--output json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import click

from raftkafka.cli.options import bootstrap_option, config_option, fail, log_level_option, run_command, setup_logging
from raftkafka.cli.topics import open_admin, output_option
from raftkafka.errors import GroupIdNotFoundError, NonEmptyGroupError, UnknownTopicError
from raftkafka.structs import GroupDescription, GroupListing, TopicPartition
from raftkafka.topic_name import validate_topic_name

MISSING = "-"
"""What a table shows where a value does not exist, as Kafka's tool does."""

DESCRIBE_COLUMNS = (
    "GROUP",
    "TOPIC",
    "PARTITION",
    "CURRENT-OFFSET",
    "LOG-END-OFFSET",
    "LAG",
    "CONSUMER-ID",
    "CLIENT-ID",
)
RESET_COLUMNS = ("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET")
LIST_COLUMNS = ("GROUP", "STATE", "MEMBERS")


class LagRow(NamedTuple):
    """One partition of a described group; None where there is no value (no commit, unknown partition)."""

    topic: str
    partition: int
    current_offset: int | None
    log_end_offset: int | None
    lag: int | None
    consumer_id: str | None
    client_id: str | None


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Left-aligned columns as wide as their widest cell, one space apart; None cells print ``-``."""
    cells = [list(columns)] + [[MISSING if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return [" ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]


def describe_partitions(description: GroupDescription, topic_partitions: dict[str, list[int]]) -> list[TopicPartition]:
    """The partitions ``groups describe`` shows: every one the group committed or is assigned, plus every
    partition of the topics its members subscribe to (``topic_partitions``: those that exist)."""
    wanted = set(description.offsets)
    for member in description.members:
        wanted.update(member.assignment)
        for topic in member.topics:
            wanted.update(TopicPartition(topic, p) for p in topic_partitions.get(topic, []))
    return sorted(wanted)


def lag_rows(
    description: GroupDescription, partitions: Iterable[TopicPartition], end_offsets: dict[TopicPartition, int]
) -> list[LagRow]:
    """The rows of ``groups describe``: lag is the log end offset minus the committed offset (negative, as in
    Kafka's tool, when an offset was committed past the end of the log)."""
    owners = {tp: member for member in description.members for tp in member.assignment}
    rows = []
    for tp in sorted(partitions):
        current = description.offsets.get(tp)
        end = end_offsets.get(tp)
        lag = end - current if current is not None and end is not None else None
        owner = owners.get(tp)
        rows.append(
            LagRow(
                tp.topic,
                tp.partition,
                current,
                end,
                lag,
                owner.member_id if owner else None,
                owner.client_id if owner else None,
            )
        )
    return rows


def describe_json(description: GroupDescription, rows: list[LagRow]) -> dict[str, Any]:
    """A described group as a JSON-ready object (null where the table shows ``-``)."""
    return {
        "group": description.group_id,
        "state": description.state,
        "strategy": description.strategy,
        "generation": description.generation,
        "members": [
            {
                "member_id": m.member_id,
                "client_id": m.client_id,
                "topics": list(m.topics),
                "assignment": [{"topic": tp.topic, "partition": tp.partition} for tp in m.assignment],
            }
            for m in description.members
        ],
        "partitions": [row._asdict() for row in rows],
    }


def clamp(offset: int, earliest: int, latest: int) -> int:
    """``offset`` moved into ``[earliest, latest]``, as Kafka's tool does for ``--to-offset``."""
    return min(max(offset, earliest), latest)


def _partition_ids(admin: Any, topics: Iterable[str]) -> dict[str, list[int]]:
    """The partition ids of each of ``topics`` that exists."""
    out = {}
    for topic in sorted(topics):
        try:
            out[topic] = [p.id for p in admin.describe_topic(topic).partitions]
        except UnknownTopicError:
            pass  # deleted meanwhile: its rows show no log end offset
    return out


def _non_empty(group: str) -> NonEmptyGroupError:
    return NonEmptyGroupError(f"group {group} has active members; stop them first")


@click.group()
def groups() -> None:
    """List, describe, reset and delete consumer groups."""


@groups.command(name="list")
@output_option
@bootstrap_option
@config_option
@log_level_option
def list_(output: str, bootstrap: str, log_level: str) -> None:
    """List consumer groups with their state and number of members."""
    setup_logging(log_level)

    def run() -> None:
        with open_admin(bootstrap) as admin:
            listings: list[GroupListing] = admin.list_groups()
        if output == "json":
            click.echo(json.dumps([{"group": g.group_id, "state": g.state, "members": g.members} for g in listings]))
        else:
            click.echo("\n".join(table(LIST_COLUMNS, listings)))

    run_command(run)


@groups.command()
@click.argument("group")
@output_option
@bootstrap_option
@config_option
@log_level_option
def describe(group: str, output: str, bootstrap: str, log_level: str) -> None:
    """Describe GROUP: per partition the committed offset, log end offset, lag and owning member."""
    setup_logging(log_level)

    def run() -> None:
        with open_admin(bootstrap) as admin:
            description: GroupDescription = admin.describe_group(group)
            topics = {tp.topic for tp in description.offsets}
            for member in description.members:
                topics.update(member.topics)
                topics.update(tp.topic for tp in member.assignment)
            topic_partitions = _partition_ids(admin, topics & set(admin.list_topics()))
            partitions = describe_partitions(description, topic_partitions)
            known = [tp for tp in partitions if tp.partition in topic_partitions.get(tp.topic, ())]
            end_offsets = admin.end_offsets(known)
        rows = lag_rows(description, partitions, end_offsets)
        if output == "json":
            click.echo(json.dumps(describe_json(description, rows), indent=2))
            return
        if not description.members:
            click.echo(f"Consumer group '{group}' has no active members.", err=True)
        click.echo("\n".join(table(DESCRIBE_COLUMNS, [(group, *row) for row in rows])))

    run_command(run)


@groups.command()
@click.argument("group")
@click.option("--topic", required=True, help="The topic whose offsets to reset.")
@click.option(
    "--partition",
    type=click.IntRange(min=0),
    multiple=True,
    help="Only this partition (repeatable; default: every partition of the topic).",
)
@click.option("--to-earliest", is_flag=True, help="Reset to the earliest offset still in the log.")
@click.option("--to-latest", is_flag=True, help="Reset to the log end offset (skip every record so far).")
@click.option(
    "--to-offset",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Reset to offset N (moved into the log's range, as Kafka does).",
)
@click.option("--dry-run", is_flag=True, help="Print the new offsets without committing them.")
@output_option
@bootstrap_option
@config_option
@log_level_option
def reset(
    *,
    group: str,
    topic: str,
    partition: tuple[int, ...],
    to_earliest: bool,
    to_latest: bool,
    to_offset: int | None,
    dry_run: bool,
    output: str,
    bootstrap: str,
    log_level: str,
) -> None:
    """Reset the committed offsets of GROUP on a topic (only while the group has no members)."""
    setup_logging(log_level)

    def run() -> None:
        if to_earliest + to_latest + (to_offset is not None) != 1:
            fail("give exactly one of --to-earliest, --to-latest, --to-offset N")
        validate_topic_name(topic)
        with open_admin(bootstrap) as admin:
            try:
                if admin.describe_group(group).members:
                    raise _non_empty(group)
            except GroupIdNotFoundError:
                pass  # a new group: the commit creates it
            existing = [p.id for p in admin.describe_topic(topic).partitions]
            for p in partition:
                if p not in existing:
                    raise UnknownTopicError(f"topic {topic} has no partition {p} (it has {len(existing)})")
            partitions = [TopicPartition(topic, p) for p in sorted(set(partition) or existing)]
            if to_earliest:
                offsets = admin.beginning_offsets(partitions)
            elif to_latest:
                offsets = admin.end_offsets(partitions)
            else:
                assert to_offset is not None
                earliest = admin.beginning_offsets(partitions)
                latest = admin.end_offsets(partitions)
                offsets = {tp: clamp(to_offset, earliest[tp], latest[tp]) for tp in partitions}
                for tp in partitions:
                    if offsets[tp] != to_offset:
                        click.echo(
                            f"warning: offset {to_offset} is outside {tp.topic}-{tp.partition}'s log "
                            f"[{earliest[tp]}, {latest[tp]}]: using {offsets[tp]}",
                            err=True,
                        )
            if not dry_run:
                admin.alter_group_offsets(group, offsets)
        if output == "json":
            entries = [
                {"group": group, "topic": tp.topic, "partition": tp.partition, "new_offset": offsets[tp]}
                for tp in partitions
            ]
            click.echo(json.dumps(entries, indent=2))
        else:
            click.echo(
                "\n".join(table(RESET_COLUMNS, [(group, tp.topic, tp.partition, offsets[tp]) for tp in partitions]))
            )
        if dry_run:
            click.echo("Dry run: nothing was committed.", err=True)

    run_command(run)


@groups.command()
@click.argument("group")
@bootstrap_option
@config_option
@log_level_option
def delete(group: str, bootstrap: str, log_level: str) -> None:
    """Delete GROUP and its committed offsets (only while it has no members)."""
    setup_logging(log_level)

    def run() -> None:
        with open_admin(bootstrap) as admin:
            admin.delete_group(group)
        click.echo(f"Deleted group {group}.")

    run_command(run)
