"""The asynchronous consumer: manual assignment, seeking, polling and iteration over fetched records.

Consumer groups (``group_id``, ``subscribe``, ``commit``) arrive with issue 5; until then they raise
``FeatureNotAvailableError``. A consumer given topics assigns itself every partition of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from raftkafka.client.fetcher import RESET_STRATEGIES, Fetcher
from raftkafka.client.network import ClientNetwork
from raftkafka.errors import ClientClosedError, FeatureNotAvailableError, RaftKafkaError
from raftkafka.net.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from raftkafka.structs import Record, TopicPartition

GROUPS_NOT_YET = "consumer groups arrive with issue 5; use assign() or pass topics without group_id"

PartitionArgs = TopicPartition | Iterable[TopicPartition]


def partitions_of(args: Sequence[PartitionArgs]) -> list[TopicPartition]:
    """Flatten ``seek_to_*`` style arguments: partitions, or iterables of partitions."""
    out: list[TopicPartition] = []
    for arg in args:
        if isinstance(arg, TopicPartition):
            out.append(arg)
        else:
            out.extend(TopicPartition(*tp) for tp in arg)
    return out


class AsyncConsumer:
    """Reads records from assigned partitions. Use ``async with`` or ``start()``/``close()``.

    ``auto_offset_reset``: where to start a partition without a position, or after its position fell out
    of the log: ``"earliest"``, ``"latest"`` or ``"none"`` (raise). ``consumer_timeout_ms``: iteration ends
    after this long without records (default: never). ``default_api_timeout_ms`` bounds blocking calls
    such as ``position`` and the wait for the topics' metadata at start.
    """

    def __init__(
        self,
        *topics: str,
        bootstrap: str | Sequence[str] = "127.0.0.1:9092",
        group_id: str | None = None,
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_bytes: int = 50 * 1024 * 1024,
        max_partition_fetch_bytes: int = 1024 * 1024,
        max_poll_records: int = 500,
        check_crcs: bool = True,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
        default_api_timeout_ms: float = 60_000,
        consumer_timeout_ms: float | None = None,
    ) -> None:
        if group_id is not None:
            raise FeatureNotAvailableError(GROUPS_NOT_YET)
        if auto_offset_reset not in RESET_STRATEGIES:
            choices = ", ".join(RESET_STRATEGIES)
            raise ValueError(f"auto_offset_reset must be one of {choices}, not {auto_offset_reset!r}")
        if max_poll_records < 1 or fetch_max_bytes < 1 or max_partition_fetch_bytes < 1:
            raise ValueError("max_poll_records, fetch_max_bytes and max_partition_fetch_bytes must be positive")
        self.topics = list(topics)
        self.max_poll_records = max_poll_records
        self.api_timeout = default_api_timeout_ms / 1000
        self.consumer_timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self._network = ClientNetwork(
            bootstrap, request_timeout_ms=request_timeout_ms, retry_backoff_ms=retry_backoff_ms
        )
        self._fetcher = Fetcher(
            self._network,
            auto_offset_reset=auto_offset_reset,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            check_crcs=check_crcs,
        )
        self._started = False
        self._closed = False

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect; with topics, wait for their metadata and assign every partition of them."""
        try:
            await self._network.refresh([])
            if self.topics:
                await self._network.wait_for_topics(self.topics, self.api_timeout)
                self._fetcher.assign(tp for t in self.topics for tp in self._network.cluster.partitions(t) or [])
        except BaseException:
            await self._network.close()
            raise
        self._fetcher.start()
        self._started = True

    async def __aenter__(self) -> AsyncConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop fetching and close the connections."""
        if self._closed:
            return
        self._closed = True
        await self._fetcher.close()
        await self._network.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the consumer is closed")

    # assignment and positions ---------------------------------------------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions`` (manual assignment); partitions kept keep their positions."""
        self._check_open()
        self._fetcher.assign(partitions)

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        return set(self._fetcher.states)

    def subscribe(self, topics: Iterable[str]) -> None:
        """Group subscription: not available until consumer groups exist (issue 5)."""
        raise FeatureNotAvailableError(GROUPS_NOT_YET)

    async def commit(self, offsets: Any = None) -> None:
        """Committing offsets needs a consumer group: not available until issue 5."""
        raise FeatureNotAvailableError(GROUPS_NOT_YET)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record ``poll`` returns from ``partition``."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"offset must be >= 0, not {offset}")
        self._fetcher.seek(partition, offset)

    def seek_to_beginning(self, *partitions: PartitionArgs) -> None:
        """Move to the earliest offset of ``partitions`` (default: every assigned partition)."""
        self._seek_reset(partitions, "earliest")

    def seek_to_end(self, *partitions: PartitionArgs) -> None:
        """Move to the end of ``partitions`` (default: every assigned partition): only new records follow."""
        self._seek_reset(partitions, "latest")

    def _seek_reset(self, partitions: Sequence[PartitionArgs], reset: str) -> None:
        self._check_open()
        for tp in partitions_of(partitions) if partitions else list(self._fetcher.states):
            self._fetcher.seek(tp, None, reset)

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns from ``partition`` (resetting it if it has none)."""
        self._check_open()
        return await self._fetcher.wait_for_position(partition, self.api_timeout)

    async def beginning_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset of each partition."""
        return await self._list_offsets(partitions, EARLIEST_TIMESTAMP)

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The offset after the last record of each partition (its high watermark)."""
        return await self._list_offsets(partitions, LATEST_TIMESTAMP)

    async def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """For each partition, the earliest offset whose timestamp is at or after the given one (ms)."""
        return await self._list_offsets(timestamps, timestamps)

    async def _list_offsets(
        self, partitions: Iterable[TopicPartition], timestamp: int | dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        self._check_open()
        wanted = [TopicPartition(*tp) for tp in partitions]
        await self._network.wait_for_topics({tp.topic for tp in wanted}, self.api_timeout)
        by_leader: dict[Any, dict[TopicPartition, int]] = {}
        for tp in wanted:
            leader = self._network.cluster.leader(tp)
            if leader is None:
                raise ValueError(f"{tp.topic}-{tp.partition} does not exist")
            ts = timestamp[tp] if isinstance(timestamp, dict) else timestamp
            by_leader.setdefault((leader.host, leader.port), {})[tp] = ts
        out: dict[TopicPartition, int] = {}
        results = await asyncio.gather(*(self._fetcher.list_offsets(a, ts) for a, ts in by_leader.items()))
        for result in results:
            for tp, offset in result.items():
                if isinstance(offset, RaftKafkaError):
                    raise offset
                out[tp] = offset
        return out

    # reading --------------------------------------------------------------------------------------
    async def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` (default ``max_poll_records``) records, waiting up to ``timeout_ms`` for
        the first; raises a partition's error (e.g. ``OffsetOutOfRangeError`` with reset "none")."""
        self._check_open()
        limit = max_records or self.max_poll_records
        fetcher = self._fetcher
        records = fetcher.take(limit)
        if records or timeout_ms <= 0:
            return records
        deadline = time.monotonic() + timeout_ms / 1000
        while not records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await fetcher.wait_for_data(remaining)
            self._check_open()
            records = fetcher.take(limit)
        return records

    async def __aiter__(self) -> AsyncIterator[Record]:
        """Every record, as it arrives (until ``consumer_timeout_ms`` passes without any)."""
        wait_ms = 1_000_000_000 if self.consumer_timeout is None else self.consumer_timeout * 1000
        while True:
            records = await self.poll(wait_ms)
            if not records:
                return
            for record in records:
                yield record
