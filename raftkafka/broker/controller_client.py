"""The broker's channel to a remote controller quorum: finds the active controller and talks to it.

``RemoteController`` is given every controller's listener (``--controllers``). It keeps one pipelined
connection to the controller it believes active; a ``NOT_CONTROLLER`` answer moves it to the hinted
leader (``"leader=<id>@<host>:<port>"``) or to the next listener, a network error to the next listener
after a backoff. Each request has a deadline: retriable failures are retried within it, and at the
deadline the last failure is raised (``NotControllerError`` or ``RequestTimedOutError``), never a hang.
Topic creation, growth and deletion are not sent twice once their outcome is unknown (a retry would turn a
success into ``TOPIC_ALREADY_EXISTS`` or ``UNKNOWN_TOPIC``); registration and heartbeats are safe to repeat.

Every controller response carries ``controller_epoch`` (the Raft term): a response older than the
newest epoch seen comes from a deposed leader and is dropped like a ``NOT_CONTROLLER`` answer.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from raftkafka.controller.brokers import HeartbeatReply
from raftkafka.controller.group_api import request_timeout_s
from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult, changes_to_wire, results_from_wire
from raftkafka.errors import (
    BrokerNotAvailableError,
    InvalidRequestError,
    NetworkError,
    NotControllerError,
    RaftKafkaError,
    RequestTimedOutError,
)
from raftkafka.net.api import ApiKey, field, topic_partition_lists
from raftkafka.net.connection import Connection

log = logging.getLogger(__name__)

API_VERSION = 0
Address = tuple[str, int]
_LEADER_HINT = re.compile(r"leader=(-?\d+)@(\[[^\]]+\]|[^\s:]+):(\d+)")


def parse_leader_hint(message: str) -> tuple[int, Address] | None:
    """``(node_id, (host, port))`` of a ``NOT_CONTROLLER`` message's ``leader=<id>@<host>:<port>``, or None."""
    match = _LEADER_HINT.search(message)
    if match is None:
        return None
    return int(match.group(1)), (match.group(2).strip("[]"), int(match.group(3)))


class StaleControllerEpochError(NotControllerError):
    """A response from a controller whose epoch is older than one already seen (a deposed leader)."""


@dataclass(frozen=True, slots=True)
class ControllerClientConfig:
    """Timeouts and backoffs of the channel (seconds)."""

    request_timeout_s: float = 30.0
    attempt_timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    retry_backoff_s: float = 0.05
    retry_backoff_max_s: float = 1.0
    max_response_bytes: int = 64 * 1024 * 1024


class RemoteController:
    """The active controller of a remote quorum, as the ``BrokerController`` a broker uses."""

    def __init__(self, controllers: Sequence[Address], config: ControllerClientConfig | None = None) -> None:
        if not controllers:
            raise ValueError("at least one controller address is needed")
        self.controllers = list(dict.fromkeys(controllers))
        self.config = config or ControllerClientConfig()
        self.controller_epoch = -1
        """The newest controller epoch seen in any response."""
        self.active: Address | None = None
        """The controller the channel currently talks to."""
        self.requested_heartbeat_interval_ms: int | None = None
        """The heartbeat interval the controller last asked brokers for (registration and heartbeat answers)."""
        self._next_index = 0
        self._connection: Connection | None = None
        self._connecting: asyncio.Lock = asyncio.Lock()
        self._closed = False

    # -- the controller APIs --

    async def create_topics(self, requests: list[dict[str, Any]], validate_only: bool) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per requested topic, after the records committed."""
        body = {"topics": requests, "timeout_ms": self._timeout_ms(), "validate_only": validate_only}
        return _topic_results(await self.request(ApiKey.CREATE_TOPICS, body, idempotent=False))

    async def create_partitions(
        self, requests: list[dict[str, Any]], validate_only: bool
    ) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per topic to grow, after the records committed."""
        body = {"topics": requests, "timeout_ms": self._timeout_ms(), "validate_only": validate_only}
        return _topic_results(await self.request(ApiKey.CREATE_PARTITIONS, body, idempotent=False))

    async def delete_topics(self, names: list[str]) -> list[tuple[str, int, str]]:
        """``(name, error_code, message)`` per topic, after the records committed."""
        body = {"topics": names, "timeout_ms": self._timeout_ms()}
        return _topic_results(await self.request(ApiKey.DELETE_TOPICS, body, idempotent=False))

    async def register_broker(
        self, node_id: int, host: str, port: int, incarnation_id: str, previous_incarnation_id: str | None = None
    ) -> int:
        """Register this broker process and return its broker epoch.

        Raises ``DuplicateBrokerRegistrationError`` if another live incarnation holds the node id.
        """
        body: dict[str, Any] = {"node_id": node_id, "host": host, "port": port, "incarnation_id": incarnation_id}
        if previous_incarnation_id is not None:
            body["previous_incarnation_id"] = previous_incarnation_id
        answer = await self.request(ApiKey.BROKER_REGISTER, body)
        self._note_heartbeat_interval(answer)
        return field(answer, "broker_epoch", int)

    async def heartbeat(
        self, node_id: int, broker_epoch: int, metadata_offset: int, want_shutdown: bool
    ) -> HeartbeatReply:
        """Keep the broker's session alive (``StaleBrokerEpochError``, ``BrokerIdNotRegisteredError``: register)."""
        body = {
            "node_id": node_id,
            "broker_epoch": broker_epoch,
            "metadata_offset": metadata_offset,
            "want_shutdown": want_shutdown,
        }
        answer = await self.request(ApiKey.BROKER_HEARTBEAT, body)
        self._note_heartbeat_interval(answer)
        return HeartbeatReply(field(answer, "fenced", bool), field(answer, "should_shutdown", bool))

    async def alter_partition(
        self, broker_id: int, broker_epoch: int, changes: Sequence[IsrChange], timeout_s: float | None = None
    ) -> list[IsrChangeResult]:
        """Ask for ISR changes of partitions this broker leads; one result per change, after the commit.

        Safe to repeat: a change that already committed is refused with ``INVALID_UPDATE_VERSION``.
        Raises ``StaleBrokerEpochError`` when ``broker_epoch`` is not the current registration.
        """
        timeout = self.config.request_timeout_s if timeout_s is None else timeout_s
        body = {
            "broker_id": broker_id,
            "broker_epoch": broker_epoch,
            "topics": changes_to_wire(changes),
            "timeout_ms": max(1, int(timeout * 1000)),
        }
        answer = await self.request(ApiKey.ALTER_PARTITION, body, timeout=timeout)
        return results_from_wire(topic_partition_lists(answer))

    async def fetch_metadata_log(self, offset: int, max_wait_ms: int, max_records: int) -> dict[str, Any]:
        """The METADATA_LOG response body for records from ``offset`` on (a long poll of ``max_wait_ms``)."""
        body = {"offset": offset, "max_wait_ms": max_wait_ms, "max_records": max_records}
        wait = max_wait_ms / 1000
        return await self.request(  # type: ignore[no-any-return]
            ApiKey.METADATA_LOG, body, timeout=wait + self.config.attempt_timeout_s, attempt_timeout=wait + 2.0
        )

    async def quorum_status(self) -> dict[str, Any]:
        """The QUORUM_STATUS response body of the active controller."""
        return await self.request(ApiKey.QUORUM_STATUS, {})  # type: ignore[no-any-return]

    async def group_request(self, api_key: int, body: Any) -> Any:
        """Forward a consumer group API request (``net.api``) to the active controller; its answer body.

        Safe to repeat: joins are made by member id, commits assign offsets, leaves and deletions of what is
        gone are no-ops or clear errors."""
        timeout = request_timeout_s(api_key, body)
        return await self.request(api_key, body, timeout=timeout, attempt_timeout=timeout)

    async def init_producer_id(self) -> tuple[int, int]:
        """``(producer id, producer epoch)`` for a new idempotent producer (safe to repeat: a lost id is skipped)."""
        answer = await self.request(ApiKey.INIT_PRODUCER_ID, {"timeout_ms": self._timeout_ms()})
        return field(answer, "producer_id", int), field(answer, "producer_epoch", int)

    # -- the request loop --

    async def request(
        self,
        api_key: int,
        body: Any,
        *,
        timeout: float | None = None,
        attempt_timeout: float | None = None,
        idempotent: bool = True,
    ) -> Any:
        """Send ``body`` to the active controller, retrying retriable failures while a retry can start before
        ``timeout`` seconds pass.

        Raises the last failure at the deadline (``NotControllerError``/``RequestTimedOutError``, or a
        ``NetworkError`` mapped to ``RequestTimedOutError``) and non-retriable errors at once. A request
        that is not ``idempotent`` is not sent again once its outcome is unknown (the connection failed or
        timed out after sending it, or the controller timed out): ``RequestTimedOutError`` says so instead.
        """
        config = self.config
        deadline = time.monotonic() + (config.request_timeout_s if timeout is None else timeout)
        per_attempt = config.attempt_timeout_s if attempt_timeout is None else attempt_timeout
        backoff = config.retry_backoff_s
        last: RaftKafkaError | None = None
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            connection: Connection | None = None
            try:
                connection = await self._connection_to_active(min(remaining, config.connect_timeout_s))
                async with asyncio.timeout(min(remaining, per_attempt)):
                    answer = await connection.send(api_key, API_VERSION, body)
                self._check_epoch(connection, answer)
                return answer
            except NotControllerError as exc:
                last = exc
                self._move_on(connection, parse_leader_hint(exc.message))
            except (NetworkError, BrokerNotAvailableError, TimeoutError) as exc:
                failure = (
                    RequestTimedOutError(f"controller {_show(self.active)} did not answer API {api_key} in time")
                    if isinstance(exc, TimeoutError)
                    else exc
                )
                self._move_on(connection, None)
                if connection is not None and not idempotent:  # it was sent: it may have taken effect
                    raise RequestTimedOutError(f"{failure}; the outcome of API {api_key} is unknown") from None
                if last is None or time.monotonic() < deadline:  # one the deadline cut short says less than the last
                    last = failure
            except RaftKafkaError as exc:
                if not exc.retriable or not idempotent:
                    raise
                last = exc
            delay = backoff * random.uniform(0.8, 1.2)
            if time.monotonic() + delay >= deadline:
                break  # the next attempt could not start in time: no attempt is cut short by the deadline
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, config.retry_backoff_max_s)
        if self._closed:
            raise NetworkError("the controller channel is closed")
        if isinstance(last, NotControllerError | RequestTimedOutError):
            raise last
        raise RequestTimedOutError(f"no active controller answered API {api_key} in time (last error: {last})")

    def _note_heartbeat_interval(self, answer: dict[str, Any]) -> None:
        interval = answer.get("heartbeat_interval_ms")
        if type(interval) is int and interval > 0:
            self.requested_heartbeat_interval_ms = interval

    def _timeout_ms(self) -> int:
        return int(self.config.request_timeout_s * 1000)

    def _check_epoch(self, connection: Connection, answer: Any) -> None:
        if not isinstance(answer, dict):
            raise InvalidRequestError(f"controller {connection.address} sent a malformed response")
        epoch = answer.get("controller_epoch")
        if type(epoch) is not int:
            return  # forwarded admin answers (CREATE_TOPICS, DELETE_TOPICS) need not carry it
        if epoch < self.controller_epoch:
            raise StaleControllerEpochError(
                f"controller {connection.address} answered in epoch {epoch}, older than {self.controller_epoch}"
            )
        if epoch > self.controller_epoch:
            if self.controller_epoch >= 0:
                log.info("controller epoch %d -> %d (%s)", self.controller_epoch, epoch, connection.address)
            self.controller_epoch = epoch

    async def _connection_to_active(self, timeout: float) -> Connection:
        async with self._connecting:
            connection = self._connection
            if connection is not None and not connection.closed:
                return connection
            if self.active is None:
                self.active = self.controllers[self._next_index % len(self.controllers)]
                self._next_index += 1
            host, port = self.active
            try:
                self._connection = await Connection.open(
                    host, port, timeout=timeout, max_frame_bytes=self.config.max_response_bytes
                )
            except BrokerNotAvailableError:
                self.active = None
                raise
            log.debug("connected to controller %s:%d", host, port)
            return self._connection

    def _move_on(self, failed: Connection | None, hint: tuple[int, Address] | None) -> None:
        """Stop using ``failed`` (unless another request already did) and pick the next controller."""
        if failed is None or failed is not self._connection:
            return  # the connection never opened, or another request already moved on
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if hint is not None and hint[1] != self.active:
            log.info("following the controller hint to node %d at %s", hint[0], _show(hint[1]))
            self.active = hint[1]
        else:
            self.active = None

    async def close(self) -> None:
        """Close the connection; requests in flight and later ones fail with ``NetworkError``."""
        self._closed = True
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _show(address: Address | None) -> str:
    return "(none)" if address is None else f"{address[0]}:{address[1]}"


def _topic_results(answer: Any) -> list[tuple[str, int, str]]:
    results = []
    for entry in field(answer, "topics", list):
        if not isinstance(entry, list) or len(entry) != 3 or not isinstance(entry[0], str) or type(entry[1]) is not int:
            raise InvalidRequestError("the controller sent a malformed topic result")
        results.append((entry[0], entry[1], entry[2] if isinstance(entry[2], str) else ""))
    return results
