"""Bad input against a live ``raftkafka dev`` process: every bad frame gets an error or a closed
connection, the server stays up, another client's produce and fetch keep working, memory stays bounded."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from pathlib import Path

import msgpack
import pytest

from raftkafka.errors import (
    CorruptBatchError,
    InvalidRequestError,
    InvalidRequiredAcksError,
    InvalidTopicError,
    UnknownApiError,
    UnknownTopicError,
    UnsupportedVersionError,
)
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.net.frame import LENGTH, FrameDecoder, decode_response, encode_request
from raftkafka.storage.record_batch import encode_batch
from tests.processes import DevServer

TOPIC = "robust"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _batch(value: bytes) -> bytes:
    return encode_batch([[0, None, value, []]], first_timestamp=1_700_000_000_000, max_timestamp=1_700_000_000_000)


async def _produce_and_fetch(conn: Connection, value: bytes) -> None:
    """One produce and the fetch of what it wrote, through the real APIs."""
    body = {"acks": 1, "timeout_ms": 5000, "topics": [[TOPIC, [[0, _batch(value)]]]]}
    response = await conn.request(ApiKey.PRODUCE, 0, body, timeout=10)
    ((_, ((_, error, offset, _),)),) = response["topics"]
    assert error == 0
    fetch = {"max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20, "topics": [[TOPIC, [[0, offset, 1 << 20]]]]}
    response = await conn.request(ApiKey.FETCH, 0, fetch, timeout=10)
    ((_, ((_, error, high_watermark, _, records),)),) = response["topics"]
    assert error == 0 and high_watermark == offset + 1 and value in records


def _raw(port: int, data: bytes, *, wait: float = 5.0) -> bytes:
    """Send raw bytes, return whatever comes back before the server closes or ``wait`` passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                if FrameDecoder(1 << 30).feed(received):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
        return received


@pytest.fixture
async def good_client(dev_process: DevServer) -> Connection:
    conn = await Connection.open("127.0.0.1", dev_process.port)
    created = await conn.request(
        ApiKey.CREATE_TOPICS, 0, {"topics": [{"name": TOPIC, "partitions": 1, "replication_factor": 1}]}, timeout=30
    )
    assert created["topics"][0][1] == 0
    return conn


async def test_bad_frames_never_disturb_other_clients(dev_process: DevServer, good_client: Connection) -> None:
    rss_before = _rss_kib(dev_process.proc.pid)  # type: ignore[union-attr]
    rng = random.Random(1234)
    bad_inputs = [
        LENGTH.pack(2**31) + b"\x00" * 64,  # a 2 GB length prefix
        LENGTH.pack(0xFFFFFFFF),
        LENGTH.pack(10) + b"\x01\x02",  # truncated, then the client goes away
        LENGTH.pack(3) + b"\xc1\xc1\xc1",  # not msgpack
        LENGTH.pack(1) + b"\x90",  # an empty array
        encode_request(ApiKey.METADATA, 0, 1, "not a map")[:7],  # truncated mid-frame
    ]
    bad_inputs += [rng.randbytes(rng.randint(1, 300)) for _ in range(100)]
    bad_inputs += [LENGTH.pack(n) + rng.randbytes(n) for n in (5, 50, 500, 5000) for _ in range(10)]
    for i, data in enumerate(bad_inputs):
        await asyncio.to_thread(_raw, dev_process.port, data, wait=0.5)
        if i % 20 == 0:
            await _produce_and_fetch(good_client, f"alive-{i}".encode())
    await _produce_and_fetch(good_client, b"still alive")
    assert dev_process.proc.poll() is None  # type: ignore[union-attr]
    assert _rss_kib(dev_process.proc.pid) - rss_before < 100 * 1024  # type: ignore[union-attr]


async def test_a_2gb_prefix_closes_the_connection(dev_process: DevServer, good_client: Connection) -> None:
    answer = await asyncio.to_thread(_raw, dev_process.port, struct.pack(">I", 2**31) + b"x" * 1000)
    assert answer == b""
    await _produce_and_fetch(good_client, b"after 2GB prefix")


@pytest.mark.parametrize(
    ("api", "version", "body", "error"),
    [
        (999, 0, {}, UnknownApiError),
        (ApiKey.METADATA, 42, {}, UnsupportedVersionError),
        (ApiKey.METADATA, 0, {"topics": "robust"}, InvalidRequestError),
        (ApiKey.METADATA, 0, [], InvalidRequestError),
        (ApiKey.PRODUCE, 0, {"acks": 1, "topics": [["robust", "zero"]]}, InvalidRequestError),
        (ApiKey.PRODUCE, 0, {"acks": 7, "topics": []}, InvalidRequiredAcksError),
        (ApiKey.PRODUCE, 0, {"acks": True, "topics": []}, InvalidRequestError),
        (ApiKey.FETCH, 0, {"topics": [["robust", [[0, "x", 1]]]]}, InvalidRequestError),
        (ApiKey.FETCH, 0, {"topics": [["robust", [[0, 0, -1]]]]}, InvalidRequestError),
        (ApiKey.LIST_OFFSETS, 0, {"topics": [[1, [[0, -1]]]]}, InvalidRequestError),
        (ApiKey.CREATE_TOPICS, 0, {"topics": ["x"]}, InvalidRequestError),
        (ApiKey.DELETE_TOPICS, 0, {"topics": [1]}, InvalidRequestError),
    ],
)
async def test_wrong_types_get_named_errors(
    good_client: Connection, api: int, version: int, body: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await good_client.request(api, version, body, timeout=10)
    await _produce_and_fetch(good_client, b"after a bad request")


async def test_partition_level_errors(good_client: Connection) -> None:
    body = {
        "acks": 1,
        "topics": [
            [TOPIC, [[0, b"garbage bytes that are no batch"], [0, _batch(b"ok")], [7, _batch(b"no such partition")]]],
            ["../../etc", [[0, _batch(b"x")]]],
        ],
    }
    response = await good_client.request(ApiKey.PRODUCE, 0, body, timeout=10)
    (_, parts), (_, escaped) = response["topics"]
    assert [p[1] for p in parts] == [CorruptBatchError.code, 0, UnknownTopicError.code]
    assert escaped[0][1] == UnknownTopicError.code
    created = await good_client.request(
        ApiKey.CREATE_TOPICS, 0, {"topics": [{"name": "../evil", "partitions": 1, "replication_factor": 1}]}
    )
    assert created["topics"][0][1] == InvalidTopicError.code


async def test_flipped_crc_is_refused(dev_process: DevServer, good_client: Connection) -> None:
    batch = bytearray(_batch(b"flip me"))
    batch[-1] ^= 0xFF
    frame = encode_request(ApiKey.PRODUCE, 0, 5, {"acks": 1, "topics": [[TOPIC, [[0, bytes(batch)]]]]})
    assert msgpack.unpackb(frame[4:])[2] == 5
    (payload,) = FrameDecoder().feed(await asyncio.to_thread(_raw, dev_process.port, frame))
    _, error, body = decode_response(payload)
    assert error == 0 and body["topics"][0][1][0][1] == CorruptBatchError.code
