"""One partition replica hosted by this broker: its log, its role and the readers waiting for data.

Event loop thread only.
"""

from __future__ import annotations

import asyncio

from raftkafka.errors import NotLeaderError, OffsetOutOfRangeError
from raftkafka.storage.partition_log import PartitionLog
from raftkafka.storage.record_batch import BatchHeader


class Partition:
    """A replica of ``topic``-``partition`` on this broker, leader or follower."""

    __slots__ = ("_waiters", "is_leader", "leader_epoch", "leader_id", "log", "partition", "topic", "topic_id")

    def __init__(self, topic: str, partition: int, topic_id: str, log: PartitionLog) -> None:
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.log = log
        self.leader_id = -1
        self.leader_epoch = -1
        self.is_leader = False
        self._waiters: list[asyncio.Future[None]] = []

    def set_role(self, leader_id: int, leader_epoch: int, local_id: int) -> None:
        """Follow the controller's decision about who leads, at which epoch."""
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.is_leader = leader_id == local_id

    @property
    def high_watermark(self) -> int:
        """The offset below which records are committed and visible to consumers.

        With this broker as the only in-sync replica, everything appended is committed.
        """
        return self.log.log_end_offset

    def append_as_leader(self, batches: bytearray, headers: list[BatchHeader]) -> int:
        """Append validated ``batches`` (stamped in place); returns the first offset assigned."""
        if not self.is_leader:
            raise NotLeaderError(f"broker is not the leader of {self.topic}-{self.partition}")
        base_offset, _ = self.log.append(batches, leader_epoch=self.leader_epoch, headers=headers)
        self._wake_readers()
        return base_offset

    def read(self, offset: int, max_bytes: int) -> bytes:
        """Whole batches from ``offset`` up to the high watermark (empty at the high watermark)."""
        high_watermark = self.high_watermark
        if offset > high_watermark:
            raise OffsetOutOfRangeError(
                f"offset {offset} is past the high watermark {high_watermark} of {self.topic}-{self.partition}"
            )
        if offset == high_watermark:
            return b""
        return self.log.read(offset, max_bytes, max_offset=high_watermark)

    def add_reader(self, waiter: asyncio.Future[None]) -> None:
        """Resolve ``waiter`` when new records become visible."""
        if len(self._waiters) >= 64:  # long polls that timed out on an idle partition: forget them
            self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(waiter)

    def _wake_readers(self) -> None:
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def detach(self) -> None:
        """Wake every waiting reader: this replica leaves the broker (its log belongs to the LogManager)."""
        self._wake_readers()
