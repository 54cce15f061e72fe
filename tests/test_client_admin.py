"""Admin and connection behaviour of the sync client against a real ``raftkafka dev`` process."""

from __future__ import annotations

import time

import pytest

from raftkafka import Admin, Consumer, Producer
from raftkafka.errors import (
    BrokerNotAvailableError,
    InvalidTopicError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicError,
)
from raftkafka.structs import PartitionInfo
from tests.processes import free_port


def test_create_list_describe_delete(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic("events", partitions=3, replication_factor=1, config={"retention.ms": "3600000"})
        admin.create_topic("other")
        assert {"events", "other"} <= set(admin.list_topics())
        description = admin.describe_topic("events")
        assert description.name == "events"
        assert [p.id for p in description.partitions] == [0, 1, 2]
        assert all(isinstance(p, PartitionInfo) and p.leader >= 0 and p.leader in p.isr for p in description.partitions)
        assert description.config.get("retention.ms") == "3600000"
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topic("events")
        admin.delete_topic("other")
        assert "other" not in admin.list_topics()
        with pytest.raises(UnknownTopicError):
            admin.describe_topic("other")
        with pytest.raises(UnknownTopicError):
            admin.delete_topic("never-existed")


@pytest.mark.parametrize("name", ["bad name", "a/b", "..", "x" * 250, ""])
def test_invalid_topic_names_are_refused(dev_server: str, name: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        with pytest.raises(InvalidTopicError):
            admin.create_topic(name)
        assert name not in admin.list_topics()


@pytest.mark.parametrize("make", [
    lambda b: Admin(bootstrap=b),
    lambda b: Producer(bootstrap=b),
    lambda b: Consumer(bootstrap=b),
    lambda b: Consumer("events", bootstrap=b),
])
def test_unreachable_bootstrap_fails_fast_and_clearly(make: object) -> None:
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BrokerNotAvailableError, match=address):
        make(address)  # type: ignore[operator]
    assert time.monotonic() - started < 5


def test_bootstrap_list_skips_dead_addresses(dev_server: str) -> None:
    with Admin(bootstrap=[f"127.0.0.1:{free_port()}", dev_server]) as admin:
        admin.create_topic("t")
        assert "t" in admin.list_topics()


def test_unknown_topic_send_gives_up_after_max_block(dev_server: str) -> None:
    with Producer(bootstrap=dev_server, max_block_ms=300) as producer:
        started = time.monotonic()
        with pytest.raises((UnknownTopicError, KafkaTimeoutError)):
            producer.send("no-such-topic", b"x")
        assert time.monotonic() - started < 5
