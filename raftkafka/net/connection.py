"""A client connection: pipelined requests over one socket, responses matched by correlation id.

Runs on one event loop; not thread-safe. Every request gets a future; the connection fails every pending
future with ``NetworkError`` when the socket closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from raftkafka.errors import BrokerNotAvailableError, NetworkError, from_wire
from raftkafka.net.frame import FrameDecoder, FrameError, decode_response, encode_request

log = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class Connection(asyncio.Protocol):
    """One TCP connection to a broker or controller. Open with ``await Connection.open(host, port)``."""

    def __init__(self, address: str, max_frame_bytes: int) -> None:
        self.address = address
        self._decoder = FrameDecoder(max_frame_bytes)
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._writable: asyncio.Future[None] | None = None
        self._closed_error: Exception | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        max_frame_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Connection:
        """Connect to ``host:port`` within ``timeout`` seconds, else ``BrokerNotAvailableError``."""
        loop = asyncio.get_running_loop()
        address = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: cls(address, max_frame_bytes), host, port)
        except (OSError, TimeoutError) as exc:
            raise BrokerNotAvailableError(f"cannot connect to {address}: {exc or 'timed out'}") from None
        return conn

    # asyncio.Protocol callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(NetworkError(f"connection to {self.address} closed" + (f": {exc}" if exc else "")))

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            for payload in self._decoder.feed(data):
                correlation_id, error_code, body = decode_response(payload)
                future = self._pending.pop(correlation_id, None)
                if future is None or future.done():
                    continue
                if error_code:
                    message = body.get("message") if isinstance(body, dict) else None
                    future.set_exception(from_wire(error_code, message))
                else:
                    future.set_result(body)
        except FrameError as exc:
            log.warning("bad response from %s: %s", self.address, exc)
            self._fail_all(NetworkError(f"bad response from {self.address}: {exc}"))

    # requests -------------------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """True once the socket is closed (by either side)."""
        return self._transport is None

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def send(self, api_key: int, version: int, body: Any) -> asyncio.Future[Any]:
        """Send a request now; the future resolves to the response body or fails with its error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._transport is None:
            future.set_exception(self._closed_error or NetworkError(f"connection to {self.address} is closed"))
            return future
        correlation_id = self._next_id
        self._next_id = (correlation_id + 1) & 0x7FFFFFFF
        self._pending[correlation_id] = future
        self._transport.write(encode_request(api_key, version, correlation_id, body))
        return future

    def send_oneway(self, api_key: int, version: int, body: Any) -> None:
        """Send a request that gets no response (produce with acks=0)."""
        if self._transport is None:
            raise self._closed_error or NetworkError(f"connection to {self.address} is closed")
        correlation_id = self._next_id
        self._next_id = (correlation_id + 1) & 0x7FFFFFFF
        self._transport.write(encode_request(api_key, version, correlation_id, body))

    async def request(self, api_key: int, version: int, body: Any, timeout: float | None = None) -> Any:
        """Send a request and wait for its response body (``TimeoutError`` after ``timeout`` seconds)."""
        future = self.send(api_key, version, body)
        if timeout is None:
            return await future
        async with asyncio.timeout(timeout):
            return await future

    async def wait_writable(self) -> None:
        """Wait while the socket's write buffer is above its high-water mark."""
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def close(self) -> None:
        """Close the socket; pending requests fail with ``NetworkError``."""
        if self._transport is not None:
            self._transport.close()
        self._fail_all(NetworkError(f"connection to {self.address} was closed by the client"))

    def _fail_all(self, exc: Exception) -> None:
        self._closed_error = self._closed_error or exc
        if self._transport is not None and exc is not None and not self._transport.is_closing():
            self._transport.abort()
        self._transport = None
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
        self.resume_writing()
