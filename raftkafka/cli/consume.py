"""``raftkafka consume``: print records of a topic to stdout, one per line; progress and summary on stderr.

Without ``--group`` the command reads every partition of the topic and remembers nothing. With ``--group G``
it is a member of consumer group G, as Kafka's console consumer is: it shares the topic's partitions with
the group's other members, starts where the group's committed offsets say (``--from-beginning`` applies only
to partitions without one) and commits the position after the records it printed, every
``AUTO_COMMIT_INTERVAL_MS`` and on exit (including Ctrl-C), so the next run resumes after them.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import click

from raftkafka.cli.options import bootstrap_option, config_option, log_level_option, run_command, setup_logging
from raftkafka.cli.topics import REQUEST_TIMEOUT_MS, require_topic
from raftkafka.structs import Record

NULL = b"null"
"""What is printed for a missing key or value, as Kafka's console consumer does."""

POLL_TIMEOUT_MS = 200
MAX_POLL_RECORDS = 10_000
AUTO_COMMIT_INTERVAL_MS = 5000
"""How often a group member commits what it printed (Kafka's default); it also commits on exit."""
CLIENT_ID = "raftkafka-console-consumer"
"""The client id a group member shows in ``groups describe`` (Kafka's tool says ``console-consumer``)."""


def format_records(records: Iterable[Record], print_key: bool) -> bytes:
    """The output lines of ``records``: ``value`` or ``key<TAB>value``, each ending in a newline."""
    if print_key:
        lines = [(NULL if r.key is None else r.key) + b"\t" + (NULL if r.value is None else r.value) for r in records]
    else:
        lines = [NULL if r.value is None else r.value for r in records]
    return b"\n".join(lines) + b"\n" if lines else b""


def consume_to(
    consumer: Any,
    out: BinaryIO,
    *,
    print_key: bool,
    max_messages: int | None,
    idle_timeout_ms: int | None,
    stop: threading.Event,
) -> int:
    """Write records from ``consumer`` to ``out`` until ``max_messages``, ``idle_timeout_ms`` without any,
    or ``stop`` is set (checked between polls); returns how many were written."""
    written = 0
    idle_deadline = None if idle_timeout_ms is None else time.monotonic() + idle_timeout_ms / 1000
    while (max_messages is None or written < max_messages) and not stop.is_set():
        want = MAX_POLL_RECORDS if max_messages is None else min(MAX_POLL_RECORDS, max_messages - written)
        records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=want)
        if records:
            out.write(format_records(records, print_key))
            out.flush()
            written += len(records)
            if idle_timeout_ms is not None:
                idle_deadline = time.monotonic() + idle_timeout_ms / 1000
        elif idle_deadline is not None and time.monotonic() >= idle_deadline:
            break
    return written


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM, so the poll loop ends between polls and the client
    closes cleanly; a second signal interrupts at once."""
    stop = threading.Event()

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@click.command()
@click.argument("topic")
@click.option(
    "--group",
    default=None,
    metavar="G",
    help="Consume as a member of consumer group G: share the partitions with its members, start at its "
    "committed offsets and commit what was printed (every 5 s and on exit).",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the earliest offset (default: only new records); with --group, only where the group has "
    "no committed offset.",
)
@click.option("--max-messages", type=click.IntRange(min=1), default=None, help="Stop after this many records.")
@click.option("--print-key", is_flag=True, help="Print key<TAB>value instead of the value only.")
@click.option(
    "--timeout-ms",
    type=click.IntRange(min=0),
    default=None,
    help="Stop when no record arrives for this long (default: wait forever).",
)
@bootstrap_option
@config_option
@log_level_option
def consume(
    *,
    topic: str,
    group: str | None,
    from_beginning: bool,
    max_messages: int | None,
    print_key: bool,
    timeout_ms: int | None,
    bootstrap: str,
    log_level: str,
) -> None:
    """Print the records of TOPIC, one per line, until --max-messages, --timeout-ms or Ctrl-C (exit 0)."""
    setup_logging(log_level)

    def run() -> None:
        from raftkafka.client import Consumer  # imported on use: the server commands need not load the client

        require_topic(bootstrap, topic)
        with Consumer(
            topic,
            bootstrap=bootstrap,
            group_id=group,
            client_id=CLIENT_ID,
            enable_auto_commit=group is not None,
            auto_commit_interval_ms=AUTO_COMMIT_INTERVAL_MS,
            auto_offset_reset="earliest" if from_beginning else "latest",
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            default_api_timeout_ms=REQUEST_TIMEOUT_MS,
        ) as consumer:
            try:
                with stop_on_signals() as stop:
                    count = consume_to(
                        consumer,
                        sys.stdout.buffer,
                        print_key=print_key,
                        max_messages=max_messages,
                        idle_timeout_ms=timeout_ms,
                        stop=stop,
                    )
            except BrokenPipeError:
                _silence_stdout()
                return
        click.echo(f"Processed a total of {count} messages", err=True)

    run_command(run)
