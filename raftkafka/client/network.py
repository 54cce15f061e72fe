"""The client's view of the cluster and its way of talking to it: connections plus the metadata cache.

Shared by the producer, consumer and admin. Event loop thread only. Metadata is fetched on start,
on demand (``wait_for_topics``) and in the background after errors that mean it is stale
(``request_refresh``: not leader, unknown topic, no leader, a lost connection), at most once per
``retry_backoff`` seconds. Requests go out as ``request`` (awaited) or ``send`` (answer handed to a callback
by the connection itself: the producer's and the fetcher's hot path, with no task per request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from raftkafka.client.bootstrap import parse_bootstrap
from raftkafka.client.cluster import ClusterMetadata
from raftkafka.client.connections import ConnectionPool
from raftkafka.errors import (
    BrokerNotAvailableError,
    ClientClosedError,
    KafkaTimeoutError,
    LeaderNotAvailableError,
    RaftKafkaError,
    RequestTimedOutError,
    UnknownTopicError,
)
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection, ResponseCallback
from raftkafka.net.idle_poll import idle_poll

log = logging.getLogger(__name__)

API_VERSION = 0
Address = tuple[str, int]


class ClientNetwork:
    """Connections to the cluster's nodes and the metadata that says which node to ask."""

    def __init__(
        self,
        bootstrap: str | Sequence[str],
        *,
        request_timeout_ms: float,
        retry_backoff_ms: float,
        connect_timeout_ms: float = 10_000,
        idle_poll_us: int = 0,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap)
        self.request_timeout = request_timeout_ms / 1000
        self.retry_backoff = retry_backoff_ms / 1000
        self.cluster = ClusterMetadata()
        self.pool = ConnectionPool(connect_timeout=connect_timeout_ms / 1000, idle_poll=idle_poll(idle_poll_us))
        self.topics: set[str] = set()
        """Topics whose metadata every refresh fetches."""
        self.listeners: list[Callable[[], None]] = []
        """Called after every metadata update."""
        self._last_refresh = 0.0
        self._refresh_task: asyncio.Task[None] | None = None
        self._connecting: set[asyncio.Task[None]] = set()  # ``send``s waiting for their connection to open
        self._closed = False

    def address(self, node_id: int) -> Address | None:
        """The client listener of a node, if the metadata knows it."""
        broker = self.cluster.brokers.get(node_id)
        return (broker.host, broker.port) if broker is not None else None

    async def any_connection(self) -> Connection:
        """An open connection to any node: an existing one, else the known brokers, else the bootstrap list."""
        conn = self.pool.any_ready()
        if conn is not None:
            return conn
        candidates = [(b.host, b.port) for b in self.cluster.brokers.values()]
        candidates += [a for a in self.bootstrap if a not in candidates]
        failures = []
        for address in candidates:
            try:
                return await self.pool.get(address)
            except BrokerNotAvailableError as exc:
                failures.append(str(exc.message))
        raise BrokerNotAvailableError("no broker reachable (" + "; ".join(failures) + ")")

    async def request(
        self, api: ApiKey, body: Any, *, address: Address | None = None, timeout: float | None = None
    ) -> Any:
        """Send one request to ``address`` (any node when None) and return its response body.

        A request unanswered within the request timeout closes its connection (as Kafka does, since the
        connection can no longer be trusted) and raises ``RequestTimedOutError``.
        """
        conn = self.pool.ready(address) if address is not None else self.pool.any_ready()
        if conn is None:
            conn = await (self.pool.get(address) if address is not None else self.any_connection())
        return await conn.send(api, API_VERSION, body, timeout=self.request_timeout if timeout is None else timeout)

    def send(
        self, api: ApiKey, body: Any, callback: ResponseCallback, *, address: Address, timeout: float | None = None
    ) -> None:
        """Send one request to ``address``; its answer goes to ``callback(body, None)``, a failure (the errors
        of ``request``, ``ClientClosedError`` when the network closes first) to ``callback(None, error)``.

        The callback is called once, from the connection's own callbacks (never from inside this call), so
        nothing stands between the answer arriving and the caller's code; with no open connection to
        ``address``, one is opened first in a task.
        """
        timeout = self.request_timeout if timeout is None else timeout
        conn = self.pool.ready(address)
        if conn is not None:
            conn.send_with_callback(api, API_VERSION, body, callback, timeout=timeout)
            return
        task = asyncio.get_running_loop().create_task(self._connect_and_send(api, body, callback, address, timeout))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect_and_send(
        self, api: ApiKey, body: Any, callback: ResponseCallback, address: Address, timeout: float
    ) -> None:
        try:
            conn = await self.pool.get(address)
        except RaftKafkaError as exc:
            callback(None, exc)
            return
        except asyncio.CancelledError:
            callback(None, ClientClosedError("the client was closed before the request was sent"))
            raise
        conn.send_with_callback(api, API_VERSION, body, callback, timeout=timeout)

    async def refresh(self, topics: Iterable[str] | None = None, *, all_topics: bool = False) -> dict[str, Any]:
        """Fetch metadata for ``topics`` (default: the tracked ``topics``; every topic with ``all_topics``);
        returns the per-topic errors."""
        wanted = None if all_topics else sorted(self.topics if topics is None else topics)
        self._last_refresh = time.monotonic()
        body = await self.request(ApiKey.METADATA, {"topics": wanted, "include_config": all_topics})
        errors = self.cluster.update(body, all_topics=all_topics)
        for listener in self.listeners:
            listener()
        return errors

    def request_refresh(self) -> None:
        """Refresh the metadata soon, in the background (no more than once per backoff interval)."""
        if self._closed:
            return
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.get_running_loop().create_task(self._background_refresh())

    async def _background_refresh(self) -> None:
        delay = self._last_refresh + self.retry_backoff - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            await self.refresh()
        except RaftKafkaError as exc:
            log.debug("metadata refresh failed: %s", exc)
            self._last_refresh = time.monotonic()
            for listener in self.listeners:
                listener()

    async def wait_for_topics(self, topics: Iterable[str], timeout: float) -> None:
        """Wait until every one of ``topics`` is known and each of its partitions has a leader.

        Retries with backoff; after ``timeout`` seconds raises the last error seen (``UnknownTopicError``,
        ``LeaderNotAvailableError``, ``BrokerNotAvailableError``) or ``KafkaTimeoutError``.
        """
        wanted = set(topics)
        self.topics |= wanted
        deadline = time.monotonic() + timeout
        while True:
            last: RaftKafkaError | None = None
            try:
                errors = await self.refresh()
                for topic in sorted(wanted):
                    if topic in errors:
                        last = errors[topic]
                        break
                    description = self.cluster.topics.get(topic)
                    if description is None:
                        last = UnknownTopicError(f"topic {topic!r} is not in the metadata")
                        break
                    if any(p.leader < 0 for p in description.partitions):
                        last = LeaderNotAvailableError(f"a partition of {topic!r} has no leader yet")
                        break
                else:
                    return
                if not last.retriable:
                    raise last
            except RaftKafkaError as exc:
                if not exc.retriable:
                    raise
                last = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if isinstance(last, RequestTimedOutError):
                    raise KafkaTimeoutError(f"no metadata for {sorted(wanted)} within {timeout:g} s: {last}")
                raise last.__class__(f"{last.message} (gave up after {timeout:g} s)")
            await asyncio.sleep(min(self.retry_backoff, remaining))

    async def close(self) -> None:
        """Stop background work and close every connection (failing the requests still pending)."""
        self._closed = True
        tasks = [task for task in (self._refresh_task, *self._connecting) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pool.close()
