"""``raftkafka produce``: one record per line of stdin, optionally ``KEY<SEP>VALUE``."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import click

from raftkafka.cli.options import bootstrap_option, config_option, fail, log_level_option, run_command, setup_logging
from raftkafka.cli.topics import REQUEST_TIMEOUT_MS, require_topic
from raftkafka.errors import RaftKafkaError

MAX_UNCHECKED_SENDS = 50_000
"""Futures kept before the oldest is checked (bounds memory on endless input)."""


class MissingKeySeparatorError(ValueError):
    """A line lacks the key separator it was promised to have."""


def split_line(line: bytes, separator: bytes | None) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of one input line (its newline already removed); the key is None without a separator."""
    if separator is None:
        return None, line
    key, sep, value = line.partition(separator)
    if not sep:
        raise MissingKeySeparatorError
    return key, value


def read_records(stream: BinaryIO, separator: bytes | None) -> Iterable[tuple[bytes | None, bytes]]:
    """``(key, value)`` per line of ``stream``: the bytes of the line without its ``\\n`` (nothing else stripped)."""
    for number, line in enumerate(stream, start=1):
        try:
            yield split_line(line[:-1] if line.endswith(b"\n") else line, separator)
        except MissingKeySeparatorError:
            raise MissingKeySeparatorError(f"line {number} has no key separator {separator!r}") from None


@dataclass(slots=True)
class SendTally:
    """How many records were sent and how many of them failed (with the first error seen)."""

    sent: int = 0
    failed: int = 0
    first_error: RaftKafkaError | None = None

    def check(self, future: Any) -> None:
        """Wait for one record's outcome and count it."""
        error = future.exception()
        if error is not None:
            self.failed += 1
            self.first_error = self.first_error or error


def produce_all(producer: Any, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> SendTally:
    """Send every record, flush, and return the tally (at most ``MAX_UNCHECKED_SENDS`` outcomes pending)."""
    tally = SendTally()
    pending: deque[Any] = deque()
    try:
        for key, value in records:
            pending.append(producer.send(topic, value, key=key))
            tally.sent += 1
            if len(pending) > MAX_UNCHECKED_SENDS:
                tally.check(pending.popleft())
    finally:
        producer.flush()
        while pending:
            tally.check(pending.popleft())
    return tally


@click.command()
@click.argument("topic")
@click.option(
    "--key-separator",
    default=None,
    metavar="SEP",
    help="Split each line at the first SEP into key and value (a line without SEP is an error).",
)
@click.option(
    "--acks", type=click.Choice(["0", "1", "all"]), default="1", show_default=True, help="Acknowledgement level."
)
@bootstrap_option
@config_option
@log_level_option
def produce(topic: str, key_separator: str | None, acks: str, bootstrap: str, log_level: str) -> None:
    """Send each line of stdin as one record to TOPIC; exit non-zero if any record failed."""
    setup_logging(log_level)
    if key_separator == "":
        fail("--key-separator must not be empty")
    separator = key_separator.encode() if key_separator is not None else None

    def run() -> None:
        from raftkafka.client import Producer  # imported on use: the server commands need not load the client

        require_topic(bootstrap, topic)
        with Producer(
            bootstrap=bootstrap,
            acks=acks if acks == "all" else int(acks),
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            max_block_ms=REQUEST_TIMEOUT_MS,
            delivery_timeout_ms=3 * REQUEST_TIMEOUT_MS,
        ) as producer:
            try:
                tally = produce_all(producer, topic, read_records(sys.stdin.buffer, separator))
            except MissingKeySeparatorError as exc:
                fail(str(exc))
        if tally.failed:
            fail(f"{tally.failed} of {tally.sent} records failed; first error: {tally.first_error}")

    run_command(run)
