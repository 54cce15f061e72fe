"""The soak workload: produce and consume at once, at a fixed modest rate, for minutes, and watch the servers' memory.

It measures memory, not speed. An ``AsyncProducer`` sends ``rate`` records a second (paced every ``TICK_S``), each
to partition ``sequence % partitions`` with its sequence number in its first 8 bytes, while an ``AsyncConsumer`` on
the same event loop reads them from where the topic ended; every record must arrive once, in order per partition.
Every ``sample_s`` seconds the RSS (``VmRSS`` of ``/proc/PID/status``) of each watched process is read: every
process of the cluster the soak started (``--cluster``), or the ``--pid``s given with ``--bootstrap``. The load runs
``warmup_s`` seconds before the start sample is taken, then ``duration_s`` seconds; after the last send the consumer
gets ``DRAIN_TIMEOUT_S`` to catch up, then the end sample is taken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from raftkafka.aio import AsyncConsumer, AsyncProducer
from raftkafka.bench.local_cluster import own_cluster
from raftkafka.bench.settings import CLUSTER_KINDS, BenchSettings, make_payload
from raftkafka.bench.stats import MB
from raftkafka.bench.topic import ensure_topic
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError
from raftkafka.net.eventloop import run
from raftkafka.structs import TopicPartition

TICK_S = 0.01
"""The producer sends what the rate owes it every 10 ms."""
POLL_TIMEOUT_MS = 200
DRAIN_TIMEOUT_S = 30.0
SEQUENCE_BYTES = 8
GROWTH_LIMIT_MB = 50.0
"""Issue 6's target: a server's RSS grows less than this over the soak."""
KB = 1024


def read_rss_kb(pid: int) -> int | None:
    """The resident set size of process ``pid`` in kB (``VmRSS`` of ``/proc/PID/status``); None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True, slots=True)
class SoakSettings:
    """What to soak: a cluster of its own (``cluster``) or ``bootstrap`` with the ``pids`` to watch, the topic,
    the load (``rate`` records/s of ``record_size`` bytes) and its timing."""

    bootstrap: str
    topic: str = "raftkafka-bench-soak"
    cluster: str | None = None
    pids: tuple[int, ...] = ()
    duration_s: float = 600.0
    warmup_s: float = 10.0
    rate: int = 20_000
    record_size: int = 100
    partitions: int = 4
    replication_factor: int | None = None
    acks: str = "1"
    sample_s: float = 5.0
    growth_limit_mb: float = GROWTH_LIMIT_MB

    def validate(self) -> SoakSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if self.cluster is not None and self.cluster not in CLUSTER_KINDS:
            raise InvalidConfigError(f"--cluster must be one of {', '.join(CLUSTER_KINDS)}, not {self.cluster!r}")
        if self.cluster is not None and self.pids:
            raise InvalidConfigError("--pid is for --bootstrap: with --cluster the soak watches its own processes")
        if not self.duration_s > 0 or self.warmup_s < 0 or not self.sample_s > 0:
            raise InvalidConfigError("--duration and --sample-s must be > 0 and --warmup-s >= 0")
        if self.rate < 1:
            raise InvalidConfigError(f"--rate must be >= 1, not {self.rate}")
        if self.record_size < SEQUENCE_BYTES:
            raise InvalidConfigError(f"--record-size must be >= {SEQUENCE_BYTES} (records carry a sequence number)")
        self.bench_settings().validate()
        return self

    def bench_settings(self) -> BenchSettings:
        """The shared settings the topic is created with."""
        return BenchSettings(
            bootstrap=self.bootstrap, topic=self.topic, records=1, record_size=self.record_size,
            partitions=self.partitions, replication_factor=self.replication_factor, acks=self.acks,  # type: ignore[arg-type]
            cluster=self.cluster,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            "bootstrap": self.bootstrap, "topic": self.topic, "cluster": self.cluster, "pids": list(self.pids),
            "duration_s": self.duration_s, "warmup_s": self.warmup_s, "rate": self.rate,
            "record_size": self.record_size, "partitions": self.partitions,
            "replication_factor": self.bench_settings().replicas, "acks": self.acks, "sample_s": self.sample_s,
            "growth_limit_mb": self.growth_limit_mb,
        }  # fmt: skip


@dataclass(slots=True)
class ProcessMemory:
    """The RSS samples of one watched process: ``(seconds since the start sample, kB)``; kB None once it is gone.
    Samples at negative seconds were taken during the warm-up (the first one before any load)."""

    name: str
    pid: int
    samples: list[tuple[float, int | None]] = field(default_factory=list)

    def measured(self) -> list[int]:
        """The RSS samples from the start sample on, in kB (None left out)."""
        return [kb for seconds, kb in self.samples if seconds >= 0 and kb is not None]

    @property
    def alive(self) -> bool:
        return bool(self.samples) and self.samples[-1][1] is not None

    def figures(self, growth_limit_mb: float) -> dict[str, Any]:
        """Start, end and max RSS and the growth, in MB (None without samples)."""
        kbs = self.measured()
        idle = next((kb for _, kb in self.samples if kb is not None), None)
        if not kbs:
            return {"name": self.name, "pid": self.pid, "alive": self.alive, "samples": len(self.samples),
                    "idle_mb": None, "start_mb": None, "end_mb": None, "max_mb": None, "growth_mb": None,
                    "ok": False}  # fmt: skip
        growth = (kbs[-1] - kbs[0]) * KB / MB
        return {
            "name": self.name, "pid": self.pid, "alive": self.alive, "samples": len(self.samples),
            "idle_mb": None if idle is None else round(idle * KB / MB, 1),
            "start_mb": round(kbs[0] * KB / MB, 1), "end_mb": round(kbs[-1] * KB / MB, 1),
            "max_mb": round(max(kbs) * KB / MB, 1), "growth_mb": round(growth, 1),
            "ok": self.alive and growth < growth_limit_mb,
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class SoakResult:
    """What the soak saw: the records sent and received, and each watched process's memory."""

    settings: SoakSettings
    seconds: float
    produced: int
    failed: int
    consumed: int
    out_of_order: int
    processes: tuple[ProcessMemory, ...]

    @property
    def every_record_consumed(self) -> bool:
        """Every acknowledged record came back once, in order per partition, and no send failed."""
        return self.failed == 0 and self.out_of_order == 0 and self.consumed == self.produced

    @property
    def ok(self) -> bool:
        """Every record consumed, and every watched process alive with an RSS growth below the limit."""
        limit = self.settings.growth_limit_mb
        return self.every_record_consumed and all(p.figures(limit)["ok"] for p in self.processes)

    def as_dict(self) -> dict[str, Any]:
        limit = self.settings.growth_limit_mb
        return {
            "workload": "soak",
            "seconds": round(self.seconds, 3),
            "produced": self.produced,
            "failed": self.failed,
            "consumed": self.consumed,
            "out_of_order": self.out_of_order,
            "every_record_consumed": self.every_record_consumed,
            "records_per_s": round(self.produced / self.seconds, 1) if self.seconds > 0 else 0.0,
            "processes": [{**p.figures(limit), "rss_mb": _rss_series(p)} for p in self.processes],
            "growth_below_limit": all(p.figures(limit)["ok"] for p in self.processes),
            "ok": self.ok,
            "settings": self.settings.as_dict(),
        }

    def summary(self) -> str:
        """A table of the processes' memory, then the records and the verdict."""
        limit = self.settings.growth_limit_mb
        rows = [("process", "pid", "idle MB", "start MB", "end MB", "max MB", "growth MB", f"< {limit:g} MB")]
        for process in self.processes:
            f = process.figures(limit)
            cells = [f[key] for key in ("idle_mb", "start_mb", "end_mb", "max_mb", "growth_mb")]
            verdict = "yes" if f["ok"] else ("NO" if process.alive else "NO (gone)")
            rows.append((f["name"], str(f["pid"]), *("-" if c is None else f"{c:,.1f}" for c in cells), verdict))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
            for row in rows
        ]
        if not self.processes:
            lines.append("(no process watched: give --cluster, or --pid with --bootstrap)")
        lines.append(
            f"soak: {self.seconds:.0f} s at {self.settings.rate:,} records/s of {self.settings.record_size} B: "
            f"{self.produced:,} produced ({self.failed:,} failed), {self.consumed:,} consumed, "
            f"{self.out_of_order:,} out of order: "
            + ("every record consumed in order" if self.every_record_consumed else "RECORDS LOST OR OUT OF ORDER")
        )
        lines.append(f"soak: {'ok' if self.ok else 'FAILED'} (RSS growth < {limit:g} MB and every record consumed)")
        return "\n".join(lines)


def _rss_series(process: ProcessMemory) -> list[list[float | None]]:
    """The samples as ``[seconds, MB]`` pairs (MB None once the process is gone)."""
    return [[round(s, 1), None if kb is None else round(kb * KB / MB, 1)] for s, kb in process.samples]


SampleCallback = Callable[[float, int, int, Sequence[ProcessMemory]], None]
"""Told after each RSS sample: seconds since the start sample (negative in the warm-up), produced, consumed."""


class Soak:
    """The running soak on one event loop: the paced producer, the checking consumer and the RSS sampler."""

    def __init__(self, settings: SoakSettings, processes: Sequence[ProcessMemory], on_sample: SampleCallback) -> None:
        self.settings = settings
        self.processes = tuple(processes)
        self.on_sample = on_sample
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.consumed = 0
        self.out_of_order = 0
        self.first_error: BaseException | None = None
        self._expected = list(range(settings.partitions))
        self._start = 0.0
        self._producing = True

    def sample(self) -> None:
        seconds = time.monotonic() - self._start
        for process in self.processes:
            process.samples.append((seconds, read_rss_kb(process.pid)))
        self.on_sample(seconds, self.acked, self.consumed, self.processes)

    def _acked(self, future: Any) -> None:
        if future.exception() is None:
            self.acked += 1
        else:
            self.failed += 1
            self.first_error = self.first_error or future.exception()

    async def produce(self, producer: AsyncProducer, until: float) -> None:
        """Send ``rate`` records a second until ``until`` (monotonic), then flush."""
        settings = self.settings
        padding = make_payload(settings.record_size)[SEQUENCE_BYTES:]
        partitions = settings.partitions
        began = time.monotonic()
        while (now := time.monotonic()) < until:
            owed = int((now - began) * settings.rate) - self.sent
            for _ in range(owed):
                sequence = self.sent
                value = sequence.to_bytes(SEQUENCE_BYTES, "big") + padding
                future = await producer.send(settings.topic, value, partition=sequence % partitions)
                future.add_done_callback(self._acked)
                self.sent += 1
            await asyncio.sleep(TICK_S)
        await producer.flush()
        self._producing = False

    async def consume(self, consumer: AsyncConsumer) -> None:
        """Read and check records until the producer is done and every acknowledged one arrived (or the drain
        timeout passed)."""
        partitions = self.settings.partitions
        expected = self._expected
        drain_deadline: float | None = None
        while True:
            if not self._producing:
                if self.consumed >= self.acked:
                    return
                if drain_deadline is None:
                    drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
                elif time.monotonic() >= drain_deadline:
                    return
            for record in await consumer.poll(POLL_TIMEOUT_MS):
                sequence = int.from_bytes(record.value[:SEQUENCE_BYTES], "big")  # type: ignore[index]
                if sequence == expected[record.partition]:
                    expected[record.partition] = sequence + partitions
                else:
                    self.out_of_order += 1
                self.consumed += 1

    async def watch(self) -> None:
        """Sample every ``sample_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.sample_s)
            self.sample()

    async def run(self) -> float:
        """Warm up, take the start sample, run the load for the duration, drain, take the end sample; the seconds
        from the start sample to the end sample."""
        settings = self.settings
        tps = [TopicPartition(settings.topic, p) for p in range(settings.partitions)]
        self._start = time.monotonic() + settings.warmup_s
        for process in self.processes:  # before any load
            process.samples.append((-settings.warmup_s, read_rss_kb(process.pid)))
        options = {"acks": settings.acks if settings.acks == "all" else int(settings.acks), "linger_ms": 5}
        async with (
            AsyncProducer(settings.bootstrap, **options) as producer,
            AsyncConsumer(bootstrap=settings.bootstrap) as consumer,
        ):
            consumer.assign(tps)
            consumer.seek_to_end()
            for tp in tps:  # resolve the end now, before the first record is sent
                await consumer.position(tp)
            until = self._start + settings.duration_s
            consuming = asyncio.ensure_future(self.consume(consumer))
            producing = asyncio.ensure_future(self.produce(producer, until))
            await asyncio.sleep(max(0.0, self._start - time.monotonic()))
            self._start = time.monotonic()  # seconds count from the start sample, whenever the sleep ended
            self.sample()
            watcher = asyncio.ensure_future(self.watch())
            try:
                await producing
                await consuming
            finally:
                watcher.cancel()
                producing.cancel()
                consuming.cancel()
                await asyncio.gather(watcher, producing, consuming, return_exceptions=True)
        self.sample()  # the end sample
        if self.first_error is not None and self.acked == 0:
            raise self.first_error
        if not self.consumed and self.acked:
            raise KafkaTimeoutError(f"none of {self.acked} acknowledged records was consumed")
        return self.processes[0].samples[-1][0] if self.processes else time.monotonic() - self._start

    def result(self, seconds: float) -> SoakResult:
        """The figures; the record counts cover the warm-up too (every record sent is checked)."""
        return SoakResult(
            settings=self.settings, seconds=seconds, produced=self.acked, failed=self.failed, consumed=self.consumed,
            out_of_order=self.out_of_order, processes=self.processes,
        )  # fmt: skip


def run_soak(settings: SoakSettings, *, on_sample: SampleCallback = lambda *_: None) -> SoakResult:
    """Run the soak against ``settings.bootstrap`` watching ``settings.pids``, or on a cluster of its own watching
    every process of it (always removed)."""
    settings.validate()
    if settings.cluster is None:
        processes = [ProcessMemory(f"pid {pid}", pid) for pid in settings.pids]
        return _soak(settings, processes, on_sample)
    with own_cluster(settings.cluster) as cluster:
        own = replace(settings, bootstrap=cluster.bootstrap)
        processes = [ProcessMemory(name, pid) for name, pid in cluster.processes()]
        return _soak(own, processes, on_sample)


def _soak(settings: SoakSettings, processes: list[ProcessMemory], on_sample: SampleCallback) -> SoakResult:
    ensure_topic(settings.bench_settings())
    soak = Soak(settings, processes, on_sample)
    seconds = run(soak.run())
    return soak.result(seconds)
