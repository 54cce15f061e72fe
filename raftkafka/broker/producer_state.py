"""What a partition knows of its idempotent producers (Kafka's ``ProducerStateManager``, KIP-98 without
transactions): per producer id, its epoch, and the sequence range and offsets of its last
``MAX_CACHED_BATCHES`` batches.

A batch with a producer id (``producer_id >= 0``) carries the producer's epoch and the sequence number of
its first record; the sequence of its last record is ``base_sequence + record_count - 1`` (wrapping past
2**31 - 1 to 0, as in Kafka). The leader checks each such batch before appending it (``check_and_record``),
with Kafka 2.x's rules:

- same epoch, same sequence range as one of the cached batches: a duplicate (a client retry of a batch that
  was stored but whose answer was lost); it is not appended again, and its original offsets are answered;
- same epoch, first sequence not right after the last one: ``OutOfOrderSequenceError``;
- an older epoch: ``InvalidProducerEpochError``; a newer epoch must start at sequence 0
  (``OutOfOrderSequenceError`` otherwise) and forgets the older epoch's batches;
- a producer id the partition has no record of must start at sequence 0, else ``UnknownProducerIdError``
  (its batches may have been removed by retention, or the producer never wrote here).

Followers, and a rebuild from the log, take batches as they are (``replay``): the log is the truth. The
state is rebuilt by scanning batch headers (never records) of the log (``scan_batch_headers``) and is
truncated along with the log (``truncate_to``).

Pure: no I/O (the scan reads through a callable). Bounded: at most ``max_producers`` producer ids per
partition; the one that wrote least recently is forgotten first. Event loop thread only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from raftkafka.errors import (
    CorruptBatchError,
    InvalidProducerEpochError,
    KafkaStorageError,
    OutOfOrderSequenceError,
    UnknownProducerIdError,
)
from raftkafka.storage.record_batch import BatchHeader, iter_batches

NO_PRODUCER_ID = -1
MAX_CACHED_BATCHES = 5
"""Batches remembered per producer: a client with at most this many requests in flight per connection can
retry any of them and get a duplicate answer rather than an error (Kafka's limit too)."""
MAX_PRODUCERS = 10_000
"""Producer ids remembered per partition by default."""
MAX_SEQUENCE = 2**31 - 1
SCAN_CHUNK_BYTES = 1 << 20
"""Bytes read at a time when scanning a log's batch headers."""


def last_sequence(base_sequence: int, record_count: int) -> int:
    """The sequence number of a batch's last record (wrapping past ``MAX_SEQUENCE`` to 0, as Kafka does)."""
    increment = record_count - 1
    if base_sequence > MAX_SEQUENCE - increment:
        return increment - (MAX_SEQUENCE - base_sequence) - 1
    return base_sequence + increment


def next_sequence(sequence: int) -> int:
    """The sequence number after ``sequence`` (``MAX_SEQUENCE`` wraps to 0)."""
    return 0 if sequence == MAX_SEQUENCE else sequence + 1


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """One stored batch of a producer: its sequence range and where it is in the log."""

    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int


class ProducerEntry:
    """One producer id on one partition: its epoch and its last batches of that epoch, oldest first.
    ``forgot_older`` says whether it wrote batches that are no longer cached."""

    __slots__ = ("batches", "epoch", "forgot_older", "producer_id")

    def __init__(self, producer_id: int, epoch: int) -> None:
        self.producer_id = producer_id
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=MAX_CACHED_BATCHES)
        self.forgot_older = False

    @property
    def last_sequence(self) -> int:
        """The sequence number of the producer's last stored record."""
        return self.batches[-1].last_sequence

    def find_duplicate(self, first_sequence: int, last_sequence: int) -> BatchMetadata | None:
        """The cached batch with exactly this sequence range, or None."""
        for batch in self.batches:
            if batch.first_sequence == first_sequence and batch.last_sequence == last_sequence:
                return batch
        return None

    def add(self, epoch: int, batch: BatchMetadata) -> None:
        """Note ``batch`` as the newest; a new epoch forgets the older epoch's batches."""
        batches = self.batches
        if epoch != self.epoch:
            self.epoch = epoch
            self.forgot_older = self.forgot_older or bool(batches)
            batches.clear()
        elif len(batches) == MAX_CACHED_BATCHES:
            self.forgot_older = True
        batches.append(batch)


class ProducerStateManager:
    """The producers of one partition replica (see the module doc)."""

    def __init__(self, *, max_producers: int = MAX_PRODUCERS) -> None:
        if max_producers < 1:
            raise ValueError("max_producers must be positive")
        self.max_producers = max_producers
        self._producers: dict[int, ProducerEntry] = {}  # least recently written first

    @classmethod
    def rebuild(cls, headers: Iterable[BatchHeader], *, max_producers: int = MAX_PRODUCERS) -> ProducerStateManager:
        """The state after the log batches ``headers`` (offsets stamped, oldest first)."""
        state = cls(max_producers=max_producers)
        state.replay_all(headers)
        return state

    def __len__(self) -> int:
        return len(self._producers)

    def entry(self, producer_id: int) -> ProducerEntry | None:
        """What is known of ``producer_id``, or None."""
        return self._producers.get(producer_id)

    def check_and_record(self, header: BatchHeader, base_offset: int) -> BatchMetadata | None:
        """(Leader) Check an idempotent batch about to be appended at ``base_offset``: None after recording it
        there (append it), or the ``BatchMetadata`` of the stored batch it duplicates (do not append it).

        Raises ``OutOfOrderSequenceError``, ``InvalidProducerEpochError``, ``UnknownProducerIdError`` (see the
        module doc) or ``CorruptBatchError`` for a negative sequence or epoch; nothing is recorded then.
        """
        producer_id, epoch, first = header.producer_id, header.producer_epoch, header.base_sequence
        if first < 0 or epoch < 0:
            raise CorruptBatchError(
                f"a batch of producer {producer_id} has sequence {first} and epoch {epoch}; both must be >= 0"
            )
        last = last_sequence(first, header.record_count)
        entry = self._producers.get(producer_id)
        if entry is None:
            if first != 0:
                raise UnknownProducerIdError(
                    f"no record of producer {producer_id} on this partition; its first batch has sequence "
                    f"{first}, not 0 (its earlier batches may have been removed by retention)"
                )
        elif epoch < entry.epoch:
            raise InvalidProducerEpochError(
                f"producer {producer_id} sent epoch {epoch}, older than its epoch {entry.epoch} on this partition"
            )
        elif epoch > entry.epoch:
            if first != 0:
                raise OutOfOrderSequenceError(
                    f"producer {producer_id} starts epoch {epoch} at sequence {first}, not 0"
                )
        else:
            duplicate = entry.find_duplicate(first, last)
            if duplicate is not None:
                return duplicate
            expected = next_sequence(entry.last_sequence)
            if first != expected:
                raise OutOfOrderSequenceError(
                    f"producer {producer_id} (epoch {epoch}) sent sequence {first}; {expected} was next"
                )
        self._add(producer_id, epoch, BatchMetadata(first, last, base_offset, base_offset + header.record_count - 1))
        return None

    def replay(self, header: BatchHeader) -> None:
        """Take a batch already in the log (stamped offsets; a follower's append or a rebuild) as the
        producer's newest, without checks."""
        first = header.base_sequence
        batch = BatchMetadata(
            first, last_sequence(first, header.record_count), header.base_offset, header.last_offset
        )
        self._add(header.producer_id, header.producer_epoch, batch)

    def replay_all(self, headers: Iterable[BatchHeader]) -> None:
        """``replay`` every batch of ``headers`` that has a producer id."""
        for header in headers:
            if header.producer_id >= 0:
                self.replay(header)

    def _add(self, producer_id: int, epoch: int, batch: BatchMetadata) -> None:
        producers = self._producers
        entry = producers.pop(producer_id, None)
        if entry is None:
            if len(producers) >= self.max_producers:
                del producers[next(iter(producers))]
            entry = ProducerEntry(producer_id, epoch)
        entry.add(epoch, batch)
        producers[producer_id] = entry

    def truncate_to(self, offset: int) -> bool:
        """Forget the batches holding offsets at or after ``offset`` (the log was truncated there). Returns
        False when a producer lost every cached batch but had written older ones: those are only in the
        log, so the state must be rebuilt from it."""
        complete = True
        for producer_id, entry in list(self._producers.items()):
            batches = entry.batches
            while batches and batches[-1].last_offset >= offset:
                batches.pop()
            if not batches:
                del self._producers[producer_id]
                complete = complete and not entry.forgot_older
        return complete


def scan_batch_headers(read: Callable[[int, int], bytes], start: int, end: int) -> Iterator[BatchHeader]:
    """Headers (offsets stamped) of the log's batches from ``start`` to ``end``, reading whole batches with
    ``read(offset, max_bytes)`` (``PartitionLog.read``) ``SCAN_CHUNK_BYTES`` at a time; records are not
    decoded. ``KafkaStorageError`` if the log does not lead from ``start`` to ``end``."""
    offset = start
    while offset < end:
        before = offset
        for header in iter_batches(read(offset, SCAN_CHUNK_BYTES)):
            yield header
            offset = header.next_offset
        if offset <= before:
            raise KafkaStorageError(f"no batch at offset {offset} while scanning producer batches to {end}")
