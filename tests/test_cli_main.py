"""The ``raftkafka`` group: every subcommand resolves, and a command imports only its own module's code."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from raftkafka.cli.main import COMMANDS, LazyGroup, cli

SERVER_PACKAGES = ("raftkafka.broker", "raftkafka.bench", "raftkafka.controller", "raftkafka.raftlog")


def test_every_listed_command_resolves_to_the_command_of_that_name() -> None:
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name
    assert cli.get_command(ctx, "no-such-command") is None


def test_a_lazy_entry_that_is_no_command_is_refused() -> None:
    group = LazyGroup(name="g", lazy_commands={"main": "raftkafka.cli.main"})  # raftkafka.cli.main.main: a function
    with pytest.raises(TypeError, match=r"raftkafka\.cli\.main\.main is not a click command"):
        group.get_command(click.Context(group), "main")


@pytest.mark.parametrize("command", [["topics", "list"], ["produce"], ["consume"], ["groups", "list"]])
def test_a_client_command_does_not_import_the_servers(command: list[str]) -> None:
    probe = (
        "import sys\n"
        "from raftkafka.cli.main import cli\n"
        f"cli({[*command, '--help']!r}, standalone_mode=False)\n"
        f"print(sorted(m for m in sys.modules if m.startswith({SERVER_PACKAGES!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.splitlines()[-1] == "[]"
