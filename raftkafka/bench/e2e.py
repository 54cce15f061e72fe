"""The end-to-end workload: one record at a time, produced and then consumed by the same process.

Producer and consumer are the asyncio clients sharing one event loop, so no thread hand-off sits in the
measured path. Each latency runs from just before ``send`` to the moment ``poll`` hands the record back;
the next record is sent only after the previous one was consumed and acknowledged. The machine's loopback
round trip between two Python processes is measured first (``baseline.py``), and the latencies are
reported also as multiples of it.
"""

from __future__ import annotations

import time
from typing import Any

from raftkafka.aio import AsyncConsumer, AsyncProducer
from raftkafka.bench.baseline import loopback_round_trip
from raftkafka.bench.cpu import CpuMeter, ProcessCpu
from raftkafka.bench.produce import producer_options
from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import summarize_latencies, throughput
from raftkafka.bench.topic import ensure_topic
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError
from raftkafka.net.eventloop import run
from raftkafka.structs import TopicPartition

ROUND_TRIP_TIMEOUT_S = 10.0
POLL_TIMEOUT_MS = 100


async def round_trips(
    producer: Any, consumer: Any, topic: str, payload: bytes, count: int, *, progress: Progress
) -> list[int]:
    """Send ``count`` records one by one, each consumed before the next; returns latencies in ns.

    Each consumed record must be the one just sent (its offset is the acknowledged one): a record from
    another producer on the topic would make a round trip look shorter than it was."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    for done in range(count):
        start = clock()
        future = await producer.send(topic, payload)
        deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_S
        while not (records := await consumer.poll(POLL_TIMEOUT_MS, 1)):
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"record {done} not consumed within {ROUND_TRIP_TIMEOUT_S:.0f} s")
        samples.append(clock() - start)
        sent = await future
        if records[0].offset != sent.offset:
            raise InvalidConfigError(
                f"consumed offset {records[0].offset} of {topic!r} while waiting for {sent.offset}: another "
                "producer writes to the topic; e2e needs a topic of its own"
            )
        progress.update(done + 1)
    return samples


async def measure(
    settings: BenchSettings, partitions: list[TopicPartition], *, show_progress: bool
) -> tuple[list[int], int, Progress, tuple[ProcessCpu, ...]]:
    """Warm up, then time the round trips; returns the latencies, the elapsed nanoseconds, the progress and the
    CPU the client and ``settings.servers`` spent."""
    payload = make_payload(settings.record_size)
    async with (
        AsyncProducer(settings.bootstrap, **producer_options(settings), idle_poll_us=settings.idle_poll_us) as producer,
        AsyncConsumer(bootstrap=settings.bootstrap, idle_poll_us=settings.idle_poll_us) as consumer,
    ):
        consumer.assign(partitions)
        consumer.seek_to_end()
        for tp in partitions:  # resolve the end now, before the first record is sent
            await consumer.position(tp)
        await round_trips(
            producer, consumer, settings.topic, payload, settings.warmup_records, progress=Progress.silent()
        )
        progress = Progress("e2e", settings.records, enabled=show_progress)
        meter = CpuMeter(settings.servers)
        meter.start()
        start = time.perf_counter_ns()
        samples = await round_trips(producer, consumer, settings.topic, payload, settings.records, progress=progress)
        elapsed = time.perf_counter_ns() - start
        return samples, elapsed, progress, meter.stop()


def run_e2e(settings: BenchSettings, *, show_progress: bool) -> BenchResult:
    """Time ``settings.records`` produce-then-consume round trips after a warm-up."""
    description = ensure_topic(settings)
    partitions = [TopicPartition(settings.topic, p.id) for p in description.partitions]
    baseline = loopback_round_trip(settings.record_size)
    samples, elapsed, progress, cpu = run(measure(settings, partitions, show_progress=show_progress))
    progress.finish(settings.records)
    return BenchResult(
        workload="e2e",
        settings=settings,
        throughput=throughput(settings.records, settings.record_size, elapsed),
        latency=summarize_latencies(samples),
        cpu=cpu,
        baseline=baseline,
        timeline=tuple(progress.timeline),
        latency_samples_ns=tuple(samples),
    )
