"""Options shared by the commands, and the one place where flags, TOML files and environment meet.

Precedence, highest first: a flag on the command line, then ``RAFTKAFKA_<COMMAND>_<OPTION>`` from the
environment (``RAFTKAFKA_BOOTSTRAP`` for ``--bootstrap``), then the TOML file given with ``--config``,
then the built-in default. TOML keys are the long flag names (``data-dir = "/var/lib/raftkafka"``).
"""

from __future__ import annotations

import logging
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from raftkafka.errors import InvalidConfigError, RaftKafkaError
from raftkafka.net.idle_poll import MAX_IDLE_POLL_US

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def load_config_file(ctx: click.Context, value: str) -> None:
    """Make the settings of TOML file ``value`` the defaults of ``ctx``'s command (``BadParameter`` if bad)."""
    try:
        with open(value, "rb") as fh:
            table = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}") from None
    known = {p.name for p in ctx.command.params if p.name}
    defaults: dict[str, Any] = {}
    for key, item in table.items():
        name = key.replace("-", "_")
        if name not in known:
            raise click.BadParameter(f"{value}: unknown setting {key!r} for this command")
        defaults[name] = ",".join(map(str, item)) if isinstance(item, list) else item
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _config_option_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        load_config_file(ctx, value)
    return value


config_option = click.option(
    "--config",
    type=click.Path(dir_okay=False),
    is_eager=True,
    expose_value=False,
    callback=_config_option_callback,
    help="TOML file of settings (keys are the long flag names).",
)

def _check_bootstrap(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from raftkafka.client.bootstrap import parse_bootstrap  # imported here: servers need not load the client

    try:
        parse_bootstrap(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


bootstrap_option = click.option(
    "--bootstrap",
    envvar="RAFTKAFKA_BOOTSTRAP",
    callback=_check_bootstrap,
    default=DEFAULT_BOOTSTRAP,
    show_default=True,
    help="Broker address(es) to start from: HOST:PORT[,HOST:PORT...] (env RAFTKAFKA_BOOTSTRAP).",
)

log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Log verbosity (logs go to stderr).",
)

def idle_poll_option(
    help_text: str = "After each request, keep polling for the next one this many µs instead of sleeping: lower "
    "latency on virtual machines for a core's worth of CPU while busy; 0 turns it off (leave it off when "
    "processes share cores).",
) -> Callable[[F], F]:
    """``--idle-poll-us N`` (0 to ``MAX_IDLE_POLL_US``, default 0: off), explained by ``help_text``."""
    return click.option(
        "--idle-poll-us", type=click.IntRange(0, MAX_IDLE_POLL_US), default=0, show_default=True, help=help_text
    )


def setup_logging(level: str) -> None:
    """Structured ``key=value`` logs on stderr; the library itself never configures logging."""
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
    )


def fail(message: str) -> None:
    """Exit with status 1 after one line on stderr."""
    click.echo(f"error: {message}", err=True)
    raise SystemExit(1)


def run_command(func: Callable[[], Any]) -> Any:
    """Run ``func``, turning the expected failures into one-line errors and a non-zero exit."""
    try:
        return func()
    except RaftKafkaError as exc:
        fail(str(exc))
    except (InvalidConfigError, OSError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def data_dir_option(default: str) -> Callable[[F], F]:
    """``--data-dir`` with a per-command default."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=default,
        show_default=True,
        help="Directory for the metadata log and partition data.",
    )
