"""Follower replication: one fetch loop per leader broker, fetching every partition this broker follows there.

``ReplicaFetcherManager.update`` (called after each metadata image) groups the local followers by leader and
keeps one ``ReplicaFetcher`` per leader broker. A fetcher first *truncates* each newly followed partition
(a new leader or leader epoch): it asks the leader OFFSETS_FOR_LEADER_EPOCH for its latest epoch and
truncates to the answer, repeating with its next older epoch while the leader does not know the asked one
(Kafka's KIP-279), so a former leader's divergent tail disappears. Then it sends one FETCH for all its
partitions (``replica_id`` = own node id, ``offset`` = own log end offset, the leader epoch it follows),
appends the batches as they are and takes ``min(leader high watermark, own log end offset)`` as its high
watermark. The leader long-polls (``max_wait_ms``) while there is nothing new, so idle replication is free.

A partition whose leader answers NOT_LEADER or an epoch error waits ``backoff_s`` (the metadata image will
name the new leader); a connection failure closes the connection and retries after ``backoff_s``.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from raftkafka.errors import (
    CorruptBatchError,
    KafkaStorageError,
    OffsetOutOfRangeError,
    RaftKafkaError,
)
from raftkafka.metadata.image import NO_LEADER, MetadataImage
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.net.idle_poll import IdlePoll
from raftkafka.storage.leader_epoch_cache import UNDEFINED_EPOCH, UNDEFINED_OFFSET

from .partition import Partition

log = logging.getLogger(__name__)

API_VERSION = 0
TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ReplicaFetcherConfig:
    """Kafka's ``replica.fetch.*`` settings (times in seconds here)."""

    max_wait_ms: int = 500
    min_bytes: int = 1
    partition_max_bytes: int = 1024 * 1024
    response_max_bytes: int = 16 * 1024 * 1024
    backoff_s: float = 0.2
    request_timeout_s: float = 10.0
    connect_timeout_s: float = 2.0


@dataclass(slots=True)
class _FetchState:
    """One followed partition as its fetcher sees it; replaced whenever the leader epoch changes."""

    partition: Partition
    leader_epoch: int
    truncated: bool = False
    delayed_until: float = 0.0


class ReplicaFetcher:
    """The fetch loop for the partitions led by ``leader_id`` at ``address``."""

    def __init__(
        self,
        node_id: int,
        leader_id: int,
        address: tuple[str, int],
        config: ReplicaFetcherConfig,
        idle_poll: IdlePoll | None = None,
    ) -> None:
        self.idle_poll = idle_poll
        self.node_id = node_id
        self.leader_id = leader_id
        self.address = address
        self.config = config
        self.partitions: dict[TopicPartitionKey, _FetchState] = {}
        self._changed = asyncio.Event()
        self._connection: Connection | None = None
        self._task = asyncio.create_task(self._run(), name=f"replica-fetcher-{leader_id}")

    def set_partitions(self, partitions: Iterable[Partition]) -> None:
        """Follow exactly ``partitions`` (led by this fetcher's leader); new leader epochs truncate again."""
        states = {}
        for partition in partitions:
            key = (partition.topic, partition.partition)
            state = self.partitions.get(key)
            if state is None or state.partition is not partition or state.leader_epoch != partition.leader_epoch:
                state = _FetchState(partition, partition.leader_epoch)
            states[key] = state
        self.partitions = states
        self._changed.set()

    async def close(self) -> None:
        """Stop the loop and close the connection."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # -- the loop --------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                try:
                    connection = await self._connect()
                    await self._truncate(connection)
                    await self._fetch(connection)
                except (RaftKafkaError, TimeoutError, OSError) as exc:
                    log.info("replica fetcher %d <- %d (%s:%d): %s", self.node_id, self.leader_id, *self.address, exc)
                    self._disconnect()
                    await asyncio.sleep(self.config.backoff_s)
        finally:
            self._disconnect()

    async def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            host, port = self.address
            self._connection = await Connection.open(
                host, port, timeout=self.config.connect_timeout_s, idle_poll=self.idle_poll
            )
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _ready(self, *, truncated: bool) -> list[tuple[TopicPartitionKey, _FetchState]]:
        now = time.monotonic()
        return [
            (key, state)
            for key, state in self.partitions.items()
            if state.truncated == truncated and state.delayed_until <= now
        ]

    def _delay(self, state: _FetchState) -> None:
        state.delayed_until = time.monotonic() + self.config.backoff_s

    # -- truncation ------------------------------------------------------------------------------------

    async def _truncate(self, connection: Connection) -> None:
        """Truncate every partition not yet truncated in its leader epoch, one OFFSETS_FOR_LEADER_EPOCH round
        per loop (partitions that need another round stay untruncated)."""
        asked: dict[str, list[list[int]]] = defaultdict(list)
        states: dict[TopicPartitionKey, tuple[_FetchState, int]] = {}
        for key, state in self._ready(truncated=False):
            epoch = state.partition.log.leader_epoch_cache.latest_epoch
            if epoch == UNDEFINED_EPOCH:  # nothing written under any epoch: nothing can diverge
                self._truncate_to(state, state.partition.high_watermark)
                continue
            asked[key[0]].append([key[1], epoch])
            states[key] = (state, epoch)
        if not asked:
            return
        body = {"topics": [[topic, entries] for topic, entries in asked.items()]}
        timeout = self.config.request_timeout_s
        answer = await connection.send(ApiKey.OFFSETS_FOR_LEADER_EPOCH, API_VERSION, body, timeout=timeout)
        for topic, entries in answer["topics"]:
            for partition, error, leader_epoch, end_offset in entries:
                state, asked_epoch = states.get((topic, partition), (None, 0))
                if state is None or self.partitions.get((topic, partition)) is not state:
                    continue  # no longer followed here, or followed at another epoch since
                if error:
                    log.info("%s-%d: leader %d answered error %d to OFFSETS_FOR_LEADER_EPOCH",
                             topic, partition, self.leader_id, error)
                    self._delay(state)
                    continue
                self._apply_epoch_end(state, asked_epoch, leader_epoch, end_offset)

    def _apply_epoch_end(self, state: _FetchState, asked_epoch: int, leader_epoch: int, end_offset: int) -> None:
        plog = state.partition.log
        if end_offset == UNDEFINED_OFFSET:  # the leader knows no epoch this old: keep only what was committed
            self._truncate_to(state, state.partition.high_watermark)
        elif leader_epoch == asked_epoch:  # both logs agree up to where this epoch ends on the leader
            self._truncate_to(state, end_offset)
        else:
            # The leader never had ``asked_epoch``: drop every own epoch above the leader's (so the next round
            # asks an older epoch of ours), then ask again until both name the same epoch.
            _, own_end = plog.end_offset_for_epoch(leader_epoch)
            target = end_offset if own_end == UNDEFINED_OFFSET else min(end_offset, own_end)
            self._truncate_to(state, target, done=False)

    def _truncate_to(self, state: _FetchState, offset: int, *, done: bool = True) -> None:
        partition = state.partition
        before = partition.log.log_end_offset
        end = partition.truncate_to(offset)
        if end < before:
            log.info("%s-%d truncated from %d to %d (following %d at epoch %d)", partition.topic,
                     partition.partition, before, end, self.leader_id, state.leader_epoch)
        state.truncated = done

    # -- fetching --------------------------------------------------------------------------------------

    async def _fetch(self, connection: Connection) -> None:
        ready = self._ready(truncated=True)
        if not ready:
            await self._idle()
            return
        config = self.config
        topics: dict[str, list[list[int]]] = defaultdict(list)
        sent: dict[TopicPartitionKey, tuple[_FetchState, int]] = {}
        for key, state in ready:
            offset = state.partition.log.log_end_offset
            topics[key[0]].append([key[1], offset, config.partition_max_bytes, state.leader_epoch])
            sent[key] = (state, offset)
        body = {
            "replica_id": self.node_id,
            "max_wait_ms": config.max_wait_ms,
            "min_bytes": config.min_bytes,
            "max_bytes": config.response_max_bytes,
            "topics": [[topic, entries] for topic, entries in topics.items()],
        }
        # the connection's own deadline (RequestTimedOutError, and it closes) costs less than an asyncio.timeout
        timeout = config.max_wait_ms / 1000 + config.request_timeout_s
        answer = await connection.send(ApiKey.FETCH, API_VERSION, body, timeout=timeout)
        for topic, entries in answer["topics"]:
            for partition, error, high_watermark, log_start, records in entries:
                state, offset = sent.get((topic, partition), (None, 0))
                if state is None or self.partitions.get((topic, partition)) is not state or not state.truncated:
                    continue
                self._apply_fetched(state, offset, error, high_watermark, log_start, records)

    def _apply_fetched(
        self, state: _FetchState, offset: int, error: int, high_watermark: int, log_start: int, records: bytes
    ) -> None:
        partition = state.partition
        if error == OffsetOutOfRangeError.code:
            if 0 <= offset < log_start:  # the leader deleted what we lack: restart at its log start
                log.warning("%s-%d: log end %d is below the leader's log start %d; restarting there",
                            partition.topic, partition.partition, offset, log_start)
                partition.truncate_fully_and_start_at(log_start)
            else:  # past the leader's log end: diverged, truncate again
                state.truncated = False
            return
        if error:
            self._delay(state)
            return
        if partition.log.log_end_offset != offset:
            return  # truncated meanwhile: the next fetch asks from the new end
        try:
            if records:
                partition.append_as_follower(records)
            partition.update_follower_high_watermark(high_watermark)
        except CorruptBatchError as exc:
            log.warning("%s-%d: fetched batches rejected (%s); truncating again", partition.topic,
                        partition.partition, exc)
            state.truncated = False
        except (KafkaStorageError, RaftKafkaError) as exc:
            log.error("%s-%d: cannot append fetched batches: %s", partition.topic, partition.partition, exc)
            self._delay(state)

    async def _idle(self) -> None:
        """Wait for a change of partitions or the end of the earliest back-off."""
        now = time.monotonic()
        delays = [s.delayed_until - now for s in self.partitions.values() if s.delayed_until > now]
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(delays, default=1.0)):
                await self._changed.wait()


class ReplicaFetcherManager:
    """One ``ReplicaFetcher`` per leader broker of the partitions this broker follows."""

    def __init__(
        self, node_id: int, config: ReplicaFetcherConfig | None = None, *, idle_poll: IdlePoll | None = None
    ) -> None:
        self.node_id = node_id
        self.config = config or ReplicaFetcherConfig()
        self.idle_poll = idle_poll
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def update(self, image: MetadataImage, partitions: Iterable[Partition]) -> None:
        """Fetch every local follower replica from its leader named in ``image``; stop the other fetchers."""
        by_leader: dict[int, list[Partition]] = defaultdict(list)
        for partition in partitions:
            if not partition.is_leader and partition.leader_id != NO_LEADER and not partition.log.offline:
                by_leader[partition.leader_id].append(partition)
        addresses = {}
        for leader_id in by_leader:
            broker = image.brokers.get(leader_id)
            if broker is not None:
                addresses[leader_id] = (broker.host, broker.port)
        for leader_id, fetcher in list(self.fetchers.items()):
            if addresses.get(leader_id) != fetcher.address:
                self._stop(self.fetchers.pop(leader_id))
        for leader_id, address in addresses.items():
            fetcher = self.fetchers.get(leader_id)
            if fetcher is None:
                fetcher = self.fetchers[leader_id] = ReplicaFetcher(
                    self.node_id, leader_id, address, self.config, self.idle_poll
                )
            fetcher.set_partitions(by_leader[leader_id])

    def _stop(self, fetcher: ReplicaFetcher) -> None:
        task = asyncio.ensure_future(fetcher.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop every fetcher."""
        fetchers, self.fetchers = list(self.fetchers.values()), {}
        await asyncio.gather(*(f.close() for f in fetchers), *self._closing, return_exceptions=True)
