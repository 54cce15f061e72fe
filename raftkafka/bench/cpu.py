"""CPU time and sleeps per record of the processes in a benchmark run: the client and the watched servers.

On a shared or virtual machine the wall-clock rates move by 15-30% between runs minutes apart; the CPU a
process spends per record moves far less, so it is the figure to compare code versions by. Sleeps (voluntary
context switches) count how often a process waited for something: each one ends in a wake-up, which costs
tens of µs of CPU and latency on a virtual machine whose idle CPUs halt.

The client is this process (``getrusage``: every thread, µs resolution). A server is read from
``/proc/PID/stat`` (``utime`` + ``stime`` of all its threads, in clock ticks of usually 10 ms) and
``/proc/PID/task/*/status`` (``voluntary_ctxt_switches`` of the threads alive at the reading).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIENT = "client"
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_UTIME = 11
"""Index of ``utime`` (field 14 of proc(5); ``stime`` follows) among the fields after the command name."""


@dataclass(frozen=True, slots=True)
class CpuReading:
    """A process's CPU seconds (user + system) and sleeps so far."""

    cpu_s: float
    sleeps: int


def read_own() -> CpuReading:
    """This process's reading (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return CpuReading(usage.ru_utime + usage.ru_stime, usage.ru_nvcsw)


def read_process(pid: int) -> CpuReading | None:
    """Process ``pid``'s reading; None when there is no such process (or it is not readable)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        sleeps = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            sleeps += _voluntary_switches(task / "status")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    ticks = int(fields[_UTIME]) + int(fields[_UTIME + 1])
    return CpuReading(ticks / _TICKS_PER_S, sleeps)


def _voluntary_switches(status: Path) -> int:
    try:
        for line in status.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    except OSError:  # the thread ended between listing and reading
        pass
    return 0


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    """What one process spent in a benchmark's timed phase."""

    name: str
    pid: int
    cpu_s: float
    sleeps: int

    def as_dict(self, records: int) -> dict[str, Any]:
        """The totals and the figures per record (per round trip in e2e)."""
        return {
            "process": self.name,
            "pid": self.pid,
            "cpu_s": round(self.cpu_s, 4),
            "cpu_us_per_record": round(self.cpu_s * 1e6 / max(records, 1), 3),
            "sleeps": self.sleeps,
            "sleeps_per_record": round(self.sleeps / max(records, 1), 4),
        }

    def brief(self, records: int) -> str:
        """``"<name> <µs> µs, <sleeps> sleeps"`` per record, for the human summary."""
        per = max(records, 1)
        return f"{self.name} {self.cpu_s * 1e6 / per:.2f} µs, {self.sleeps / per:.3f} sleeps"


def spent(name: str, pid: int, before: CpuReading | None, after: CpuReading | None) -> ProcessCpu | None:
    """The difference of two readings of one process; None if either is missing (the process is gone)."""
    if before is None or after is None:
        return None
    return ProcessCpu(name, pid, after.cpu_s - before.cpu_s, after.sleeps - before.sleeps)


class CpuMeter:
    """Reads the watched processes (``(name, pid)`` pairs) and, with ``client``, this process, at ``start`` and
    ``stop`` of a timed phase."""

    def __init__(self, servers: Sequence[tuple[str, int]] = (), *, client: bool = True) -> None:
        self.servers = tuple(servers)
        self.client = client
        self._start: list[CpuReading | None] = []

    def _read(self) -> list[CpuReading | None]:
        readings = [read_process(pid) for _, pid in self.servers]
        return [read_own(), *readings] if self.client else readings

    def start(self) -> None:
        """Take the first readings."""
        self._start = self._read()

    def stop(self) -> tuple[ProcessCpu, ...]:
        """What each process spent since ``start`` (a process that ended meanwhile is left out); ``ValueError`` if
        ``start`` was not called."""
        end = self._read()
        names = [(CLIENT, os.getpid()), *self.servers] if self.client else list(self.servers)
        found = [
            spent(name, pid, before, after)
            for (name, pid), before, after in zip(names, self._start, end, strict=True)
        ]
        return tuple(process for process in found if process is not None)
