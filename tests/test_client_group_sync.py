"""Consumer groups with the sync ``Consumer`` against a real ``raftkafka dev`` process: sharing partitions,
committing and resuming, auto-commit, rebalance listeners, manual assignment with a group, and losing the
partitions after ``max_poll_interval_ms``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from raftkafka import Admin, Consumer, ConsumerRebalanceListener, Producer, Record, TopicPartition
from raftkafka.errors import IllegalGenerationError, RebalanceInProgressError, UnknownMemberIdError

pytestmark = pytest.mark.timeout(120)

FAST: dict[str, Any] = {
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 300,
    "max_poll_interval_ms": 10_000,
    "auto_offset_reset": "earliest",
}
"""Small group timeouts, so rebalances take a fraction of a second."""


def tps(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in range(count)}


def create(bootstrap: str, topic: str, partitions: int) -> None:
    with Admin(bootstrap=bootstrap) as admin:
        admin.create_topic(topic, partitions=partitions)


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int, tag: str = "") -> list[bytes]:
    """``per_partition`` records into each partition; their values."""
    values = []
    with Producer(bootstrap=bootstrap, linger_ms=2) as producer:
        for i in range(per_partition):
            for p in range(partitions):
                value = f"{tag}{p}-{i}".encode()
                producer.send(topic, value, partition=p)
                values.append(value)
    return values


def poll_until(
    consumers: list[Consumer], done: Callable[[], bool], timeout: float = 20.0, sink: list[Record] | None = None
) -> None:
    """Poll every consumer in turn (100 ms each) until ``done()``; records go to ``sink``."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "condition not met in time"
        for consumer in consumers:
            records = consumer.poll(timeout_ms=100)
            if sink is not None:
                sink += records


def test_a_single_member_gets_every_partition(dev_server: str) -> None:
    create(dev_server, "solo", 3)
    values = produce(dev_server, "solo", 3, 10)
    with Consumer("solo", bootstrap=dev_server, group_id="g", **FAST) as consumer:
        assert consumer.subscription() == {"solo"}
        records: list[Record] = []
        poll_until([consumer], lambda: len(records) >= 30, sink=records)
        assert consumer.assignment() == tps("solo", 3)
        assert sorted(r.value for r in records) == sorted(values)


def test_two_members_share_the_partitions_and_read_every_record_once(dev_server: str) -> None:
    create(dev_server, "shared", 4)
    with (
        Consumer("shared", bootstrap=dev_server, group_id="g", client_id="a", **FAST) as a,
        Consumer("shared", bootstrap=dev_server, group_id="g", client_id="b", **FAST) as b,
    ):
        poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2)
        assert a.assignment() | b.assignment() == tps("shared", 4)
        values = produce(dev_server, "shared", 4, 50)
        got: dict[str, list[Record]] = {"a": [], "b": []}
        deadline = time.monotonic() + 20
        while len(got["a"]) + len(got["b"]) < len(values):
            assert time.monotonic() < deadline
            got["a"] += a.poll(timeout_ms=100)
            got["b"] += b.poll(timeout_ms=100)
        assert {TopicPartition(r.topic, r.partition) for r in got["a"]} == a.assignment()
        assert {TopicPartition(r.topic, r.partition) for r in got["b"]} == b.assignment()
        everything = [r.value for r in got["a"] + got["b"]]
        assert sorted(everything) == sorted(values)  # each once


def test_commit_close_and_a_new_member_resumes_at_the_committed_offsets(dev_server: str) -> None:
    create(dev_server, "resume", 2)
    produce(dev_server, "resume", 2, 100)
    settings = {**FAST, "enable_auto_commit": False}
    with Consumer("resume", bootstrap=dev_server, group_id="g", consumer_timeout_ms=5000, **settings) as consumer:
        seen: list[Record] = []
        for record in consumer:  # the iterator takes a big batch; only what it yielded counts
            seen.append(record)
            if len(seen) == 70:
                break
        consumer.commit()
        expected = {}
        for tp in tps("resume", 2):
            offsets = [r.offset for r in seen if r.partition == tp.partition]
            expected[tp] = offsets[-1] + 1 if offsets else 0
            assert consumer.committed(tp) == expected[tp] == consumer.position(tp)
        for _ in range(10):  # read on without committing: these come again
            next(iter(consumer))
    with Consumer("resume", bootstrap=dev_server, group_id="g", **settings) as again:
        records: list[Record] = []
        poll_until([again], lambda: len(records) >= 200 - 70, sink=records)
        for tp, offset in expected.items():
            assert min(r.offset for r in records if r.partition == tp.partition) == offset
        assert len(records) == 200 - 70
        again.commit({TopicPartition("resume", 0): 3})
        assert again.committed(TopicPartition("resume", 0)) == 3


def test_auto_commit_on_close(dev_server: str) -> None:
    create(dev_server, "auto", 2)
    produce(dev_server, "auto", 2, 20)
    with Consumer("auto", bootstrap=dev_server, group_id="g", auto_commit_interval_ms=60_000, **FAST) as consumer:
        records: list[Record] = []
        poll_until([consumer], lambda: len(records) >= 40, sink=records)
    with Consumer("auto", bootstrap=dev_server, group_id="g", **FAST) as again:
        assert again.poll(timeout_ms=1500) == []
        assert again.assignment() == tps("auto", 2)
        assert {tp: again.committed(tp) for tp in tps("auto", 2)} == dict.fromkeys(tps("auto", 2), 20)
        assert {tp: again.position(tp) for tp in tps("auto", 2)} == dict.fromkeys(tps("auto", 2), 20)


def test_periodic_auto_commit(dev_server: str) -> None:
    create(dev_server, "periodic", 1)
    produce(dev_server, "periodic", 1, 10)
    tp = TopicPartition("periodic", 0)
    with Consumer("periodic", bootstrap=dev_server, group_id="g", auto_commit_interval_ms=200, **FAST) as consumer:
        records: list[Record] = []
        poll_until([consumer], lambda: len(records) >= 10, sink=records)
        poll_until([consumer], lambda: consumer.committed(tp) == 10, timeout=10)


class Recorder(ConsumerRebalanceListener):
    """Records the callbacks; ``on_revoked`` runs an extra action (e.g. a commit through the consumer)."""

    def __init__(self, on_revoked: Callable[[set[TopicPartition]], None] | None = None) -> None:
        self.calls: list[tuple[str, set[TopicPartition]]] = []
        self.threads: set[str] = set()
        self.on_revoked = on_revoked

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.calls.append(("revoked", revoked))
        self.threads.add(threading.current_thread().name)
        if self.on_revoked is not None:
            self.on_revoked(revoked)

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.calls.append(("assigned", assigned))
        self.threads.add(threading.current_thread().name)


def test_listener_callbacks_get_the_right_partitions_and_may_commit(dev_server: str) -> None:
    create(dev_server, "listen", 4)
    produce(dev_server, "listen", 4, 10)
    settings = {**FAST, "enable_auto_commit": False}
    first = Consumer(bootstrap=dev_server, group_id="g", client_id="first", **settings)
    committed_in_callback: dict[TopicPartition, int | None] = {}

    def commit_on_revoke(revoked: set[TopicPartition]) -> None:
        first.commit()  # the sync consumer's own method, from its callback
        committed_in_callback.update({tp: first.committed(tp) for tp in revoked})

    listener = Recorder(commit_on_revoke)
    try:
        first.subscribe(["listen"], listener=listener)
        records: list[Record] = []
        poll_until([first], lambda: len(records) >= 40, sink=records)
        assert listener.calls == [("assigned", tps("listen", 4))]
        with Consumer("listen", bootstrap=dev_server, group_id="g", client_id="second", **settings) as second:
            poll_until([first, second], lambda: len(first.assignment()) == 2 and len(second.assignment()) == 2)
            assert listener.calls[1] == ("revoked", tps("listen", 4))
            assert listener.calls[2] == ("assigned", first.assignment())
            assert committed_in_callback == dict.fromkeys(tps("listen", 4), 10)
            assert threading.current_thread().name not in listener.threads
            # the second member starts where the first committed: nothing is left to read
            assert second.poll(timeout_ms=500) == []
            assert {second.position(tp) for tp in second.assignment()} == {10}
    finally:
        first.close()
    assert listener.calls[-1] == ("revoked", first_assignment := listener.calls[2][1])
    assert len(first_assignment) == 2


def test_manual_assignment_with_a_group_commits_and_resumes(dev_server: str) -> None:
    create(dev_server, "manual", 2)
    produce(dev_server, "manual", 2, 10)
    p0, p1 = TopicPartition("manual", 0), TopicPartition("manual", 1)
    with Consumer(bootstrap=dev_server, group_id="m", enable_auto_commit=False, **FAST) as consumer:
        consumer.assign([p0, p1])
        with pytest.raises(ValueError, match="mutually exclusive"):
            consumer.subscribe(["manual"])
        assert consumer.committed(p0) is None
        assert consumer.poll(timeout_ms=5000, max_records=5)
        consumer.commit({p0: 4, p1: 6})
    with Consumer(bootstrap=dev_server, group_id="m", **FAST) as consumer:  # auto-commit on close
        consumer.assign([p0, p1])
        assert (consumer.position(p0), consumer.position(p1)) == (4, 6)
        records: list[Record] = []
        poll_until([consumer], lambda: len(records) >= 10, sink=records)
        assert sorted((r.partition, r.offset) for r in records) == [(0, o) for o in range(4, 10)] + [
            (1, o) for o in range(6, 10)
        ]
    with Consumer(bootstrap=dev_server, group_id="m", **FAST) as consumer:
        consumer.assign([p0])
        assert consumer.committed(p0) == 10 and consumer.committed(p1) == 10
        assert consumer.poll(timeout_ms=300) == []


def test_a_member_that_stops_polling_loses_its_partitions(dev_server: str) -> None:
    create(dev_server, "slow", 4)
    produce(dev_server, "slow", 4, 5)
    settings = {**FAST, "max_poll_interval_ms": 1500, "enable_auto_commit": False}
    with (
        Consumer("slow", bootstrap=dev_server, group_id="g", client_id="slow", **settings) as slow,
        Consumer("slow", bootstrap=dev_server, group_id="g", client_id="busy", **settings) as busy,
    ):
        poll_until([slow, busy], lambda: len(slow.assignment()) == 2 and len(busy.assignment()) == 2)
        started = time.monotonic()
        poll_until([busy], lambda: len(busy.assignment()) == 4, timeout=15)  # slow does not poll
        assert time.monotonic() - started >= 1.0
        with pytest.raises((IllegalGenerationError, UnknownMemberIdError, RebalanceInProgressError), match="poll"):
            slow.commit()
        poll_until([slow, busy], lambda: len(slow.assignment()) == 2 and len(busy.assignment()) == 2)
        slow.commit()  # a member of the current generation again
