"""The partitions this broker hosts: kept in step with the metadata image, read and written for clients and
for the followers of the partitions it leads, and their high watermarks checkpointed.

High watermark checkpoint: ``replication-offset-checkpoint`` in the logs directory holds ``topic partition
high_watermark`` per local partition, written atomically by ``checkpoint_high_watermarks`` (every few
seconds and on close). A restarted replica starts with ``min(checkpoint, log end offset)``, so it neither
exposes records that were never committed nor hides committed ones until its followers catch up.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from raftkafka.errors import (
    CorruptBatchError,
    KafkaStorageError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    RaftKafkaError,
    UnknownTopicError,
)
from raftkafka.metadata.image import MetadataImage
from raftkafka.net.api import ACKS_ALL, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from raftkafka.storage.checkpoint_file import read_checkpoint, write_checkpoint
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.log_manager import LogManager
from raftkafka.storage.record_batch import validate_batches

from .partition import NO_EPOCH, ClockMs, FetchWaiter, Partition, monotonic_ms

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
HIGH_WATERMARK_CHECKPOINT = "replication-offset-checkpoint"
ReadResult = tuple[int, int, int, bytes]
"""``(error, high_watermark, log_start_offset, records)`` of one partition of a fetch."""


class ReplicaManager:
    """Owns every local partition replica; applies metadata images; serves produce, fetch, list offsets and
    leader epoch lookups. ``on_partitions_changed(partitions)`` (the replica fetchers) is called with every
    local replica after each image is applied."""

    def __init__(
        self,
        node_id: int,
        log_manager: LogManager,
        log_defaults: LogConfig,
        *,
        clock_ms: ClockMs = monotonic_ms,
    ) -> None:
        self.node_id = node_id
        self.log_manager = log_manager
        self.log_defaults = log_defaults
        self.partitions: dict[TopicPartitionKey, Partition] = {}
        self.on_partitions_changed: Callable[[MetadataImage, Iterable[Partition]], None] | None = None
        self._clock_ms = clock_ms
        self._checkpoint_path = log_manager.data_dir / HIGH_WATERMARK_CHECKPOINT
        self._checkpointed = _read_high_watermarks(self._checkpoint_path)

    # metadata -------------------------------------------------------------------------------------
    def apply_image(self, image: MetadataImage, changed_topics: set[str] | None = None) -> None:
        """Create, reconfigure, re-role and delete local replicas so they match ``image``; with
        ``changed_topics``, only those topics changed since the last call (the rest is left as it is)."""
        if changed_topics is None:
            topics = list(image.topics.values())
        else:
            topics = [image.topics[name] for name in changed_topics if name in image.topics]
        wanted: set[TopicPartitionKey] = set()
        for topic in topics:
            config = LogConfig.from_topic_config(topic.config, self.log_defaults)
            for state in topic.partitions:
                if self.node_id not in state.replicas:
                    continue
                key = (topic.name, state.partition)
                wanted.add(key)
                try:
                    partition = self._ensure(topic.name, state.partition, topic.topic_id, config)
                    partition.update(state)
                except RaftKafkaError as exc:  # an offline log: the partition is not served, the rest are
                    log.error("partition %s-%s is offline: %s", topic.name, state.partition, exc)
                    continue
        stale = [
            key for key in self.partitions
            if key not in wanted and (changed_topics is None or key[0] in changed_topics)
        ]  # fmt: skip
        for key in stale:
            self._drop(key)
        if self.on_partitions_changed is not None and (changed_topics is None or wanted or stale):
            self.on_partitions_changed(image, self.partitions.values())

    def _ensure(self, topic: str, index: int, topic_id: str, config: LogConfig) -> Partition:
        key = (topic, index)
        partition = self.partitions.get(key)
        if partition is not None and partition.topic_id != topic_id:
            self._drop(key)  # the topic was deleted and re-created under the same name
            partition = None
        if partition is None:
            plog = self.log_manager.get_or_create(topic, index, config)
            partition = Partition(
                topic, index, topic_id, plog, self.node_id,
                high_watermark=self._checkpointed.get(key, 0), clock_ms=self._clock_ms,
            )
            self.partitions[key] = partition
        elif partition.log.config != config:
            partition.log.update_config(config)
        return partition

    def remove_strays(self, image: MetadataImage) -> list[TopicPartitionKey]:
        """Delete partition directories on disk that ``image`` does not place on this broker."""
        strays = [key for key in self.log_manager.open_existing() if key not in self.partitions]
        for topic, partition in strays:
            log.info("deleting stray partition %s-%s", topic, partition)
            self.log_manager.delete(topic, partition)
        return strays

    def _drop(self, key: TopicPartitionKey) -> None:
        self.partitions.pop(key).detach()
        self._checkpointed.pop(key, None)
        self.log_manager.delete(*key)

    def get(self, topic: str, partition: int) -> Partition:
        """The local replica, or ``UnknownTopicError``."""
        replica = self.partitions.get((topic, partition))
        if replica is None:
            raise UnknownTopicError(f"this broker hosts no partition {topic}-{partition}")
        return replica

    def leader(self, topic: str, partition: int, leader_epoch: int = NO_EPOCH) -> Partition:
        """The local replica if this broker leads it (at ``leader_epoch`` if given), else
        ``NotLeaderError``/``UnknownTopicError``/``FencedLeaderEpochError``/``UnknownLeaderEpochError``."""
        replica = self.get(topic, partition)
        replica.check_leader(leader_epoch)
        return replica

    # produce --------------------------------------------------------------------------------------
    def append(self, topic: str, partition: int, data: object, acks: int) -> tuple[int, asyncio.Future[None] | None]:
        """Validate and append a produced blob of batches: the base offset of the first, and for ``acks=all``
        a future resolved once the in-sync replicas hold them (None when they already do).

        ``acks=all`` fails with ``NotEnoughReplicasError`` before appending when the ISR is smaller than
        ``min.insync.replicas``.
        """
        replica = self.leader(topic, partition)
        if not isinstance(data, bytes):
            raise CorruptBatchError("records must be a byte string of record batches")
        max_size = replica.log.config.max_message_bytes
        if len(data) > max_size * 16:
            raise MessageTooLargeError(f"{len(data)} bytes of batches exceeds the partition's limit")
        batches = bytearray(data)
        headers = validate_batches(batches, max_size=max_size)
        if acks == ACKS_ALL:
            replica.check_enough_replicas()
        try:
            base_offset = replica.append_as_leader(batches, headers)
        except OSError as exc:  # the storage layer maps these; this is the last line of defence
            raise KafkaStorageError(f"cannot write {topic}-{partition}: {exc}") from exc
        if acks != ACKS_ALL:
            return base_offset, None
        return base_offset, replica.wait_for_high_watermark(replica.log.log_end_offset)

    # list offsets, leader epochs ------------------------------------------------------------------
    def list_offset(self, topic: str, partition: int, timestamp: int) -> tuple[int, int]:
        """``(offset, timestamp)`` for ``EARLIEST``/``LATEST`` or the first batch at or after ``timestamp``."""
        replica = self.leader(topic, partition)
        plog = replica.log
        if timestamp == EARLIEST_TIMESTAMP:
            return plog.log_start_offset, -1
        if timestamp == LATEST_TIMESTAMP:
            return replica.high_watermark, -1
        found = plog.offset_for_timestamp(timestamp)
        if found is None or found[0] >= replica.high_watermark:
            return -1, -1
        return found

    def end_offset_for_epoch(self, topic: str, partition: int, epoch: int) -> tuple[int, int]:
        """(Leader) ``(epoch, end offset)``: where ``epoch`` ends in the leader's log (OFFSETS_FOR_LEADER_EPOCH)."""
        return self.leader(topic, partition).log.end_offset_for_epoch(epoch)

    # fetch ----------------------------------------------------------------------------------------
    def read(self, topic: str, partition: int, offset: int, max_bytes: int, leader_epoch: int = NO_EPOCH) -> ReadResult:
        """One partition of a consumer's fetch: records below the high watermark."""
        try:
            replica = self.leader(topic, partition, leader_epoch)
            records = replica.read(offset, max_bytes)
        except RaftKafkaError as exc:
            return exc.code, -1, -1, b""
        return 0, replica.high_watermark, replica.log.log_start_offset, records

    def read_for_follower(
        self, follower_id: int, topic: str, partition: int, offset: int, max_bytes: int, leader_epoch: int
    ) -> ReadResult:
        """One partition of a follower's fetch: records up to the log end; the fetch offset is the follower's
        log end offset. ``OFFSET_OUT_OF_RANGE`` answers carry the log start offset (a follower behind it
        restarts its log there)."""
        replica = self.partitions.get((topic, partition))
        try:
            if replica is None:
                raise UnknownTopicError(f"this broker hosts no partition {topic}-{partition}")
            records = replica.read_for_follower(follower_id, offset, max_bytes, leader_epoch)
        except OffsetOutOfRangeError as exc:
            assert replica is not None
            return exc.code, replica.high_watermark, replica.log.log_start_offset, b""
        except RaftKafkaError as exc:
            return exc.code, -1, -1, b""
        return 0, replica.high_watermark, replica.log.log_start_offset, records

    def watch(self, keys: Iterable[TopicPartitionKey], waiter: FetchWaiter, *, replica: bool = False) -> None:
        """Wake ``waiter`` when any of ``keys`` gets new visible records (or, for a ``replica`` fetch, any
        new records or a new high watermark)."""
        for key in keys:
            partition = self.partitions.get(key)
            if partition is not None:
                partition.add_reader(waiter, replica=replica)

    # housekeeping ---------------------------------------------------------------------------------
    def checkpoint_high_watermarks(self) -> None:
        """Write every online replica's high watermark to the checkpoint file if any changed."""
        current = {key: p.high_watermark for key, p in self.partitions.items() if not p.log.offline}
        if current == self._checkpointed:
            return
        try:
            write_checkpoint(self._checkpoint_path, ((t, p, hw) for (t, p), hw in sorted(current.items())))
        except OSError as exc:
            log.error("cannot write %s: %s", self._checkpoint_path, exc)
            return
        self._checkpointed = current

    def close(self) -> None:
        """Checkpoint the high watermarks and detach every local replica (the LogManager closes their logs)."""
        self.checkpoint_high_watermarks()
        for replica in self.partitions.values():
            replica.detach()
        self.partitions.clear()


def _read_high_watermarks(path: Path) -> dict[TopicPartitionKey, int]:
    rows = read_checkpoint(path, 3) or []
    out: dict[TopicPartitionKey, int] = {}
    for topic, partition, high_watermark in rows:
        if partition.isdigit() and high_watermark.isdigit():
            out[(topic, int(partition))] = int(high_watermark)
    return out
