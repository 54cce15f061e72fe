"""The consumer processes of a group benchmark, seen from the benchmark: start them, command them, follow them.

Each process runs ``bench.group_consumer`` (the sync ``Consumer`` with a ``group_id``); its JSON-line events are
read by one thread per process into one queue, and ``ConsumerProcesses.pump`` applies them to the process's
state (``assignment``, ``positions``, ``done``...) in the caller's thread. The processes' logs go to files in a
temporary directory (their tail is shown when one fails), removed with the processes on ``close``. The kernel
sends a process SIGTERM if the benchmark dies, and the end of its stdin stops it.

A process that reports an error, or exits when it was neither told to stop nor killed, fails the benchmark
with ``ChildProcessError``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from raftkafka.bench.group_consumer import GO, STOP, command_line
from raftkafka.bench.local_cluster import _die_with_parent, file_tail
from raftkafka.client import Admin
from raftkafka.errors import KafkaTimeoutError, RaftKafkaError
from raftkafka.structs import GroupDescription

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
"""How long a stopped process may take to report, commit and leave before it is killed."""
SETTLE_TIMEOUT_S = 120.0
"""How long the processes may take to start and form a stable group."""
POLL_S = 0.05
STABLE = "Stable"
"""The state DESCRIBE_GROUPS gives a group whose current generation is complete."""
EXITED = "exited"
"""The event the reader thread adds when a process's stdout ends (``{"status": returncode}``)."""


def stable_owners(
    description: GroupDescription, client_ids: Sequence[str], partitions: int, topic: str
) -> dict[str, list[int]] | None:
    """The partitions of ``topic`` each member owns (by client id) when ``description`` shows the group Stable
    with exactly ``client_ids`` as members and each of ``partitions`` owned once; else None."""
    if description.state != STABLE or sorted(m.client_id for m in description.members) != sorted(client_ids):
        return None
    owners = {
        m.client_id: sorted(tp.partition for tp in m.assignment if tp.topic == topic) for m in description.members
    }
    owned = sorted(p for assignment in owners.values() for p in assignment)
    return owners if owned == list(range(partitions)) else None


class ConsumerProcess:
    """One consumer process: its settings, its process, and what its events said so far."""

    def __init__(self, client_id: str, command: list[str], log_path: Path) -> None:
        self.client_id = client_id
        self.command = command
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None
        self.assignment: list[int] | None = None
        self.assigned_ns: int | None = None
        self.records = 0
        self.positions: dict[int, int] = {}
        self.done: dict[str, Any] | None = None
        self.status: int | None = None
        self.killed_ns: int | None = None
        self.stopping = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.status is None and self.killed_ns is None

    def start(self, events: queue.Queue[tuple[ConsumerProcess, dict[str, Any]]]) -> None:
        """Start the process; a thread feeds its events into ``events``."""
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True,
                bufsize=1, preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, and the children need it
            )  # fmt: skip
        assert self.proc.stdout is not None
        threading.Thread(
            target=_read_events, args=(self, self.proc, self.proc.stdout, events), daemon=True, name=self.client_id
        ).start()

    def send(self, command: str) -> None:
        """Send one command line (a process that is gone is ignored)."""
        if self.proc is None or self.proc.stdin is None or self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def stop(self) -> None:
        """Tell the process to report ``done``, commit, leave the group and exit."""
        self.stopping = True
        self.send(STOP)

    def kill(self) -> int:
        """SIGKILL the process (nothing committed, no leave: a crash) and reap it; the ``monotonic_ns`` of the kill."""
        assert self.proc is not None
        self.killed_ns = time.monotonic_ns()
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        return self.killed_ns

    def apply(self, event: dict[str, Any]) -> None:
        """Take one event into the state; ``ChildProcessError`` for an error or an exit nobody asked for."""
        kind = event.get("event")
        if kind == "assigned":
            self.assignment = list(event["partitions"])
            self.assigned_ns = event["at_ns"]
        elif kind == "progress":
            self.records = event["records"]
            self.positions = {int(p): offset for p, offset in event["positions"].items()}
        elif kind == "done":
            self.done = event
            self.records = event["records"]
        elif kind == "error":
            raise ChildProcessError(f"consumer {self.client_id} failed: {event.get('message')}\n{self.log_tail()}")
        elif kind == EXITED:
            self.status = event["status"]
            if self.killed_ns is None and not (self.stopping and self.status == 0):
                raise ChildProcessError(
                    f"consumer {self.client_id} exited with status {self.status}:\n{self.log_tail()}"
                )

    def log_tail(self) -> str:
        """The end of the process's log (its stderr)."""
        return file_tail(self.log_path)


def _read_events(
    process: ConsumerProcess,
    proc: subprocess.Popen[str],
    stdout: IO[str],
    events: queue.Queue[tuple[ConsumerProcess, dict[str, Any]]],
) -> None:
    for line in stdout:
        try:
            events.put((process, json.loads(line)))
        except ValueError:
            log.warning("consumer %s printed %r", process.client_id, line.rstrip())
    events.put((process, {"event": EXITED, "status": proc.wait()}))


class ConsumerProcesses:
    """The consumer processes of one run, all in group ``group`` on ``topic``; use as a context manager."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        *,
        gate: bool,
        session_timeout_ms: int | None = None,
        heartbeat_interval_ms: int | None = None,
        log_level: str = "warning",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group = group
        self.gate = gate
        self.session_timeout_ms = session_timeout_ms
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.log_level = log_level
        self.log_dir = Path(tempfile.mkdtemp(prefix="raftkafka-bench-consumers-"))
        self.processes: list[ConsumerProcess] = []
        self._events: queue.Queue[tuple[ConsumerProcess, dict[str, Any]]] = queue.Queue()

    @property
    def alive(self) -> list[ConsumerProcess]:
        return [process for process in self.processes if process.alive]

    def start(self) -> ConsumerProcess:
        """Start one more consumer (client id ``bench-consumer-N``, N counting every process started)."""
        client_id = f"bench-consumer-{len(self.processes)}"
        command = command_line(
            bootstrap=self.bootstrap,
            topic=self.topic,
            group=self.group,
            client_id=client_id,
            gate=self.gate,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            log_level=self.log_level,
        )
        process = ConsumerProcess(client_id, command, self.log_dir / f"{client_id}.log")
        process.start(self._events)
        self.processes.append(process)
        return process

    def go(self) -> None:
        """Open every live process's gate."""
        for process in self.alive:
            process.send(GO)

    def pump(self, timeout_s: float) -> bool:
        """Apply the next event (waiting up to ``timeout_s``); False when none came."""
        try:
            process, event = self._events.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return False
        process.apply(event)
        return True

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """Apply events until ``condition()`` holds; ``KafkaTimeoutError`` naming ``what`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise KafkaTimeoutError(f"{what} did not happen within {timeout_s:g} s")
            self.pump(min(remaining, 0.05))

    def settled(self, description: GroupDescription, partitions: int) -> bool:
        """Whether ``description`` shows the group Stable with exactly the live processes as members, together
        owning each of ``partitions`` once, and each process consuming the partitions it was given."""
        owners = stable_owners(description, [process.client_id for process in self.alive], partitions, self.topic)
        return owners is not None and all(process.assignment == owners[process.client_id] for process in self.alive)

    def wait_settled(self, admin: Admin, partitions: int, timeout_s: float = SETTLE_TIMEOUT_S) -> int:
        """Apply events until the group is ``settled`` (asking DESCRIBE_GROUPS every ``POLL_S``); its generation."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                description = admin.describe_group(self.group)
                if self.settled(description, partitions):
                    return description.generation
            except RaftKafkaError as exc:
                log.debug("describe_group failed: %s", exc)
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(
                    f"group {self.group!r} did not settle with {len(self.alive)} members within {timeout_s:g} s"
                )
            self.pump(POLL_S)

    def stop_all(self) -> None:
        """Stop every live process and wait until each reported ``done`` and exited."""
        live = self.alive
        for process in live:
            process.stop()
        self.wait_until(
            lambda: all(p.status is not None for p in live), STOP_TIMEOUT_S, "the consumers' clean shutdown"
        )

    def close(self) -> None:
        """SIGKILL whatever still runs and remove the logs."""
        for process in self.processes:
            if process.proc is not None and process.proc.poll() is None:
                process.kill()
            if process.proc is not None and process.proc.stdin is not None:
                try:
                    process.proc.stdin.close()
                except OSError:
                    pass
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> ConsumerProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
