"""The broker process: wires storage, the request server, the metadata image and the controller together.

Identity: the cluster id is the one in the metadata image (committed by the first active controller);
``start`` waits for it and checks it against the data dir's ``meta.properties`` before touching any
partition. The data dir's lock (taken by the ``LogManager``) proves the previous process on it gone,
so the broker names that process's incarnation when it registers and replaces it at once.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Protocol

from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.meta_properties import ensure_meta_properties, replace_incarnation
from raftkafka.metadata.records import MetadataRecord, topics_touched
from raftkafka.net.idle_poll import idle_poll
from raftkafka.net.server import RequestServer
from raftkafka.storage.log_manager import LogManager
from raftkafka.structs import BrokerInfo

from .api_handlers import BrokerApi, ControllerChannel
from .config import BrokerConfig
from .isr_manager import IsrChannel, IsrManager, leader_epoch_start_offset
from .lifecycle import DEFAULT_DUPLICATE_TIMEOUT_S, DEFAULT_HEARTBEAT_INTERVAL_MS, BrokerLifecycle, LifecycleChannel
from .partition import monotonic_ms
from .replica_fetcher import ReplicaFetcherManager
from .replica_manager import ReplicaManager

log = logging.getLogger(__name__)

HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS = 5_000
"""How often the high watermarks are checkpointed (Kafka's ``replica.high.watermark.checkpoint.interval.ms``)."""
REGISTRATION_VISIBLE_TIMEOUT_S = 10.0
"""How long ``start`` waits for the broker's own registration to reach its image before listening anyway."""
CLUSTER_ID_REPORT_S = 5.0
"""How often a broker still waiting for the controllers to commit a cluster id says so."""

CommitListener = Callable[[MetadataImage, Sequence[MetadataRecord], int], None]


class MetadataSource(Protocol):
    """Where the broker's metadata image comes from (the in-process controller for ``dev``)."""

    @property
    def image(self) -> MetadataImage:
        """The latest committed image."""
        ...

    def add_listener(self, listener: CommitListener) -> None:
        """Call ``listener(image, records, first_offset)`` on the event loop for each committed batch."""
        ...


class BrokerController(ControllerChannel, LifecycleChannel, IsrChannel, Protocol):
    """Everything a broker asks of the active controller: administration, registration, heartbeats and ISR
    changes."""


class Broker:
    """One broker: serves produce/fetch for the partitions it leads and answers metadata and admin requests."""

    def __init__(
        self,
        config: BrokerConfig,
        controller: BrokerController,
        metadata: MetadataSource,
        *,
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
        requested_heartbeat_interval_ms: Callable[[], int | None] = lambda: None,
        shutdown_timeout_s: float = 10.0,
        duplicate_timeout_s: float = DEFAULT_DUPLICATE_TIMEOUT_S,
    ) -> None:
        self.config = config.validate()
        self.cluster_id: str | None = None
        """The metadata image's cluster id, once ``start`` has it."""
        self.controller = controller
        self.metadata = metadata
        self.log_manager = LogManager(config.logs_dir, config.log_defaults)  # locks the data dir first
        self.incarnation_id = uuid.uuid4().hex
        self.lifecycle = BrokerLifecycle(
            controller,
            node_id=config.node_id,
            incarnation_id=self.incarnation_id,
            previous_incarnation_id=replace_incarnation(config.data_dir, self.incarnation_id),
            metadata_offset=lambda: self.metadata.image.offset,
            heartbeat_interval_ms=heartbeat_interval_ms,
            requested_interval_ms=requested_heartbeat_interval_ms,
            shutdown_timeout_s=shutdown_timeout_s,
            duplicate_timeout_s=duplicate_timeout_s,
        )
        self.replicas = ReplicaManager(config.node_id, self.log_manager, config.log_defaults)
        self.idle_poll = idle_poll(config.idle_poll_us)
        self.replica_fetchers = ReplicaFetcherManager(config.node_id, idle_poll=self.idle_poll)
        self.replicas.on_partitions_changed = self.replica_fetchers.update
        self.server: RequestServer | None = None
        self.address: tuple[str, int] | None = None
        self._image_waiters: list[tuple[Callable[[MetadataImage], bool], asyncio.Future[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._replicas_follow_image = False

    async def start(self) -> tuple[str, int]:
        """Join the cluster, recover local partitions, register with the controller, start listening and
        heartbeating; returns the address. The metadata source should have caught up before (the broker
        serves its image).

        Joining waits for the image's cluster id and raises ``InconsistentClusterIdError`` (or
        ``InvalidConfigError`` for another node id) if the data dir belongs elsewhere. Registration comes
        before listening, so that once the broker answers, the controller counts it as live; only a broker
        on port 0 without an advertised port listens first (its port is known once bound).
        """
        config = self.config
        self.metadata.add_listener(self._on_commit)
        cluster_id = await self._join_cluster()
        image = self.metadata.image
        self.replicas.apply_image(image)
        self.replicas.remove_strays(image)
        self._replicas_follow_image = True
        api = BrokerApi(
            node_id=config.node_id,
            cluster_id=cluster_id,
            replicas=self.replicas,
            controller=self.controller,
            image=lambda: self.metadata.image,
            wait_for_image=self.wait_for_image,
            fetch_max_wait_ms_limit=config.fetch_max_wait_ms_limit,
            broker_addresses=self._live_brokers,
        )
        self.server = RequestServer(
            api.handlers(),
            max_frame_bytes=config.socket_request_max_bytes,
            max_in_flight=config.max_in_flight_requests_per_connection,
            idle_poll=self.idle_poll,
        )
        host, port = config.advertised
        if not port:
            self.address = await self.server.start(config.listen_host, config.listen_port)
            port = self.address[1]
        await self.lifecycle.register(host, port)
        epoch = self.lifecycle.broker_epoch
        if not await self.wait_for_image(lambda image: image.offset >= epoch, REGISTRATION_VISIBLE_TIMEOUT_S):
            log.warning("broker %d: own registration not in the metadata image yet", config.node_id)
        if self.address is None:
            self.address = await self.server.start(config.listen_host, config.listen_port)
        self.lifecycle.start_heartbeats()
        self._tasks = [
            asyncio.create_task(self._every(config.log_retention_check_interval_ms, self._apply_retention)),
            asyncio.create_task(self._every(config.log_flush_scheduler_interval_ms, self._flush_due)),
            asyncio.create_task(self._every(HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS, self._checkpoint_high_watermarks)),
            asyncio.create_task(self._isr_manager().run(), name="isr-manager"),
        ]
        log.info("broker %d listening on %s:%d", config.node_id, *self.address)
        return self.address

    async def _join_cluster(self) -> str:
        """The image's cluster id, once the controllers have committed one, checked against the data dir."""
        while not await self.wait_for_image(lambda image: image.cluster_id is not None, CLUSTER_ID_REPORT_S):
            log.warning("broker %d: waiting for the controllers to commit a cluster id", self.config.node_id)
        cluster_id = self.metadata.image.cluster_id
        assert cluster_id is not None
        ensure_meta_properties(self.config.data_dir, cluster_id, self.config.node_id)
        self.cluster_id = cluster_id
        return cluster_id

    def _isr_manager(self) -> IsrManager:
        return IsrManager(
            self.config.node_id,
            self.controller,
            self.replicas.partitions.values,
            lambda: self.lifecycle.broker_epoch,
            leader_epoch_start_offset,  # type: ignore[arg-type]
            lambda: {broker.node_id for broker in self.metadata.image.live_brokers()},
            lag_time_max_ms=self.config.replica_lag_time_max_ms,
            clock_ms=monotonic_ms,
        )

    def _live_brokers(self) -> list[BrokerInfo]:
        return [
            BrokerInfo(b.node_id, b.host, b.port)
            for b in sorted(self.metadata.image.brokers.values(), key=lambda b: b.node_id)
            if not b.fenced
        ]

    def _on_commit(self, image: MetadataImage, records: Sequence[MetadataRecord], first_offset: int) -> None:
        if self._replicas_follow_image:  # a snapshot (no records) or a broker change: look at everything
            self.replicas.apply_image(image, topics_touched(records) if records else None)
        if self._image_waiters:
            waiting = []
            for predicate, future in self._image_waiters:
                if future.done():
                    continue
                if predicate(image):
                    future.set_result(None)
                else:
                    waiting.append((predicate, future))
            self._image_waiters = waiting

    async def wait_for_image(self, predicate: Callable[[MetadataImage], bool], timeout: float) -> bool:
        """Wait until the broker's image satisfies ``predicate``; False if ``timeout`` seconds pass first."""
        if predicate(self.metadata.image):
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._image_waiters.append((predicate, future))
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return False
        return True

    async def _every(self, interval_ms: int, action: Callable[[int], object]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                action(int(time.time() * 1000))
            except Exception:
                log.exception("background task %s failed", getattr(action, "__name__", action))

    def _apply_retention(self, now_ms: int) -> None:
        deleted = self.log_manager.apply_retention(now_ms)
        if deleted:
            log.info("retention deleted %d segment(s)", deleted)

    def _checkpoint_high_watermarks(self, now_ms: int) -> None:
        self.replicas.checkpoint_high_watermarks()

    def _flush_due(self, now_ms: int) -> None:
        self.log_manager.flush_due(now_ms)

    async def controlled_shutdown(self) -> bool:
        """Ask the controller to move leadership off this broker (bounded); True if it agreed. Call ``stop()`` after."""
        return await self.lifecycle.controlled_shutdown()

    async def stop(self) -> None:
        """Stop heartbeating and serving, flush and close every log."""
        await self.lifecycle.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.close()
        await self.replica_fetchers.close()
        if self.idle_poll is not None:
            self.idle_poll.stop()
        self.replicas.close()
        self.log_manager.close()
        log.info("broker %d stopped", self.config.node_id)
