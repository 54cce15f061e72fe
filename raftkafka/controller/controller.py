"""The quorum controller: the service brokers call to change cluster metadata.

Each operation decides with the pure functions of ``topics``/``brokers`` against a *speculative*
image (the committed image plus records appended but not yet committed), so pipelined requests see
each other's effects and cannot, say, create one topic twice. The records go to the metadata log;
the reply goes out only after they commit *and* after every append decided before them has
finished, because a decision read their uncommitted effects. If an earlier append fails, later
replies fail with its (retriable) error, and the speculative image is rebuilt from the committed
one plus the appends still in flight.

Activation: the controller decides only while it is *active*: the Raft leader that has committed a
barrier in its current term (so its image holds everything committed before), started a fresh
session for every registered broker, and not lost leadership or the term since. On activation it also
commits the cluster id (``SetClusterId``) if the image has none yet (the first active controller of a
new quorum) and its own listener (``RegisterController``) if that changed. ``poll_leadership``
notices term and leadership changes (the controller process calls it every few tens of ms); the term
is the controller epoch. A deposed leader's appends fail, so nothing it decides after losing the
quorum takes effect.

Broker sessions (``sessions``): with a ``BrokerSessions`` the controller serves remote brokers:
heartbeats keep sessions alive and ``fence_expired_brokers`` fences the silent ones. Without one
(``raftkafka dev``, whose broker lives and dies with this process) nobody is ever fenced for
silence and a new incarnation of a broker is refused only while an earlier one registered with
this very object. Either way a session granted at activation does not make a broker's registration
hold against a new incarnation: only a broker heard from since does (``BrokerSessions.heard_live``).

Ids and randomness (cluster id, topic ids, placement start index) are drawn here, outside the pure
decisions. Producer ids come from a block this controller reserved in the metadata log (``producer_ids``).
Event loop thread only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from raftkafka.controller.brokers import (
    BrokerRegistrationRequest,
    HeartbeatReply,
    HeartbeatRequest,
    broker_heartbeat,
    fence_brokers,
    register_broker,
)
from raftkafka.controller.elections import elect_preferred_leaders
from raftkafka.controller.group_api import GroupApi
from raftkafka.controller.group_coordinator import GroupCoordinator, GroupLimits
from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult, alter_isr
from raftkafka.controller.producer_ids import FIRST_PRODUCER_EPOCH, reserve_producer_ids
from raftkafka.controller.quorum_status import describe_quorum
from raftkafka.controller.sessions import BrokerSessions
from raftkafka.controller.topics import (
    NewPartitions,
    NewTopic,
    TopicResult,
    create_partitions,
    create_topic,
    delete_topic,
)
from raftkafka.errors import NotControllerError, RaftKafkaError, RequestTimedOutError
from raftkafka.metadata.image import ControllerRegistration, MetadataImage, replay_all
from raftkafka.metadata.records import MetadataRecord, RegisterController, SetClusterId
from raftkafka.raftlog.metadata_log import CommitListener, MetadataLog

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


def _new_topic_id() -> str:
    return str(uuid.uuid4())


def new_cluster_id() -> str:
    """A fresh cluster id, shaped like Kafka's: a random UUID in unpadded URL-safe base64 (22 characters)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class QuorumController:
    """Validates and commits metadata changes through a ``MetadataLog`` this node leads."""

    def __init__(
        self,
        log: MetadataLog,
        *,
        sessions: BrokerSessions | None = None,
        node_id: int = -1,
        voters: Mapping[int, str] | None = None,
        new_topic_id: Callable[[], str] = _new_topic_id,
        new_cluster_id: Callable[[], str] = new_cluster_id,
        rng: random.Random | None = None,
        group_limits: GroupLimits | None = None,
    ) -> None:
        self._log = log
        self._node_id = node_id
        self._voters = dict(voters) if voters is not None else {node_id: log.status().self_address}
        self._tracks_sessions = sessions is not None
        self._sessions = sessions if sessions is not None else BrokerSessions(math.inf)
        self._new_topic_id = new_topic_id
        self._new_cluster_id = new_cluster_id
        self._rng = rng or random.Random()
        self._appends: dict[asyncio.Future[int], Sequence[MetadataRecord]] = {}
        self._commits: deque[tuple[asyncio.Future[int] | None, asyncio.Future[None]]] = deque()  # see _settle
        self._failure: BaseException | None = None  # the first failed append among the unsettled commits
        self._speculative: MetadataImage | None = None
        self._active_term: int | None = None
        self._activating = False
        self._listener: ControllerRegistration | None = None
        self._producer_ids: Iterator[int] = iter(())  # the rest of the last block reserved here
        self._reserving_producer_ids: asyncio.Future[None] | None = None
        self.groups = GroupCoordinator(
            lambda: self._active_term if self.is_active else None,
            self._decision_image,
            lambda: self._log.image,
            self._commit,
            group_limits,
        )
        """The consumer group coordinator (serves while this controller is active)."""
        self.group_api = GroupApi(self.groups)
        self._group_ticker: asyncio.Task[None] | None = None

    def quorum_status(self) -> dict[str, Any]:
        """This voter's view of the quorum, as the QUORUM_STATUS wire body."""
        return describe_quorum(self._log.status(), self._log.image, self._voters, self._node_id)

    @property
    def image(self) -> MetadataImage:
        """The latest committed image."""
        return self._log.image

    @property
    def epoch(self) -> int:
        """The controller epoch: the Raft term this voter is in."""
        return self._log.term

    @property
    def is_active(self) -> bool:
        """Whether this is the active controller (leader, activated in the current term)."""
        return self._active_term is not None and self._log.is_leader and self._log.term == self._active_term

    def set_listener(self, node_id: int, host: str, port: int) -> None:
        """This controller's listener, committed (``RegisterController``) whenever it becomes active."""
        self._listener = ControllerRegistration(node_id, host, port)

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(image, records, first_offset)`` on the event loop after each committed batch."""
        self._log.add_listener(listener)

    def subscribe(self, listener: Callable[[MetadataImage], None]) -> None:
        """Call ``listener(image)`` on the event loop with each newly committed image (a broker's metadata source)."""
        self._log.add_listener(lambda image, records, first_offset: listener(image))

    async def start(self, timeout_s: float = 30.0) -> None:
        """Wait until the metadata log holds everything committed before this start, and activate if leader."""
        if not await self._log.wait_ready(timeout_s):
            raise RequestTimedOutError(f"the metadata quorum was not ready within {timeout_s:g}s")
        await self.poll_leadership()
        self.start_group_coordinator()

    def start_group_coordinator(self) -> None:
        """Start the group coordinator's clock (session expiry, rebalance deadlines, offsets retention); it
        works only while this controller is active. Idempotent; ``stop`` ends it."""
        if self._group_ticker is None:
            self._group_ticker = asyncio.create_task(self.groups.run(), name="group-coordinator")

    async def poll_leadership(self) -> None:
        """Activate after becoming leader in a new term, deactivate after losing leadership (see the module doc)."""
        log = self._log
        if not log.is_leader:
            if self._active_term is not None:
                logger.info("no longer the active controller (epoch %d)", log.term)
                self._active_term = None
            return
        term = log.term
        if term == self._active_term or self._activating:
            return
        self._active_term = None
        self._activating = True
        try:
            await log.barrier()
            if not log.is_leader or log.term != term:
                return
            if self._tracks_sessions:
                self._sessions.grant_all(broker.node_id for broker in log.image.live_brokers())
            self._active_term = term
            logger.info("active controller in epoch %d at metadata offset %d", term, log.image.offset)
            records: list[MetadataRecord] = []
            if log.image.cluster_id is None:
                records.append(SetClusterId(self._new_cluster_id()))
            listener = self._listener
            if listener is not None and log.image.controllers.get(listener.node_id) != listener:
                records.append(RegisterController(listener.node_id, listener.host, listener.port))
            await self._commit(records)
        except RaftKafkaError as exc:
            logger.info("could not activate in epoch %d: %s", term, exc)
        finally:
            self._activating = False

    async def stop(self) -> None:
        """Close the metadata log; later requests fail with ``NotControllerError``."""
        if self._group_ticker is not None:
            self._group_ticker.cancel()
            await asyncio.gather(self._group_ticker, return_exceptions=True)
        await self._log.close()

    # -- operations --

    async def create_topics(
        self, requests: Sequence[NewTopic | Mapping[str, Any]], validate_only: bool = False
    ) -> list[TopicResult]:
        """One result per request, in order (wire CREATE_TOPICS entries are accepted as mappings)."""
        return await self._decide_topics(
            [r if isinstance(r, NewTopic) else NewTopic.from_wire(r) for r in requests],
            lambda image, r: create_topic(image, r, self._new_topic_id(), self._rng.randrange(1 << 16)),
            validate_only,
        )

    async def create_partitions(
        self, requests: Sequence[NewPartitions | Mapping[str, Any]], validate_only: bool = False
    ) -> list[TopicResult]:
        """Grow topics to more partitions; one result per request, in order (wire entries accepted as mappings)."""
        return await self._decide_topics(
            [r if isinstance(r, NewPartitions) else NewPartitions.from_wire(r) for r in requests],
            lambda image, r: create_partitions(image, r, self._rng.randrange(1 << 16)),
            validate_only,
        )

    async def delete_topics(self, names: Sequence[str]) -> list[TopicResult]:
        """One result per name, in order."""
        return await self._decide_topics(names, delete_topic)

    async def _decide_topics(
        self,
        requests: Sequence[_T],
        decide: Callable[[MetadataImage, _T], tuple[list[MetadataRecord], TopicResult]],
        validate_only: bool = False,
    ) -> list[TopicResult]:
        """Decide each request in turn (each seeing the records of those before it), then commit and answer."""
        image = self._decision_image()
        records: list[MetadataRecord] = []
        results: list[TopicResult] = []
        for request in requests:
            topic_records, result = decide(image, request)
            if topic_records:  # later requests in this batch see these records
                image = replay_all(image, topic_records, image.offset + 1)
                records.extend(topic_records)
            results.append(result)
        return await self._commit_then_answer([] if validate_only else records, results)

    async def register_broker(
        self, node_id: int, host: str, port: int, incarnation_id: str, previous_incarnation_id: str | None = None
    ) -> int:
        """Register a broker process and return its broker epoch.

        ``previous_incarnation_id``: the incarnation that used the broker's data dir before it (gone).
        Raises ``DuplicateBrokerRegistrationError`` if another live incarnation holds the node id.
        """
        request = BrokerRegistrationRequest(node_id, host, port, incarnation_id, previous_incarnation_id)
        records = register_broker(self._decision_image(), request, self._sessions.heard_live())
        await self._commit(records)
        self._sessions.touch(node_id)
        broker = self._log.image.brokers.get(node_id)
        if broker is None or broker.incarnation_id != incarnation_id:
            raise RequestTimedOutError(f"broker {node_id} was registered again meanwhile; retry")
        return broker.epoch

    async def heartbeat(
        self, node_id: int, broker_epoch: int, metadata_offset: int, want_shutdown: bool
    ) -> HeartbeatReply:
        """Keep the broker's session alive; unfence it, or move it out of service when it wants to shut down."""
        request = HeartbeatRequest(node_id, broker_epoch, metadata_offset, want_shutdown)
        records, reply = broker_heartbeat(self._decision_image(), request)
        if want_shutdown:
            self._sessions.remove(node_id)
        else:
            self._sessions.touch(node_id)
        await self._commit(records)
        if records:
            logger.info("broker %d %s", node_id, "shut down (fenced)" if want_shutdown else "unfenced")
        return reply

    def broker_connection_lost(self, node_id: int, grace_s: float) -> None:
        """The connection the broker heartbeats on closed: fence it after ``grace_s`` unless it comes back."""
        self._sessions.cut_short(node_id, grace_s)

    async def alter_partition(
        self, broker_id: int, broker_epoch: int, changes: Sequence[IsrChange]
    ) -> list[IsrChangeResult]:
        """Commit the ISR changes a partition leader asks for (``isr_changes``); one result per change, after commit.

        Raises ``StaleBrokerEpochError`` when ``broker_epoch`` is not the broker's current registration.
        """
        records, results = alter_isr(self._decision_image(), broker_id, broker_epoch, changes)
        await self._commit(records)
        for record in records:
            logger.info("ISR of %s-%d is now %s (asked by leader %d)", record.topic, record.partition, list(record.isr),
                        broker_id)  # fmt: skip
        return results

    def group_request(self, api_key: int, body: Any) -> Awaitable[Any]:
        """The answer body to a consumer group API request (``net.api``), from this controller's coordinator."""
        return self.group_api.handle(api_key, body)

    async def init_producer_id(self) -> tuple[int, int]:
        """``(producer id, producer epoch)`` for a new idempotent producer: the next id of the block this
        controller reserved, reserving (committing) the next block first when it is used up."""
        while True:
            self._decision_image()  # NOT_CONTROLLER unless active
            producer_id = next(self._producer_ids, None)
            if producer_id is not None:
                return producer_id, FIRST_PRODUCER_EPOCH
            if self._reserving_producer_ids is None:  # one reservation at a time; every caller waits for it
                self._reserving_producer_ids = asyncio.ensure_future(self._reserve_producer_ids())
            await asyncio.shield(self._reserving_producer_ids)

    async def _reserve_producer_ids(self) -> None:
        try:
            record, ids = reserve_producer_ids(self._decision_image())
            await self._commit([record])
            self._producer_ids = iter(ids)  # only once committed: ids of a failed reservation may be reserved again
            logger.info("reserved producer ids %d-%d", ids.start, ids.stop - 1)
        finally:
            self._reserving_producer_ids = None

    async def fence_expired_brokers(self) -> list[int]:
        """Fence the unfenced brokers whose session expired (none without session tracking); their node ids."""
        if not self._tracks_sessions or not self.is_active:
            return []
        image = self._decision_image()
        expired = self._sessions.expired(broker.node_id for broker in image.live_brokers())
        if expired:
            logger.warning(
                "fencing broker(s) %s: no heartbeat for %gs", expired, self._sessions.timeout_s
            )
            await self._commit(fence_brokers(image, expired))
        return expired

    async def rebalance_leaders(self) -> int:
        """Move leadership back to preferred replicas that are live and in sync; the number of partitions moved."""
        if not self.is_active:
            return 0
        changes = elect_preferred_leaders(self._decision_image())
        if changes:
            logger.info("preferred leader election for %d partition(s)", len(changes))
            await self._commit(changes)
        return len(changes)

    # -- speculative image and commits --

    def _decision_image(self) -> MetadataImage:
        if not self.is_active:
            raise NotControllerError(
                f"this node is not the active controller (metadata quorum leader: {self._log.leader_address})"
            )
        return self._speculative if self._speculative is not None else self._log.image

    async def _commit_then_answer(self, records: list[MetadataRecord], results: list[TopicResult]) -> list[TopicResult]:
        try:
            await self._commit(records)
        except RaftKafkaError as exc:  # every result may rest on state that did not commit
            return [TopicResult.failed(result.name, exc) for result in results]
        return results

    async def _commit(self, records: Sequence[MetadataRecord]) -> None:
        """Append ``records`` (decided just now, against ``_decision_image()``) and wait as the module says.

        Commits settle in the order they were made, all those that can settle at once in the same callback
        (so their answers leave together); a failed append fails every commit made while it was pending.
        """
        append: asyncio.Future[int] | None = None
        if records:
            base = self._decision_image()
            self._speculative = replay_all(base, records, base.offset + 1)
            try:
                append = self._log.submit(records)
            except RaftKafkaError as exc:  # fails like a failed commit: through _append_done, a step later
                append = asyncio.get_running_loop().create_future()
                append.set_exception(exc)
            self._appends[append] = records
            append.add_done_callback(self._append_done)
        elif not self._commits:
            return  # nothing pending that this decision could rest on
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(_retrieve)
        self._commits.append((append, done))
        self._settle()
        await asyncio.shield(done)

    def _append_done(self, append: asyncio.Future[int]) -> None:
        del self._appends[append]
        if not self._appends:
            self._speculative = None
        elif append.cancelled() or append.exception() is not None:
            self._speculative = self._rebuilt_speculative()
        self._settle()

    def _rebuilt_speculative(self) -> MetadataImage | None:
        """The committed image plus the appends still pending (None when there are none)."""
        if not self._appends:
            return None
        image = self._log.image
        for pending in self._appends.values():
            image = replay_all(image, pending, image.offset + 1)
        return image

    def _settle(self) -> None:
        """Finish the commits at the head of the queue whose appends (and all earlier ones) are done."""
        commits = self._commits
        while commits:
            append, done = commits[0]
            if append is not None and append in self._appends:  # not done, or _append_done has not run yet
                return
            commits.popleft()
            if append is not None and self._failure is None:
                if append.cancelled():
                    self._failure = NotControllerError("the metadata append was cancelled")
                else:
                    self._failure = append.exception()
            if not done.done():
                if self._failure is None:
                    done.set_result(None)
                else:
                    done.set_exception(self._failure)
        self._failure = None  # nothing pending: later commits rest on committed state only


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a commit's failure as seen: its waiter may have given up (a request timeout)."""
    if not future.cancelled():
        future.exception()
