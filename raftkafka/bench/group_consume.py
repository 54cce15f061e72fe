"""The group consume workload: K consumer processes of one group read N records of a topic; aggregate records/s.

``raftkafka bench consume --group G --consumers K``. First each partition of the topic is topped up to its even
share of N records (records sent to it explicitly by a producer tuned as the produce workload's), so the work
is balanced whatever the partitioner did to the records already there. The group is to read the last N records:
they are split over the partitions as evenly as what each holds allows, and the group's committed offsets are
set to where each partition's share begins (an offset reset for a group without members), so the run ends when
every partition has been read to the end offset it had before the run. The warm-up setting is not used.

K processes (``bench.group_consumer``: the sync ``Consumer`` with ``group_id``) are started with their gates
closed: they join the group and pause every partition they are given. Once DESCRIBE_GROUPS shows the group
Stable with the K processes as members, each consuming the partitions it was assigned and together all of
them, every gate opens ("go") and the clock starts. The figure is the records received by all processes over
the time from "go" to the last poll that returned records (``first_to_last_s`` is from the first such poll
instead: the first poll may already carry a whole batch). Every process then commits, leaves and exits, and the
group is deleted. Duplicates (a partition read twice) and missing records are counted from the offset ranges
each process read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from raftkafka.bench.consumer_processes import SETTLE_TIMEOUT_S, ConsumerProcess, ConsumerProcesses
from raftkafka.bench.produce import make_producer
from raftkafka.bench.progress import Progress
from raftkafka.bench.settings import BenchSettings, make_payload
from raftkafka.bench.stats import Throughput
from raftkafka.bench.topic import READY_TIMEOUT_S, ensure_topic
from raftkafka.client import Admin
from raftkafka.errors import InvalidConfigError, KafkaTimeoutError, NonEmptyGroupError, RaftKafkaError
from raftkafka.structs import TopicPartition

log = logging.getLogger(__name__)

RESET_TIMEOUT_S = 60.0
"""How long the offset reset waits for members of an earlier run to leave (or expire)."""
STALL_TIMEOUT_S = 30.0
POLL_S = 0.05
NS_PER_S = 1_000_000_000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GroupSettings:
    """Which group, how many consumer processes."""

    group: str
    consumers: int = 1

    def validate(self) -> GroupSettings:
        """Return self, or raise ``InvalidConfigError`` naming the first bad setting."""
        if not self.group:
            raise InvalidConfigError("--group must not be empty")
        if self.consumers < 1:
            raise InvalidConfigError(f"--consumers must be >= 1, not {self.consumers}")
        return self


def even_shares(records: int, partitions: Sequence[int]) -> dict[int, int]:
    """``records`` split as evenly as possible over ``partitions`` (the first ones get one more)."""
    base, extra = divmod(records, len(partitions))
    return {p: base + (1 if i < extra else 0) for i, p in enumerate(partitions)}


def allocate(records: int, available: Mapping[int, int]) -> dict[int, int]:
    """Split ``records`` over partitions as evenly as what each holds allows (water-filling: a partition
    holding less than its share gives all it has, the others share the rest)."""
    if records > sum(available.values()):
        raise ValueError(f"{records} records asked for, {sum(available.values())} available")
    shares: dict[int, int] = {}
    left = records
    by_size = sorted(available, key=lambda p: (available[p], p))
    for index, partition in enumerate(by_size):
        fair = -(-left // (len(by_size) - index))  # ceil: what each remaining partition would give
        shares[partition] = min(available[partition], fair)
        left -= shares[partition]
    return {p: shares[p] for p in available}


def covered(ranges: Iterable[Sequence[int]], start: int, end: int) -> int:
    """How many offsets of ``[start, end)`` the inclusive ``[first, last]`` ranges cover (overlaps once)."""
    count = 0
    reached = start
    for first, last in sorted(ranges):
        low, high = max(first, reached), min(last + 1, end)
        if high > low:
            count += high - low
            reached = high
    return count


def distinct_records(
    reads: Iterable[Mapping[int, Sequence[Sequence[int]]]], bounds: Mapping[int, tuple[int, int]]
) -> int:
    """Records of ``bounds`` (partition -> ``[start, end)``) read by at least one of ``reads`` (partition -> ranges)."""
    merged: dict[int, list[Sequence[int]]] = {}
    for read in reads:
        for partition, ranges in read.items():
            merged.setdefault(int(partition), []).extend(ranges)
    return sum(covered(merged.get(p, []), start, end) for p, (start, end) in bounds.items())


@dataclass(frozen=True, slots=True)
class ConsumerFigures:
    """What one process read."""

    client_id: str
    records: int
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GroupConsumeResult:
    """Figures of one group consume run: ``throughput.records`` counts every record received (duplicates too)."""

    settings: BenchSettings
    group: GroupSettings
    expected: int
    distinct: int
    throughput: Throughput
    first_to_last_s: float
    consumers: tuple[ConsumerFigures, ...]

    def as_dict(self) -> dict[str, Any]:
        """One JSON-ready object (what ``--json`` prints); the keys of ``bench consume`` and the group's."""
        return {
            "workload": "consume",
            "group": self.group.group,
            "consumers": self.group.consumers,
            "records": self.throughput.records,
            "bytes": self.throughput.bytes,
            "seconds": round(self.throughput.seconds, 6),
            "records_per_s": round(self.throughput.records_per_s, 1),
            "mb_per_s": round(self.throughput.mb_per_s, 3),
            "latency_ms": None,
            "first_to_last_s": round(self.first_to_last_s, 6),
            "expected": self.expected,
            "distinct": self.distinct,
            "duplicates": self.throughput.records - self.distinct,
            "missing": self.expected - self.distinct,
            "per_consumer": [{**asdict(c), "partitions": list(c.partitions)} for c in self.consumers],
            "settings": {**self.settings.as_dict(), **asdict(self.group)},
        }

    def summary(self) -> str:
        """One human line, and one per consumer."""
        t = self.throughput
        head = (
            f"consume (group {self.group.group!r}, {self.group.consumers} consumer processes): {t.records} records "
            f"in {t.seconds:.2f} s, {t.records_per_s:,.0f} records/s ({t.mb_per_s:.2f} MB/s); "
            f"{self.distinct} of {self.expected} distinct, {t.records - self.distinct} duplicates"
        )
        lines = [f"  {c.client_id}: {c.records} records from partitions {list(c.partitions)}" for c in self.consumers]
        return "\n".join([head, *lines])


def retrying(call: Callable[[], T], timeout_s: float = READY_TIMEOUT_S) -> T:
    """``call()``, again while it fails with a retriable error (a broker that has not learned of a topic just
    created answers UNKNOWN_TOPIC) until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except RaftKafkaError as exc:
            if not exc.retriable or time.monotonic() >= deadline:
                raise
            time.sleep(POLL_S)


def fill_topic(
    settings: BenchSettings, partitions: list[TopicPartition], *, show_progress: bool
) -> tuple[dict[int, int], dict[int, int]]:
    """Top each partition up to its even share of ``settings.records`` (records sent to it explicitly, so the
    group's work is balanced whatever the partitioner did before); then the records held and the end offset per
    partition."""
    with Admin(bootstrap=settings.bootstrap) as admin:
        begin = retrying(lambda: admin.beginning_offsets(partitions))
        end = retrying(lambda: admin.end_offsets(partitions))
        wanted = even_shares(settings.records, [tp.partition for tp in partitions])
        missing = {tp: max(0, wanted[tp.partition] - (end[tp] - begin[tp])) for tp in partitions}
        total = sum(missing.values())
        if total:
            payload = make_payload(settings.record_size)
            fill = Progress("filling topic", total, enabled=show_progress)
            with make_producer(settings) as producer:
                sent = 0
                for tp, count in missing.items():
                    for _ in range(count):
                        producer.send(settings.topic, payload, partition=tp.partition)
                    sent += count
                    fill.update(sent)
                producer.flush()
            fill.finish(total)
            end = retrying(lambda: admin.end_offsets(partitions))
    return {tp.partition: end[tp] - begin[tp] for tp in partitions}, {tp.partition: end[tp] for tp in partitions}


def reset_offsets(admin: Admin, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit ``offsets`` for ``group``, waiting while members of an earlier run are still in it."""
    deadline = time.monotonic() + RESET_TIMEOUT_S
    while True:
        try:
            retrying(lambda: admin.alter_group_offsets(group, offsets))
            return
        except NonEmptyGroupError:
            if time.monotonic() >= deadline:
                raise
            log.warning("group %r still has members (an earlier run?): waiting for them to leave", group)
            time.sleep(1.0)


def read_to_end(processes: ConsumerProcesses, ends: Mapping[int, int], progress: Progress) -> None:
    """Follow progress until every partition has been read up to ``ends``."""
    last_records, stall_deadline = -1, time.monotonic() + STALL_TIMEOUT_S

    def reached() -> bool:
        return all(max((p.positions.get(partition, 0) for p in processes.processes), default=0) >= end
                   for partition, end in ends.items())  # fmt: skip

    while not reached():
        processes.pump(POLL_S)
        records = sum(p.records for p in processes.processes)
        progress.update(records)
        if records != last_records:
            last_records, stall_deadline = records, time.monotonic() + STALL_TIMEOUT_S
        elif time.monotonic() >= stall_deadline:
            raise KafkaTimeoutError(f"no records for {STALL_TIMEOUT_S:.0f} s after {records}")


def figures(process: ConsumerProcess) -> ConsumerFigures:
    assert process.done is not None
    return ConsumerFigures(
        process.client_id, process.done["records"], tuple(sorted(int(p) for p in process.done["ranges"]))
    )


def run_group_consume(settings: BenchSettings, *, group: GroupSettings, show_progress: bool) -> GroupConsumeResult:
    """Top the topic up, reset the group's offsets, start the processes, open their gates once the group settled,
    and measure until every record was read."""
    group.validate()
    description = ensure_topic(settings)
    partitions = [TopicPartition(settings.topic, p.id) for p in description.partitions]
    if len(partitions) < group.consumers:
        raise InvalidConfigError(
            f"topic {settings.topic!r} has {len(partitions)} partitions: {group.consumers} consumers would leave "
            "some without any (use --partitions >= --consumers, or another --topic)"
        )
    held, ends = fill_topic(settings, partitions, show_progress=show_progress)
    shares = allocate(settings.records, held)
    bounds = {p: (ends[p] - shares[p], ends[p]) for p in ends}
    log_level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    with Admin(bootstrap=settings.bootstrap) as admin:
        reset_offsets(admin, group.group, {tp: bounds[tp.partition][0] for tp in partitions})
        try:
            with ConsumerProcesses(
                settings.bootstrap, settings.topic, group.group, gate=True, log_level=log_level
            ) as processes:
                for _ in range(group.consumers):
                    processes.start()
                processes.wait_settled(admin, len(partitions), SETTLE_TIMEOUT_S)
                progress = Progress(
                    f"consume, group {group.group}, {group.consumers} consumers",
                    settings.records,
                    enabled=show_progress,
                )
                go_ns = time.monotonic_ns()
                processes.go()
                read_to_end(processes, ends, progress)
                progress.finish(sum(p.records for p in processes.processes))
                processes.stop_all()
                received = sum(p.records for p in processes.processes)
                reports = [p.done for p in processes.processes if p.done is not None]
                consumers = tuple(figures(p) for p in processes.processes)
        finally:
            try:
                admin.delete_group(group.group)
            except RaftKafkaError as exc:
                log.warning("could not delete group %r after the run: %s", group.group, exc)
    first_ns = min(r["first_ns"] for r in reports if r["first_ns"] is not None)
    last_ns = max(r["last_ns"] for r in reports if r["last_ns"] is not None)
    return GroupConsumeResult(
        settings=settings,
        group=group,
        expected=settings.records,
        distinct=distinct_records((r["ranges"] for r in reports), bounds),
        throughput=Throughput(received, received * settings.record_size, (last_ns - go_ns) / NS_PER_S),
        first_to_last_s=(last_ns - first_ns) / NS_PER_S,
        consumers=consumers,
    )
