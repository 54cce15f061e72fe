"""The request server and client connection over real loopback sockets, with small test handlers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from raftkafka.errors import (
    InvalidRequestError,
    NetworkError,
    RequestTimedOutError,
    UnknownApiError,
    UnknownServerError,
    UnsupportedVersionError,
)
from raftkafka.net.api import ApiKey, field
from raftkafka.net.connection import Connection
from raftkafka.net.frame import INLINE_LIMIT, LENGTH, BulkBody, FrameDecoder, decode_response, encode_request
from raftkafka.net.server import NO_RESPONSE, DeferredResponse, RequestServer


def _echo(version: int, body: Any) -> Any:
    return {"echo": field(body, "value", int)}


async def _slow(version: int, body: Any) -> Any:
    await asyncio.sleep(field(body, "delay", float))
    return {"done": True}


def _boom(version: int, body: Any) -> Any:
    raise RuntimeError("bug")


def _silent(version: int, body: Any) -> Any:
    return NO_RESPONSE


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, int]]:
    srv = RequestServer(
        {ApiKey.METADATA: _echo, ApiKey.FETCH: _slow, ApiKey.PRODUCE: _boom, ApiKey.LIST_OFFSETS: _silent},
        max_frame_bytes=64 * 1024,
    )
    address = await srv.start("127.0.0.1", 0)
    yield address
    await srv.close()


async def test_pipelined_requests_are_answered_out_of_order(server: tuple[str, int]) -> None:
    conn = await Connection.open(*server)
    slow = conn.send(ApiKey.FETCH, 0, {"delay": 0.2})
    fast = [conn.send(ApiKey.METADATA, 0, {"value": i}) for i in range(100)]
    assert [(await f)["echo"] for f in fast] == list(range(100))
    assert not slow.done()
    assert await slow == {"done": True}
    conn.close()


async def test_errors_are_answered_and_connection_survives(server: tuple[str, int]) -> None:
    conn = await Connection.open(*server)
    with pytest.raises(UnknownApiError):
        await conn.request(99, 0, {})
    with pytest.raises(UnsupportedVersionError):
        await conn.request(ApiKey.METADATA, 7, {"value": 1})
    with pytest.raises(InvalidRequestError, match="value"):
        await conn.request(ApiKey.METADATA, 0, {"value": "one"})
    with pytest.raises(InvalidRequestError):
        await conn.request(ApiKey.METADATA, 0, [1, 2])
    with pytest.raises(UnknownServerError):
        await conn.request(ApiKey.PRODUCE, 0, {})
    conn.send_oneway(ApiKey.LIST_OFFSETS, 0, {})
    assert await conn.request(ApiKey.METADATA, 0, {"value": 5}) == {"echo": 5}
    conn.close()


async def test_callbacks_get_answers_and_errors_once(server: tuple[str, int]) -> None:
    conn = await Connection.open(*server)
    got: list[tuple[Any, Any]] = []
    done = asyncio.get_running_loop().create_future()

    def collect(body: Any, error: Exception | None) -> None:
        got.append((body, type(error) if error else None))
        if len(got) == 3:
            done.set_result(None)

    conn.send_with_callback(ApiKey.METADATA, 0, {"value": 1}, collect)
    conn.send_with_callback(ApiKey.PRODUCE, 0, {}, collect)
    conn.send_with_callback(ApiKey.METADATA, 0, {"value": 2}, collect, timeout=5.0)
    assert got == []  # never from inside the call
    await asyncio.wait_for(done, 5)
    assert got == [({"echo": 1}, None), (None, UnknownServerError), ({"echo": 2}, None)]
    conn.close()
    conn.send_with_callback(ApiKey.METADATA, 0, {"value": 3}, collect)
    await asyncio.sleep(0)
    assert got[-1] == (None, NetworkError)


async def test_a_request_past_its_timeout_fails_and_closes_its_connection(server: tuple[str, int]) -> None:
    conn = await Connection.open(*server)
    answered = conn.send(ApiKey.METADATA, 0, {"value": 1}, timeout=10.0)  # answered at once, well before 1 s
    patient = conn.send(ApiKey.FETCH, 0, {"delay": 5.0}, timeout=10.0)
    late = conn.send(ApiKey.FETCH, 0, {"delay": 5.0}, timeout=1.0)
    assert await answered == {"echo": 1}
    with pytest.raises(RequestTimedOutError, match=r"FETCH request to .* unanswered after 1 s"):
        await late
    with pytest.raises(NetworkError):  # the connection cannot be trusted any more: every request fails
        await patient
    assert conn.closed


async def test_a_cancelled_request_past_its_timeout_leaves_the_connection_open(server: tuple[str, int]) -> None:
    conn = await Connection.open(*server)
    conn.send(ApiKey.FETCH, 0, {"delay": 0.3}, timeout=0.05).cancel()
    await asyncio.sleep(0.15)
    assert not conn.closed
    assert await conn.send(ApiKey.METADATA, 0, {"value": 4}, timeout=1.0) == {"echo": 4}
    conn.close()


async def test_deferred_responses_are_answered_when_completed_and_cancelled_with_their_connection() -> None:
    handed_out: asyncio.Queue[DeferredResponse] = asyncio.Queue()
    cancelled = asyncio.Event()

    def deferred(version: int, body: Any) -> Any:
        response = DeferredResponse()
        if body.get("at_once"):
            response.complete({"early": True})  # completed before the server has bound it
        response.on_cancel = cancelled.set
        handed_out.put_nowait(response)
        return response

    srv = RequestServer({ApiKey.FETCH: deferred})
    conn = await Connection.open(*await srv.start("127.0.0.1", 0))
    try:
        assert await conn.request(ApiKey.FETCH, 0, {"at_once": True}) == {"early": True}
        await handed_out.get()
        first, second = conn.send(ApiKey.FETCH, 0, {}), conn.send(ApiKey.FETCH, 0, {})
        one, two = await handed_out.get(), await handed_out.get()
        two.fail(InvalidRequestError("no"))
        one.complete({"n": 1})
        assert await first == {"n": 1}
        with pytest.raises(InvalidRequestError):
            await second
        assert one.on_cancel is None and not one.cancelled  # done: its callbacks are let go
        parked = conn.send(ApiKey.FETCH, 0, {})
        three = await handed_out.get()
        conn.close()
        with pytest.raises(NetworkError):
            await parked
        await asyncio.wait_for(cancelled.wait(), 5)
        assert three.cancelled and three.done
        three.complete({"too": "late"})  # nothing to answer any more: ignored
    finally:
        conn.close()
        await srv.close()


async def _raw_exchange(address: tuple[str, int], data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(65536)
    finally:
        writer.close()


async def test_oversized_and_garbage_frames_close_only_their_connection(server: tuple[str, int]) -> None:
    good = await Connection.open(*server)
    assert await _raw_exchange(server, LENGTH.pack(2**31 - 1) + b"\x00" * 100) == b""
    assert await _raw_exchange(server, LENGTH.pack(3) + b"\xc1\xc1\xc1") == b""
    # A well-framed request with a bad field type keeps its correlation id and gets an error answer.
    answer = await _raw_exchange(server, encode_request(ApiKey.METADATA, 0, 11, {"value": None}))
    (payload,) = FrameDecoder().feed(answer)
    assert decode_response(payload)[:2] == (11, InvalidRequestError.code)
    assert await good.request(ApiKey.METADATA, 0, {"value": 3}) == {"echo": 3}
    good.close()


async def test_pending_requests_fail_when_the_server_goes_away() -> None:
    srv = RequestServer({ApiKey.FETCH: _slow})
    address = await srv.start("127.0.0.1", 0)
    conn = await Connection.open(*address)
    pending = conn.send(ApiKey.FETCH, 0, {"delay": 5.0})
    await srv.close()
    with pytest.raises(Exception, match="closed"):
        await pending


async def test_connect_to_closed_port_fails_clearly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from raftkafka.errors import BrokerNotAvailableError

    with pytest.raises(BrokerNotAvailableError, match="cannot connect"):
        await Connection.open("127.0.0.1", port)


async def test_bulk_bodies_are_written_in_pieces_and_arrive_whole() -> None:
    """Requests and answers whose bodies are ``BulkBody`` (large bytes written by reference, with writev) arrive
    as the same bytes, pipelined with ordinary ones on one connection, answered at once or deferred."""

    def bulk_echo(version: int, body: Any) -> Any:
        return BulkBody(data=body["data"][::-1])

    def deferred_bulk_echo(version: int, body: Any) -> Any:
        response = DeferredResponse()
        asyncio.get_running_loop().call_later(0.01, response.complete, BulkBody(data=body["data"]))
        return response

    srv = RequestServer({ApiKey.PRODUCE: bulk_echo, ApiKey.FETCH: deferred_bulk_echo, ApiKey.METADATA: _echo},
                        max_frame_bytes=4 * 1024 * 1024)  # fmt: skip
    conn = await Connection.open(*await srv.start("127.0.0.1", 0))
    try:
        payloads = [bytes(range(256)) * (size // 256) for size in (INLINE_LIMIT, 70_000, 1024 * 1024)]
        answers = []
        for index, data in enumerate(payloads):
            answers.append(conn.send(ApiKey.PRODUCE, 0, BulkBody(data=data, partition=index)))
            answers.append(conn.send(ApiKey.METADATA, 0, {"value": index}))
            answers.append(conn.send(ApiKey.FETCH, 0, BulkBody(data=data)))
        results = await asyncio.gather(*answers)
        for index, data in enumerate(payloads):
            reversed_, echo, same = results[3 * index : 3 * index + 3]
            assert reversed_ == {"data": data[::-1]} and echo == {"echo": index} and same == {"data": data}
    finally:
        conn.close()
        await srv.close()
