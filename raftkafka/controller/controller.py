"""The quorum controller: the service brokers call to change cluster metadata.

Each operation decides with the pure functions of ``topics``/``brokers`` against a *speculative*
image (the committed image plus records appended but not yet committed), so pipelined requests see
each other's effects and cannot, say, create one topic twice. The records go to the metadata log;
the reply goes out only after they commit *and* after every append decided before them has
finished, because a decision read their uncommitted effects. If an earlier append fails, later
replies fail with its (retriable) error, and the speculative image is rebuilt from the committed
one plus the appends still in flight.

Ids and randomness (topic ids, placement start index) are drawn here, outside the pure decisions.
Event loop thread only.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from raftkafka.controller.brokers import BrokerRegistrationRequest, register_broker
from raftkafka.controller.topics import NewTopic, TopicResult, create_topic, delete_topic
from raftkafka.errors import NotControllerError, RaftKafkaError, RequestTimedOutError
from raftkafka.metadata.image import MetadataImage, replay_all
from raftkafka.metadata.records import MetadataRecord
from raftkafka.raftlog.metadata_log import CommitListener, MetadataLog

_Append = asyncio.Task[int]


def _new_topic_id() -> str:
    return str(uuid.uuid4())


class QuorumController:
    """Validates and commits metadata changes through a ``MetadataLog`` this node leads."""

    def __init__(
        self,
        log: MetadataLog,
        *,
        new_topic_id: Callable[[], str] = _new_topic_id,
        rng: random.Random | None = None,
    ) -> None:
        self._log = log
        self._new_topic_id = new_topic_id
        self._rng = rng or random.Random()
        self._appends: dict[_Append, Sequence[MetadataRecord]] = {}
        self._speculative: MetadataImage | None = None
        self._live_sessions: set[int] = set()

    @property
    def image(self) -> MetadataImage:
        """The latest committed image."""
        return self._log.image

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(image, records, first_offset)`` on the event loop after each committed batch."""
        self._log.add_listener(listener)

    def subscribe(self, listener: Callable[[MetadataImage], None]) -> None:
        """Call ``listener(image)`` on the event loop with each newly committed image (a broker's metadata source)."""
        self._log.add_listener(lambda image, records, first_offset: listener(image))

    async def start(self, timeout_s: float = 30.0) -> None:
        """Wait until the metadata log holds everything committed before this start."""
        if not await self._log.wait_ready(timeout_s):
            raise RequestTimedOutError(f"the metadata quorum was not ready within {timeout_s:g}s")

    async def stop(self) -> None:
        """Close the metadata log; later requests fail with ``NotControllerError``."""
        await self._log.close()

    # -- operations --

    async def create_topics(
        self, requests: Sequence[NewTopic | Mapping[str, Any]], validate_only: bool = False
    ) -> list[TopicResult]:
        """One result per request, in order (wire CREATE_TOPICS entries are accepted as mappings)."""
        image = self._decision_image()
        records: list[MetadataRecord] = []
        results: list[TopicResult] = []
        for request in requests:
            new_topic = request if isinstance(request, NewTopic) else NewTopic.from_wire(request)
            topic_records, result = create_topic(image, new_topic, self._new_topic_id(), self._rng.randrange(1 << 16))
            if topic_records:  # later requests in this batch see this topic
                image = replay_all(image, topic_records, image.offset + 1)
                records.extend(topic_records)
            results.append(result)
        if validate_only:
            records = []
        return await self._commit_then_answer(records, results)

    async def delete_topics(self, names: Sequence[str]) -> list[TopicResult]:
        """One result per name, in order."""
        image = self._decision_image()
        records: list[MetadataRecord] = []
        results: list[TopicResult] = []
        for name in names:
            topic_records, result = delete_topic(image, name)
            if topic_records:
                image = replay_all(image, topic_records, image.offset + 1)
                records.extend(topic_records)
            results.append(result)
        return await self._commit_then_answer(records, results)

    async def register_broker(self, node_id: int, host: str, port: int, incarnation_id: str) -> None:
        """Register a broker process; raises ``DuplicateBrokerRegistrationError`` if another live one holds the id."""
        request = BrokerRegistrationRequest(node_id, host, port, incarnation_id)
        records = register_broker(self._decision_image(), request, self._live_sessions)
        await self._commit(records)
        self._live_sessions.add(node_id)

    # -- speculative image and commits --

    def _decision_image(self) -> MetadataImage:
        if not self._log.is_leader:
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
        """Append ``records`` (decided just now, against ``_decision_image()``) and wait as the module says."""
        earlier = list(self._appends)
        if records:
            base = self._decision_image()
            self._speculative = replay_all(base, records, base.offset + 1)
            append = asyncio.ensure_future(self._log.append(records))
            self._appends[append] = records
            append.add_done_callback(self._append_done)
            earlier.append(append)
        for previous in earlier:
            await asyncio.shield(previous)

    def _append_done(self, append: _Append) -> None:
        del self._appends[append]
        if not self._appends:
            self._speculative = None
        elif append.cancelled() or append.exception() is not None:
            image = self._log.image
            for pending in self._appends.values():
                image = replay_all(image, pending, image.offset + 1)
            self._speculative = image
