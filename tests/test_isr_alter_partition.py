"""ALTER_PARTITION end to end in process: a single-voter ControllerServer on free ports, the broker's
``RemoteController`` channel over a real connection, and the committed ``PartitionChange`` in the log."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from raftkafka.broker.controller_client import RemoteController
from raftkafka.controller.config import ControllerConfig
from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult
from raftkafka.controller.server import ControllerServer
from raftkafka.errors import NONE, InvalidUpdateVersionError, StaleBrokerEpochError
from raftkafka.metadata.records import PartitionChange
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)


@asynccontextmanager
async def controller(data_dir: Path) -> AsyncIterator[tuple[ControllerServer, RemoteController]]:
    raft_port = free_port()
    config = ControllerConfig(
        node_id=1,
        listen_host="127.0.0.1",
        listen_port=0,
        raft_host="127.0.0.1",
        raft_port=raft_port,
        voters={1: ("127.0.0.1", raft_port)},
        data_dir=data_dir,
    )
    server = ControllerServer(config, "s" * 32)
    address = await server.start()
    channel = RemoteController([address])
    try:
        deadline = time.monotonic() + 10
        while server.controller is None or not server.controller.is_active:
            assert time.monotonic() < deadline, "the single voter never became active"
            await asyncio.sleep(0.02)
        yield server, channel
    finally:
        await channel.close()
        await server.stop()


def test_a_leader_shrinks_and_expands_the_isr_through_the_controller(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as (server, channel):
            epochs = {n: await channel.register_broker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in (1, 2, 3)}
            topic = {"name": "t", "partitions": 1, "replication_factor": 3, "config": {}}
            assert await channel.create_topics([topic], False) == [("t", 0, "")]
            assert server.controller is not None
            state = server.controller.image.topics["t"].partitions[0]
            leader, follower = state.leader, state.replicas[-1]
            shrunk = tuple(r for r in state.isr if r != follower)

            results = await channel.alter_partition(leader, epochs[leader], [IsrChange("t", 0, 0, 0, shrunk)])
            assert results == [IsrChangeResult("t", 0, NONE, leader, 0, shrunk, 1)]
            image = server.controller.image  # answered after commit: the committed image shows it
            assert image.topics["t"].partitions[0].isr == shrunk
            assert image.topics["t"].partitions[0].partition_epoch == 1
            assert server.metadata_log is not None
            change = PartitionChange("t", 0, leader, shrunk, 0, state.replicas)
            assert server.metadata_log.read_records(image.offset, 1) == [change]

            # the same request again (a retry after a lost answer) is refused as stale, nothing committed
            again = await channel.alter_partition(leader, epochs[leader], [IsrChange("t", 0, 0, 0, shrunk)])
            assert again == [IsrChangeResult("t", 0, InvalidUpdateVersionError.code, leader, 0, shrunk, 1)]
            assert server.controller.image.offset == image.offset

            expanded = await channel.alter_partition(leader, epochs[leader], [IsrChange("t", 0, 0, 1, state.isr)])
            assert expanded == [IsrChangeResult("t", 0, NONE, leader, 0, state.isr, 2)]

            with pytest.raises(StaleBrokerEpochError):
                await channel.alter_partition(leader, epochs[leader] + 1000, [IsrChange("t", 0, 0, 2, shrunk)])

    asyncio.run(main())
