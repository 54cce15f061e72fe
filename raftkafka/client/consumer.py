"""The asynchronous consumer: manual assignment or consumer groups, seeking, pausing, polling, committing and
iteration over fetched records.

Without ``group_id``, topics given to the constructor are consumed whole (every partition assigned). With
``group_id`` they are the group subscription (``subscribe``): the group's coordinator shares their
partitions among the members. A member rebalances inside ``poll`` (Kafka's eager protocol): (1) with
``enable_auto_commit``, commit the positions of the records handed out, (2) call the listener's
``on_partitions_revoked`` and drop everything fetched, (3) join the group (``GroupMember``), (4) assign the
new partitions, which start at the group's committed offsets (``auto_offset_reset`` where none is), and
(5) call ``on_partitions_assigned``. A join that outlasts ``poll``'s timeout goes on in the background and
the next poll picks it up; ``start`` begins the first join without waiting for it. Event loop thread only.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any

from raftkafka.client.fetcher import COMMITTED, RESET_STRATEGIES, Fetcher
from raftkafka.client.group_member import NO_GENERATION, STRATEGIES, GroupMember
from raftkafka.client.network import ClientNetwork
from raftkafka.errors import ClientClosedError, InvalidGroupIdError, RaftKafkaError
from raftkafka.net.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from raftkafka.structs import Record, TopicPartition

log = logging.getLogger(__name__)

PartitionArgs = TopicPartition | Iterable[TopicPartition]
CommitCallback = Callable[[dict[TopicPartition, int], RaftKafkaError | None], Any]


def partitions_of(args: Sequence[PartitionArgs]) -> list[TopicPartition]:
    """Flatten ``seek_to_*`` style arguments: partitions, or iterables of partitions."""
    out: list[TopicPartition] = []
    for arg in args:
        if isinstance(arg, TopicPartition):
            out.append(arg)
        else:
            out.extend(TopicPartition(*tp) for tp in arg)
    return out


class ConsumerRebalanceListener:
    """Told about a group consumer's rebalances, inside ``poll``; subclass it and override either method.

    The methods may be plain functions or, with ``AsyncConsumer``, coroutines. The sync ``Consumer`` calls
    them in a worker thread, so they may call the consumer's own methods (``commit()``, ``position()``,
    ``seek()``). An exception in a callback is logged and raised from ``poll`` once the rebalance step
    finished.
    """

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> Any:
        """Before a rebalance takes ``revoked`` away (every assigned partition: the eager protocol), also
        when the member already lost them; the place to commit by hand. Not called when none is assigned."""

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> Any:
        """After a rebalance, with the member's partitions in the new generation (maybe none). They start at
        the group's committed offsets unless a ``seek`` here moves them."""


async def _call(function: Callable[..., Any], *args: Any) -> None:
    result = function(*args)
    if inspect.isawaitable(result):
        await result


class PendingRecords:
    """Records a poll handed to an iterator that the iterator has not yielded yet.

    Iterators take records in batches, but a commit, ``position`` or close counts only the records the user
    got: a partition with pending records is at its first pending record's offset. The owner's thread only.
    """

    __slots__ = ("_runs", "index", "records")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.index = 0
        """The next record to yield."""
        self._runs: list[tuple[int, TopicPartition]] | None = None

    def load(self, records: list[Record]) -> None:
        self.records, self.index, self._runs = records, 0, None

    def __len__(self) -> int:
        return len(self.records) - self.index

    def take(self, max_records: int) -> list[Record]:
        start = self.index
        out = self.records[start : start + max_records]
        self.index = start + len(out)
        return out

    def first_offsets(self) -> dict[TopicPartition, int]:
        """The offset of each partition's first pending record."""
        records, index = self.records, self.index
        if index >= len(records):
            return {}
        runs = self._runs
        if runs is None:  # where each run of one partition's records starts: a commit per record stays cheap
            runs = self._runs = []
            last: tuple[str, int] | None = None
            for i, record in enumerate(records):
                if (record.topic, record.partition) != last:
                    last = (record.topic, record.partition)
                    runs.append((i, TopicPartition(*last)))
        out: dict[TopicPartition, int] = {}
        for k, (start, tp) in enumerate(runs):
            end = runs[k + 1][0] if k + 1 < len(runs) else len(records)
            if end > index and tp not in out:
                out[tp] = records[max(start, index)].offset
        return out

    def drop(self, partitions: Collection[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Forget the pending records of ``partitions`` (default: all); returns their first pending offsets."""
        first = self.first_offsets()
        if partitions is None:
            self.load([])
            return first
        dropped = {tp: offset for tp, offset in first.items() if tp in partitions}
        if dropped:
            self.load([r for r in self.records[self.index :] if (r.topic, r.partition) not in dropped])
        return dropped


class AsyncConsumer:
    """Reads records from assigned partitions, alone or in a consumer group. Use ``async with`` or
    ``start()``/``close()``.

    ``auto_offset_reset``: where to start a partition without a position (or committed offset), or after
    its position fell out of the log: ``"earliest"``, ``"latest"`` or ``"none"`` (raise).
    ``consumer_timeout_ms``: iteration ends after this long without records (default: never).
    ``default_api_timeout_ms`` bounds blocking calls such as ``position``, ``commit`` and the wait for the
    topics' metadata at start.

    Groups (``group_id``; Kafka's names and defaults): ``client_id`` prefixes the member id;
    ``session_timeout_ms``: the coordinator removes a member silent for this long; ``heartbeat_interval_ms``:
    how often the background task heartbeats; ``max_poll_interval_ms``: a member that does not call
    ``poll`` for this long leaves the group (it is also the rebalance timeout the member asks for);
    ``enable_auto_commit``: commit the positions of the records handed out every
    ``auto_commit_interval_ms`` (at the start of a poll), before a rebalance and on close;
    ``partition_assignment_strategy``: names among ``range``, ``roundrobin``, ``sticky``, in order of
    preference; ``metadata_max_age_ms``: how often a pattern subscription looks for new matching topics.

    ``idle_poll_us`` (default 0, off): after each request sent and each answer read, keep the event loop
    polling this many µs instead of sleeping (``raftkafka.net.idle_poll``): lower latency on virtual
    machines, at the price of CPU. Meant for the asyncio clients; in the sync ones the polling loop thread
    competes with the calling thread for the GIL.
    """

    def __init__(
        self,
        *topics: str,
        bootstrap: str | Sequence[str] = "127.0.0.1:9092",
        group_id: str | None = None,
        client_id: str = "raftkafka-consumer",
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: float = 5000,
        session_timeout_ms: int = 45_000,
        heartbeat_interval_ms: int = 3000,
        max_poll_interval_ms: int = 300_000,
        partition_assignment_strategy: str | Sequence[str] = ("range",),
        metadata_max_age_ms: float = 300_000,
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
        idle_poll_us: int = 0,
    ) -> None:
        if auto_offset_reset not in RESET_STRATEGIES:
            choices = ", ".join(RESET_STRATEGIES)
            raise ValueError(f"auto_offset_reset must be one of {choices}, not {auto_offset_reset!r}")
        if max_poll_records < 1 or fetch_max_bytes < 1 or max_partition_fetch_bytes < 1:
            raise ValueError("max_poll_records, fetch_max_bytes and max_partition_fetch_bytes must be positive")
        strategies = (
            [partition_assignment_strategy]
            if isinstance(partition_assignment_strategy, str)
            else list(partition_assignment_strategy)
        )
        if not strategies or any(s not in STRATEGIES for s in strategies):
            raise ValueError(
                f"partition_assignment_strategy must name some of {', '.join(STRATEGIES)}, "
                f"not {partition_assignment_strategy!r}"
            )
        if not 0 < heartbeat_interval_ms < session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be positive and lower than session_timeout_ms")
        if auto_commit_interval_ms <= 0 or max_poll_interval_ms <= 0 or metadata_max_age_ms <= 0:
            raise ValueError("auto_commit_interval_ms, max_poll_interval_ms and metadata_max_age_ms must be positive")
        self.topics = list(topics)
        self.group_id = group_id
        self.max_poll_records = max_poll_records
        self.api_timeout = default_api_timeout_ms / 1000
        self.consumer_timeout = None if consumer_timeout_ms is None else consumer_timeout_ms / 1000
        self.enable_auto_commit = enable_auto_commit and group_id is not None
        self.auto_commit_interval = auto_commit_interval_ms / 1000
        self.metadata_max_age = metadata_max_age_ms / 1000
        self._network = ClientNetwork(
            bootstrap, request_timeout_ms=request_timeout_ms, retry_backoff_ms=retry_backoff_ms,
            idle_poll_us=idle_poll_us,
        )  # fmt: skip
        self._fetcher = Fetcher(
            self._network,
            auto_offset_reset=auto_offset_reset,
            fetch_max_wait_ms=fetch_max_wait_ms,
            fetch_min_bytes=fetch_min_bytes,
            fetch_max_bytes=fetch_max_bytes,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            check_crcs=check_crcs,
        )
        self._member: GroupMember | None = None
        if group_id is not None:
            self._member = GroupMember(
                self._network,
                group_id=group_id,
                client_id=client_id,
                session_timeout_ms=session_timeout_ms,
                heartbeat_interval_ms=heartbeat_interval_ms,
                max_poll_interval_ms=max_poll_interval_ms,
                strategies=strategies,
            )
            self._member.on_rejoin_needed = self._fetcher.interrupt
            self._fetcher.committed_offsets = self._member.fetch_committed
        self._subscription: list[str] | re.Pattern[str] | None = None
        self._pattern_topics: list[str] | None = None  # a pattern subscription's matching topics, once known
        self._listener: Any = ConsumerRebalanceListener()
        self._listener_error: Exception | None = None
        self._in_listener = False
        self._invoke_callback: Callable[..., Awaitable[Any]] = _call
        """Runs user callbacks (the sync ``Consumer`` runs them in a worker thread)."""
        self._manual = False  # assign() with a group: commits without a member id
        self._join_task: asyncio.Task[list[TopicPartition]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # async commits and pattern refreshes
        self._auto_commit: asyncio.Task[None] | None = None
        self._auto_committed: dict[TopicPartition, int] = {}
        self._next_auto_commit = 0.0
        self._next_pattern_refresh = 0.0
        self._pending = PendingRecords()
        self._started = False
        self._closed = False
        if group_id is not None and topics:
            self.subscribe(list(topics))

    # lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect; with topics and no group, wait for their metadata and assign every partition of them.
        A group subscription starts joining (without waiting: the first ``poll`` completes the join)."""
        try:
            await self._network.refresh([])
            if self.topics and self._member is None:
                await self._network.wait_for_topics(self.topics, self.api_timeout)
                self._fetcher.assign(tp for t in self.topics for tp in self._network.cluster.partitions(t) or [])
        except BaseException:
            await self._network.close()
            raise
        self._network.listeners.append(self._on_metadata)
        self._fetcher.start()
        self._started = True
        self._next_auto_commit = time.monotonic() + self.auto_commit_interval
        if self._subscription is not None:
            self._start_join()

    async def __aenter__(self) -> AsyncConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave the group, if any, after committing (with ``enable_auto_commit``) the positions of the
        records handed out and calling ``on_partitions_revoked``; stop fetching and close the connections."""
        if self._closed:
            return
        try:
            if self._member is not None and self._started:
                await self._close_group(self._member)
        finally:
            self._closed = True
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._fetcher.close()
            await self._network.close()

    async def _close_group(self, member: GroupMember) -> None:
        await self._stop_join()
        commits = [t for t in self._tasks if t.get_name() == "raftkafka-commit"]
        await asyncio.gather(*commits, return_exceptions=True)
        if self.enable_auto_commit:
            await self._commit_quietly("on close")
        if self._subscription is not None:
            revoked = self.assignment()
            if revoked:
                await self._call_listener("on_partitions_revoked", revoked)
                self._listener_error = None  # logged; close goes on
            await member.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the consumer is closed")

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # assignment and subscription ------------------------------------------------------------------
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Consume exactly ``partitions`` (manual assignment); partitions kept keep their positions. With a
        ``group_id``, new partitions start at the group's committed offsets and commits use no member id."""
        self._check_open()
        if self._subscription is not None:
            raise ValueError("assign() and subscribe() are mutually exclusive: call unsubscribe() first")
        wanted = [TopicPartition(*tp) for tp in partitions]
        self._pending.drop(set(self._fetcher.states) - set(wanted))
        self._fetcher.assign(wanted, COMMITTED if self._member is not None else None)
        self._manual = bool(wanted)

    def assignment(self) -> set[TopicPartition]:
        """The assigned partitions."""
        return set(self._fetcher.states)

    def subscribe(
        self, topics: Iterable[str] | str | re.Pattern[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Join the group with subscription ``topics``: a list of names, or a regular expression (a ``str`` or
        ``re.Pattern``) that topic names must match in full, checked again at every metadata refresh (a new
        matching topic makes the member rejoin). The (re)join happens in the next ``poll``; ``listener``'s
        callbacks run around each rebalance."""
        self._check_open()
        if self._member is None:
            raise InvalidGroupIdError("subscribe() needs a group_id: pass group_id=... or use assign()")
        if self._manual:
            raise ValueError("subscribe() and assign() are mutually exclusive: call unsubscribe() first")
        if isinstance(topics, str | re.Pattern):
            self._subscription = re.compile(topics)
        else:
            names = sorted(set(topics))
            if not names or not all(isinstance(name, str) for name in names):
                raise ValueError("subscribe() needs topic names (or a pattern); unsubscribe() stops consuming")
            self._subscription = names
        self._pattern_topics = None
        self._next_pattern_refresh = 0.0
        self._listener = listener if listener is not None else ConsumerRebalanceListener()
        self._fetcher.interrupt()

    def subscription(self) -> set[str]:
        """The subscribed topics (for a pattern, the matching topics known so far)."""
        subscription = self._subscription
        if isinstance(subscription, list):
            return set(subscription)
        return set(self._pattern_topics or ())

    async def unsubscribe(self) -> None:
        """Stop consuming: call ``on_partitions_revoked`` (subscriptions), drop the assignment and leave the
        group. Nothing is committed."""
        self._check_open()
        await self._stop_join()
        revoked = self.assignment()
        if self._subscription is not None and revoked:
            await self._call_listener("on_partitions_revoked", revoked)
        self._pending.drop()
        self._fetcher.assign([])
        subscribed, self._subscription, self._pattern_topics, self._manual = self._subscription, None, None, False
        if subscribed is not None and self._member is not None:
            await self._member.leave("the consumer unsubscribed")
        self._raise_listener_error()

    def pause(self, *partitions: PartitionArgs) -> None:
        """Stop fetching ``partitions``: ``poll`` returns none of their records until ``resume``; their
        positions stay (records fetched but not yet returned are dropped and fetched again)."""
        self._check_open()
        wanted = self._assigned(partitions_of(partitions))
        for tp, offset in self._pending.drop(wanted).items():
            self._fetcher.seek(tp, offset)
        self._fetcher.pause(wanted)

    def resume(self, *partitions: PartitionArgs) -> None:
        """Fetch paused ``partitions`` again."""
        self._check_open()
        self._fetcher.resume(self._assigned(partitions_of(partitions)))

    def paused(self) -> set[TopicPartition]:
        """The paused partitions."""
        return self._fetcher.paused()

    def _assigned(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        unknown = [f"{tp.topic}-{tp.partition}" for tp in partitions if tp not in self._fetcher.states]
        if unknown:
            raise ValueError(f"not assigned to this consumer: {', '.join(unknown)}")
        return partitions

    # positions ------------------------------------------------------------------------------------
    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record ``poll`` returns from ``partition``."""
        self._check_open()
        if offset < 0:
            raise ValueError(f"offset must be >= 0, not {offset}")
        self._pending.drop({TopicPartition(*partition)})
        self._fetcher.seek(partition, offset)

    def seek_to_beginning(self, *partitions: PartitionArgs) -> None:
        """Move to the earliest offset of ``partitions`` (default: every assigned partition)."""
        self._seek_reset(partitions, "earliest")

    def seek_to_end(self, *partitions: PartitionArgs) -> None:
        """Move to the end of ``partitions`` (default: every assigned partition): only new records follow."""
        self._seek_reset(partitions, "latest")

    def _seek_reset(self, partitions: Sequence[PartitionArgs], reset: str) -> None:
        self._check_open()
        wanted = partitions_of(partitions) if partitions else list(self._fetcher.states)
        self._pending.drop(set(wanted))
        for tp in wanted:
            self._fetcher.seek(tp, None, reset)

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record ``poll`` returns from ``partition`` (resetting it if it has none)."""
        self._check_open()
        tp = TopicPartition(*partition)
        pending = self._pending.first_offsets().get(tp) if self._pending else None
        if pending is not None:
            return pending
        return await self._fetcher.wait_for_position(tp, self.api_timeout)

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

    # committing -----------------------------------------------------------------------------------
    def _group(self, what: str) -> GroupMember:
        if self._member is None:
            raise InvalidGroupIdError(f"{what} needs a consumer group: pass group_id=... to the consumer")
        return self._member

    def _consumed_offsets(self) -> dict[TopicPartition, int]:
        """Per assigned partition with a position, the offset after the last record handed to the user."""
        offsets = {tp: state.position for tp, state in self._fetcher.states.items() if state.position is not None}
        if self._pending:
            offsets.update((tp, o) for tp, o in self._pending.first_offsets().items() if tp in offsets)
        return offsets

    def _offsets_to_commit(self, offsets: dict[TopicPartition, int] | None) -> dict[TopicPartition, int]:
        if offsets is None:
            return self._consumed_offsets()
        out: dict[TopicPartition, int] = {}
        for tp, offset in offsets.items():
            if type(offset) is not int or offset < 0:
                raise ValueError(f"offsets must be ints >= 0 (the next record to consume), not {offset!r}")
            out[TopicPartition(*tp)] = offset
        return out

    async def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (the next record to consume, per partition) to the group, or by default the
        position of every assigned partition: the offset after the last record handed to the user.

        Retries retriable errors for ``default_api_timeout_ms``. After a rebalance the group refuses a
        commit from the old generation (``IllegalGenerationError``, ``UnknownMemberIdError`` or
        ``RebalanceInProgressError``, saying so): the partitions may belong to another member now, and the
        next ``poll`` rejoins.
        """
        self._check_open()
        member = self._group("commit()")
        await member.commit(
            self._offsets_to_commit(offsets), as_member=self._subscription is not None, timeout=self.api_timeout
        )

    def commit_async(
        self, offsets: dict[TopicPartition, int] | None = None, callback: CommitCallback | None = None
    ) -> asyncio.Task[None]:
        """Start committing (one attempt, no retry) and return at once; ``callback(offsets, error)`` (error
        None on success) runs when it finished, else a failure is logged. ``close`` waits for it."""
        self._check_open()
        member = self._group("commit_async()")
        to_commit = self._offsets_to_commit(offsets)
        return self._spawn(self._commit_async(member, to_commit, callback), "raftkafka-commit")

    async def _commit_async(
        self, member: GroupMember, offsets: dict[TopicPartition, int], callback: CommitCallback | None
    ) -> None:
        error: RaftKafkaError | None = None
        try:
            await member.commit(offsets, as_member=self._subscription is not None, timeout=None)
        except RaftKafkaError as exc:
            error = exc
        if callback is None:
            if error is not None:
                log.warning("group %r: async commit of %s failed: %s", member.group_id, offsets, error)
            return
        try:
            await self._invoke_callback(callback, offsets, error)
        except Exception:
            log.exception("group %r: commit callback failed", member.group_id)

    async def committed(self, partition: TopicPartition) -> int | None:
        """The group's committed offset of ``partition`` (None when none is)."""
        self._check_open()
        tp = TopicPartition(*partition)
        return (await self._group("committed()").fetch_committed([tp], timeout=self.api_timeout))[tp]

    async def _commit_quietly(self, when: str) -> None:
        """Commit the consumed positions (auto-commit), logging failures."""
        member = self._member
        assert member is not None
        as_member = self._subscription is not None
        if as_member and member.generation == NO_GENERATION:
            return  # out of the group: the partitions may be another member's already
        offsets = self._consumed_offsets()
        try:
            await member.commit(offsets, as_member=as_member, timeout=self.api_timeout)
        except RaftKafkaError as exc:
            log.warning("group %r: auto-commit %s failed: %s", member.group_id, when, exc)

    def _maybe_auto_commit(self) -> None:
        """Every ``auto_commit_interval_ms``, commit the consumed positions that changed, in the background."""
        now = time.monotonic()
        member = self._member
        if now < self._next_auto_commit or member is None or self._auto_commit is not None:
            return
        self._next_auto_commit = now + self.auto_commit_interval
        as_member = self._subscription is not None
        if as_member and (member.generation == NO_GENERATION or self._join_task is not None):
            return
        offsets = {tp: o for tp, o in self._consumed_offsets().items() if self._auto_committed.get(tp) != o}
        if offsets:
            self._auto_commit = self._spawn(self._periodic_commit(member, offsets, as_member), "raftkafka-commit")

    async def _periodic_commit(self, member: GroupMember, offsets: dict[TopicPartition, int], as_member: bool) -> None:
        try:
            await member.commit(offsets, as_member=as_member, timeout=None)
        except RaftKafkaError as exc:
            log.warning("group %r: auto-commit failed: %s", member.group_id, exc)
        else:
            self._auto_committed.update(offsets)
        finally:
            self._auto_commit = None

    # rebalancing ----------------------------------------------------------------------------------
    def _subscribed_topics(self) -> list[str] | None:
        subscription = self._subscription
        return subscription if isinstance(subscription, list) else self._pattern_topics

    def _start_join(self) -> None:
        self._join_task = asyncio.get_running_loop().create_task(self._join(), name="raftkafka-join")

    async def _stop_join(self) -> None:
        task, self._join_task = self._join_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _join(self) -> list[TopicPartition]:
        assert self._member is not None
        if isinstance(self._subscription, re.Pattern):
            await self._refresh_pattern(retry=True)
        return await self._member.join(self._subscribed_topics() or [])

    async def _coordinate(self, deadline: float) -> None:
        """The group's part of a poll: rebalance when needed (waiting for a join until ``deadline``), then
        auto-commit when it is time."""
        member = self._member
        assert member is not None
        if isinstance(self._subscription, re.Pattern) and time.monotonic() >= self._next_pattern_refresh:
            self._next_pattern_refresh = time.monotonic() + self.metadata_max_age
            self._spawn(self._refresh_pattern(retry=False), "raftkafka-pattern-refresh")
        while self._subscription is not None:
            task = self._join_task
            if task is None:
                if not member.needs_join(self._subscribed_topics()):
                    break
                await self._prepare_rejoin()
                if self._subscription is not None and self._join_task is None:
                    self._start_join()
                continue
            if not task.done():
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    await asyncio.wait([task], timeout=remaining)
                if not task.done():
                    break  # the join goes on in the background
            if task is not self._join_task:
                continue  # unsubscribed or closed meanwhile
            self._join_task = None
            if task.cancelled():
                continue
            await self._joined(task.result())
        if self.enable_auto_commit:
            self._maybe_auto_commit()
        self._raise_listener_error()

    async def _prepare_rejoin(self) -> None:
        """Steps 1 and 2 of a rebalance: commit what was consumed, revoke every partition."""
        member = self._member
        assert member is not None
        revoked = self.assignment()
        if revoked:
            if self.enable_auto_commit and member.generation != NO_GENERATION:
                await self._commit_quietly("before the rebalance")
            log.info("group %r: revoking %s", member.group_id, _names(revoked))
            await self._call_listener("on_partitions_revoked", revoked)
        self._pending.drop()
        self._fetcher.assign([])
        self._auto_committed.clear()

    async def _joined(self, assignment: list[TopicPartition]) -> None:
        """Steps 4 and 5 of a rebalance: take the new partitions (they start at the committed offsets)."""
        self._fetcher.assign(assignment, COMMITTED)
        self._next_auto_commit = time.monotonic() + self.auto_commit_interval
        await self._call_listener("on_partitions_assigned", set(assignment))

    async def _call_listener(self, method: str, partitions: set[TopicPartition]) -> None:
        callback = getattr(self._listener, method, None)
        if callback is None:
            return
        self._in_listener = True
        try:
            await self._invoke_callback(callback, partitions)
        except Exception as exc:
            log.exception("group %r: rebalance listener's %s failed", self.group_id, method)
            if self._listener_error is None:
                self._listener_error = exc
        finally:
            self._in_listener = False

    def _raise_listener_error(self) -> None:
        error, self._listener_error = self._listener_error, None
        if error is not None:
            raise error

    async def _refresh_pattern(self, *, retry: bool) -> None:
        """Fetch every topic's metadata, so a pattern subscription sees the matching topics."""
        while True:
            try:
                await self._network.refresh(all_topics=True)
                break
            except RaftKafkaError as exc:
                if not (retry and exc.retriable):
                    log.debug("metadata refresh for the pattern subscription failed: %s", exc)
                    return
                await asyncio.sleep(self._network.retry_backoff)
        self._next_pattern_refresh = time.monotonic() + self.metadata_max_age
        self._match_pattern(initial=True)

    def _on_metadata(self) -> None:
        if self._pattern_topics is not None:
            self._match_pattern(initial=False)

    def _match_pattern(self, *, initial: bool) -> None:
        pattern = self._subscription
        if not isinstance(pattern, re.Pattern):
            return
        topics = sorted(name for name in self._network.cluster.topics if pattern.fullmatch(name))
        if topics != self._pattern_topics:
            if not initial or self._pattern_topics is not None:
                log.info("group %r: topics matching %r are now %s", self.group_id, pattern.pattern, topics)
            self._pattern_topics = topics
            self._fetcher.interrupt()

    # reading --------------------------------------------------------------------------------------
    async def poll(self, timeout_ms: float = 0, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` (default ``max_poll_records``) records, waiting up to ``timeout_ms`` for
        the first; raises a partition's error (e.g. ``OffsetOutOfRangeError`` with reset "none"). A group
        member rebalances here when needed (see the module docstring)."""
        self._check_open()
        limit = max_records or self.max_poll_records
        if self._pending:
            return self._pending.take(limit)
        if self._in_listener:
            raise RuntimeError("poll() cannot be called from a rebalance listener's callback")
        member = self._member
        if member is None:
            return await self._poll(limit, timeout_ms)
        member.poll_started()
        try:
            return await self._poll(limit, timeout_ms)
        finally:
            member.poll_finished()

    async def _poll(self, limit: int, timeout_ms: float) -> list[Record]:
        fetcher = self._fetcher
        grouped = self._member is not None
        deadline = time.monotonic() + timeout_ms / 1000
        if grouped:
            await self._coordinate(deadline)
        records = fetcher.take(limit)
        if records or timeout_ms <= 0:
            return records
        while not records:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await fetcher.wait_for_data(remaining)
            self._check_open()
            if grouped:
                await self._coordinate(deadline)
            records = fetcher.take(limit)
        return records

    async def _refill(self, timeout_ms: float, max_records: int) -> bool:
        """Poll a batch for an iterator into the pending records; False when none came."""
        records = await self.poll(timeout_ms, max_records)
        self._pending.load(records)
        return bool(records)

    async def __aiter__(self) -> AsyncIterator[Record]:
        """Every record, as it arrives (until ``consumer_timeout_ms`` passes without any)."""
        wait_ms = 1_000_000_000 if self.consumer_timeout is None else self.consumer_timeout * 1000
        pending = self._pending
        while True:
            records, i = pending.records, pending.index
            if i < len(records):
                pending.index = i + 1
                yield records[i]
            elif not await self._refill(wait_ms, self.max_poll_records):
                return


def _names(partitions: Iterable[TopicPartition]) -> list[str]:
    return [f"{tp.topic}-{tp.partition}" for tp in sorted(partitions)]
