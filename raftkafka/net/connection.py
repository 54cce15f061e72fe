"""A client connection: pipelined requests over one socket, responses matched by correlation id.

Runs on one event loop; not thread-safe. A request's answer goes to a future (``send``) or straight to a
callback called from ``data_received`` (``send_with_callback``: no task and no loop iteration between the
bytes arriving and the caller's code). The connection fails every pending request with ``NetworkError``
when the socket closes. Request timeouts cost no timer per request: each request given one records its
deadline, and one timer per connection, armed for the earliest, fails those past it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

from raftkafka.errors import BrokerNotAvailableError, NetworkError, RequestTimedOutError, from_wire
from raftkafka.net.api import ApiKey
from raftkafka.net.frame import FrameDecoder, FrameError, decode_response, request_buffers
from raftkafka.net.idle_poll import IdlePoll

log = logging.getLogger(__name__)

DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024
DEADLINE_SLACK_S = 0.001
"""Deadlines this close count as passed when the timer fires (loop timers may fire a little early)."""

ResponseCallback = Callable[[Any, Exception | None], None]
"""Gets ``(body, None)`` for an answer, ``(None, error)`` for an error answer or a failed request."""


class _CallbackReceiver:
    """Stands where a future would among the pending requests and hands the answer to a callback at once."""

    __slots__ = ("_callback", "_done")

    def __init__(self, callback: ResponseCallback) -> None:
        self._callback = callback
        self._done = False

    def done(self) -> bool:
        return self._done

    def set_result(self, body: Any) -> None:
        self._call(body, None)

    def set_exception(self, exc: Exception) -> None:
        self._call(None, exc)

    def _call(self, body: Any, exc: Exception | None) -> None:
        self._done = True
        try:
            self._callback(body, exc)
        except Exception:  # the protocol must keep reading the connection's other answers
            log.exception("a response callback failed")


class Connection(asyncio.Protocol):
    """One TCP connection to a broker or controller. Open with ``await Connection.open(host, port)``."""

    def __init__(self, address: str, max_frame_bytes: int, idle_poll: IdlePoll | None = None) -> None:
        self.address = address
        self._idle_poll = idle_poll
        self._decoder = FrameDecoder(max_frame_bytes)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: dict[int, asyncio.Future[Any] | _CallbackReceiver] = {}
        self._deadlines: dict[int, tuple[float, int, float]] = {}
        """Correlation id → (deadline, API key, timeout) of the pending requests sent with a timeout."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
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
        idle_poll: IdlePoll | None = None,
    ) -> Connection:
        """Connect to ``host:port`` within ``timeout`` seconds, else ``BrokerNotAvailableError``; with ``idle_poll``
        the loop keeps polling for a while after each request sent and each answer read."""
        loop = asyncio.get_running_loop()
        address = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(lambda: cls(address, max_frame_bytes, idle_poll), host, port)
        except (OSError, TimeoutError) as exc:
            raise BrokerNotAvailableError(f"cannot connect to {address}: {exc or 'timed out'}") from None
        return conn

    # asyncio.Protocol callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass asyncio's
        self._loop = asyncio.get_running_loop()

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
        if self._idle_poll is not None:
            self._idle_poll.kick()
        try:
            for payload in self._decoder.feed(data):
                correlation_id, error_code, body = decode_response(payload)
                future = self._pending.pop(correlation_id, None)
                if self._deadlines:
                    self._deadlines.pop(correlation_id, None)
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

    def send(self, api_key: int, version: int, body: Any, *, timeout: float | None = None) -> asyncio.Future[Any]:
        """Send a request now; the future resolves to the response body or fails with its error.

        With ``timeout``, a request unanswered after that many seconds fails with ``RequestTimedOutError`` and
        closes the connection (as Kafka's clients do: its answer may still come, and nothing can tell).
        """
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._transport is None:
            future.set_exception(self._closed_error or NetworkError(f"connection to {self.address} is closed"))
            return future
        self._send(api_key, version, body, future, timeout)
        return future

    def send_with_callback(
        self, api_key: int, version: int, body: Any, callback: ResponseCallback, *, timeout: float | None = None
    ) -> None:
        """Send a request now; ``callback(body, None)`` or ``callback(None, error)`` is called once, directly
        from the connection's protocol callbacks (later in this loop iteration at the earliest, never from
        inside this call). It must not block; an exception it raises is logged. ``timeout`` as in ``send``."""
        if self._transport is None:
            error = self._closed_error or NetworkError(f"connection to {self.address} is closed")
            (self._loop or asyncio.get_running_loop()).call_soon(callback, None, error)
            return
        self._send(api_key, version, body, _CallbackReceiver(callback), timeout)

    def _send(
        self,
        api_key: int,
        version: int,
        body: Any,
        receiver: asyncio.Future[Any] | _CallbackReceiver,
        timeout: float | None,
    ) -> None:
        correlation_id = self._next_id
        self._next_id = (correlation_id + 1) & 0x7FFFFFFF
        self._pending[correlation_id] = receiver
        if timeout is not None:
            deadline = cast(asyncio.AbstractEventLoop, self._loop).time() + timeout
            self._deadlines[correlation_id] = (deadline, api_key, timeout)
            if self._timer is None or deadline < self._timer_at:
                self._arm(deadline)
        self._write_request(api_key, version, correlation_id, body)
        if self._idle_poll is not None:
            self._idle_poll.kick()

    def send_oneway(self, api_key: int, version: int, body: Any) -> None:
        """Send a request that gets no response (produce with acks=0)."""
        if self._transport is None:
            raise self._closed_error or NetworkError(f"connection to {self.address} is closed")
        correlation_id = self._next_id
        self._next_id = (correlation_id + 1) & 0x7FFFFFFF
        self._write_request(api_key, version, correlation_id, body)

    def _write_request(self, api_key: int, version: int, correlation_id: int, body: Any) -> None:
        cast(asyncio.Transport, self._transport).writelines(request_buffers(api_key, version, correlation_id, body))

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

    # request timeouts -----------------------------------------------------------------------------
    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = cast(asyncio.AbstractEventLoop, self._loop).call_at(deadline, self._expire)

    def _expire(self) -> None:
        """Fail the requests past their deadline with ``RequestTimedOutError`` and close the connection; else
        re-arm the timer for the earliest deadline left."""
        self._timer = None
        deadlines = self._deadlines
        now = cast(asyncio.AbstractEventLoop, self._loop).time() + DEADLINE_SLACK_S
        expired = [correlation_id for correlation_id, entry in deadlines.items() if entry[0] <= now]
        timed_out = []
        for correlation_id in expired:
            _, api_key, timeout = deadlines.pop(correlation_id)
            receiver = self._pending.pop(correlation_id, None)
            if receiver is not None and not receiver.done():  # a future its caller cancelled just goes
                message = f"{_api_name(api_key)} request to {self.address} unanswered after {timeout:g} s"
                timed_out.append((receiver, message))
        if timed_out:
            log.debug("closing the connection to %s: %s", self.address, timed_out[0][1])
            for receiver, message in timed_out:
                receiver.set_exception(RequestTimedOutError(message))
            self.close()
        elif deadlines:
            self._arm(min(entry[0] for entry in deadlines.values()))

    def _fail_all(self, exc: Exception) -> None:
        self._closed_error = self._closed_error or exc
        if self._transport is not None and exc is not None and not self._transport.is_closing():
            self._transport.abort()
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadlines.clear()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)
        self.resume_writing()


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return f"API {api_key}"
