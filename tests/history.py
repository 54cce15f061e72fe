"""The history checker (``/work/shared/RELIABILITY.md``, "The checker"): record every send and every consumed
record during a fault run, read everything back after healing, and count the anomalies.

A ``History`` records sends (``invoke``, then ``ok`` with the acknowledged partition and offset, ``fail``
when the send certainly did not happen, or ``info`` when its outcome is unknown) and consumed records.
Every value must be unique (the value identifies its send). ``check`` compares the history with the final
contents of every partition (read from offset 0 after healing) and, optionally, with each replica's bytes:

- **lost**: an ``ok`` send whose value is not at its acknowledged (partition, offset);
- **duplicate**: a value stored more than once (an ``info`` send may appear at most once);
- **unexpected**: a stored value no send produced;
- **holes**: offsets of a partition that are not contiguous from its start offset;
- **inconsistent**: two replicas holding different batches at the same offset below the high watermark,
  or a consumed record that disagrees with the final contents at its offset;
- **aborted read**: a value whose send ``fail``ed was read (by a consumer or in the final contents);
- **reorder**: within a partition, one producer's values out of its send order (first copies only: the
  second copy of a retried batch is a duplicate).

The history is valid only when every count is zero. Replica bytes come from the brokers' data dirs
(``read_replica_batches``: read-only, whole batches, stopping at an incomplete tail).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from raftkafka.storage.record_batch import iter_batches

OK, FAIL, INFO, INVOKED = "ok", "fail", "info", "invoke"
ANOMALIES = ("lost", "duplicate", "unexpected", "holes", "inconsistent", "aborted_read", "reorder")


@dataclass(slots=True)
class Send:
    """One send: ``seq`` numbers the producer's sends in the order they were made."""

    producer: str
    seq: int
    value: bytes
    status: str = INVOKED
    partition: int = -1
    offset: int = -1
    error: str = ""


@dataclass(frozen=True, slots=True)
class Consumed:
    """A record a consumer saw during the run."""

    partition: int
    offset: int
    value: bytes


class History:
    """Sends and consumed records of one run; safe to call from several threads (producer callbacks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sends: list[Send] = []
        self.by_value: dict[bytes, Send] = {}
        self.consumed: list[Consumed] = []
        self._next_seq: Counter[str] = Counter()

    def invoke(self, producer: str, value: bytes) -> Send:
        """Record a send about to be made (``ValueError`` if ``value`` was used before)."""
        with self._lock:
            if value in self.by_value:
                raise ValueError(f"value {value!r} is not unique")
            send = Send(producer, self._next_seq[producer], value)
            self._next_seq[producer] += 1
            self.sends.append(send)
            self.by_value[value] = send
            return send

    def ok(self, send: Send, partition: int, offset: int) -> None:
        """The send was acknowledged at ``partition``/``offset``."""
        with self._lock:
            send.status, send.partition, send.offset = OK, partition, offset

    def fail(self, send: Send, error: object) -> None:
        """The send certainly did not take effect."""
        with self._lock:
            send.status, send.error = FAIL, str(error)

    def info(self, send: Send, error: object) -> None:
        """The send's outcome is unknown (a timeout, a lost connection)."""
        with self._lock:
            send.status, send.error = INFO, str(error)

    def consume(self, partition: int, offset: int, value: bytes) -> None:
        """A consumer saw ``value`` at ``partition``/``offset``."""
        with self._lock:
            self.consumed.append(Consumed(partition, offset, value))

    def counts(self) -> Counter[str]:
        """Sends by status."""
        with self._lock:
            return Counter(send.status for send in self.sends)


@dataclass(slots=True)
class Report:
    """Each anomaly class with its examples (human-readable strings); valid when all are empty."""

    lost: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    holes: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    aborted_read: list[str] = field(default_factory=list)
    reorder: list[str] = field(default_factory=list)
    sends: Counter[str] = field(default_factory=Counter)
    stored: int = 0

    def counts(self) -> dict[str, int]:
        """Anomaly class -> count."""
        return {name: len(getattr(self, name)) for name in ANOMALIES}

    @property
    def valid(self) -> bool:
        """True when no anomaly was found."""
        return not any(self.counts().values())

    def summary(self, examples: int = 5) -> str:
        """Counts of sends and anomalies, with the first ``examples`` of each anomaly."""
        sends = ", ".join(f"{status} {count}" for status, count in sorted(self.sends.items()))
        lines = [f"sends: {sends}; stored records: {self.stored}; valid: {self.valid}"]
        for name, count in self.counts().items():
            lines.append(f"  {name}: {count}")
            lines.extend(f"    {example}" for example in getattr(self, name)[:examples])
        return "\n".join(lines)


Contents = Mapping[int, Sequence[tuple[int, bytes]]]
"""Partition -> ``(offset, value)`` of every stored record, in offset order."""
ReplicaBatches = Mapping[int, Mapping[int, Mapping[int, bytes]]]
"""Partition -> replica node id -> batch base offset -> the batch's bytes."""


def check(
    history: History,
    final: Contents,
    *,
    start_offsets: Mapping[int, int] | None = None,
    replicas: ReplicaBatches | None = None,
) -> Report:
    """Compare ``history`` with the ``final`` contents (every partition read from its start after healing)
    and, if given, the ``replicas``' batches below each partition's high watermark (the end of ``final``)."""
    report = Report(sends=history.counts())
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    stored: dict[tuple[int, int], bytes] = {}
    for partition, records in final.items():
        expected = (start_offsets or {}).get(partition, 0)
        for offset, value in records:
            if offset != expected:
                report.holes.append(f"partition {partition}: offset {offset} where {expected} was next")
            expected = offset + 1
            where[value].append((partition, offset))
            stored[partition, offset] = value
    report.stored = len(stored)
    for value, places in where.items():
        send = history.by_value.get(value)
        if send is None:
            report.unexpected.append(f"{value!r} at {places}")
            continue
        if len(places) > 1:
            report.duplicate.append(f"{value!r} ({send.status}) at {places}")
        if send.status == FAIL:
            report.aborted_read.append(f"{value!r} failed ({send.error}) but is stored at {places}")
    for send in history.sends:
        if send.status == OK and stored.get((send.partition, send.offset)) != send.value:
            found = where.get(send.value, [])
            report.lost.append(f"{send.value!r} acknowledged at {send.partition}/{send.offset}, found at {found}")
    for record in history.consumed:
        send = history.by_value.get(record.value)
        if send is not None and send.status == FAIL:
            report.aborted_read.append(f"consumer saw {record.value!r} whose send failed ({send.error})")
        if stored.get((record.partition, record.offset)) != record.value:
            report.inconsistent.append(
                f"consumer saw {record.value!r} at {record.partition}/{record.offset}, "
                f"finally {stored.get((record.partition, record.offset))!r}"
            )
    _check_order(history, final, report)
    if replicas is not None:
        _check_replicas(final, start_offsets or {}, replicas, report)
    return report


def _check_order(history: History, final: Contents, report: Report) -> None:
    """Reorders among the first copies of values (a later copy of a retried batch is a duplicate, counted
    as such, not also a reorder)."""
    for partition, records in final.items():
        last_seq: dict[str, tuple[int, bytes]] = {}
        seen: set[bytes] = set()
        for _, value in records:
            send = history.by_value.get(value)
            if send is None or value in seen:
                continue
            seen.add(value)
            previous = last_seq.get(send.producer)
            if previous is not None and previous[0] > send.seq:
                report.reorder.append(f"partition {partition}: {value!r} stored after {previous[1]!r}")
            if previous is None or send.seq > previous[0]:
                last_seq[send.producer] = (send.seq, value)


def _check_replicas(
    final: Contents, start_offsets: Mapping[int, int], replicas: ReplicaBatches, report: Report
) -> None:
    for partition, by_node in replicas.items():
        records = final.get(partition, ())
        high_watermark = records[-1][0] + 1 if records else start_offsets.get(partition, 0)
        below = {
            node: {base: batch for base, batch in batches.items() if base < high_watermark}
            for node, batches in by_node.items()
        }
        for base in sorted(set().union(*below.values()) if below else ()):
            versions = {node: batches.get(base) for node, batches in below.items()}
            if len(set(versions.values())) > 1:
                holders = sorted(node for node, batch in versions.items() if batch is not None)
                report.inconsistent.append(
                    f"partition {partition}: replicas differ at offset {base} (held by {holders} of {sorted(versions)})"
                )


def read_replica_batches(partition_dir: Path) -> dict[int, bytes]:
    """Base offset -> bytes of every whole batch in a partition directory's segments (read only)."""
    batches: dict[int, bytes] = {}
    for segment in sorted(partition_dir.glob("*.log"), key=lambda path: int(path.stem)):
        data = segment.read_bytes()
        for header in iter_batches(data):
            batches[header.base_offset] = data[header.position : header.end]
    return batches
