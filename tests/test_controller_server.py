"""The controller's request handlers in process (a single-voter ControllerServer on free ports), over real
connections: metadata log reads from the window, snapshots for offsets that left it, long polls,
quorum status and API versions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from raftkafka.controller.config import DEFAULT_HEARTBEAT_INTERVAL_MS, ControllerConfig
from raftkafka.controller.server import CONTROLLER_APIS, ControllerServer
from raftkafka.errors import InvalidRequestError, StaleBrokerEpochError
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import RegisterBroker, RegisterController, SetClusterId, decode_records
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.raftlog.metadata_log import MetadataLogConfig
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)
WINDOW = 5


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


@asynccontextmanager
async def controller_connection(data_dir: Path) -> AsyncIterator[tuple[ControllerServer, Connection]]:
    raft_port = free_port()
    config = ControllerConfig(
        node_id=1,
        listen_host="127.0.0.1",
        listen_port=0,
        raft_host="127.0.0.1",
        raft_port=raft_port,
        voters={1: ("127.0.0.1", raft_port)},
        data_dir=data_dir,
        metadata_log=MetadataLogConfig(record_window=WINDOW),
    )
    server = ControllerServer(config, "s" * 32)
    host, port = await server.start()
    connection = await Connection.open(host, port)
    try:
        deadline = time.monotonic() + 10
        while server.controller is None or not server.controller.is_active:
            assert time.monotonic() < deadline, "the single voter never became active"
            await asyncio.sleep(0.02)
        yield server, connection
    finally:
        connection.close()
        await server.stop()


async def register(connection: Connection, node_id: int) -> int:
    body = {"node_id": node_id, "host": "127.0.0.1", "port": 9000 + node_id, "incarnation_id": f"i{node_id}"}
    answer = await connection.request(ApiKey.BROKER_REGISTER, 0, body)
    return int(answer["broker_epoch"])


def fetch(connection: Connection, offset: int, max_wait_ms: int = 0, max_records: int = 100) -> Any:
    body = {"offset": offset, "max_wait_ms": max_wait_ms, "max_records": max_records}
    return connection.request(ApiKey.METADATA_LOG, 0, body)


def test_metadata_log_records_snapshots_and_long_polls(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller_connection(tmp_path) as (server, connection):
            epochs = [await register(connection, n) for n in range(1, 8)]
            assert epochs == list(range(2, 9))  # offsets 0 and 1: the cluster id and the controller's listener
            answer = await fetch(connection, 6, max_records=2)
            assert answer["high_offset"] == 8 and answer["first_offset"] == 6 and answer["snapshot"] is None
            assert decode_records(answer["records"]) == [RegisterBroker(n, "127.0.0.1", 9000 + n, f"i{n}")
                                                         for n in (5, 6)]  # fmt: skip

            answer = await fetch(connection, 0)  # left the window of 5 records: the whole image instead
            assert answer["records"] is None and answer["first_offset"] == 9
            image = MetadataImage.from_bytes(answer["snapshot"])
            assert image == server.metadata_log.image  # type: ignore[union-attr]
            assert sorted(image.brokers) == list(range(1, 8))
            assert image.cluster_id is not None and len(image.cluster_id) == 22
            assert image.controllers[1].port == connection_port(connection)

            started = time.monotonic()
            answer = await fetch(connection, 9, max_wait_ms=300)  # nothing new: waits, then answers empty
            assert time.monotonic() - started >= 0.25
            assert answer["records"] is None and answer["high_offset"] == 8

            waiting = asyncio.ensure_future(fetch(connection, 9, max_wait_ms=10_000))
            await asyncio.sleep(0.1)
            assert not waiting.done()
            started = time.monotonic()
            await register(connection, 8)
            answer = await waiting
            assert time.monotonic() - started < 2
            assert decode_records(answer["records"]) == [RegisterBroker(8, "127.0.0.1", 9008, "i8")]

            with pytest.raises(InvalidRequestError):
                await fetch(connection, -1)

    run(main())


def connection_port(connection: Connection) -> int:
    return int(connection.address.rsplit(":", 1)[1])


def test_quorum_status_heartbeats_and_api_versions(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller_connection(tmp_path) as (_server, connection):
            epoch = await register(connection, 1)
            body = {"node_id": 1, "broker_epoch": epoch, "metadata_offset": epoch, "want_shutdown": False}
            answer = await connection.request(ApiKey.BROKER_HEARTBEAT, 0, body)
            assert answer["fenced"] is False and answer["should_shutdown"] is False
            assert answer["heartbeat_interval_ms"] == DEFAULT_HEARTBEAT_INTERVAL_MS and answer["controller_epoch"] >= 1
            with pytest.raises(StaleBrokerEpochError):
                await connection.request(ApiKey.BROKER_HEARTBEAT, 0, {**body, "broker_epoch": epoch + 1})

            status = await connection.request(ApiKey.QUORUM_STATUS, 0, {})
            assert status["leader_id"] == 1 and status["is_leader"] and status["node_id"] == 1
            assert status["metadata_offset"] == 2
            [voter] = status["voters"]
            assert voter["node_id"] == 1 and voter["lag"] == 0 and voter["committed_offset"] == status["commit_index"]
            assert voter["listener"] == connection.address

            apis = await connection.request(ApiKey.API_VERSIONS, 0, {})
            assert [api[0] for api in apis["apis"]] == list(CONTROLLER_APIS)
            cluster_id, listener = decode_records((await fetch(connection, 0))["records"])[:2]
            assert isinstance(cluster_id, SetClusterId)
            assert listener == RegisterController(1, "127.0.0.1", connection_port(connection))

    run(main())
