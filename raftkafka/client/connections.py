"""One connection per node, opened lazily on first use and reopened after it closes.

Event loop thread only. Opening is single-flight: concurrent callers for one address share one attempt.
"""

from __future__ import annotations

import asyncio
import logging

from raftkafka.net.connection import Connection
from raftkafka.net.idle_poll import IdlePoll

log = logging.getLogger(__name__)


class ConnectionPool:
    """Connections keyed by ``(host, port)``."""

    def __init__(self, *, connect_timeout: float, idle_poll: IdlePoll | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.idle_poll = idle_poll
        self._connections: dict[tuple[str, int], Connection] = {}
        self._opening: dict[tuple[str, int], asyncio.Future[Connection]] = {}
        self._closed = False

    def ready(self, address: tuple[str, int]) -> Connection | None:
        """The open connection to ``address``, if there is one (no I/O)."""
        conn = self._connections.get(address)
        return conn if conn is not None and not conn.closed else None

    def any_ready(self) -> Connection | None:
        """Any open connection."""
        for conn in self._connections.values():
            if not conn.closed:
                return conn
        return None

    async def get(self, address: tuple[str, int]) -> Connection:
        """The connection to ``address``, opening it if needed (``BrokerNotAvailableError`` if that fails)."""
        conn = self._connections.get(address)
        if conn is not None and not conn.closed:
            return conn
        opening = self._opening.get(address)
        if opening is None:
            opening = self._opening[address] = asyncio.ensure_future(self._open(address))
            opening.add_done_callback(_retrieve)  # failures are reported to every waiter, never logged as lost
        return await asyncio.shield(opening)

    async def _open(self, address: tuple[str, int]) -> Connection:
        try:
            conn = await Connection.open(*address, timeout=self.connect_timeout, idle_poll=self.idle_poll)
        finally:
            del self._opening[address]
        if self._closed:
            conn.close()
        else:
            self._connections[address] = conn
            log.debug("connected to %s:%d", *address)
        return conn

    def disconnect(self, address: tuple[str, int]) -> None:
        """Close the connection to ``address`` (its pending requests fail with ``NetworkError``)."""
        conn = self._connections.pop(address, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close every connection."""
        self._closed = True
        for conn in self._connections.values():
            conn.close()
        self._connections.clear()
        if self.idle_poll is not None:
            self.idle_poll.stop()


def _retrieve(future: asyncio.Future[Connection]) -> None:
    if not future.cancelled():
        future.exception()
