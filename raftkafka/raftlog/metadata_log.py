"""The metadata log: a pysyncobj Raft log of msgpack record batches, bridged to asyncio.

The Raft log has exactly one replicated entry point, ``_ReplicatedImage.apply_batch(payload)``, whose
argument is the msgpack bytes of a batch of records (``metadata.records``). Its replicated state is
the ``MetadataImage``; the offset of the next record is ``image.offset + 1``, so every replica gives
every record the same offset. Apply decodes, replays and never raises (a batch that does not decode
is logged and skipped, deterministically) and does no I/O.

Threads: apply, snapshots and pysyncobj callbacks run on pysyncobj's tick thread; they hand results
to the event loop with ``call_soon_threadsafe`` and never touch asyncio objects themselves. Every
public method of ``MetadataLog`` is for the event loop thread. Committed batches reach listeners on
the loop in log order, each with the offset of its first record, before the append that wrote them
resolves.

Appends: several appends in flight are coalesced into one Raft entry (whatever queued while the
previous entry was in flight), bounded in records and bytes. An append resolves after commit with
the offset of its first record, or fails with ``NotControllerError`` (not the leader; the leader's
Raft address in the message when known) or ``RequestTimedOutError`` (no commit before the deadline;
the outcome is then unknown, which is why records are idempotent state assignments).

Reading: the last ``record_window`` committed records stay in memory with their offsets
(``read_records``), so any voter can serve the metadata log to brokers; older offsets are served as
a snapshot of the image. ``wait_for_offset`` is the long poll for records not committed yet.

Durability: pysyncobj's journal is an mmap that is never fsynced, so a committed entry survives a
process crash but not a power loss on a majority of voters.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, SyncObjException, replicated
from pysyncobj.poller import POLL_EVENT_TYPE, Poller

from raftkafka.errors import (
    InvalidRequestError,
    MessageTooLargeError,
    NotControllerError,
    RaftKafkaError,
    RequestTimedOutError,
)
from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import MetadataRecord, decode_records, encode_record, join_encoded
from raftkafka.raftlog.record_window import RecordWindow
from raftkafka.raftlog.snapshot import SnapshotFiles

log = logging.getLogger(__name__)

JOURNAL_FILE_NAME = "raft.journal"
SNAPSHOT_FILE_NAME = "raft.snapshot"
_ENTRY_FRAMING_BYTES = 64 * 1024
"""More than pysyncobj adds around a batch's bytes in its log entry (command id, pickle framing)."""
_REJECTED = -1
"""What apply returns for a batch it skipped."""

CommitListener = Callable[[MetadataImage, Sequence[MetadataRecord], int], None]
"""``listener(image, records, first_offset)`` after each committed batch, on the event loop.
An empty ``records`` means the image was replaced wholesale (a snapshot was loaded)."""


@dataclass(frozen=True, slots=True)
class MetadataLogConfig:
    """Raft and append settings (defaults tuned for fast failover, see the controller-quorum notes)."""

    append_timeout_s: float = 5.0
    max_pending_records: int = 100_000
    max_entry_bytes: int = 1024 * 1024
    raft_min_timeout_s: float = 0.15
    raft_max_timeout_s: float = 0.3
    append_entries_period_s: float = 0.04
    connection_timeout_s: float = 3600.0
    connection_retry_s: float = 1.0
    leader_fallback_timeout_s: float = 3.0
    log_compaction_min_entries: int = 5000
    log_compaction_min_time_s: float = 300.0
    record_window: int = 50_000
    """Committed records kept in memory for ``read_records`` (older ones are served as a snapshot)."""
    max_offset_waiters: int = 10_000

    def validate(self) -> MetadataLogConfig:
        """Raise ``ValueError`` for settings pysyncobj or the append path cannot work with."""
        if self.append_timeout_s <= 0 or self.max_pending_records < 1 or self.max_entry_bytes < 1024:
            raise ValueError("append_timeout_s, max_pending_records and max_entry_bytes must be positive")
        if not 0 < self.append_entries_period_s * 3 < self.raft_min_timeout_s < self.raft_max_timeout_s:
            raise ValueError("need 3 * append_entries_period_s < raft_min_timeout_s < raft_max_timeout_s")
        if self.connection_timeout_s < self.raft_max_timeout_s:
            raise ValueError("connection_timeout_s must be at least raft_max_timeout_s")
        if self.leader_fallback_timeout_s <= self.append_entries_period_s:
            raise ValueError("leader_fallback_timeout_s must exceed append_entries_period_s")
        if self.log_compaction_min_entries < 2 or self.log_compaction_min_time_s <= 0:
            raise ValueError("log compaction needs min entries >= 2 and a positive min time")
        if self.record_window < 1 or self.max_offset_waiters < 1:
            raise ValueError("record_window and max_offset_waiters must be positive")
        return self


@dataclass(frozen=True, slots=True)
class RaftStatus:
    """A voter's view of the quorum (``leader`` is a Raft address, None while unknown)."""

    self_address: str
    leader: str | None
    is_leader: bool
    term: int
    commit_index: int
    last_applied: int
    partners: dict[str, bool]
    """Partner Raft address -> connected."""
    metadata_offset: int
    match_index: dict[str, int]
    """On the leader: partner Raft address -> the highest Raft index known to be on it (else empty)."""


class _ReplicatedImage(SyncObjConsumer):
    """The replicated state machine. Tick thread only, except construction."""

    def __init__(
        self,
        on_commit: Callable[[MetadataImage, list[MetadataRecord], int], None],
        on_restore: Callable[[MetadataImage], None],
    ) -> None:
        self._on_commit = on_commit
        self._on_restore = on_restore
        super().__init__()
        self.image = EMPTY_IMAGE

    @replicated
    def apply_batch(self, payload: bytes) -> int:
        """Replay one committed batch; the offset of its first record, or -1 if it was skipped."""
        first_offset = self.image.offset + 1
        try:
            records = decode_records(payload)
            image = replay_all(self.image, records, first_offset)
        except Exception:  # a raise here would wedge pysyncobj (it re-applies the entry forever)
            log.exception("skipping a metadata log entry that cannot be applied (next offset %d)", first_offset)
            return _REJECTED
        self.image = image
        if records:  # an empty batch is a barrier (see wait_ready), not a change
            self._on_commit(image, records, first_offset)
        return first_offset

    def restore(self, image: MetadataImage) -> None:
        """Replace the state with a snapshot's image."""
        self.image = image
        self._on_restore(image)


class _TickWakeup:
    """A pipe on pysyncobj's poller: writing to it ends the tick thread's wait for socket events.

    A single voter commits its own entries on the tick *after* appending them, and nothing else
    would wake that tick for ``autoTickPeriod`` (50 ms). Created and used on the tick thread.
    """

    def __init__(self, poller: Poller) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        poller.subscribe(self._read_fd, self._drain, POLL_EVENT_TYPE.READ)

    def notify(self) -> None:
        try:
            os.write(self._write_fd, b"\0")
        except BlockingIOError:  # a wakeup is already pending
            pass

    def _drain(self, fd: int, event: int) -> None:
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)


@dataclass(slots=True)
class _PendingAppend:
    records: Sequence[MetadataRecord]
    encoded: list[bytes]
    size: int
    future: asyncio.Future[int]


@dataclass(slots=True)
class _Entry:
    appends: list[_PendingAppend]
    expiry: asyncio.TimerHandle | None = None


class MetadataLog:
    """One voter of the metadata quorum; a single-voter quorum when ``partner_addresses`` is empty.

    Create it on the event loop that will use it; ``close()`` it when done.
    """

    def __init__(
        self,
        self_address: str,
        partner_addresses: Sequence[str],
        data_dir: Path,
        password: str,
        config: MetadataLogConfig | None = None,
    ) -> None:
        if not password:
            raise ValueError("the metadata log always runs with a cluster secret")
        self._config = (config or MetadataLogConfig()).validate()
        self._loop = asyncio.get_running_loop()
        self._self_address = self_address
        self._image = EMPTY_IMAGE
        self._listeners: list[CommitListener] = []
        self._window = RecordWindow(self._config.record_window)
        self._offset_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._queue: deque[_PendingAppend] = deque()
        self._queued_records = 0
        self._in_flight: _Entry | None = None
        self._awaiting_commit: _Entry | None = None  # read by the tick thread
        self._wakeup: _TickWakeup | None = None  # tick thread only
        self._ready = asyncio.Event()
        self._closed = False
        data_dir.mkdir(parents=True, exist_ok=True)
        self._state = _ReplicatedImage(self._on_commit_from_raft, self._on_restore_from_raft)
        snapshots = SnapshotFiles(lambda: self._state.image, self._state.restore)
        conf = SyncObjConf(
            password=password,
            bindAddress=self_address,
            journalFile=str(data_dir / JOURNAL_FILE_NAME),
            fullDumpFile=str(data_dir / SNAPSHOT_FILE_NAME),
            serializer=snapshots.serialize,
            deserializer=snapshots.deserialize,
            appendEntriesUseBatch=False,
            # Above any entry we write: pysyncobj sends an entry of at least this many bytes in chunks, and its
            # chunking marks the wrong chunk as the last when the pickle framing crosses a chunk boundary, so
            # every follower fails to unpickle that entry on every retry and the quorum wedges on it.
            appendEntriesBatchSizeBytes=2 * self._config.max_entry_bytes + _ENTRY_FRAMING_BYTES,
            commandsWaitLeader=False,
            raftMinTimeout=self._config.raft_min_timeout_s,
            raftMaxTimeout=self._config.raft_max_timeout_s,
            appendEntriesPeriod=self._config.append_entries_period_s,
            connectionTimeout=self._config.connection_timeout_s,
            connectionRetryTime=self._config.connection_retry_s,
            leaderFallbackTimeout=self._config.leader_fallback_timeout_s,
            logCompactionMinEntries=self._config.log_compaction_min_entries,
            logCompactionMinTime=self._config.log_compaction_min_time_s,
            bindRetryTime=0.1,
            maxBindRetries=5,
            onReady=self._on_ready_from_raft,
        )
        self._syncobj = SyncObj(self_address, list(partner_addresses), conf, consumers=[self._state])
        snapshots.attach_journal(self._syncobj._SyncObj__raftLog)  # type: ignore[attr-defined]
        if not partner_addresses:
            self._syncobj.addOnTickCallback(self._on_tick_from_raft)
        try:
            self._syncobj.waitBinded()
        except SyncObjException:
            self._syncobj.destroy_synchronous()
            raise OSError(f"cannot listen for Raft traffic on {self_address}") from None

    # -- queries (event loop) --

    @property
    def image(self) -> MetadataImage:
        """The image after the last committed batch delivered on the event loop."""
        return self._image

    @property
    def is_leader(self) -> bool:
        """Whether this voter thinks it leads (a cut-off leader thinks so for a while: never trust it alone)."""
        return not self._closed and bool(self._syncobj._isLeader())

    @property
    def term(self) -> int:
        """The current Raft term as this voter knows it (the controller epoch)."""
        return int(self._syncobj.raftCurrentTerm)

    @property
    def leader_address(self) -> str | None:
        """The Raft address of the last known leader."""
        leader = self._syncobj._getLeader()
        return None if leader is None else str(leader.id)

    def status(self) -> RaftStatus:
        """This voter's view of the quorum."""
        raw = self._syncobj.getStatus()
        prefix = "partner_node_status_server_"
        partners = {key[len(prefix) :]: value == 2 for key, value in raw.items() if key.startswith(prefix)}
        match_prefix = "match_idx_server_"
        is_leader = self.is_leader
        match_index = (
            {key[len(match_prefix) :]: value for key, value in raw.items() if key.startswith(match_prefix)}
            if is_leader
            else {}
        )
        leader = raw["leader"]
        return RaftStatus(
            self_address=self._self_address,
            leader=None if leader is None else str(leader.id),
            is_leader=is_leader,
            term=raw["raft_term"],
            commit_index=raw["commit_idx"],
            last_applied=raw["last_applied"],
            partners=partners,
            metadata_offset=self._image.offset,
            match_index=match_index,
        )

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(image, records, first_offset)`` on the event loop after each committed batch."""
        self._listeners.append(listener)

    def remove_listener(self, listener: CommitListener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until this voter's image holds everything committed before it started; False on timeout.

        pysyncobj's own readiness may come before a restarted leader has re-committed its journal's
        tail, so a leader also commits an empty batch (``barrier``).
        """
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
                if self.is_leader:
                    await self.barrier()
        except (TimeoutError, RaftKafkaError):
            return False
        return True

    async def barrier(self) -> None:
        """Commit an empty batch: once it resolves, the image holds every entry committed before it.

        A new Raft leader learns what is committed only by committing an entry of its own term, so an
        active controller calls this before it decides anything. Fails like ``append``.
        """
        await self._committed(self._submit(()))

    def read_records(self, offset: int, max_records: int) -> list[MetadataRecord] | None:
        """Committed records from ``offset`` on (at most ``max_records``); None if ``offset`` is no longer kept.

        An ``offset`` past ``image.offset`` gives an empty list.
        """
        return self._window.read(offset, max_records)

    async def wait_for_offset(self, offset: int, timeout_s: float) -> bool:
        """Wait until the record at ``offset`` is committed here (or the log closes).

        False after ``timeout_s``, or at once when ``max_offset_waiters`` long polls are already waiting.
        """
        if self._image.offset >= offset:
            return True
        if self._closed or len(self._offset_waiters) >= self._config.max_offset_waiters:
            return False
        future: asyncio.Future[None] = self._loop.create_future()
        self._offset_waiters.append((offset, future))
        try:
            async with asyncio.timeout(timeout_s):
                await future
        except TimeoutError:
            return False
        finally:
            if not future.done():
                future.cancel()
                self._offset_waiters = [(o, f) for o, f in self._offset_waiters if f is not future]
        return True

    # -- appends (event loop) --

    async def append(self, records: Sequence[MetadataRecord]) -> int:
        """Commit ``records`` and return the log offset of the first one (``RequestTimedOutError`` after
        ``append_timeout_s``)."""
        return await self._committed(self.submit(records))

    def submit(self, records: Sequence[MetadataRecord]) -> asyncio.Future[int]:
        """Queue ``records`` for commit: the future gives the log offset of the first one, or fails once their
        Raft entry failed or expired (each entry expires ``append_timeout_s`` after it was sent, so every
        future finishes). Raises at once when this voter cannot take them. No task and no timer of its own:
        for callers that track many appends (the controller)."""
        if not records:
            raise ValueError("append needs at least one record")
        return self._submit(records)

    async def _committed(self, future: asyncio.Future[int]) -> int:
        try:
            async with asyncio.timeout(self._config.append_timeout_s):
                return await future
        except TimeoutError:
            raise RequestTimedOutError(
                f"metadata records not committed within {self._config.append_timeout_s:g}s (outcome unknown)"
            ) from None

    def _submit(self, records: Sequence[MetadataRecord]) -> asyncio.Future[int]:
        if self._closed or not self.is_leader:
            raise NotControllerError(self._not_leader_message())
        encoded = [encode_record(record) for record in records]
        size = sum(map(len, encoded))
        if size > self._config.max_entry_bytes:
            raise MessageTooLargeError(f"{size} bytes of metadata records exceed {self._config.max_entry_bytes}")
        if self._queued_records + len(records) > self._config.max_pending_records:
            raise RequestTimedOutError("the metadata log has too many appends waiting; retry later")
        pending = _PendingAppend(records, encoded, size, self._loop.create_future())
        self._queue.append(pending)
        self._queued_records += len(records)
        self._submit_next_entry()
        return pending.future

    def _submit_next_entry(self) -> None:
        if self._in_flight is not None or self._closed:
            return
        appends: list[_PendingAppend] = []
        size = 0
        while self._queue:
            pending = self._queue[0]
            if not pending.future.done() and appends and size + pending.size > self._config.max_entry_bytes:
                break
            self._queue.popleft()
            self._queued_records -= len(pending.records)
            if not pending.future.done():  # done: its caller gave up before it was sent
                appends.append(pending)
                size += pending.size
        if not appends:
            return
        entry = _Entry(appends)
        self._in_flight = entry
        entry.expiry = self._loop.call_later(self._config.append_timeout_s, self._finish_entry, entry, None, None)
        payload = join_encoded([encoded for pending in appends for encoded in pending.encoded])
        self._awaiting_commit = entry
        self._state.apply_batch(payload, callback=functools.partial(self._on_entry_result_from_raft, entry))

    def _finish_entry(self, entry: _Entry, first_offset: int | None, error: int | None) -> None:
        """Resolve ``entry``'s appends (``error`` None and no offset: it expired) and send the next entry."""
        if self._in_flight is not entry:
            return  # expired earlier; its late result changes nothing
        self._in_flight = None
        if self._awaiting_commit is entry:
            self._awaiting_commit = None
        if entry.expiry is not None:
            entry.expiry.cancel()
        failure = self._entry_failure(first_offset, error)
        offset = first_offset or 0
        for pending in entry.appends:
            if not pending.future.done():
                if failure is None:
                    pending.future.set_result(offset)
                else:
                    pending.future.set_exception(failure)
            offset += len(pending.records)
        self._submit_next_entry()

    def _entry_failure(self, first_offset: int | None, error: int | None) -> RaftKafkaError | None:
        if error is None:
            return RequestTimedOutError("metadata records not committed in time (outcome unknown)")
        if error == FAIL_REASON.SUCCESS:
            if first_offset is None or first_offset == _REJECTED:
                return InvalidRequestError("the metadata log rejected the batch")
            return None
        if error == FAIL_REASON.QUEUE_FULL:
            return RequestTimedOutError("the Raft command queue is full; retry later")
        if error == FAIL_REASON.UNKNOWN_OUTCOME:
            return RequestTimedOutError("the outcome of the metadata append is unknown; retry")
        return NotControllerError(self._not_leader_message())

    def _not_leader_message(self) -> str:
        if self._closed:
            return "the metadata log is closed"
        leader = self.leader_address
        return "no metadata quorum leader is known" if leader is None else f"the metadata quorum leader is {leader}"

    # -- lifecycle --

    async def close(self) -> None:
        """Stop the Raft node (its thread and sockets) and fail appends still waiting."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._syncobj.destroy_synchronous)
        if self._wakeup is not None:
            self._wakeup.close()
        closed = NotControllerError("the metadata log is closed")
        entries = [self._in_flight.appends] if self._in_flight is not None else []
        for pending in itertools.chain(*entries, self._queue):
            if not pending.future.done():
                pending.future.set_exception(closed)
        if self._in_flight is not None and self._in_flight.expiry is not None:
            self._in_flight.expiry.cancel()
        self._in_flight = None
        self._queue.clear()
        self._queued_records = 0
        for _, future in self._offset_waiters:  # their long polls end now, with what there is
            if not future.done():
                future.set_result(None)
        self._offset_waiters = []

    # -- delivery from the tick thread to the event loop --

    def _deliver(self, image: MetadataImage, records: Sequence[MetadataRecord], first_offset: int) -> None:
        self._image = image
        if records:
            self._window.append(records, first_offset)
        else:
            self._window.reset(first_offset)
        if self._offset_waiters:
            waiting = []
            for offset, future in self._offset_waiters:
                if offset <= image.offset:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((offset, future))
            self._offset_waiters = waiting
        for listener in list(self._listeners):
            try:
                listener(image, records, first_offset)
            except Exception:
                log.exception("metadata commit listener %r failed", listener)

    def _call_on_loop(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is left to tell
            pass

    def _on_commit_from_raft(self, image: MetadataImage, records: list[MetadataRecord], first_offset: int) -> None:
        self._call_on_loop(self._deliver, image, records, first_offset)

    def _on_restore_from_raft(self, image: MetadataImage) -> None:
        self._call_on_loop(self._deliver, image, (), image.offset + 1)

    def _on_entry_result_from_raft(self, entry: _Entry, result: int | None, error: int) -> None:
        if self._awaiting_commit is entry:
            self._awaiting_commit = None
        self._call_on_loop(self._finish_entry, entry, result, error)

    def _on_tick_from_raft(self) -> None:
        if self._awaiting_commit is None:
            return
        if self._wakeup is None:
            self._wakeup = _TickWakeup(self._syncobj._poller)
        self._wakeup.notify()

    def _on_ready_from_raft(self) -> None:
        self._call_on_loop(self._ready.set)
