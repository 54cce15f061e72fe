"""One consumer process of a group benchmark: ``python -m raftkafka.bench.group_consumer --group G --topic T ...``.

The process runs the sync ``Consumer`` with ``group_id``, subscribed to one topic, and talks to the benchmark
that started it in JSON lines: events on stdout, commands on stdin.

Events (each with ``"event"``; times are ``time.monotonic_ns()``, one clock for every process of the machine):

- ``assigned``: ``{"partitions": [...], "at_ns"}`` after each rebalance gave the member its partitions.
- ``progress``: ``{"records", "positions": {partition: next offset}}`` at most every ``PROGRESS_S`` while
  records come, and once more when they stop coming.
- ``done``: ``{"records", "first_ns", "last_ns", "ranges": {partition: [[first, last], ...]}}`` after ``stop``:
  how many records arrived, when the first and the last poll returning records did, and the offsets read.
- ``error``: ``{"message"}`` when the consumer failed (the process then exits with status 1).

Commands: ``go`` (with ``--gate``: until then every assigned partition is paused, so the group can settle
before the clock starts) and ``stop`` (report ``done``, then close: commit and leave the group). The end of
stdin counts as ``stop``, so a consumer never outlives a benchmark that died.

Records are counted per poll: the offsets of each partition's run of records in a poll extend that
partition's ranges (a run is consecutive offsets), so the per-record work stays in C (``groupby``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any, TextIO

from raftkafka.client import Consumer, ConsumerRebalanceListener
from raftkafka.errors import RaftKafkaError
from raftkafka.structs import Record, TopicPartition

log = logging.getLogger(__name__)

MODULE = "raftkafka.bench.group_consumer"
POLL_TIMEOUT_MS = 100
MAX_POLL_RECORDS = 100_000
PROGRESS_S = 0.2
GO = "go"
STOP = "stop"
_PARTITION = itemgetter(1)  # Record.partition, read in C
_OFFSET = 2


def command_line(
    *,
    bootstrap: str,
    topic: str,
    group: str,
    client_id: str,
    gate: bool,
    session_timeout_ms: int | None = None,
    heartbeat_interval_ms: int | None = None,
    log_level: str = "warning",
) -> list[str]:
    """The command starting one consumer process with these settings."""
    command = [sys.executable, "-m", MODULE, "--bootstrap", bootstrap, "--topic", topic, "--group", group]
    command += ["--client-id", client_id, "--log-level", log_level]
    if gate:
        command.append("--gate")
    if session_timeout_ms is not None:
        command += ["--session-timeout-ms", str(session_timeout_ms)]
    if heartbeat_interval_ms is not None:
        command += ["--heartbeat-interval-ms", str(heartbeat_interval_ms)]
    return command


class Events:
    """JSON lines on a stream, one per event, written whole by any thread."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, separators=(",", ":"))
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


class Tally:
    """What arrived: the record count, when the first and last records came, the offset ranges per partition."""

    def __init__(self) -> None:
        self.records = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.ranges: dict[int, list[list[int]]] = {}

    def add(self, records: Sequence[Record], now_ns: int) -> None:
        """Count one poll's records, which arrived at ``now_ns``."""
        if not records:
            return
        self.records += len(records)
        if self.first_ns is None:
            self.first_ns = now_ns
        self.last_ns = now_ns
        for partition, run in groupby(records, key=_PARTITION):
            chunk = list(run)
            first, last = chunk[0][_OFFSET], chunk[-1][_OFFSET]
            spans = self.ranges.setdefault(partition, [])
            if spans and spans[-1][1] + 1 == first:
                spans[-1][1] = last
            else:
                spans.append([first, last])

    def positions(self) -> dict[int, int]:
        """The offset after the last record read, per partition read."""
        return {partition: spans[-1][1] + 1 for partition, spans in self.ranges.items()}


class Gate(ConsumerRebalanceListener):
    """Pauses every assigned partition until ``open``; reports each assignment.

    The consumer calls the listener only inside ``poll`` and ``open`` runs in the polling thread between polls,
    so the two never run at once.
    """

    def __init__(self, consumer: Consumer, events: Events, *, closed: bool) -> None:
        self._consumer = consumer
        self._events = events
        self.is_open = not closed

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not self.is_open and assigned:
            self._consumer.pause(*assigned)
        partitions = sorted(tp.partition for tp in assigned)
        self._events.send("assigned", partitions=partitions, at_ns=time.monotonic_ns())

    def open(self) -> None:
        """Resume the paused partitions; later assignments are not paused."""
        if self.is_open:
            return
        self.is_open = True
        paused = self._consumer.paused()
        if paused:
            self._consumer.resume(*paused)


def read_commands(stream: TextIO, go: threading.Event, stop: threading.Event) -> None:
    """Set ``go`` and ``stop`` as the commands come; the end of ``stream`` stops too."""
    for line in stream:
        command = line.strip()
        if command == GO:
            go.set()
        elif command == STOP:
            break
    stop.set()


def consume(consumer: Consumer, gate: Gate, events: Events, go: threading.Event, stop: threading.Event) -> Tally:
    """Poll until ``stop``, opening the gate at ``go``; report progress on the way."""
    tally = Tally()
    poll = consumer.poll
    clock = time.monotonic_ns
    reported = 0
    next_report = clock()
    while not stop.is_set():
        if go.is_set() and not gate.is_open:
            gate.open()
        records = poll(timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS)
        now = clock()
        tally.add(records, now)
        if tally.records != reported and (now >= next_report or not records):
            events.send("progress", records=tally.records, positions=tally.positions())
            reported = tally.records
            next_report = now + int(PROGRESS_S * 1e9)
    return tally


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--client-id", default="raftkafka-bench-consumer")
    parser.add_argument("--gate", action="store_true", help="Pause every assigned partition until 'go'.")
    parser.add_argument("--session-timeout-ms", type=int, default=None)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=None)
    parser.add_argument("--log-level", default="warning")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one consumer until ``stop``; 0, or 1 after an ``error`` event."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)r",
    )
    events = Events(sys.stdout)
    go, stop = threading.Event(), threading.Event()
    threading.Thread(target=read_commands, args=(sys.stdin, go, stop), daemon=True, name="commands").start()
    config: dict[str, Any] = {"group_id": args.group, "client_id": args.client_id, "auto_offset_reset": "earliest"}
    if args.session_timeout_ms is not None:
        config["session_timeout_ms"] = args.session_timeout_ms
    if args.heartbeat_interval_ms is not None:
        config["heartbeat_interval_ms"] = args.heartbeat_interval_ms
    try:
        consumer = Consumer(bootstrap=args.bootstrap, **config)
        try:
            gate = Gate(consumer, events, closed=args.gate)
            consumer.subscribe([args.topic], listener=gate)
            tally = consume(consumer, gate, events, go, stop)
            ranges = {str(partition): spans for partition, spans in tally.ranges.items()}
            events.send("done", records=tally.records, first_ns=tally.first_ns, last_ns=tally.last_ns, ranges=ranges)
        finally:
            consumer.close()
    except (RaftKafkaError, ValueError, OSError) as exc:
        log.exception("consumer %s failed", args.client_id)
        events.send("error", message=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
