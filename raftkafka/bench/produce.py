"""The produce workload: N records of S bytes (or S seconds' worth) as fast as the client accepts them.

Latency is send-to-acknowledgement, sampled on at most ``MAX_LATENCY_SAMPLES`` records spread evenly
over the run (as Kafka's ``ProducerPerformance`` does), so the measurement costs little per record.
With ``--clients N`` the same ``produce_share`` runs in N processes (``produce_clients``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol

from raftkafka.bench.baseline import stream_ceiling
from raftkafka.bench.cpu import CLIENT, CpuMeter, ProcessCpu, read_own, spent
from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import NS_PER_S, summarize_latencies, throughput
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Producer
from raftkafka.errors import RaftKafkaError

MAX_LATENCY_SAMPLES = 20_000
DURATION_SAMPLE_STRIDE = 64
"""With ``--duration`` the count is not known in advance: every 64th record's latency is sampled."""
PROGRESS_EVERY = 4096
"""Records between two progress updates (and, with ``--duration``, two looks at the clock)."""


class ProgressLike(Protocol):
    def update(self, done: int) -> None: ...

    def finish(self, done: int) -> None: ...


class AckRecorder:
    """Collects send-to-ack latencies of sampled records and the first error any of them met.

    ``done`` runs on the producer's event loop thread; list appends are atomic, so no lock is needed.
    """

    def __init__(self) -> None:
        self.samples_ns: list[int] = []
        self.error: RaftKafkaError | None = None
        self.sent = 0

    def done(self, sent_ns: int, future: Any) -> None:
        error = future.exception()
        if error is not None:
            self.error = self.error or error
        else:
            self.samples_ns.append(time.perf_counter_ns() - sent_ns)


@dataclass(frozen=True, slots=True)
class ClientRun:
    """What one client measured: records sent, its clock (``perf_counter_ns``, one clock for every process on the
    machine) at the start and after the final flush, its latency samples and the CPU its process spent."""

    sent: int
    start_ns: int
    end_ns: int
    samples_ns: tuple[int, ...]
    cpu: ProcessCpu | None


def producer_options(settings: BenchSettings) -> dict[str, Any]:
    """The producer keyword arguments the settings ask for (shared by the sync and the async producer)."""
    return {
        "acks": settings.acks if settings.acks == "all" else int(settings.acks),
        "linger_ms": settings.linger_ms,
        "batch_size": settings.batch_size,
        "compression_type": settings.compression,
    }


def make_producer(settings: BenchSettings) -> Any:
    """A sync producer tuned as the settings say."""
    return Producer(settings.bootstrap, **producer_options(settings))


def send_records(
    producer: Any,
    settings: BenchSettings,
    count: int,
    payload: bytes,
    progress: ProgressLike,
    *,
    until_ns: int | None = None,
) -> AckRecorder:
    """Send ``count`` records of ``payload`` (or fewer: stop once ``perf_counter_ns`` passes ``until_ns``) and
    flush; every ``stride``-th record's ack latency is sampled. ``recorder.sent`` is the number sent."""
    recorder = AckRecorder()
    stride = DURATION_SAMPLE_STRIDE if until_ns is not None else max(1, -(-count // MAX_LATENCY_SAMPLES))
    send = producer.send
    topic = settings.topic
    clock = time.perf_counter_ns
    on_done = recorder.done
    next_progress = PROGRESS_EVERY
    recorder.sent = count
    for first in range(0, count, stride):
        sent_ns = clock()
        send(topic, payload).add_done_callback(partial(on_done, sent_ns))
        for _ in range(min(stride, count - first) - 1):
            send(topic, payload)
        if first >= next_progress:
            progress.update(first)
            next_progress = first + PROGRESS_EVERY
            if until_ns is not None and sent_ns >= until_ns:
                recorder.sent = min(first + stride, count)
                break
    producer.flush()
    if recorder.error is not None:
        raise recorder.error
    return recorder


def produce_share(
    settings: BenchSettings,
    count: int,
    warmup: int,
    make_progress: Callable[[], ProgressLike],
    ready: Callable[[], object] = lambda: None,
) -> ClientRun:
    """One client's part: warm up with ``warmup`` records, call ``ready`` (a start barrier), then send ``count``
    records (``settings.duration_s`` seconds instead, when given) and flush."""
    payload = make_payload(settings.record_size)
    with make_producer(settings) as producer:
        if warmup:
            send_records(producer, settings, warmup, payload, Progress.silent())
        ready()
        progress = make_progress()
        cpu_before = read_own()
        start = time.perf_counter_ns()
        if settings.duration_s is None:
            recorder = send_records(producer, settings, count, payload, progress)
        else:
            until = start + int(settings.duration_s * NS_PER_S)
            recorder = send_records(producer, settings, sys.maxsize, payload, progress, until_ns=until)
        end = time.perf_counter_ns()
        cpu = spent(CLIENT, os.getpid(), cpu_before, read_own())
        progress.finish(recorder.sent)
    return ClientRun(recorder.sent, start, end, tuple(recorder.samples_ns), cpu)


def run_produce(settings: BenchSettings, *, show_progress: bool) -> BenchResult:
    """Warm up, then produce ``settings.records`` records (or for ``settings.duration_s``) and measure."""
    ensure_topic(settings)
    total = settings.planned_records
    ceiling = stream_ceiling("produce", settings.record_size, total)
    servers = CpuMeter(settings.servers, client=False)  # each client reads its own CPU
    if settings.clients > 1:
        from raftkafka.bench.produce_clients import produce_in_processes

        runs, timeline = produce_in_processes(settings, total=total, show_progress=show_progress, ready=servers.start)
        clients = [replace(run.cpu, name=f"{CLIENT} {index}") for index, run in enumerate(runs) if run.cpu]
    else:
        made: list[Progress] = []

        def make_progress() -> Progress:
            made.append(Progress("produce", total, enabled=show_progress))
            return made[0]

        runs = [produce_share(settings, settings.records, settings.warmup_records, make_progress, servers.start)]
        timeline = made[0].timeline
        clients = [run.cpu for run in runs if run.cpu]
    cpu = (*clients, *servers.stop())
    records = sum(run.sent for run in runs)
    elapsed = max(run.end_ns for run in runs) - min(run.start_ns for run in runs)
    samples = tuple(sample for run in runs for sample in run.samples_ns)
    return BenchResult(
        workload="produce",
        settings=settings,
        throughput=throughput(records, settings.record_size, elapsed),
        latency=summarize_latencies(samples),
        cpu=cpu,
        ceiling=ceiling,
        timeline=tuple(timeline),
        latency_samples_ns=samples,
    )
