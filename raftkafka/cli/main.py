"""The ``raftkafka`` command: one click group; each subcommand lives in its own module, imported when it is used
(a client command such as ``topics list`` does not load the broker's or the benchmark's code)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

COMMANDS = {
    "bench": "raftkafka.cli.bench",
    "broker": "raftkafka.cli.broker",
    "cluster": "raftkafka.cli.cluster",
    "consume": "raftkafka.cli.consume",
    "controller": "raftkafka.cli.controller",
    "dev": "raftkafka.cli.dev",
    "groups": "raftkafka.cli.groups",
    "produce": "raftkafka.cli.produce",
    "quorum": "raftkafka.cli.quorum",
    "topics": "raftkafka.cli.topics",
}
"""Each subcommand's module; the command is the module's attribute of the same name."""


class LazyGroup(click.Group):
    """A group whose subcommands (``name -> module``) are imported the first time they are looked up."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self.lazy_commands.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command = getattr(importlib.import_module(module), cmd_name)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{cmd_name} is not a click command")
        return command


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "RAFTKAFKA"},
)
@click.version_option(package_name="raftkafka")
def cli() -> None:
    """raftkafka: a Kafka-style distributed commit log with a Raft quorum of controllers."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="raftkafka")


if __name__ == "__main__":
    main()
