"""``raftkafka bench compare``: one workload against raftkafka and its peers, on this machine, in one run.

Every system runs the same three parts through one Python client process (this one), timed here the same way:
``warmup_records`` untimed then ``records`` timed records of ``record_size`` bytes produced, pipelined (the clock
stops once every record is acknowledged); the same records consumed from the beginning of the log (warm-up
untimed); ``e2e_warmup_records`` then ``e2e_records`` round trips one at a time (send, wait until the consumer
has it and it is acknowledged, send the next). A system is a module of ``peers`` that says whether it can run
here (``missing``, with the install command) and starts its servers for the run (``running``, a ``Client``).
raftkafka runs first: it is the baseline of the ratios, and its failure fails the command; a peer's failure is
reported in its row.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from raftkafka.bench.comparison import BASELINE, SYSTEMS, CompareSettings, Comparison, SystemFigures, failed, missing
from raftkafka.bench.progress import Progress
from raftkafka.bench.settings import make_payload
from raftkafka.bench.stats import NS_PER_S, summarize_latencies

log = logging.getLogger(__name__)


class Client(Protocol):
    """A running system, as one client process sees it."""

    def produce(self, count: int, payload: bytes, progress: Progress) -> None:
        """Send ``count`` records, pipelined; return once every one is acknowledged."""

    def consume(self, warmup: int, count: int, progress: Progress) -> int:
        """Read ``warmup`` then ``count`` records from the beginning of the log; the nanoseconds from the last
        warm-up record read (the start, with no warm-up) to the last record read."""

    def round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        """``warmup`` then ``count`` records one at a time, each consumed and acknowledged before the next; the
        nanoseconds from each timed send until the consumer had the record."""


class System(Protocol):
    """One system ``compare`` can run."""

    def missing(self) -> str | None:
        """Why the system cannot run here (with the command that installs what is missing), or None."""

    def running(self, directory: Path) -> AbstractContextManager[Client]:
        """Start the system's servers (their files in ``directory``); stop them when the context ends."""


def make_system(name: str, settings: CompareSettings) -> System:
    """The system called ``name`` (imported only when asked for: the peers' clients are optional)."""
    if name in ("raftkafka", "raftkafka-3x3"):
        from raftkafka.bench.peers.raftkafka_cluster import RaftkafkaSystem

        return RaftkafkaSystem("dev", "1") if name == "raftkafka" else RaftkafkaSystem("3x3", "all")
    if name == "redis":
        from raftkafka.bench.peers.redis_streams import RedisStreams

        return RedisStreams(settings.redis_server)
    from raftkafka.bench.peers.nats_jetstream import NatsJetStream

    return NatsJetStream(settings.nats_server, replicas=3 if name == "nats-r3" else 1)


def measure(name: str, client: Client, settings: CompareSettings, *, show_progress: bool) -> SystemFigures:
    """Run the three parts on ``client``; the system's figures."""
    payload = make_payload(settings.record_size)
    label = SYSTEMS[name]
    if settings.warmup_records:
        client.produce(settings.warmup_records, payload, Progress.silent())
    progress = Progress(f"{label}: produce", settings.records, enabled=show_progress)
    start = time.perf_counter_ns()
    client.produce(settings.records, payload, progress)
    produce_s = (time.perf_counter_ns() - start) / NS_PER_S
    progress.finish(settings.records)
    progress = Progress(f"{label}: consume", settings.records, enabled=show_progress)
    consume_s = client.consume(settings.warmup_records, settings.records, progress) / NS_PER_S
    progress.finish(settings.records)
    progress = Progress(f"{label}: e2e", settings.e2e_records, enabled=show_progress)
    samples = client.round_trips(settings.e2e_warmup_records, settings.e2e_records, payload, progress)
    progress.finish(settings.e2e_records)
    return SystemFigures(
        name,
        "ok",
        produce_per_s=settings.records / produce_s if produce_s > 0 else None,
        consume_per_s=settings.records / consume_s if consume_s > 0 else None,
        e2e=summarize_latencies(samples),
    )


def run_system(name: str, settings: CompareSettings, *, show_progress: bool) -> SystemFigures:
    """Start ``name``, measure it and stop it; a peer that is missing or fails gets a row saying so."""
    system = make_system(name, settings)
    why = system.missing()
    if why is not None:
        return missing(name, why)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="raftkafka-compare-") as directory,
            system.running(Path(directory)) as client,
        ):
            return measure(name, client, settings, show_progress=show_progress)
    except Exception as exc:
        if name == BASELINE:
            raise
        log.warning("%s failed: %s", name, exc, exc_info=True)
        return failed(name, exc)


def run_compare(
    settings: CompareSettings, *, show_progress: bool, on_system: Callable[[SystemFigures], None] | None = None
) -> Comparison:
    """Run every system of ``settings`` in turn, raftkafka first; ``on_system`` hears of each as it ends."""
    settings.validate()
    results = []
    for name in settings.ordered_systems():
        figures = run_system(name, settings, show_progress=show_progress)
        if on_system is not None:
            on_system(figures)
        results.append(figures)
    return Comparison(settings, tuple(results))
