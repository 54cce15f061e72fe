"""Issue 5's acceptance for consumer groups, on real processes: balanced sharing with one owner per partition
at every generation, a ``kill -9``ed member's partitions taken over with every record consumed at least once,
and consumers resuming at exactly the committed offsets after the active controller was ``kill -9``ed."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin, Consumer, Producer, Record, TopicPartition
from raftkafka.errors import GroupIdNotFoundError, InvalidPartitionsError
from raftkafka.net.api import ApiKey
from raftkafka.structs import GroupDescription
from tests.cluster import LocalCluster, active_controller, running, wait_for
from tests.group_consumer_process import SESSION_TIMEOUT_MS
from tests.history import History, check
from tests.processes import request

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parents[1]
FAST: dict[str, Any] = {
    "session_timeout_ms": 3000,
    "heartbeat_interval_ms": 200,
    "max_poll_interval_ms": 20_000,
    "auto_offset_reset": "earliest",
}


def owned(description: GroupDescription) -> Counter[TopicPartition]:
    return Counter(tp for member in description.members for tp in member.assignment)


def test_members_share_partitions_evenly_and_each_partition_has_one_owner(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic("shared", partitions=6)
        everything = {TopicPartition("shared", p) for p in range(6)}
        consumers: list[Consumer] = []
        generations: dict[int, GroupDescription] = {}
        try:

            def settled(sizes: list[int]) -> bool:
                for consumer in consumers:
                    consumer.poll(timeout_ms=50)
                assignments = [consumer.assignment() for consumer in consumers]
                for a, b in combinations(assignments, 2):  # never two owners, even mid-rebalance
                    assert not a & b, f"{a & b} owned twice"
                description = admin.describe_group("g")
                if description.generation > 0:  # every generation's assignment has one owner per partition
                    generations[description.generation] = description
                    assert all(count == 1 for count in owned(description).values())
                return sorted(map(len, assignments)) == sizes and set().union(*assignments) == everything

            for client_id in ("a", "b", "c"):
                consumers.append(Consumer("shared", bootstrap=dev_server, group_id="g", client_id=client_id, **FAST))
            wait_for(lambda: settled([2, 2, 2]), 30, "three members with two partitions each")
            three = admin.describe_group("g")
            assert (three.state, len(three.members)) == ("Stable", 3)

            consumers.append(Consumer("shared", bootstrap=dev_server, group_id="g", client_id="d", **FAST))
            wait_for(lambda: settled([1, 1, 2, 2]), 30, "four members sharing six partitions")
            four = admin.describe_group("g")
            assert four.generation > three.generation and len(four.members) == 4
            assert owned(four) == Counter(everything)
            by_client = {m.client_id: set(m.assignment) for m in four.members}
            assert by_client == {client_id: c.assignment() for client_id, c in zip("abcd", consumers, strict=True)}
            assert all(set(owned(d)) <= everything for d in generations.values())
        finally:
            for consumer in consumers:
                consumer.close()


class MemberProcess:
    """``tests.group_consumer_process`` as a child process, its printed records collected by a thread."""

    def __init__(self, bootstrap: str, topic: str, group: str, client_id: str) -> None:
        self.client_id = client_id
        self.records: list[tuple[int, int, bytes]] = []
        self.torn: list[str] = []  # a line cut short by kill -9 (at most one, the last)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.group_consumer_process", bootstrap, topic, group, client_id],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            fields = line.split()
            if len(fields) != 3 or self.torn:
                self.torn.append(line)
                continue
            partition, offset, value = fields
            self.records.append((int(partition), int(offset), value.encode()))

    def kill9(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self._reader.join(10)


def read_everything(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition, from its start to its end, as ``{partition: [(offset, value)]}``."""
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    final: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
    with Consumer(bootstrap=bootstrap, auto_offset_reset="earliest") as reader:
        reader.assign(tps)
        ends = reader.end_offsets(tps)
        deadline = time.monotonic() + 30
        while any(reader.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "could not read every partition back"
            for record in reader.poll(timeout_ms=200):
                final[record.partition].append((record.offset, record.value or b""))
    return final


def test_a_killed_member_s_partitions_move_and_every_record_is_consumed(dev_server: str) -> None:
    partitions, total = 6, 6000
    history = History()
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic("stream", partitions=partitions)
        members = [MemberProcess(dev_server, "stream", "g", f"member-{i}") for i in range(3)]
        try:
            stop = threading.Event()

            def produce() -> None:
                with Producer(bootstrap=dev_server, linger_ms=5) as producer:
                    for i in range(total):
                        if stop.is_set():
                            return
                        send = history.invoke("p", f"v{i}".encode())
                        future = producer.send("stream", send.value, partition=i % partitions)
                        future.add_done_callback(lambda f, s=send: acked(f, s))
                        if i % 200 == 199:
                            producer.flush()
                            time.sleep(0.05)  # paced: the load runs for a few seconds, across the kill

            def acked(future: Any, send: Any) -> None:
                error = future.exception()
                if error is None:
                    history.ok(send, future.result().partition, future.result().offset)
                else:
                    history.info(send, error)

            producer = threading.Thread(target=produce)
            producer.start()

            def three_consuming() -> bool:
                try:
                    description = admin.describe_group("g")
                except GroupIdNotFoundError:  # nobody has joined yet
                    return False
                stable = description.state == "Stable" and len(description.members) == 3
                return stable and all(m.records for m in members)

            wait_for(three_consuming, 60, "three members consuming")
            victim = members[0]
            before = admin.describe_group("g")
            victim_partitions = {tp.partition for m in before.members if m.client_id == victim.client_id
                                 for tp in m.assignment}  # fmt: skip
            committed_before = {tp.partition: o for tp, o in admin.list_group_offsets("g").items()}
            victim.kill9()
            killed_at = time.monotonic()

            def survivors_own_everything() -> bool:
                description = admin.describe_group("g")
                return (
                    description.state == "Stable"
                    and {m.client_id for m in description.members} == {"member-1", "member-2"}
                    and len(owned(description)) == partitions
                )

            wait_for(survivors_own_everything, 30, "the survivors to own every partition")
            rebalance_s = time.monotonic() - killed_at
            assert rebalance_s < SESSION_TIMEOUT_MS / 1000 + 5, f"rebalance took {rebalance_s:.1f}s"
            producer.join(120)
            acknowledged = {s.value for s in history.sends if s.status == "ok"}
            assert len(acknowledged) == total

            def all_consumed() -> bool:
                seen = {value for m in members for _, _, value in m.records}
                return acknowledged <= seen

            wait_for(all_consumed, 60, "every acknowledged record to be consumed")
        finally:
            stop.set()
            for member in members:
                member.kill9()
    for member in members:
        assert len(member.torn) <= 1, f"{member.client_id} printed malformed lines: {member.torn}"
        for partition, offset, value in member.records:
            history.consume(partition, offset, value)
    report = check(history, read_everything(dev_server, "stream", partitions))
    assert report.valid, report.summary()
    copies = Counter((p, o) for m in members for p, o, _ in m.records)
    duplicated = [(p, o) for (p, o), n in copies.items() if n > 1]
    for partition, offset in duplicated:  # only the killed member's uncommitted window is read twice
        assert partition in victim_partitions, f"{partition}/{offset} read twice but was not the killed member's"
        assert offset >= committed_before.get(partition, 0), f"{partition}/{offset} was committed before the kill"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(tmp_path / "cluster", controllers=3, brokers=1))


def test_consumers_resume_at_the_committed_offsets_after_the_active_controller_dies(cluster: LocalCluster) -> None:
    bootstrap = cluster.bootstrap
    tps = [TopicPartition("orders", p) for p in range(4)]
    with Admin(bootstrap=bootstrap) as admin:
        admin.create_topic("orders", partitions=4)
    with Producer(bootstrap=bootstrap, linger_ms=2) as producer:
        for i in range(100):
            for tp in tps:
                producer.send("orders", f"{tp.partition}-{i}".encode(), partition=tp.partition)
    silent = {"group_id": "ghosts", "member_id": "ghost", "client_id": "ghost", "topics": ["orders"],
              "strategies": ["range"], "session_timeout_ms": 1000, "rebalance_timeout_ms": 1000}  # fmt: skip
    error, joined = request(bootstrap.split(",")[0], ApiKey.JOIN_GROUP, silent)
    assert (error, joined["members"]) == (0, 1)
    options = {**FAST, "enable_auto_commit": False}
    first = [Consumer("orders", bootstrap=bootstrap, group_id="g", **options) for _ in range(2)]
    try:
        seen: list[Record] = []

        def everything_assigned() -> bool:
            for consumer in first:
                seen.extend(consumer.poll(timeout_ms=100))
            return sorted(tp for c in first for tp in c.assignment()) == tps and len(seen) >= 50

        wait_for(everything_assigned, 30, "two members reading four partitions")
        wanted = {tp: 40 + tp.partition for tp in tps}
        for consumer in first:
            consumer.commit({tp: offset for tp, offset in wanted.items() if tp in consumer.assignment()})
        active_controller(cluster).kill9()
    finally:
        for consumer in first:
            consumer.close()
    second = [Consumer("orders", bootstrap=bootstrap, group_id="g", **options) for _ in range(2)]
    try:
        first_offsets: dict[TopicPartition, int] = {}

        def resumed() -> bool:
            for consumer in second:
                for record in consumer.poll(timeout_ms=100):
                    first_offsets.setdefault(TopicPartition(record.topic, record.partition), record.offset)
            return len(first_offsets) == len(tps)

        wait_for(resumed, 60, "the new members to read every partition")
        assert first_offsets == wanted
        for consumer in second:
            for tp in consumer.assignment():
                assert consumer.committed(tp) == wanted[tp]
        with Admin(bootstrap=bootstrap) as admin:  # a member that never heartbeats expires on the quorum too
            wait_for(lambda: not admin.describe_group("ghosts").members, 15, "the silent member to expire")
    finally:
        for consumer in second:
            consumer.close()


def test_a_group_rebalances_when_its_topic_grows(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin, Consumer(
        "growing", bootstrap=dev_server, group_id="g", **FAST
    ) as consumer:
        admin.create_topic("growing", partitions=2)
        wait_for(lambda: consumer.poll(timeout_ms=50) is not None and len(consumer.assignment()) == 2, 30,
                 "the member to own both partitions")  # fmt: skip
        admin.create_partitions("growing", 5)
        assert [p.id for p in admin.describe_topic("growing").partitions] == [0, 1, 2, 3, 4]
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions("growing", 3)
        wait_for(lambda: consumer.poll(timeout_ms=50) is not None and len(consumer.assignment()) == 5, 30,
                 "the member to own the new partitions too")  # fmt: skip
        with Producer(bootstrap=dev_server) as producer:
            producer.send("growing", b"new", partition=4).result(10)
        records: list[Record] = []
        wait_for(lambda: records.extend(consumer.poll(timeout_ms=100)) or records, 30, "the record in partition 4")
        assert [(r.partition, r.value) for r in records] == [(4, b"new")]
