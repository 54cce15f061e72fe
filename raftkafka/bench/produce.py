"""The produce workload: N records of S bytes from one client as fast as it accepts them.

Latency is send-to-acknowledgement, sampled on at most ``MAX_LATENCY_SAMPLES`` records spread evenly
over the run (as Kafka's ``ProducerPerformance`` does), so the measurement costs little per record.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import summarize_latencies, throughput
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Producer
from raftkafka.errors import RaftKafkaError

MAX_LATENCY_SAMPLES = 20_000
PROGRESS_EVERY = 4096


class AckRecorder:
    """Collects send-to-ack latencies of sampled records and the first error any of them met.

    ``done`` runs on the producer's event loop thread; list appends are atomic, so no lock is needed.
    """

    def __init__(self) -> None:
        self.samples_ns: list[int] = []
        self.error: RaftKafkaError | None = None

    def done(self, sent_ns: int, future: Any) -> None:
        error = future.exception()
        if error is not None:
            self.error = self.error or error
        else:
            self.samples_ns.append(time.perf_counter_ns() - sent_ns)


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


def send_records(producer: Any, settings: BenchSettings, count: int, payload: bytes, progress: Progress) -> AckRecorder:
    """Send ``count`` records of ``payload`` and flush; every ``stride``-th record's ack latency is sampled."""
    recorder = AckRecorder()
    stride = max(1, -(-count // MAX_LATENCY_SAMPLES))
    send = producer.send
    topic = settings.topic
    clock = time.perf_counter_ns
    on_done = recorder.done
    next_progress = PROGRESS_EVERY
    for first in range(0, count, stride):
        sent_ns = clock()
        send(topic, payload).add_done_callback(partial(on_done, sent_ns))
        for _ in range(min(stride, count - first) - 1):
            send(topic, payload)
        if first >= next_progress:
            progress.update(first)
            next_progress = first + PROGRESS_EVERY
    producer.flush()
    if recorder.error is not None:
        raise recorder.error
    return recorder


def run_produce(settings: BenchSettings, *, show_progress: bool) -> BenchResult:
    """Warm up, then produce ``settings.records`` records and measure."""
    ensure_topic(settings)
    payload = make_payload(settings.record_size)
    with make_producer(settings) as producer:
        if settings.warmup_records:
            send_records(producer, settings, settings.warmup_records, payload, Progress.silent())
        progress = Progress("produce", settings.records, enabled=show_progress)
        start = time.perf_counter_ns()
        recorder = send_records(producer, settings, settings.records, payload, progress)
        elapsed = time.perf_counter_ns() - start
        progress.finish(settings.records)
    return BenchResult(
        workload="produce",
        settings=settings,
        throughput=throughput(settings.records, settings.record_size, elapsed),
        latency=summarize_latencies(recorder.samples_ns),
    )
