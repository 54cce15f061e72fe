"""raftkafka in ``bench compare``: an own ``raftkafka dev`` (acks=1) or 3x3 cluster (RF=3, acks=all), driven by the
bench workloads' own loops: ``send_records`` (the sync ``Producer``, linger 5 ms), ``read_records`` (the sync
``Consumer``) and the e2e workload's ``round_trips`` (the asyncio clients on one loop, linger 0)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from raftkafka.aio import AsyncConsumer, AsyncProducer
from raftkafka.bench.consume import read_records
from raftkafka.bench.e2e import round_trips
from raftkafka.bench.local_cluster import own_cluster
from raftkafka.bench.produce import make_producer, producer_options, send_records
from raftkafka.bench.progress import Progress
from raftkafka.bench.settings import Acks, BenchSettings
from raftkafka.bench.topic import ensure_topic
from raftkafka.client import Consumer
from raftkafka.net.eventloop import run
from raftkafka.structs import TopicPartition

TOPIC = "compare"
E2E_TOPIC = "compare-e2e"


class RaftkafkaClient:
    """The bench loops on one topic for produce/consume and another for the round trips."""

    def __init__(self, settings: BenchSettings) -> None:
        self.settings = settings
        self.producer: Any = None
        self.consumer: Any = None

    def produce(self, count: int, payload: bytes, progress: Progress) -> None:
        if self.producer is None:
            self.producer = make_producer(self.settings)
        send_records(self.producer, self.settings, count, payload, progress)

    def consume(self, warmup: int, count: int, progress: Progress) -> int:
        self.consumer = Consumer(bootstrap=self.settings.bootstrap, auto_offset_reset="earliest")
        self.consumer.assign([TopicPartition(TOPIC, 0)])
        self.consumer.seek_to_beginning()
        read_records(self.consumer, warmup, Progress.silent())
        start = time.perf_counter_ns()
        read_records(self.consumer, count, progress)
        return time.perf_counter_ns() - start

    def round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        return run(self._round_trips(warmup, count, payload, progress))

    async def _round_trips(self, warmup: int, count: int, payload: bytes, progress: Progress) -> list[int]:
        settings = replace(self.settings, topic=E2E_TOPIC, linger_ms=0)
        async with (
            AsyncProducer(settings.bootstrap, **producer_options(settings)) as producer,
            AsyncConsumer(bootstrap=settings.bootstrap) as consumer,
        ):
            partition = TopicPartition(E2E_TOPIC, 0)
            consumer.assign([partition])
            consumer.seek_to_end()
            await consumer.position(partition)
            await round_trips(producer, consumer, E2E_TOPIC, payload, warmup, progress=Progress.silent())
            return await round_trips(producer, consumer, E2E_TOPIC, payload, count, progress=progress)

    def close(self) -> None:
        for client in (self.producer, self.consumer):
            if client is not None:
                client.close()


class RaftkafkaSystem:
    """``kind`` "dev" or "3x3" (every partition on all three brokers, min.insync.replicas 2), written with ``acks``;
    one partition per topic."""

    def __init__(self, kind: str, acks: Acks) -> None:
        self.kind = kind
        self.acks = acks

    def missing(self) -> str | None:
        return None

    @contextmanager
    def running(self, directory: Path) -> Iterator[RaftkafkaClient]:
        with own_cluster(self.kind) as cluster:
            settings = BenchSettings(
                bootstrap=cluster.bootstrap, topic=TOPIC, records=1, record_size=0, acks=self.acks, cluster=self.kind
            )
            ensure_topic(settings)
            ensure_topic(replace(settings, topic=E2E_TOPIC))
            client = RaftkafkaClient(settings)
            try:
                yield client
            finally:
                client.close()
