"""``Admin`` consumer-group methods against a real ``raftkafka dev`` process: committing offsets for a group
without members, listing, describing and deleting groups, and the refusals while a group has a member.

The live member here speaks the wire protocol itself (JOIN_GROUP, HEARTBEAT, OFFSET_COMMIT, LEAVE_GROUP),
so these tests depend on the coordinator only, not on the consumer's group membership code.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin, GroupDescription, GroupListing, MemberDescription, Producer, TopicPartition
from raftkafka.errors import GroupIdNotFoundError, NonEmptyGroupError, UnknownTopicError
from raftkafka.net.api import ApiKey
from tests.processes import DevServer, request

SESSION_TIMEOUT_MS = 10_000
JOIN_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``raftkafka dev`` process for the module (each test uses its own topics and groups)."""
    dev = DevServer(tmp_path_factory.mktemp("groups") / "dev-data").start()
    try:
        yield dev.bootstrap
    finally:
        dev.stop()


def produce_counts(bootstrap: str, topic: str, counts: list[int]) -> None:
    """Create ``topic`` with ``len(counts)`` partitions and write ``counts[p]`` records to partition ``p``."""
    with Admin(bootstrap=bootstrap) as admin:
        admin.create_topic(topic, partitions=len(counts))
    with Producer(bootstrap=bootstrap, acks="all") as producer:
        for partition, count in enumerate(counts):
            for i in range(count):
                producer.send(topic, f"{partition}-{i}".encode(), partition=partition)


class WireMember:
    """A group member that speaks the group APIs directly and heartbeats from a thread until it leaves."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], client_id: str = "wire-client") -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = topics
        self.client_id = client_id
        self.member_id = f"{client_id}-{uuid.uuid4()}"
        self.generation = -1
        self.assignment: list[TopicPartition] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _call(self, api: ApiKey, body: dict[str, Any], timeout: float = 10) -> Any:
        error, answer = request(self.bootstrap, api, body, timeout=timeout)
        assert error == 0, (api.name, error, answer)
        return answer

    def join(self) -> WireMember:
        answer = self._call(
            ApiKey.JOIN_GROUP,
            {
                "group_id": self.group,
                "member_id": self.member_id,
                "client_id": self.client_id,
                "topics": self.topics,
                "strategies": ["range"],
                "session_timeout_ms": SESSION_TIMEOUT_MS,
                "rebalance_timeout_ms": SESSION_TIMEOUT_MS,
            },
            timeout=JOIN_TIMEOUT_S,
        )
        self.generation = answer["generation"]
        self.assignment = sorted(TopicPartition(t, p) for t, ps in answer["assignment"] for p in ps)
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)
        self._thread.start()
        return self

    def _heartbeat(self) -> None:
        body = {"group_id": self.group, "member_id": self.member_id, "generation": self.generation}
        while not self._stop.wait(SESSION_TIMEOUT_MS / 10_000):
            try:
                request(self.bootstrap, ApiKey.HEARTBEAT, body, timeout=5)
            except OSError:
                pass  # the next beat tries again; the tests fail on their own if the member is lost

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        by_topic: dict[str, list[list[int]]] = {}
        for tp, offset in sorted(offsets.items()):
            by_topic.setdefault(tp.topic, []).append([tp.partition, offset])
        answer = self._call(
            ApiKey.OFFSET_COMMIT,
            {
                "group_id": self.group,
                "member_id": self.member_id,
                "generation": self.generation,
                "offsets": list(by_topic.items()),
            },
        )
        assert all(error == 0 for _t, parts in answer["topics"] for _p, error in parts), answer

    def leave(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._call(ApiKey.LEAVE_GROUP, {"group_id": self.group, "member_id": self.member_id})

    def __enter__(self) -> WireMember:
        return self.join()

    def __exit__(self, *exc_info: object) -> None:
        self.leave()


def test_offsets_of_an_empty_group_are_listed_described_and_deleted(server: str) -> None:
    produce_counts(server, "ledger", [5, 3, 0])
    committed = {TopicPartition("ledger", 0): 4, TopicPartition("ledger", 1): 3}
    with Admin(bootstrap=server) as admin:
        admin.alter_group_offsets("auditors", committed)

        assert GroupListing("auditors", "Empty", 0) in admin.list_groups()
        assert admin.list_group_offsets("auditors") == committed
        description = admin.describe_group("auditors")
        assert isinstance(description, GroupDescription)
        assert (description.group_id, description.state, description.members) == ("auditors", "Empty", [])
        assert description.offsets == committed

        # a later commit replaces only the partitions it names
        admin.alter_group_offsets("auditors", {TopicPartition("ledger", 0): 1, TopicPartition("ledger", 2): 0})
        assert admin.list_group_offsets("auditors") == {
            TopicPartition("ledger", 0): 1,
            TopicPartition("ledger", 1): 3,
            TopicPartition("ledger", 2): 0,
        }

        admin.delete_group("auditors")
        assert "auditors" not in [g.group_id for g in admin.list_groups()]
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("auditors")
        with pytest.raises(GroupIdNotFoundError):
            admin.delete_group("auditors")
        assert admin.list_group_offsets("auditors") == {}


def test_unknown_groups_topics_and_bad_offsets(server: str) -> None:
    produce_counts(server, "small", [1])
    with Admin(bootstrap=server) as admin:
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("nobody-here")
        with pytest.raises(UnknownTopicError):
            admin.alter_group_offsets("g-unknown-topic", {TopicPartition("no-such-topic", 0): 0})
        with pytest.raises(UnknownTopicError):
            admin.alter_group_offsets("g-unknown-topic", {TopicPartition("small", 7): 0})
        with pytest.raises(ValueError, match=">= 0"):
            admin.alter_group_offsets("g-bad-offset", {TopicPartition("small", 0): -1})
        admin.alter_group_offsets("g-nothing", {})  # nothing to commit: no request, no group
        assert "g-nothing" not in [g.group_id for g in admin.list_groups()]


def test_beginning_and_end_offsets(server: str) -> None:
    produce_counts(server, "ends", [7, 0, 2])
    tps = [TopicPartition("ends", p) for p in range(3)]
    with Admin(bootstrap=server) as admin:
        assert admin.end_offsets(tps) == dict(zip(tps, [7, 0, 2], strict=True))
        assert admin.beginning_offsets(tps) == dict.fromkeys(tps, 0)
        with pytest.raises(UnknownTopicError):
            admin.end_offsets([TopicPartition("ends", 3)])
        with pytest.raises(UnknownTopicError):
            admin.end_offsets([TopicPartition("nope", 0)])


def test_a_group_with_a_member_is_described_and_cannot_be_altered_or_deleted(server: str) -> None:
    produce_counts(server, "orders", [2, 2])
    with WireMember(server, "billing", ["orders"], client_id="billing-1") as member:
        assert member.assignment == [TopicPartition("orders", 0), TopicPartition("orders", 1)]
        member.commit({TopicPartition("orders", 0): 2})
        with Admin(bootstrap=server) as admin:
            assert GroupListing("billing", "Stable", 1) in admin.list_groups()
            description = admin.describe_group("billing")
            assert description.state == "Stable"
            assert description.strategy == "range"
            assert description.generation == member.generation >= 1
            assert description.members == [
                MemberDescription(member.member_id, "billing-1", ["orders"], member.assignment)
            ]
            assert description.offsets == {TopicPartition("orders", 0): 2}

            with pytest.raises(NonEmptyGroupError, match="group billing has active members; stop them first"):
                admin.alter_group_offsets("billing", {TopicPartition("orders", 0): 0})
            with pytest.raises(NonEmptyGroupError, match="active members"):
                admin.delete_group("billing")
            assert admin.list_group_offsets("billing") == {TopicPartition("orders", 0): 2}

    with Admin(bootstrap=server) as admin:
        assert admin.describe_group("billing").members == []
        admin.alter_group_offsets("billing", {TopicPartition("orders", 0): 0})
        assert admin.list_group_offsets("billing") == {TopicPartition("orders", 0): 0}
        admin.delete_group("billing")
        with pytest.raises(GroupIdNotFoundError):
            admin.describe_group("billing")


def test_group_requests_sent_to_a_broker_reach_the_coordinator(tmp_path: Path) -> None:
    """On a cluster the coordinator is the active controller, not a broker: brokers forward the requests."""
    from tests.cluster import LocalCluster

    local = LocalCluster(tmp_path / "cluster", controllers=1, brokers=2)
    try:
        local.start()
        produce_counts(local.bootstrap, "fwd", [3, 1])
        for broker in local.brokers:  # each broker on its own, so both forward
            with Admin(bootstrap=broker.address) as admin:
                admin.alter_group_offsets("fwd-group", {TopicPartition("fwd", broker.node_id - 1): broker.node_id})
        with Admin(bootstrap=local.brokers[1].address) as admin:
            assert admin.list_group_offsets("fwd-group") == {TopicPartition("fwd", 0): 1, TopicPartition("fwd", 1): 2}
            assert admin.describe_group("fwd-group").state == "Empty"
            admin.delete_group("fwd-group")
            assert admin.list_groups() == []
    finally:
        local.close()
