"""The controller process: a metadata-quorum voter serving the controller APIs of ``net.api``.

Wires a ``MetadataLog`` (with the other voters as partners), a ``QuorumController`` tracking broker
sessions, and a ``RequestServer`` on the client listener. A background task checks every
``leadership_poll_ms`` for a leadership or term change (activating or deactivating the controller)
and fences brokers whose session expired. Requests that change metadata are answered only by the
active controller; the others answer ``NOT_CONTROLLER`` with ``leader=<id>@<host>:<port>`` when they
know the active controller's listener (from its ``RegisterController`` record). ``METADATA_LOG`` and
``QUORUM_STATUS`` are answered by every voter from its own committed state.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from raftkafka.controller.config import ControllerConfig, raft_address
from raftkafka.controller.controller import QuorumController
from raftkafka.controller.group_api import GROUP_APIS, request_timeout_s
from raftkafka.controller.isr_changes import changes_from_wire, results_to_wire
from raftkafka.controller.sessions import BrokerSessions, Clock
from raftkafka.errors import InvalidRequestError, NotControllerError
from raftkafka.metadata.records import encode_records
from raftkafka.net.api import SUPPORTED_VERSIONS, ApiKey, field, topic_changes, topic_partition_lists
from raftkafka.net.server import ConnectionId, Handler, RequestServer, current_connection
from raftkafka.raftlog.metadata_log import MetadataLog

log = logging.getLogger(__name__)

CONTROLLER_APIS = (
    ApiKey.API_VERSIONS,
    ApiKey.CREATE_TOPICS,
    ApiKey.DELETE_TOPICS,
    ApiKey.CREATE_PARTITIONS,
    ApiKey.BROKER_REGISTER,
    ApiKey.BROKER_HEARTBEAT,
    ApiKey.METADATA_LOG,
    ApiKey.QUORUM_STATUS,
    ApiKey.ALTER_PARTITION,
    ApiKey.INIT_PRODUCER_ID,
    *GROUP_APIS,
)
_WILDCARD_HOSTS = ("", "0.0.0.0", "::")
_DEFAULT_ADMIN_TIMEOUT_MS = 30_000


class ControllerServer:
    """One controller process. ``await start()``, later ``await stop()``."""

    def __init__(self, config: ControllerConfig, cluster_secret: str, *, clock: Clock = time.monotonic) -> None:
        self.config = config.validate()
        self._cluster_secret = cluster_secret
        self._clock = clock
        self._node_ids = config.node_ids_by_raft_address
        self.metadata_log: MetadataLog | None = None
        self.controller: QuorumController | None = None
        self.server: RequestServer | None = None
        self.address: tuple[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_connections: dict[int, ConnectionId] = {}  # broker node id → its heartbeat connection

    async def start(self) -> tuple[str, int]:
        """Join the quorum and listen for requests; returns the bound listener address."""
        config = self.config
        config.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.metadata_log = MetadataLog(
            raft_address((config.raft_host, config.raft_port)),
            config.partner_addresses,
            config.metadata_dir,
            self._cluster_secret,
            config.metadata_log,
        )
        sessions = BrokerSessions(config.broker_session_timeout_ms / 1000, self._clock)
        self.controller = QuorumController(
            self.metadata_log,
            sessions=sessions,
            node_id=config.node_id,
            voters={node_id: raft_address(address) for node_id, address in config.voters.items()},
            group_limits=config.groups,
        )
        self.server = RequestServer(self.handlers(), on_connection_lost=self._connection_lost)
        try:
            self.address = await self.server.start(config.listen_host, config.listen_port)
        except OSError:
            await self.metadata_log.close()
            raise
        host = config.raft_host if config.listen_host in _WILDCARD_HOSTS else config.listen_host
        self.controller.set_listener(config.node_id, host, self.address[1])
        self._task = asyncio.create_task(self._maintain(), name="controller-maintenance")
        self.controller.start_group_coordinator()
        log.info(
            "controller %d listening on %s:%d, Raft on %s:%d, voters %s",
            config.node_id, *self.address, config.raft_host, config.raft_port,
            ",".join(f"{n}@{raft_address(a)}" for n, a in sorted(config.voters.items())),
        )  # fmt: skip
        return self.address

    async def stop(self) -> None:
        """Stop serving and leave the quorum (the data dir keeps the log)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.server is not None:
            await self.server.close()
        if self.controller is not None:
            await self.controller.stop()
        log.info("controller %d stopped", self.config.node_id)

    async def _maintain(self) -> None:
        assert self.controller is not None
        interval = self.config.leadership_poll_ms / 1000
        rebalance_every = self.config.leader_imbalance_check_interval_ms / 1000
        next_rebalance = self._clock() + rebalance_every
        while True:
            try:
                await self.controller.poll_leadership()
                await self.controller.fence_expired_brokers()
                if self._clock() >= next_rebalance:
                    next_rebalance = self._clock() + rebalance_every
                    await self.controller.rebalance_leaders()
            except Exception:  # retried on the next round; the failure is in the log
                log.exception("controller maintenance failed")
            await asyncio.sleep(interval)

    # -- handlers --

    def handlers(self) -> dict[int, Handler]:
        """API key -> handler for the ``RequestServer``."""
        return {
            ApiKey.API_VERSIONS: self.api_versions,
            ApiKey.CREATE_TOPICS: self.create_topics,
            ApiKey.DELETE_TOPICS: self.delete_topics,
            ApiKey.CREATE_PARTITIONS: self.create_partitions,
            ApiKey.BROKER_REGISTER: self.broker_register,
            ApiKey.BROKER_HEARTBEAT: self.broker_heartbeat,
            ApiKey.METADATA_LOG: self.metadata_log_fetch,
            ApiKey.QUORUM_STATUS: self.quorum_status,
            ApiKey.ALTER_PARTITION: self.alter_partition,
            ApiKey.INIT_PRODUCER_ID: self.init_producer_id,
            **{api_key: self._group_handler(api_key) for api_key in GROUP_APIS},
        }

    def api_versions(self, version: int, body: Any) -> Any:
        return {"apis": [[key, *SUPPORTED_VERSIONS[key]] for key in CONTROLLER_APIS]}

    def create_topics(self, version: int, body: Any) -> Any:
        requests, validate_only, timeout_s = topic_changes(body)
        return self._active_call(timeout_s, lambda c: c.create_topics(requests, validate_only), self._topic_results)

    def create_partitions(self, version: int, body: Any) -> Any:
        requests, validate_only, timeout_s = topic_changes(body)
        return self._active_call(
            timeout_s, lambda c: c.create_partitions(requests, validate_only), self._topic_results
        )

    def delete_topics(self, version: int, body: Any) -> Any:
        names = field(body, "topics", list)
        if not all(isinstance(name, str) for name in names):
            raise InvalidRequestError("topics must be a list of names")
        return self._active_call(_timeout_s(body), lambda c: c.delete_topics(names), self._topic_results)

    def broker_register(self, version: int, body: Any) -> Any:
        node_id = field(body, "node_id", int)
        host = field(body, "host", str)
        port = field(body, "port", int)
        incarnation_id = field(body, "incarnation_id", str)
        previous_incarnation_id = field(body, "previous_incarnation_id", (str, type(None)), None)
        return self._active_call(
            _timeout_s(body),
            lambda c: c.register_broker(node_id, host, port, incarnation_id, previous_incarnation_id),
            lambda epoch: {
                "broker_epoch": epoch,
                "heartbeat_interval_ms": self.config.broker_heartbeat_interval_ms,
                "session_timeout_ms": self.config.broker_session_timeout_ms,
                "controller_epoch": self._epoch(),
            },
        )

    def broker_heartbeat(self, version: int, body: Any) -> Any:
        node_id = field(body, "node_id", int)
        self._heartbeat_connections[node_id] = current_connection.get()
        broker_epoch = field(body, "broker_epoch", int)
        metadata_offset = field(body, "metadata_offset", int)
        want_shutdown = field(body, "want_shutdown", bool, False)
        return self._active_call(
            _timeout_s(body),
            lambda c: c.heartbeat(node_id, broker_epoch, metadata_offset, want_shutdown),
            lambda reply: {
                "fenced": reply.fenced,
                "should_shutdown": reply.should_shutdown,
                "heartbeat_interval_ms": self.config.broker_heartbeat_interval_ms,
                "controller_epoch": self._epoch(),
            },
        )

    def _connection_lost(self, connection: ConnectionId) -> None:
        """A broker's heartbeat connection closed: a dead process is fenced after two heartbeat intervals, not
        after the whole session timeout (a live broker reconnects and heartbeats well within that)."""
        for node_id in [n for n, c in self._heartbeat_connections.items() if c == connection]:
            del self._heartbeat_connections[node_id]
            if self.controller is not None:
                self.controller.broker_connection_lost(node_id, 2 * self.config.broker_heartbeat_interval_ms / 1000)

    def alter_partition(self, version: int, body: Any) -> Any:
        broker_id = field(body, "broker_id", int)
        broker_epoch = field(body, "broker_epoch", int)
        changes = changes_from_wire(topic_partition_lists(body))
        return self._active_call(
            _timeout_s(body),
            lambda c: c.alter_partition(broker_id, broker_epoch, changes),
            lambda results: {"topics": results_to_wire(results), "controller_epoch": self._epoch()},
        )

    def init_producer_id(self, version: int, body: Any) -> Any:
        return self._active_call(
            _timeout_s(body),
            lambda c: c.init_producer_id(),
            lambda ids: {"producer_id": ids[0], "producer_epoch": ids[1], "controller_epoch": self._epoch()},
        )

    def _group_handler(self, api_key: int) -> Handler:
        def handle(version: int, body: Any) -> Any:
            return self._active_call(
                request_timeout_s(api_key, body),
                lambda c: c.group_request(api_key, body),
                lambda answer: {**answer, "controller_epoch": self._epoch()},
            )

        return handle

    def metadata_log_fetch(self, version: int, body: Any) -> Any:
        offset = field(body, "offset", int)
        max_wait_ms = min(max(field(body, "max_wait_ms", int, 0), 0), self.config.metadata_log_max_wait_ms)
        max_records = min(max(field(body, "max_records", int, self.config.metadata_log_max_records), 1),
                          self.config.metadata_log_max_records)  # fmt: skip
        if offset < 0:
            raise InvalidRequestError(f"offset must be non-negative, got {offset}")
        return self._read_metadata_log(offset, max_wait_ms, max_records)

    async def _read_metadata_log(self, offset: int, max_wait_ms: int, max_records: int) -> Any:
        metadata_log = self._log()
        if offset > metadata_log.image.offset and max_wait_ms > 0:
            await metadata_log.wait_for_offset(offset, max_wait_ms / 1000)
        image = metadata_log.image
        records = metadata_log.read_records(offset, max_records)
        answer: dict[str, Any] = {"controller_epoch": self._epoch(), "high_offset": image.offset}
        if records is None:  # no longer kept: the image replaces the broker's
            answer.update(first_offset=image.offset + 1, records=None, snapshot=image.to_bytes())
        else:
            answer.update(first_offset=offset, records=encode_records(records) if records else None, snapshot=None)
        return answer

    def quorum_status(self, version: int, body: Any) -> Any:
        if self.controller is None:
            raise NotControllerError("the controller is not started")
        return self.controller.quorum_status()

    # -- helpers --

    def _log(self) -> MetadataLog:
        if self.metadata_log is None:
            raise NotControllerError("the controller is not started")
        return self.metadata_log

    def _epoch(self) -> int:
        return self._log().term

    def _active_call(
        self,
        timeout_s: float,
        call: Callable[[QuorumController], Awaitable[Any]],
        answer: Callable[[Any], Any],
    ) -> Awaitable[Any]:
        controller = self.controller
        if controller is None or not controller.is_active:
            raise self._not_controller()
        return self._finish_active_call(controller, timeout_s, call, answer)

    async def _finish_active_call(
        self,
        controller: QuorumController,
        timeout_s: float,
        call: Callable[[QuorumController], Awaitable[Any]],
        answer: Callable[[Any], Any],
    ) -> Any:
        try:
            async with asyncio.timeout(timeout_s):
                return answer(await call(controller))
        except NotControllerError:
            raise self._not_controller() from None

    def _topic_results(self, results: list[Any]) -> Any:
        return {"topics": [list(result) for result in results], "controller_epoch": self._epoch()}

    def _not_controller(self) -> NotControllerError:
        """NOT_CONTROLLER with the active controller's listener when this voter knows it."""
        metadata_log = self._log()
        leader = metadata_log.leader_address
        node_id = None if leader is None else self._node_ids.get(leader)
        if node_id is None:
            return NotControllerError("no active controller is known yet (election in progress)")
        if node_id == self.config.node_id:
            return NotControllerError("this controller leads the quorum but is not active yet; retry")
        listener = metadata_log.image.controllers.get(node_id)
        if listener is None:
            return NotControllerError(f"the active controller is node {node_id}; its listener is not known yet")
        return NotControllerError(f"not the active controller; leader={node_id}@{listener.host}:{listener.port}")


def _timeout_s(body: Any) -> float:
    timeout_ms = field(body, "timeout_ms", int, _DEFAULT_ADMIN_TIMEOUT_MS)
    if timeout_ms <= 0:
        raise InvalidRequestError(f"timeout_ms must be positive, got {timeout_ms}")
    return timeout_ms / 1000
