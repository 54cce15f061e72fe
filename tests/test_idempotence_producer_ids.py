"""Producer id blocks: the pure reservation, and a single-voter controller in process answering many
concurrent INIT_PRODUCER_ID requests with unique ids from as few committed blocks as needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from raftkafka.controller.producer_ids import PRODUCER_ID_BLOCK_SIZE, reserve_producer_ids
from raftkafka.metadata.image import EMPTY_IMAGE, replay_all
from raftkafka.net.api import ApiKey
from tests.test_controller_server import controller_connection, run


def test_each_block_starts_where_the_image_says() -> None:
    record, ids = reserve_producer_ids(EMPTY_IMAGE)
    assert ids == range(0, PRODUCER_ID_BLOCK_SIZE) and record.next_producer_id == PRODUCER_ID_BLOCK_SIZE
    image = replay_all(EMPTY_IMAGE, [record], 0)
    record, ids = reserve_producer_ids(image, 10)
    assert ids == range(1000, 1010) and record.next_producer_id == 1010


def test_concurrent_requests_get_unique_ids_from_committed_blocks(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with controller_connection(tmp_path) as (server, connection):
            count = PRODUCER_ID_BLOCK_SIZE + 200
            answers = await asyncio.gather(
                *(connection.send(ApiKey.INIT_PRODUCER_ID, 0, {}) for _ in range(count))
            )
            ids = [answer["producer_id"] for answer in answers]
            assert sorted(ids) == list(range(count))
            assert {answer["producer_epoch"] for answer in answers} == {0}
            assert server.controller is not None
            assert server.controller.image.next_producer_id == 2 * PRODUCER_ID_BLOCK_SIZE  # two blocks, no more

    run(scenario())
