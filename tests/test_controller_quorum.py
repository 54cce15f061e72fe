"""QuorumController on a real single-voter MetadataLog: topics, brokers, pipelined decisions."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from raftkafka.controller.controller import QuorumController
from raftkafka.controller.topics import NewPartitions, NewTopic, TopicResult
from raftkafka.errors import (
    DuplicateBrokerRegistrationError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    MessageTooLargeError,
    NotControllerError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    UnknownTopicError,
)
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import CreateTopic, MetadataRecord
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLog, MetadataLogConfig
from tests.processes import free_port

pytestmark = pytest.mark.timeout(60)


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


@asynccontextmanager
async def controller(data_dir: Path, brokers: int = 3, **options: Any) -> AsyncIterator[QuorumController]:
    """A started single-voter ``QuorumController`` (``options`` go to its constructor) with ``brokers`` registered."""
    log = MetadataLog(f"127.0.0.1:{free_port()}", [], data_dir, ensure_cluster_secret(data_dir))
    ids = iter(range(1000))
    quorum = QuorumController(log, new_topic_id=lambda: f"topic-{next(ids)}", rng=random.Random(7), **options)
    try:
        await quorum.start(10)
        for node_id in range(1, brokers + 1):
            await quorum.register_broker(node_id, "127.0.0.1", 9090 + node_id, f"inc-{node_id}")
        yield quorum
    finally:
        await quorum.stop()


def test_create_describe_delete(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            commits: list[tuple[int, list[MetadataRecord]]] = []
            quorum.add_listener(lambda image, records, first: commits.append((first, list(records))))
            images: list[MetadataImage] = []
            quorum.subscribe(images.append)
            results = await quorum.create_topics(
                [NewTopic("events", 3, 2, {"retention.ms": "60000"}), NewTopic("bad name", 1, 1)]
            )
            assert results[0] == TopicResult("events")
            assert results[1].error_code == 17 and results[1].name == "bad name"
            topic = quorum.image.topic("events")  # committed before the reply
            assert topic is not None and topic.topic_id == "topic-0"
            assert [len(p.replicas) for p in topic.partitions] == [2, 2, 2]
            assert sorted(p.leader for p in topic.partitions) == [1, 2, 3]
            assert dict(topic.config) == {"retention.ms": "60000"}
            assert commits == [(4, [CreateTopic("events", "topic-0", topic_replicas(quorum.image), topic.config)])]
            assert images == [quorum.image]

            assert await quorum.delete_topics(["events", "nope"]) == [
                TopicResult("events"),
                TopicResult.failed("nope", UnknownTopicError("topic 'nope' does not exist")),
            ]
            assert quorum.image.topic("events") is None

    run(main())


def test_topics_grow_but_never_shrink(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            await quorum.create_topics([NewTopic("events", 2, 2)])
            leaders_before = [p.leader for p in quorum.image.topics["events"].partitions]
            results = await quorum.create_partitions(
                [NewPartitions("events", 5), NewPartitions("events", 4), NewPartitions("nope", 3)]
            )
            assert results[0] == TopicResult("events")
            assert isinstance(results[1].error, InvalidPartitionsError)  # decided after the first: 5 already
            assert isinstance(results[2].error, UnknownTopicError)
            partitions = quorum.image.topics["events"].partitions
            assert [p.partition for p in partitions] == [0, 1, 2, 3, 4]
            assert [p.leader for p in partitions[:2]] == leaders_before  # the old partitions are untouched
            assert all(len(p.replicas) == 2 and p.isr == p.replicas and p.leader == p.replicas[0] for p in partitions)
            [wire] = await quorum.create_partitions([{"name": "events", "count": 6}], validate_only=True)
            assert wire == TopicResult("events") and len(quorum.image.topics["events"].partitions) == 5

    run(main())


def topic_replicas(image: MetadataImage) -> tuple[tuple[int, ...], ...]:
    topic = image.topic("events")
    assert topic is not None
    return tuple(p.replicas for p in topic.partitions)


def test_wire_shaped_requests_and_validate_only(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            body = {"name": "t", "partitions": 1, "replication_factor": 4, "config": {}}
            [result] = await quorum.create_topics([body])
            assert isinstance(result.error, InvalidReplicationFactorError)
            assert list(result) == ["t", 38, result.message]  # the wire shape
            [result] = await quorum.create_topics([{**body, "replication_factor": 3}], validate_only=True)
            assert result.error is None
            assert quorum.image.topic("t") is None

    run(main())


def test_pipelined_duplicate_creates_one_wins(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            first, second = await asyncio.gather(
                quorum.create_topics([NewTopic("dup", 2, 1)]), quorum.create_topics([NewTopic("dup", 2, 1)])
            )
            outcomes = sorted([first[0].error_code, second[0].error_code])
            assert outcomes == [0, TopicAlreadyExistsError.code]
            topic = quorum.image.topic("dup")
            assert topic is not None and topic.topic_id == "topic-0"

    run(main())


def test_many_pipelined_creates_commit_together(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            names = [f"t{n}" for n in range(50)]
            results = await asyncio.gather(*(quorum.create_topics([NewTopic(name, 1, 3)]) for name in names))
            assert all(result[0].error is None for result in results)
            assert sorted(quorum.image.topics) == sorted(names)
            # replicas of the 50 topics are spread over all brokers
            leaders = {topic.partitions[0].leader for topic in quorum.image.topics.values()}
            assert leaders == {1, 2, 3}

    run(main())


def test_broker_registration(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, brokers=1) as quorum:
            await quorum.register_broker(1, "127.0.0.1", 9091, "inc-1")  # an identical retry
            with pytest.raises(DuplicateBrokerRegistrationError):
                await quorum.register_broker(1, "127.0.0.1", 9091, "another-process")
            assert quorum.image.brokers[1].incarnation_id == "inc-1"

    run(main())


def test_a_restarted_controller_accepts_a_restarted_broker(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path, brokers=1) as quorum:
            assert quorum.image.brokers[1].incarnation_id == "inc-1"
        async with controller(tmp_path, brokers=0) as quorum:
            await quorum.register_broker(1, "127.0.0.1", 9999, "inc-after-restart")
            assert quorum.image.brokers[1].port == 9999

    run(main())


def test_a_failed_append_fails_the_answers_that_relied_on_it(tmp_path: Path) -> None:
    async def main() -> None:
        config = MetadataLogConfig(max_entry_bytes=1024)
        log = MetadataLog(f"127.0.0.1:{free_port()}", [], tmp_path, ensure_cluster_secret(tmp_path), config)
        quorum = QuorumController(log)
        try:
            await quorum.start(10)
            await quorum.register_broker(1, "127.0.0.1", 9091, "inc-1")
            too_big, relying = await asyncio.gather(
                quorum.create_topics([NewTopic("x", 1000, 1)]),  # its record exceeds max_entry_bytes
                quorum.create_topics([NewTopic("x", 1, 1)]),  # decided while the first was in flight
            )
            assert isinstance(too_big[0].error, MessageTooLargeError)
            assert isinstance(relying[0].error, MessageTooLargeError)  # not TOPIC_ALREADY_EXISTS
            # the speculative image was reset: the name is free again
            assert (await quorum.create_topics([NewTopic("x", 1, 1)]))[0].error is None
        finally:
            await log.close()

    run(main())


def test_closed_log_refuses_with_not_controller(tmp_path: Path) -> None:
    async def main() -> None:
        async with controller(tmp_path) as quorum:
            await quorum._log.close()
            with pytest.raises(NotControllerError):
                await quorum.create_topics([NewTopic("t", 1, 1)])

    run(main())


def test_follower_refuses_with_not_controller(tmp_path: Path) -> None:
    async def main() -> None:
        partners = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
        log = MetadataLog(
            f"127.0.0.1:{free_port()}", partners, tmp_path, ensure_cluster_secret(tmp_path), MetadataLogConfig()
        )
        quorum = QuorumController(log)
        try:
            with pytest.raises(RequestTimedOutError):
                await quorum.start(0.3)
            with pytest.raises(NotControllerError):
                await quorum.create_topics([NewTopic("t", 1, 1)])
        finally:
            await quorum.stop()

    run(main())
