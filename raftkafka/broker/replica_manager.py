"""The partitions this broker hosts: kept in step with the metadata image, and read and written for clients.

Event loop thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from raftkafka.errors import (
    CorruptBatchError,
    KafkaStorageError,
    MessageTooLargeError,
    NotLeaderError,
    RaftKafkaError,
    UnknownTopicError,
)
from raftkafka.metadata.image import MetadataImage
from raftkafka.net.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from raftkafka.storage.log_config import LogConfig
from raftkafka.storage.log_manager import LogManager
from raftkafka.storage.record_batch import validate_batches

from .partition import Partition

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]


class ReplicaManager:
    """Owns every local partition replica; applies metadata images; serves produce, fetch and list offsets."""

    def __init__(self, node_id: int, log_manager: LogManager, log_defaults: LogConfig) -> None:
        self.node_id = node_id
        self.log_manager = log_manager
        self.log_defaults = log_defaults
        self.partitions: dict[TopicPartitionKey, Partition] = {}

    # metadata -------------------------------------------------------------------------------------
    def apply_image(self, image: MetadataImage) -> None:
        """Create, reconfigure, re-role and delete local replicas so they match ``image``."""
        wanted: set[TopicPartitionKey] = set()
        for topic in image.topics.values():
            config = LogConfig.from_topic_config(topic.config, self.log_defaults)
            for state in topic.partitions:
                if self.node_id not in state.replicas:
                    continue
                key = (topic.name, state.partition)
                wanted.add(key)
                try:
                    partition = self._ensure(topic.name, state.partition, topic.topic_id, config)
                except RaftKafkaError as exc:  # an offline log: the partition is not served, the rest are
                    log.error("partition %s-%s is offline: %s", topic.name, state.partition, exc)
                    continue
                partition.set_role(state.leader, state.leader_epoch, self.node_id)
        for key in [k for k in self.partitions if k not in wanted]:
            self._drop(key)

    def _ensure(self, topic: str, index: int, topic_id: str, config: LogConfig) -> Partition:
        key = (topic, index)
        partition = self.partitions.get(key)
        if partition is not None and partition.topic_id != topic_id:
            self._drop(key)  # the topic was deleted and re-created under the same name
            partition = None
        if partition is None:
            plog = self.log_manager.get_or_create(topic, index, config)
            partition = Partition(topic, index, topic_id, plog)
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
        self.log_manager.delete(*key)

    def get(self, topic: str, partition: int) -> Partition:
        """The local replica, or ``UnknownTopicError``."""
        replica = self.partitions.get((topic, partition))
        if replica is None:
            raise UnknownTopicError(f"this broker hosts no partition {topic}-{partition}")
        return replica

    def leader(self, topic: str, partition: int) -> Partition:
        """The local replica if this broker leads it, else ``NotLeaderError``/``UnknownTopicError``."""
        replica = self.get(topic, partition)
        if not replica.is_leader:
            raise NotLeaderError(f"broker {self.node_id} is not the leader of {topic}-{partition}")
        return replica

    # produce --------------------------------------------------------------------------------------
    def append(self, topic: str, partition: int, data: object) -> int:
        """Validate and append a produced blob of batches; returns the base offset of the first."""
        replica = self.leader(topic, partition)
        if not isinstance(data, bytes):
            raise CorruptBatchError("records must be a byte string of record batches")
        max_size = replica.log.config.max_message_bytes
        if len(data) > max_size * 16:
            raise MessageTooLargeError(f"{len(data)} bytes of batches exceeds the partition's limit")
        batches = bytearray(data)
        headers = validate_batches(batches, max_size=max_size)
        try:
            return replica.append_as_leader(batches, headers)
        except OSError as exc:  # the storage layer maps these; this is the last line of defence
            raise KafkaStorageError(f"cannot write {topic}-{partition}: {exc}") from exc

    # list offsets ---------------------------------------------------------------------------------
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

    # fetch ----------------------------------------------------------------------------------------
    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> tuple[int, int, int, bytes]:
        """``(error, high_watermark, log_start_offset, records)`` for one partition of a fetch."""
        try:
            replica = self.leader(topic, partition)
            records = replica.read(offset, max_bytes)
        except RaftKafkaError as exc:
            return exc.code, -1, -1, b""
        return 0, replica.high_watermark, replica.log.log_start_offset, records

    def watch(self, keys: Iterable[TopicPartitionKey], waiter: object) -> None:
        """Resolve the future ``waiter`` when any of ``keys`` gets new visible records."""
        for key in keys:
            replica = self.partitions.get(key)
            if replica is not None:
                replica.add_reader(waiter)  # type: ignore[arg-type]

    # housekeeping ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Detach every local replica (the LogManager closes their logs)."""
        for replica in self.partitions.values():
            replica.detach()
        self.partitions.clear()
