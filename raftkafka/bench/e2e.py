"""The end-to-end workload: one record at a time, produced and then consumed by the same process.

Each latency is from just before ``send`` to the moment ``poll`` hands the record back; the next record
is sent only after the previous one was consumed and acknowledged. Use ``linger_ms=0`` for this.
"""

from __future__ import annotations

import time
from typing import Any

from raftkafka.bench.produce import make_producer
from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import summarize_latencies, throughput
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Consumer
from raftkafka.errors import KafkaTimeoutError
from raftkafka.structs import TopicPartition

ROUND_TRIP_TIMEOUT_S = 10.0
POLL_TIMEOUT_MS = 100


def round_trips(
    producer: Any, consumer: Any, topic: str, payload: bytes, count: int, *, progress: Progress
) -> list[int]:
    """Send ``count`` records one by one, each consumed before the next; returns latencies in ns."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    for done in range(count):
        start = clock()
        future = producer.send(topic, payload)
        deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_S
        while not consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=1):
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"record {done} not consumed within {ROUND_TRIP_TIMEOUT_S:.0f} s")
        samples.append(clock() - start)
        future.result(ROUND_TRIP_TIMEOUT_S)
        progress.update(done + 1)
    return samples


def run_e2e(settings: BenchSettings, *, show_progress: bool) -> BenchResult:
    """Warm up, then time ``settings.records`` produce-then-consume round trips."""
    description = ensure_topic(settings)
    partitions = [TopicPartition(settings.topic, p.id) for p in description.partitions]
    payload = make_payload(settings.record_size)
    with make_producer(settings) as producer, Consumer(bootstrap=settings.bootstrap) as consumer:
        consumer.assign(partitions)
        consumer.seek_to_end(partitions)
        for tp in partitions:  # resolve the end now, before the first record is sent
            consumer.position(tp)
        round_trips(producer, consumer, settings.topic, payload, settings.warmup_records, progress=Progress.silent())
        progress = Progress("e2e", settings.records, enabled=show_progress)
        start = time.perf_counter_ns()
        samples = round_trips(producer, consumer, settings.topic, payload, settings.records, progress=progress)
        elapsed = time.perf_counter_ns() - start
        progress.finish(settings.records)
    return BenchResult(
        workload="e2e",
        settings=settings,
        throughput=throughput(settings.records, settings.record_size, elapsed),
        latency=summarize_latencies(samples),
    )
