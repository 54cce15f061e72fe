"""``bench produce --clients N``: the produce workload's ``produce_share`` in N client processes at once.

Each process (started with ``spawn``: no threads or sockets of this one are inherited) warms up with its share
of the warm-up records, waits at a start barrier, sends its share of the records (or runs for the duration)
and reports a ``ClientRun``. This process shows the progress from counters the clients update in shared
memory, and its timeline is the sum of theirs. Clients that outlive the benchmark are killed.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from raftkafka.bench.produce import ClientRun, produce_share
from raftkafka.bench.progress import Progress
from raftkafka.bench.settings import BenchSettings
from raftkafka.errors import KafkaTimeoutError

START_TIMEOUT_S = 60.0
"""How long the clients may take to start and warm up."""
POLL_S = 0.05
RESULT_TIMEOUT_S = 60.0
"""How long a client may go on after the others have finished (beyond the run itself)."""


def shares(total: int, clients: int) -> list[int]:
    """``total`` split into ``clients`` parts that differ by at most one."""
    base, extra = divmod(total, clients)
    return [base + (1 if index < extra else 0) for index in range(clients)]


class SharedCount:
    """A client's progress: its records sent so far, written into one slot of a shared array."""

    def __init__(self, counts: Any, index: int) -> None:
        self.counts = counts
        self.index = index

    def update(self, done: int) -> None:
        self.counts[self.index] = done

    def finish(self, done: int) -> None:
        self.counts[self.index] = done


def client_main(
    settings: BenchSettings, index: int, count: int, warmup: int, barrier: Any, counts: Any, results: Any
) -> None:  # pragma: no cover - runs in the client processes
    """One client process: its share, its ``ClientRun`` (or its error) put on ``results``."""
    try:
        run = produce_share(
            settings, count, warmup, lambda: SharedCount(counts, index), lambda: barrier.wait(START_TIMEOUT_S)
        )
    except threading.BrokenBarrierError:
        results.put((index, None))
    except BaseException as exc:  # reported to the benchmark, which fails with it
        barrier.abort()
        results.put((index, f"{type(exc).__name__}: {exc}"))
    else:
        results.put((index, run))


def produce_in_processes(
    settings: BenchSettings, *, total: int | None, show_progress: bool, ready: Callable[[], object] = lambda: None
) -> tuple[list[ClientRun], list[tuple[float, int]]]:
    """Run ``settings.clients`` client processes; their runs and the summed timeline (from the start signal, when
    ``ready`` is called)."""
    context = multiprocessing.get_context("spawn")
    clients = settings.clients
    barrier = context.Barrier(clients + 1)
    counts = context.RawArray("q", clients)
    results = context.Queue()
    processes = [
        context.Process(
            target=client_main,
            args=(settings, index, count, warmup, barrier, counts, results),
            name=f"raftkafka-bench-client-{index}",
            daemon=True,
        )
        for index, (count, warmup) in enumerate(
            zip(shares(settings.records, clients), shares(settings.warmup_records, clients), strict=True)
        )
    ]
    try:
        for process in processes:
            process.start()
        try:
            barrier.wait(START_TIMEOUT_S)
        except threading.BrokenBarrierError:
            raise ChildProcessError(f"the clients did not start: {first_error(results, clients)}") from None
        ready()
        progress = Progress(f"produce ({clients} clients)", total, enabled=show_progress)
        runs = collect(results, clients, counts, progress, settings)
        progress.finish(sum(run.sent for run in runs))
        return runs, progress.timeline
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
        results.close()


def collect(results: Any, clients: int, counts: Any, progress: Progress, settings: BenchSettings) -> list[ClientRun]:
    """Every client's run, showing their summed counts meanwhile; the first error fails the benchmark."""
    runs: dict[int, ClientRun] = {}
    limit = RESULT_TIMEOUT_S + (settings.duration_s or 0)
    deadline = None
    while len(runs) < clients:
        try:
            index, run = results.get(timeout=POLL_S)
        except queue.Empty:
            pass
        else:
            if not isinstance(run, ClientRun):
                raise ChildProcessError(f"client {index}: {run or 'stopped'}")
            runs[index] = run
            deadline = deadline or time.monotonic() + limit
        progress.update(sum(counts))
        if deadline is not None and time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"{clients - len(runs)} of {clients} clients did not finish")
    return [runs[index] for index in range(clients)]


def first_error(results: Any, clients: int) -> str:
    """The first error a client reported (waiting a little for it), or a generic reason."""
    for _ in range(clients):
        try:
            index, run = results.get(timeout=1.0)
        except queue.Empty:
            break
        if isinstance(run, str):
            return f"client {index}: {run}"
    return f"not all were ready within {START_TIMEOUT_S:.0f} s"
