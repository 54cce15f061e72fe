"""The ``raftkafka`` command: one click group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from raftkafka.cli.bench import bench
from raftkafka.cli.broker import broker
from raftkafka.cli.cluster import cluster
from raftkafka.cli.consume import consume
from raftkafka.cli.controller import controller
from raftkafka.cli.dev import dev
from raftkafka.cli.groups import groups
from raftkafka.cli.produce import produce
from raftkafka.cli.quorum import quorum
from raftkafka.cli.topics import topics


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RAFTKAFKA"})
@click.version_option(package_name="raftkafka")
def cli() -> None:
    """raftkafka: a Kafka-style distributed commit log with a Raft quorum of controllers."""


for command in (dev, controller, broker, cluster, quorum, topics, groups, produce, consume, bench):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="raftkafka")


if __name__ == "__main__":
    main()
