"""The broker's metadata fetcher applying METADATA_LOG answers (records, snapshots, gaps, catch-up), and the
controller channel's leader-hint parsing and deadline when no controller is reachable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from raftkafka.broker.controller_client import ControllerClientConfig, RemoteController, parse_leader_hint
from raftkafka.broker.metadata_fetcher import MetadataFetcher
from raftkafka.errors import RequestTimedOutError
from raftkafka.metadata.fields import MetadataDecodeError
from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import CreateTopic, MetadataRecord, RegisterBroker, encode_records
from tests.processes import free_port

pytestmark = pytest.mark.timeout(30)

REGISTER = [RegisterBroker(1, "127.0.0.1", 9092, "inc-1"), RegisterBroker(2, "127.0.0.1", 9093, "inc-2")]
TOPIC = [CreateTopic("events", "id-1", ((1, 2), (2, 1)), {"retention.ms": "1000"})]


def answer(
    records: Sequence[MetadataRecord], first_offset: int, high_offset: int, snapshot: bytes | None = None
) -> dict[str, object]:
    return {
        "controller_epoch": 1,
        "high_offset": high_offset,
        "first_offset": first_offset,
        "records": encode_records(records) if records else None,
        "snapshot": snapshot,
    }


def unreachable() -> RemoteController:
    return RemoteController([("127.0.0.1", free_port())], ControllerClientConfig(request_timeout_s=0.5))


def test_parse_leader_hint() -> None:
    assert parse_leader_hint("leader=1002@127.0.0.1:9193") == (1002, ("127.0.0.1", 9193))
    assert parse_leader_hint("not the active controller; leader=3@[::1]:9000") == (3, ("::1", 9000))
    assert parse_leader_hint("no metadata quorum leader is known") is None


def test_records_are_replayed_in_order_and_listeners_told() -> None:
    async def main() -> None:
        fetcher = MetadataFetcher(unreachable())
        seen: list[tuple[int, int, int]] = []
        fetcher.add_listener(lambda image, records, first: seen.append((image.offset, len(records), first)))
        fetcher.handle(answer(REGISTER, 0, 2))
        assert not await fetcher.wait_caught_up(0.01)  # high offset 2 seen first: offset 1 is not enough
        fetcher.handle(answer(TOPIC, 2, 2))
        assert await fetcher.wait_caught_up(0.01)
        assert fetcher.image == replay_all(EMPTY_IMAGE, [*REGISTER, *TOPIC], 0)
        assert seen == [(1, 2, 0), (2, 1, 2)]
        assert fetcher.high_offset == 2

    asyncio.run(main())


def test_a_gap_is_not_applied_and_an_empty_answer_changes_nothing() -> None:
    async def main() -> None:
        fetcher = MetadataFetcher(unreachable())
        fetcher.handle(answer(REGISTER, 0, 5))
        fetcher.handle(answer(TOPIC, 4, 5))  # offsets 2..3 missing: the fetcher asks again from 2
        assert fetcher.image.offset == 1 and "events" not in fetcher.image.topics
        fetcher.handle(answer([], 2, 5))
        assert fetcher.image.offset == 1

    asyncio.run(main())


def test_snapshot_replaces_the_image_then_records_follow() -> None:
    async def main() -> None:
        fetcher = MetadataFetcher(unreachable())
        fetcher.handle(answer(REGISTER[:1], 0, 0))
        controller_image = replay_all(EMPTY_IMAGE, [*REGISTER, *TOPIC], 0)
        replaced: list[MetadataImage] = []
        fetcher.add_listener(lambda image, records, first: replaced.append(image) if not records else None)
        fetcher.handle(answer([], 3, 2, snapshot=controller_image.to_bytes()))
        assert fetcher.image == controller_image and replaced == [controller_image]
        more = [RegisterBroker(3, "127.0.0.1", 9094, "inc-3")]
        fetcher.handle(answer(more, 3, 3))
        assert fetcher.image.offset == 3 and 3 in fetcher.image.brokers

    asyncio.run(main())


def test_malformed_answers_leave_the_image_alone() -> None:
    async def main() -> None:
        fetcher = MetadataFetcher(unreachable())
        fetcher.handle(answer(REGISTER, 0, 1))
        before = fetcher.image
        for bad in (
            {"high_offset": "x"},
            {"high_offset": 3, "records": b"\xc1", "first_offset": 2},
            {"high_offset": 3, "snapshot": b"not an image"},
            {"high_offset": 3, "records": "text", "first_offset": 2},
        ):
            with pytest.raises(MetadataDecodeError):
                fetcher.handle(bad)
            assert fetcher.image is before

    asyncio.run(main())


def test_no_reachable_controller_fails_at_the_deadline() -> None:
    async def main() -> None:
        controller = unreachable()
        started = time.monotonic()
        with pytest.raises(RequestTimedOutError):
            await controller.quorum_status()
        assert time.monotonic() - started < 2
        fetcher = MetadataFetcher(controller)
        fetcher.start()
        assert not await fetcher.wait_caught_up(0.3)  # keeps retrying, never caught up, never raises
        await fetcher.stop()
        await controller.close()

    asyncio.run(main())
