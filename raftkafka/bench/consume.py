"""The consume workload: read N records of one topic from the beginning as fast as one client can.

The topic is topped up first (with the produce workload's sender) when it holds fewer than the warm-up
plus N records. Bytes are counted as records times ``record_size``, the size the records were made with.
With ``--duration`` the client reads for that long instead, going back to the beginning of the topic each
time it has read all of it.
"""

from __future__ import annotations

import time
from typing import Any

from raftkafka.bench.baseline import stream_ceiling
from raftkafka.bench.cpu import CpuMeter
from raftkafka.bench.produce import make_producer, send_records
from raftkafka.bench.progress import Progress
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import NS_PER_S, throughput
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Consumer
from raftkafka.errors import KafkaTimeoutError
from raftkafka.structs import TopicPartition

POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 100_000
STALL_TIMEOUT_S = 30.0


def read_records(consumer: Any, count: int, progress: Progress, *, done: int = 0, until_ns: int | None = None) -> int:
    """Poll until ``count`` records have arrived (or ``perf_counter_ns`` passes ``until_ns``); the number read.

    ``done`` records read before are added to what ``progress`` is told. ``KafkaTimeoutError`` if no records come
    for ``STALL_TIMEOUT_S``.
    """
    got = 0
    stall_deadline = time.monotonic() + STALL_TIMEOUT_S
    poll = consumer.poll
    while got < count and (until_ns is None or time.perf_counter_ns() < until_ns):
        records = poll(timeout_ms=POLL_TIMEOUT_MS, max_records=min(MAX_POLL_RECORDS, count - got))
        if records:
            got += len(records)
            progress.update(done + got)
            stall_deadline = time.monotonic() + STALL_TIMEOUT_S
        elif time.monotonic() >= stall_deadline:
            raise KafkaTimeoutError(f"no records for {STALL_TIMEOUT_S:.0f} s after {got} of {count}")
    return got


def read_for(consumer: Any, partitions: list[TopicPartition], seconds: float, held: int, progress: Progress) -> int:
    """Read for ``seconds``, seeking back to the beginning after each of the topic's ``held`` records; the total."""
    until = time.perf_counter_ns() + int(seconds * NS_PER_S)
    done = 0
    left = held - sum(consumer.position(tp) - first for tp, first in consumer.beginning_offsets(partitions).items())
    while time.perf_counter_ns() < until:
        if left <= 0:
            consumer.seek_to_beginning(partitions)
            left = held
        got = read_records(consumer, left, progress, done=done, until_ns=until)
        done += got
        left -= got
    return done


def run_consume(settings: BenchSettings, *, show_progress: bool) -> BenchResult:
    """Top the topic up if needed, warm up, then consume ``settings.records`` records (or for
    ``settings.duration_s``) and measure."""
    description = ensure_topic(settings)
    partitions = [TopicPartition(settings.topic, p.id) for p in description.partitions]
    needed = settings.warmup_records + settings.records
    with Consumer(bootstrap=settings.bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign(partitions)
        begin = consumer.beginning_offsets(partitions)
        end = consumer.end_offsets(partitions)
        available = sum(end[tp] - begin[tp] for tp in partitions)
        if available < needed:
            missing = needed - available
            with make_producer(settings) as producer:
                fill = Progress("filling topic", missing, enabled=show_progress)
                send_records(producer, settings, missing, make_payload(settings.record_size), fill)
                fill.finish(missing)
            available = needed
        ceiling = stream_ceiling("consume", settings.record_size, settings.planned_records)
        consumer.seek_to_beginning(partitions)
        read_records(consumer, settings.warmup_records, Progress.silent())
        meter = CpuMeter(settings.servers)
        meter.start()
        if settings.duration_s is None:
            progress = Progress("consume", settings.records, enabled=show_progress)
            start = time.perf_counter_ns()
            records = read_records(consumer, settings.records, progress)
        else:
            progress = Progress("consume", None, enabled=show_progress)
            start = time.perf_counter_ns()
            records = read_for(consumer, partitions, settings.duration_s, available, progress)
        elapsed = time.perf_counter_ns() - start
        cpu = meter.stop()
        progress.finish(records)
    return BenchResult(
        workload="consume",
        settings=settings,
        throughput=throughput(records, settings.record_size, elapsed),
        cpu=cpu,
        ceiling=ceiling,
        timeline=tuple(progress.timeline),
    )
