"""The broker's life with the controller: registration, heartbeats and controlled shutdown.

At start the broker registers (node id, listener, an incarnation id new for every process start, and
the incarnation that used its data dir before, which the data dir's lock proves gone), retrying until
the quorum answers. ``DuplicateBrokerRegistrationError`` (another live process holds
the node id) is retried only until the previous incarnation's session must have expired (a broker
restarted after ``kill -9``, or after a restart of the whole cluster, meets its own predecessor),
then it is fatal. Then it heartbeats every ``heartbeat_interval_ms`` (or at the shorter interval the
controller asks for, when ``requested_interval_ms`` says one) with its metadata offset,
so the controller can unfence it once it has caught up; a heartbeat refused because the controller
does not know this registration (``StaleBrokerEpochError``, ``BrokerIdNotRegisteredError``) leads to
a new registration.

Controlled shutdown: heartbeats with ``want_shutdown`` until the controller answers
``should_shutdown`` (it has moved leadership off the broker), bounded by ``shutdown_timeout_s``.

Event loop thread only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from raftkafka.controller.brokers import HeartbeatReply
from raftkafka.controller.config import DEFAULT_HEARTBEAT_INTERVAL_MS
from raftkafka.errors import (
    BrokerIdNotRegisteredError,
    DuplicateBrokerRegistrationError,
    RaftKafkaError,
    StaleBrokerEpochError,
)

log = logging.getLogger(__name__)

MIN_HEARTBEAT_INTERVAL_MS = 10
DEFAULT_DUPLICATE_TIMEOUT_S = 30.0
"""How long a registration refused as a duplicate is retried: longer than the controllers' session timeout."""


class LifecycleChannel(Protocol):
    """The controller operations of a broker's lifecycle (``RemoteController``, or the in-process controller)."""

    async def register_broker(
        self, node_id: int, host: str, port: int, incarnation_id: str, previous_incarnation_id: str | None = None
    ) -> int:
        """Register this broker process and return its broker epoch (``previous_incarnation_id``: its data
        dir's previous process, known to be gone)."""
        ...

    async def heartbeat(
        self, node_id: int, broker_epoch: int, metadata_offset: int, want_shutdown: bool
    ) -> HeartbeatReply:
        """Keep the broker's session alive; the reply says whether it is fenced or may shut down."""
        ...


class BrokerLifecycle:
    """Registration, heartbeats and controlled shutdown of one broker process."""

    def __init__(
        self,
        channel: LifecycleChannel,
        *,
        node_id: int,
        incarnation_id: str,
        previous_incarnation_id: str | None = None,
        metadata_offset: Callable[[], int],
        heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS,
        requested_interval_ms: Callable[[], int | None] = lambda: None,
        shutdown_timeout_s: float = 10.0,
        duplicate_timeout_s: float = DEFAULT_DUPLICATE_TIMEOUT_S,
        retry_backoff_max_s: float = 1.0,
    ) -> None:
        self._channel = channel
        self.node_id = node_id
        self.incarnation_id = incarnation_id
        self.previous_incarnation_id = previous_incarnation_id
        self._metadata_offset = metadata_offset
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._requested_interval_ms = requested_interval_ms
        self._shutdown_timeout_s = shutdown_timeout_s
        self._duplicate_timeout_s = duplicate_timeout_s
        self._retry_backoff_max_s = retry_backoff_max_s
        self._listener: tuple[str, int] | None = None
        self.broker_epoch: int | None = None
        """The epoch of the current registration; None before it."""
        self.fenced = True
        """As of the last registration or heartbeat answer."""
        self._heartbeats: asyncio.Task[None] | None = None

    @property
    def _interval_s(self) -> float:
        requested = self._requested_interval_ms()
        interval = self.heartbeat_interval_ms if requested is None else min(requested, self.heartbeat_interval_ms)
        return max(interval, MIN_HEARTBEAT_INTERVAL_MS) / 1000

    async def register(self, host: str, port: int) -> None:
        """Register ``host:port`` as this broker's listener, retrying until the controller answers.

        A refusal as a duplicate is retried for ``duplicate_timeout_s`` (the predecessor of a restarted
        broker holds a session until it expires), then raised; other non-retriable errors propagate at once.
        """
        self._listener = (host, port)
        backoff = 0.05
        first_refusal: float | None = None
        while True:
            try:
                self.broker_epoch = await self._channel.register_broker(
                    self.node_id, host, port, self.incarnation_id, self.previous_incarnation_id
                )
                break
            except DuplicateBrokerRegistrationError as exc:
                now = time.monotonic()
                first_refusal = now if first_refusal is None else first_refusal
                if now - first_refusal >= self._duplicate_timeout_s:
                    raise
                log.warning("broker %d registration refused (%s); retrying until its session ends", self.node_id, exc)
            except RaftKafkaError as exc:
                if not exc.retriable:
                    raise
                log.warning("broker %d registration failed (%s); retrying", self.node_id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._retry_backoff_max_s)
        self.fenced = False  # the controller registers a broker unfenced
        log.info("broker %d registered at %s:%d with epoch %d", self.node_id, host, port, self.broker_epoch)

    def start_heartbeats(self) -> None:
        """Heartbeat in the background until ``stop()`` or ``controlled_shutdown()``."""
        if self._heartbeats is None:
            self._heartbeats = asyncio.get_running_loop().create_task(self._heartbeat_loop(), name="heartbeats")

    async def _heartbeat_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self._heartbeat(want_shutdown=False)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broker %d heartbeat failed", self.node_id)
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def _heartbeat(self, *, want_shutdown: bool) -> HeartbeatReply | None:
        """One heartbeat, bounded by the interval; None if it failed (logged). Registers again when the
        controller does not know this registration."""
        if self.broker_epoch is None or self._listener is None:
            raise RuntimeError("heartbeat before registration")
        try:
            async with asyncio.timeout(self._interval_s):
                result = await self._channel.heartbeat(
                    self.node_id, self.broker_epoch, self._metadata_offset(), want_shutdown
                )
        except (StaleBrokerEpochError, BrokerIdNotRegisteredError) as exc:
            log.warning("broker %d heartbeat refused (%s); registering again", self.node_id, exc)
            await self.register(*self._listener)
            return None
        except TimeoutError:
            log.warning("broker %d heartbeat unanswered within %gs", self.node_id, self._interval_s)
            return None
        except RaftKafkaError as exc:
            if not exc.retriable:
                raise
            log.warning("broker %d heartbeat failed: %s", self.node_id, exc)
            return None
        if result.fenced != self.fenced:
            log.info("broker %d is now %s", self.node_id, "fenced" if result.fenced else "unfenced")
        self.fenced = result.fenced
        return result

    async def controlled_shutdown(self) -> bool:
        """Ask the controller to move leadership off this broker; True once it agreed, False after the timeout."""
        await self._stop_heartbeats()
        if self.broker_epoch is None:
            return True
        pause = min(self._interval_s, 0.2)
        try:
            async with asyncio.timeout(self._shutdown_timeout_s):
                while True:
                    result = await self._heartbeat(want_shutdown=True)
                    if result is not None and result.should_shutdown:
                        log.info("broker %d: controlled shutdown granted", self.node_id)
                        return True
                    await asyncio.sleep(pause)
        except TimeoutError:
            log.warning("broker %d: no controlled shutdown within %gs", self.node_id, self._shutdown_timeout_s)
        except RaftKafkaError as exc:  # registering again was refused: nothing left to hand over
            log.warning("broker %d: controlled shutdown failed: %s", self.node_id, exc)
        return False

    async def _stop_heartbeats(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            await asyncio.gather(self._heartbeats, return_exceptions=True)
            self._heartbeats = None

    async def stop(self) -> None:
        """Stop heartbeating (the controller fences the broker after its session timeout)."""
        await self._stop_heartbeats()
