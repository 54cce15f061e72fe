"""The broker's request handlers: wire bodies in (validated), calls to the replica manager and the
controller, wire bodies out. Shapes are documented in ``raftkafka.net.api``.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from raftkafka.controller.group_api import GROUP_APIS
from raftkafka.errors import (
    CoordinatorNotAvailableError,
    InvalidFetchSizeError,
    InvalidRequestError,
    InvalidRequiredAcksError,
    NotControllerError,
    NotLeaderError,
    RaftKafkaError,
    RequestTimedOutError,
    UnknownTopicError,
)
from raftkafka.metadata.image import MetadataImage, TopicImage
from raftkafka.net.api import ACKS_ALL, SUPPORTED_VERSIONS, ApiKey, field, topic_changes, topic_partition_lists
from raftkafka.net.frame import INLINE_LIMIT, BulkBody
from raftkafka.net.server import NO_RESPONSE, DeferredResponse, Handler
from raftkafka.structs import BrokerInfo

from .partition import NO_EPOCH
from .replica_manager import ReadResult, ReplicaManager

DEFAULT_PRODUCE_TIMEOUT_MS = 30_000
FetchWanted = list[tuple[str, int, int, int, int]]
"""``(topic, partition, offset, partition_max_bytes, leader_epoch)`` per partition of a fetch."""


class ControllerChannel(Protocol):
    """What the broker needs from the active controller (in process for ``dev``, remote otherwise)."""

    async def create_topics(self, requests: list[dict[str, Any]], validate_only: bool) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per requested topic, after the records committed."""
        ...

    async def delete_topics(self, names: list[str]) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per topic, after the records committed."""
        ...

    async def create_partitions(
        self, requests: list[dict[str, Any]], validate_only: bool
    ) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per topic to grow, after the records committed."""
        ...

    async def quorum_status(self) -> dict[str, Any]:
        """The QUORUM_STATUS response body (leader, voters, their offsets) of the active controller."""
        ...

    async def init_producer_id(self) -> tuple[int, int]:
        """``(producer id, producer epoch)`` for a new idempotent producer, from the active controller."""
        ...

    async def group_request(self, api_key: int, body: Any) -> Any:
        """The active controller's answer body to a consumer group API request (the group coordinator's)."""
        ...


class BrokerApi:
    """Builds the API-key → handler table served by the broker's ``RequestServer``."""

    def __init__(
        self,
        *,
        node_id: int,
        cluster_id: str,
        replicas: ReplicaManager,
        controller: ControllerChannel,
        image: Callable[[], MetadataImage],
        wait_for_image: Callable[[Callable[[MetadataImage], bool], float], Awaitable[bool]],
        fetch_max_wait_ms_limit: int,
        broker_addresses: Callable[[], list[BrokerInfo]],
    ) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.replicas = replicas
        self.controller = controller
        self._image = image
        self._wait_for_image = wait_for_image
        self._fetch_max_wait_ms_limit = fetch_max_wait_ms_limit
        self._broker_addresses = broker_addresses

    def handlers(self) -> dict[int, Handler]:
        """The handler table."""
        return {
            ApiKey.API_VERSIONS: self.api_versions,
            ApiKey.METADATA: self.metadata,
            ApiKey.PRODUCE: self.produce,
            ApiKey.FETCH: self.fetch,
            ApiKey.LIST_OFFSETS: self.list_offsets,
            ApiKey.CREATE_TOPICS: self.create_topics,
            ApiKey.DELETE_TOPICS: self.delete_topics,
            ApiKey.CREATE_PARTITIONS: self.create_partitions,
            ApiKey.QUORUM_STATUS: self.quorum_status,
            ApiKey.OFFSETS_FOR_LEADER_EPOCH: self.offsets_for_leader_epoch,
            ApiKey.INIT_PRODUCER_ID: self.init_producer_id,
            **{api_key: self._group_forwarder(api_key) for api_key in GROUP_APIS},
        }

    # API_VERSIONS, METADATA -----------------------------------------------------------------------
    def api_versions(self, version: int, body: Any) -> Any:
        return {"apis": [[key, low, high] for key, (low, high) in SUPPORTED_VERSIONS.items()]}

    def metadata(self, version: int, body: Any) -> Any:
        names = field(body, "topics", (list, type(None)), None)
        include_config = field(body, "include_config", bool, False)
        image = self._image()
        if names is None:
            selected: list[tuple[str, TopicImage | None]] = sorted(image.topics.items())
        else:
            if not all(isinstance(name, str) for name in names):
                raise InvalidRequestError("topics must be a list of names")
            selected = [(name, image.topics.get(name)) for name in names]
        return {
            "cluster_id": self.cluster_id,
            "controller_id": self.node_id,
            "brokers": [list(b) for b in self._broker_addresses()],
            "topics": [_describe(name, topic, include_config) for name, topic in selected],
        }

    # PRODUCE --------------------------------------------------------------------------------------
    def produce(self, version: int, body: Any) -> Any:
        acks = field(body, "acks", int)
        if acks not in (0, 1, ACKS_ALL):
            raise InvalidRequiredAcksError(f"acks must be 0, 1 or -1 (all), not {acks}")
        timeout_ms = field(body, "timeout_ms", int, DEFAULT_PRODUCE_TIMEOUT_MS)
        topics = topic_partition_lists(body)
        append = self.replicas.append
        results = []
        delayed: list[tuple[list[Any], asyncio.Future[None]]] = []
        for topic, entries in topics:
            out = []
            for entry in entries:
                partition = entry[0]
                try:
                    if len(entry) != 2:
                        raise InvalidRequestError("produce partition entries are [partition, records]")
                    base_offset, replicated = append(topic, partition, entry[1], acks)
                    result = [partition, 0, base_offset, None]
                    if replicated is not None:
                        delayed.append((result, replicated))
                    out.append(result)
                except RaftKafkaError as exc:
                    exc = self._not_hosted(topic, partition, exc)
                    out.append([partition, exc.code, -1, exc.message])
            results.append([topic, out])
        if acks == 0:
            return NO_RESPONSE
        if delayed:
            return _ReplicatedProduce({"topics": results}, delayed, timeout_ms / 1000).response
        return {"topics": results}

    # FETCH ----------------------------------------------------------------------------------------
    def fetch(self, version: int, body: Any) -> Any:
        max_wait_ms = min(field(body, "max_wait_ms", int, 0), self._fetch_max_wait_ms_limit)
        min_bytes = field(body, "min_bytes", int, 1)
        max_bytes = field(body, "max_bytes", int, 50 * 1024 * 1024)
        replica_id = field(body, "replica_id", int, -1)
        if max_bytes <= 0:
            raise InvalidFetchSizeError("max_bytes must be positive")
        wanted: FetchWanted = []
        for topic, entries in topic_partition_lists(body):
            for entry in entries:
                if (
                    len(entry) not in (3, 4)
                    or not all(type(value) is int for value in entry)
                    or entry[2] <= 0
                ):
                    raise InvalidRequestError(
                        "fetch partition entries are [partition, offset, max_bytes > 0 (, leader_epoch)]"
                    )
                wanted.append((topic, entry[0], entry[1], entry[2], entry[3] if len(entry) == 4 else NO_EPOCH))
        response, size = self._read(wanted, max_bytes, replica_id)
        if size >= min_bytes or max_wait_ms <= 0:
            return response
        # Register for wake-ups now, in the same loop step as the read: an append after this point wakes us
        # (requests already read in this step, e.g. a produce right behind the fetch, run after it).
        return _LongPollFetch(self, wanted, max_bytes, min_bytes, replica_id, max_wait_ms / 1000).response

    def _read(self, wanted: FetchWanted, max_bytes: int, replica_id: int) -> tuple[Any, int]:
        replicas = self.replicas
        by_topic: dict[str, list[list[Any]]] = {}
        total = 0
        for topic, partition, offset, partition_max, leader_epoch in wanted:
            budget = min(partition_max, max_bytes - total)
            if budget <= 0:
                by_topic.setdefault(topic, []).append([partition, 0, -1, -1, b""])
                continue
            result: ReadResult
            if replica_id >= 0:
                result = replicas.read_for_follower(replica_id, topic, partition, offset, budget, leader_epoch)
            else:
                result = replicas.read(topic, partition, offset, budget, leader_epoch)
            error, high_watermark, log_start, records = result
            if error == UnknownTopicError.code:
                error = self._not_hosted(topic, partition, UnknownTopicError()).code
            total += len(records)
            by_topic.setdefault(topic, []).append([partition, error, high_watermark, log_start, records])
        response = {"topics": [[topic, parts] for topic, parts in by_topic.items()]}
        if total >= INLINE_LIMIT:  # written without copying the records
            return BulkBody(response), total
        return response, total

    # LIST_OFFSETS, OFFSETS_FOR_LEADER_EPOCH -------------------------------------------------------
    def list_offsets(self, version: int, body: Any) -> Any:
        return self._per_partition(body, "list offsets entries are [partition, timestamp]", self.replicas.list_offset)

    def offsets_for_leader_epoch(self, version: int, body: Any) -> Any:
        return self._per_partition(
            body, "leader epoch entries are [partition, leader_epoch]", self.replicas.end_offset_for_epoch
        )

    def _per_partition(self, body: Any, shape: str, lookup: Callable[[str, int, int], tuple[int, int]]) -> Any:
        """Answer ``[[topic, [[partition, value], ...]], ...]`` with ``[partition, error, *lookup(...)]`` each."""
        results = []
        for topic, entries in topic_partition_lists(body):
            out = []
            for entry in entries:
                partition = entry[0]
                try:
                    if len(entry) != 2 or type(entry[1]) is not int:
                        raise InvalidRequestError(shape)
                    out.append([partition, 0, *lookup(topic, partition, entry[1])])
                except RaftKafkaError as exc:
                    out.append([partition, self._not_hosted(topic, partition, exc).code, -1, -1])
            results.append([topic, out])
        return {"topics": results}

    def _not_hosted(self, topic: str, partition: int, exc: RaftKafkaError) -> RaftKafkaError:
        """``NotLeaderError`` instead of ``exc`` when ``exc`` says "no such partition here" but the partition
        exists in the image (another broker hosts it, or this one has not created it yet)."""
        if not isinstance(exc, UnknownTopicError):
            return exc
        image_topic = self._image().topics.get(topic)
        if image_topic is None or not 0 <= partition < len(image_topic.partitions):
            return exc
        leader = image_topic.partitions[partition].leader
        return NotLeaderError(f"broker {self.node_id} is not the leader of {topic}-{partition} (leader: {leader})")

    # CREATE_TOPICS, CREATE_PARTITIONS, DELETE_TOPICS: forwarded; answered once this broker's image shows them --
    def create_topics(self, version: int, body: Any) -> Any:
        requests, validate_only, timeout = topic_changes(body)
        return self._change_topics(
            lambda: self.controller.create_topics(requests, validate_only),
            timeout,
            None if validate_only else lambda names: lambda image: names <= image.topics.keys(),
        )

    def create_partitions(self, version: int, body: Any) -> Any:
        requests, validate_only, timeout = topic_changes(body)
        counts: dict[Any, int] = {}  # the largest count asked for per name (only a successful one can commit)
        for request in requests:
            if type(count := request.get("count")) is int:
                counts[request.get("name")] = max(count, counts.get(request.get("name"), 0))

        def grown(names: set[str]) -> Callable[[MetadataImage], bool]:
            return lambda image: all(
                name in image.topics and len(image.topics[name].partitions) >= counts.get(name, 0) for name in names
            )

        call = lambda: self.controller.create_partitions(requests, validate_only)  # noqa: E731
        return self._change_topics(call, timeout, None if validate_only else grown)

    def delete_topics(self, version: int, body: Any) -> Any:
        names = field(body, "topics", list)
        if not all(isinstance(name, str) for name in names):
            raise InvalidRequestError("topics must be a list of names")
        timeout = field(body, "timeout_ms", int, 30_000) / 1000
        return self._change_topics(
            lambda: self.controller.delete_topics(names),
            timeout,
            lambda deleted: lambda image: not deleted & image.topics.keys(),
        )

    async def _change_topics(
        self,
        call: Callable[[], Awaitable[list[tuple[str, int, str]]]],
        timeout: float,
        visible: Callable[[set[str]], Callable[[MetadataImage], bool]] | None,
    ) -> Any:
        """Forward a topic change; answer once ``visible(changed names)`` holds for this broker's image."""
        async with asyncio.timeout(timeout):
            results = await call()
        if visible is not None:
            changed = {name for name, error, _ in results if error == 0}
            await self._wait_for_image(visible(changed), timeout)
        return {"topics": [list(result) for result in results]}

    # INIT_PRODUCER_ID ------------------------------------------------------------------------------
    def init_producer_id(self, version: int, body: Any) -> Any:
        timeout = field(body, "timeout_ms", int, 30_000) / 1000
        return self._init_producer_id(timeout)

    async def _init_producer_id(self, timeout: float) -> Any:
        async with asyncio.timeout(timeout):
            producer_id, producer_epoch = await self.controller.init_producer_id()
        return {"producer_id": producer_id, "producer_epoch": producer_epoch}

    # consumer group APIs: forwarded to the group coordinator (the active controller) ---------------
    def _group_forwarder(self, api_key: int) -> Handler:
        async def forward(version: int, body: Any) -> Any:
            try:
                return await self.controller.group_request(api_key, body)
            except NotControllerError as exc:
                raise CoordinatorNotAvailableError(f"no group coordinator: {exc.message}") from None

        return forward

    # QUORUM_STATUS --------------------------------------------------------------------------------
    def quorum_status(self, version: int, body: Any) -> Any:
        return self.controller.quorum_status()


def _describe(name: str, topic: TopicImage | None, include_config: bool) -> dict[str, Any]:
    if topic is None:
        error = UnknownTopicError(f"topic {name!r} does not exist")
        return {"name": name, "error": error.code, "message": error.message, "partitions": [], "config": {}}
    return {
        "name": name,
        "error": 0,
        "message": None,
        "topic_id": topic.topic_id,
        "partitions": [
            [p.partition, p.leader, p.leader_epoch, list(p.replicas), list(p.isr)] for p in topic.partitions
        ],
        "config": dict(topic.config) if include_config else {},
    }


class _ReplicatedProduce:
    """An acks=all answer, written once every appended partition's high watermark passed its batches (each
    a future of ``Partition.wait_for_high_watermark``), or after ``timeout`` seconds with ``REQUEST_TIMED_OUT``
    for the partitions still waiting. Through its ``DeferredResponse``: no task and no ``asyncio.wait``, so the
    answer leaves in the loop step after the high watermark moves."""

    __slots__ = ("_body", "_delayed", "_pending", "_timeout", "_timer", "response")

    def __init__(self, body: Any, delayed: list[tuple[list[Any], asyncio.Future[None]]], timeout: float) -> None:
        self._body = body
        self._delayed = delayed
        self._pending = len(delayed)
        self._timeout = timeout
        self.response = DeferredResponse()
        self.response.on_cancel = self._give_up
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(max(timeout, 0.0), self._finish)
        for _, future in delayed:
            future.add_done_callback(self._replicated)

    def _replicated(self, _: asyncio.Future[None]) -> None:
        self._pending -= 1
        if self._pending == 0:
            self._finish()

    def _finish(self) -> None:
        if self.response.done:
            return
        for result, future in self._delayed:
            if not future.done() or future.cancelled():
                error: RaftKafkaError = RequestTimedOutError(
                    f"the in-sync replicas did not replicate the batch within {self._timeout:g}s"
                )
            elif (exc := future.exception()) is None:
                continue
            else:
                error = exc if isinstance(exc, RaftKafkaError) else RequestTimedOutError(str(exc))
            result[1], result[3] = error.code, error.message
        self._give_up()
        self.response.complete(self._body)

    def _give_up(self) -> None:
        """Drop the timer and the futures still waiting (their partitions forget them)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        delayed, self._delayed = self._delayed, []
        for _, future in delayed:
            future.cancel()


class _LongPollFetch:
    """A fetch waiting for ``min_bytes`` (a follower's: for anything new, records or high watermark): each
    wake-up from its partitions reads again, and the read that has enough, or the one at the deadline, answers
    through its ``DeferredResponse`` on the spot: no task, no timeout object, one timer handle.

    A consumer's fetch is woken from inside the append (or high watermark move) itself, so its answer is
    written before the produce request's; a follower's is woken one loop step later, since its read updates
    the leader's replication state, which is better not changed from inside a change of it. Once answered it
    drops its timer and registration (and its response its callbacks): nothing of it is left in a reference
    cycle, so it is freed at once instead of feeding the cyclic garbage collector (whose pauses, every few
    dozen round trips, showed in the e2e p99)."""

    __slots__ = ("_api", "_keys", "_max_bytes", "_min_bytes", "_registration", "_timer", "_wanted", "deadline",
                 "loop", "replica_id", "response")

    def __init__(
        self, api: BrokerApi, wanted: FetchWanted, max_bytes: int, min_bytes: int, replica_id: int, max_wait: float
    ) -> None:
        self._api = api
        self._wanted = wanted
        self._keys = [(topic, partition) for topic, partition, _, _, _ in wanted]
        self._max_bytes = max_bytes
        self._min_bytes = min_bytes
        self.replica_id = replica_id
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + max_wait
        self.response = DeferredResponse()
        self.response.on_cancel = self._stop
        self._timer: asyncio.TimerHandle | None = self.loop.call_at(self.deadline, self._expired)
        self._registration: _Registration | None = None
        self._watch()

    def _watch(self) -> None:
        if self._registration is not None:
            self._registration.retire()  # left in the partitions that did not wake it: dropped there
        registration = self._registration = _Registration(self)
        self._api.replicas.watch(self._keys, registration, replica=self.replica_id >= 0)

    def woken(self) -> None:
        if self.response.done:
            return
        try:
            body, size = self._api._read(self._wanted, self._max_bytes, self.replica_id)
            # A follower also returns at once for a new high watermark, so it learns it without delay.
            if size >= self._min_bytes or self.replica_id >= 0 or self.loop.time() >= self.deadline:
                self._stop()
                self.response.complete(body)
            else:
                self._watch()
        except Exception as exc:  # answered as UNKNOWN_SERVER_ERROR (a RaftKafkaError as itself) and logged
            self._stop()
            self.response.fail(exc)

    def _expired(self) -> None:
        if self.response.done:
            return
        self._stop()
        try:
            self.response.complete(self._api._read(self._wanted, self._max_bytes, self.replica_id)[0])
        except Exception as exc:
            self.response.fail(exc)

    def _stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._registration is not None:
            self._registration.retire()
            self._registration = None


class _Registration:
    """One registration of a long-poll fetch with its partitions (``ReplicaManager.watch``). The first partition
    to wake it retires it, and a fetch registering again retires its previous one, so partitions never hold
    live duplicates of one fetch."""

    __slots__ = ("fetch",)

    def __init__(self, fetch: _LongPollFetch) -> None:
        self.fetch: _LongPollFetch | None = fetch

    def done(self) -> bool:
        return self.fetch is None

    def retire(self) -> None:
        self.fetch = None

    def wake(self) -> None:
        fetch, self.fetch = self.fetch, None
        if fetch is None:
            return
        if fetch.replica_id >= 0:
            fetch.loop.call_soon(fetch.woken)
        else:
            fetch.woken()
