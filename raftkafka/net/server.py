"""The asyncio request server: frames in, handler calls, frames out, one protocol object per connection.

A handler is ``handler(version, body)`` returning the response body, an awaitable of it, a
``DeferredResponse``, or ``NO_RESPONSE``; it raises a ``RaftKafkaError`` to answer with that error. Handlers
that return a value directly are answered in request order before the next request is read, which keeps
produce requests of one connection in order; awaitables (replicated writes, forwarded requests) are answered
when they finish, multiplexed by correlation id, through a task; a ``DeferredResponse`` (the long-poll
fetch) is answered the moment the handler's own callback completes it, with no task in between. Runs on the
event loop thread only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from functools import partial
from typing import Any, cast

from raftkafka.errors import (
    InvalidRequestError,
    RaftKafkaError,
    RequestTimedOutError,
    UnknownApiError,
    UnknownServerError,
    UnsupportedVersionError,
)
from raftkafka.net.api import SUPPORTED_VERSIONS
from raftkafka.net.frame import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameDecoder,
    FrameError,
    decode_request,
    encode_response,
    response_buffers,
)
from raftkafka.net.idle_poll import IdlePoll

log = logging.getLogger(__name__)

Handler = Callable[[int, Any], Any]
ConnectionId = int

current_connection: ContextVar[ConnectionId] = ContextVar("current_connection", default=0)
"""While a handler runs (and in the tasks it starts), the id of the connection its request came on."""
NO_RESPONSE = object()
"""Returned by a handler for a request that gets no answer (produce with acks=0)."""


class DeferredResponse:
    """A response its handler completes later, from a callback of its own (a long poll's wake-up or timer):
    ``complete(body)`` or ``fail(error)`` writes the answer at once, no task and no loop iteration in between.

    A handler returns one instead of an awaitable. If the connection closes first, ``cancelled`` becomes
    True and ``on_cancel`` (if set) is called, so the handler can drop its timers and waiters; completing a
    cancelled or completed response does nothing. Once done it lets go of its callbacks, so a handler object
    that holds it and is held by ``on_cancel`` is freed at once, not left to the cyclic garbage collector.
    Event loop thread only.
    """

    __slots__ = ("_early", "_reply", "cancelled", "done", "on_cancel")

    def __init__(self) -> None:
        self.done = False
        self.cancelled = False
        self.on_cancel: Callable[[], None] | None = None
        self._reply: Callable[[Any, BaseException | None], None] | None = None  # bound by the server
        self._early: tuple[Any, BaseException | None] | None = None  # completed before the server bound it

    def complete(self, body: Any) -> None:
        """Answer with ``body``."""
        self._finish(body, None)

    def fail(self, error: BaseException) -> None:
        """Answer with ``error`` (a ``RaftKafkaError``'s code, else ``UNKNOWN_SERVER_ERROR``)."""
        self._finish(None, error)

    def _finish(self, body: Any, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        self.on_cancel = None
        reply, self._reply = self._reply, None
        if reply is None:
            self._early = (body, error)
        else:
            reply(body, error)

    def _bind(self, reply: Callable[[Any, BaseException | None], None]) -> None:
        if self._early is not None:
            body, error = self._early
            self._early = None
            reply(body, error)
        elif not self.done:
            self._reply = reply

    def _cancel(self) -> None:
        if self.done:
            return
        self.done = self.cancelled = True
        on_cancel, self.on_cancel, self._reply = self.on_cancel, None, None
        if on_cancel is not None:
            on_cancel()


class _ServerConnection(asyncio.Protocol):
    """One client connection. Reading pauses while too many requests are in flight or writes back up."""

    def __init__(self, server: RequestServer) -> None:
        self._server = server
        self._idle_poll = server.idle_poll
        self.id: ConnectionId = next(server.connection_ids)
        self._decoder = FrameDecoder(server.max_frame_bytes)
        self._transport: asyncio.Transport | None = None
        self._in_flight = 0
        self._write_paused = False
        self._read_paused = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._deferred: set[DeferredResponse] = set()
        self._out: list[bytes] = []  # buffers of answers not yet handed to the transport (see _write)
        self._receiving = False
        self._flush_scheduled = False

    # asyncio.Protocol callbacks -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass asyncio's
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        if self._server.on_connection_lost is not None:
            self._server.on_connection_lost(self.id)
        self._transport = None
        for task in list(self._tasks):
            task.cancel()
        deferred, self._deferred = self._deferred, set()
        for response in deferred:
            response._cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self._idle_poll is not None:
            self._idle_poll.kick()
        try:
            payloads = self._decoder.feed(data)
        except FrameError as exc:
            self._abort(str(exc))
            return
        token = current_connection.set(self.id)
        self._receiving = True
        try:
            for payload in payloads:
                if self._transport is None:
                    return
                self._dispatch(payload)
        finally:
            self._receiving = False
            current_connection.reset(token)
            self._flush()

    # request handling -----------------------------------------------------------------------------
    def _dispatch(self, payload: bytes) -> None:
        try:
            api_key, version, correlation_id, body = decode_request(payload)
        except FrameError as exc:
            if exc.correlation_id is None:
                self._abort(str(exc))
            else:
                self._reply_error(exc.correlation_id, InvalidRequestError(str(exc)))
            return
        handler = self._server.handlers.get(api_key)
        try:
            if handler is None:
                raise UnknownApiError(f"unknown API key {api_key}")
            low, high = SUPPORTED_VERSIONS.get(api_key, (0, -1))
            if not low <= version <= high:
                raise UnsupportedVersionError(f"API {api_key} speaks versions {low}..{high}, not {version}")
            result = handler(version, body)
        except RaftKafkaError as exc:
            self._reply_error(correlation_id, exc)
            return
        except Exception:
            log.exception("handler for API %s failed", api_key)
            self._reply_error(correlation_id, UnknownServerError("internal error; see the server log"))
            return
        if type(result) is dict:  # the common case, checked before the costlier isinstance below
            self._write(encode_response(correlation_id, 0, result))
        elif type(result) is DeferredResponse:
            self._in_flight += 1
            self._update_reading()
            self._deferred.add(result)
            result._bind(partial(self._deferred_done, api_key, correlation_id, result))
        elif isinstance(result, Awaitable):
            self._in_flight += 1
            self._update_reading()
            task = asyncio.ensure_future(self._finish(api_key, correlation_id, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif result is not NO_RESPONSE:
            self._write(*response_buffers(correlation_id, 0, result))

    def _deferred_done(
        self, api_key: int, correlation_id: int, response: DeferredResponse, body: Any, error: BaseException | None
    ) -> None:
        self._deferred.discard(response)
        self._in_flight -= 1
        if error is None:
            self._write(*response_buffers(correlation_id, 0, body))
        else:
            self._reply_error(correlation_id, self._as_error(api_key, error))
        self._update_reading()

    async def _finish(self, api_key: int, correlation_id: int, pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._reply_error(correlation_id, self._as_error(api_key, exc))
        else:
            if result is not NO_RESPONSE:
                self._write(*response_buffers(correlation_id, 0, result))
        finally:
            self._in_flight -= 1
            self._update_reading()

    @staticmethod
    def _as_error(api_key: int, exc: BaseException) -> RaftKafkaError:
        """The error a failed handler answers with."""
        if isinstance(exc, RaftKafkaError):
            return exc
        if isinstance(exc, TimeoutError):
            return RequestTimedOutError(f"API {api_key} request timed out")
        log.error("handler for API %s failed", api_key, exc_info=exc)
        return UnknownServerError("internal error; see the server log")

    def _reply_error(self, correlation_id: int, exc: RaftKafkaError) -> None:
        self._write(encode_response(correlation_id, exc.code, {"message": exc.message}))

    def _write(self, *buffers: bytes) -> None:
        """Write one answer's frame (its ``buffers`` in order). Answers are coalesced into one transport write
        (one ``writev``) per batch: those given while a chunk of requests is being dispatched go out after it, and
        those finishing while other requests of the connection are still in flight go out at the end of the loop
        iteration. A lone answer goes at once."""
        if self._transport is None:
            return
        self._out.extend(buffers)
        if self._receiving or self._flush_scheduled:
            return
        if self._in_flight > 1:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out, self._out = self._out, []
        if out and self._transport is not None:
            if len(out) == 1:
                self._transport.write(out[0])
            else:
                self._transport.writelines(out)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None:
            return
        should_pause = self._write_paused or self._in_flight >= self._server.max_in_flight
        if should_pause != self._read_paused:
            self._read_paused = should_pause
            if should_pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _abort(self, reason: str) -> None:
        if self._transport is not None:
            peer = self._transport.get_extra_info("peername")
            log.info("closing connection from %s: %s", peer, reason)
            self._transport.abort()
            self._transport = None

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RequestServer:
    """A TCP server answering framed requests with ``handlers`` (API key → handler)."""

    def __init__(
        self,
        handlers: Mapping[int, Handler],
        *,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_in_flight: int = 128,
        on_connection_lost: Callable[[ConnectionId], None] | None = None,
        idle_poll: IdlePoll | None = None,
    ) -> None:
        self.handlers = dict(handlers)
        self.idle_poll = idle_poll
        """Kicked by every request received: the loop keeps polling for the next one for a while."""
        self.max_frame_bytes = max_frame_bytes
        self.max_in_flight = max_in_flight
        self.on_connection_lost = on_connection_lost
        self.connection_ids = itertools.count(1)
        self.connections: set[_ServerConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0 picks a free one); returns the bound address."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), host, port, reuse_address=True, backlog=1024
        )
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
