"""Issue 4 replication against real processes: 3 controllers + 3 brokers, a topic with RF=3.

Followers fetch from the leader, acks=all waits for the in-sync replicas, consumers never read past the high
watermark, a killed leader is replaced by an in-sync replica holding every acknowledged record, and a former
leader's divergent tail is truncated when it rejoins (replica logs end byte-identical)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka.errors import NotEnoughReplicasError
from raftkafka.net.api import ACKS_ALL, ApiKey
from raftkafka.storage.record_batch import decode_records, encode_batch, iter_batches
from tests.cluster import LocalCluster, Node, running, wait_for
from tests.processes import request

pytestmark = pytest.mark.timeout(120)

SESSION_TIMEOUT_MS = 3000
HEARTBEAT_MS = 500
TOPIC = "replicated"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", str(SESSION_TIMEOUT_MS)],
        broker_args=["--heartbeat-interval-ms", str(HEARTBEAT_MS)],
    ))


def create_topic(cluster: LocalCluster, config: dict[str, str]) -> None:
    topic = {"name": TOPIC, "partitions": 1, "replication_factor": 3, "config": config}
    error, body = request(cluster.brokers[0].address, ApiKey.CREATE_TOPICS, {"topics": [topic], "timeout_ms": 10_000})
    assert error == 0 and body["topics"] == [[TOPIC, 0, ""]], body
    wait_for(lambda: all(partition_state(cluster, b) for b in cluster.brokers), 10, "every broker to see the topic")


def partition_state(cluster: LocalCluster, via: Node | None = None) -> list[Any] | None:
    """``[id, leader, leader_epoch, replicas, isr]`` of partition 0 as a live broker describes it."""
    for node in [via] if via else [b for b in cluster.brokers if b.alive]:
        try:
            error, body = request(node.address, ApiKey.METADATA, {"topics": [TOPIC]}, timeout=2)
        except OSError:
            continue
        if error == 0 and body["topics"][0]["error"] == 0:
            return body["topics"][0]["partitions"][0]  # type: ignore[no-any-return]
    return None


def leader(cluster: LocalCluster) -> Node:
    def live_leader() -> Node | None:
        state = partition_state(cluster)
        if state is None or state[1] < 0:
            return None
        node = cluster.broker(state[1])
        return node if node.alive else None

    return wait_for(live_leader, 15, "a live partition leader")  # type: ignore[return-value]


def produce(node: Node, values: list[bytes], acks: int, timeout_ms: int = 20_000) -> tuple[int, int]:
    """``(error, base_offset)`` of one batch of ``values`` sent to ``node``."""
    now = int(time.time() * 1000)
    batch = encode_batch([[0, None, v, []] for v in values], first_timestamp=now, max_timestamp=now)
    body = {"acks": acks, "timeout_ms": timeout_ms, "topics": [[TOPIC, [[0, batch]]]]}
    error, answer = request(node.address, ApiKey.PRODUCE, body, timeout=timeout_ms / 1000 + 10)
    assert error == 0, answer
    ((_, ((_, partition_error, base_offset, _),)),) = answer["topics"]
    return partition_error, base_offset


def consume(node: Node) -> tuple[int, list[bytes]]:
    """``(high_watermark, values)``: everything a consumer reads from the leader ``node``, from offset 0."""
    values: list[bytes] = []
    offset, high_watermark = 0, -1
    while True:
        body = {"max_wait_ms": 0, "topics": [[TOPIC, [[0, offset, 1 << 20]]]]}
        error, answer = request(node.address, ApiKey.FETCH, body)
        assert error == 0, answer
        ((_, ((_, partition_error, high_watermark, _, records),)),) = answer["topics"]
        assert partition_error == 0, partition_error
        if not records:
            return high_watermark, values
        for header in iter_batches(records):
            assert header.base_offset == offset
            values.extend(record[2] for record in decode_records(records, header.position, header))
            offset = header.next_offset


def replica_bytes(node: Node) -> bytes:
    """The partition's log as stored on ``node`` (every segment, in order)."""
    directory = node.data_dir / "logs" / f"{TOPIC}-0"
    return b"".join(path.read_bytes() for path in sorted(directory.glob("*.log")))


def wait_identical(nodes: list[Node], what: str) -> bytes:
    def identical() -> bytes | None:
        logs = {replica_bytes(node) for node in nodes}
        return logs.pop() if len(logs) == 1 else None

    return wait_for(identical, 20, what)  # type: ignore[return-value]


def values_of(log: bytes) -> list[bytes]:
    return [r[2] for h in iter_batches(log) for r in decode_records(log, h.position, h)]


def test_acks_all_replicates_to_every_replica_and_survives_a_follower_loss(cluster: LocalCluster) -> None:
    create_topic(cluster, {"min.insync.replicas": "2"})
    lead = leader(cluster)
    sent = [f"v{i}".encode() for i in range(50)]
    for i in range(0, 50, 10):
        assert produce(lead, sent[i : i + 10], ACKS_ALL) == (0, i)
    high_watermark, seen = consume(lead)
    assert (high_watermark, seen) == (50, sent)
    stored = wait_identical(cluster.brokers, "every replica to hold the same bytes")
    assert values_of(stored) == sent

    # One follower dies. Until it leaves the ISR (its session expires) the high watermark stays behind it, so
    # consumers do not see an acks=1 record; then acks=all carries on with the two replicas left.
    followers = [b for b in cluster.brokers if b is not lead]
    followers[0].kill9()
    assert produce(lead, [b"acks-one-0"], 1) == (0, 50)
    assert consume(lead) == (50, sent)
    assert produce(lead, [b"after-one"], ACKS_ALL) == (0, 51)
    sent += [b"acks-one-0", b"after-one"]
    assert consume(lead) == (52, sent)
    assert values_of(wait_identical([lead, followers[1]], "the live replicas to agree")) == sent

    # Two die: acks=all is refused (nothing appended) once the ISR is the leader alone; acks=1 still works.
    followers[1].kill9()
    wait_for(lambda: (s := partition_state(cluster)) and s[4] == [lead.node_id], 15, "the ISR to shrink to the leader")
    assert produce(lead, [b"refused"], ACKS_ALL)[0] == NotEnoughReplicasError.code
    assert produce(lead, [b"acks-one-1"], 1) == (0, 52)
    assert consume(lead) == (53, [*sent, b"acks-one-1"])


def test_new_leader_serves_every_acknowledged_record(cluster: LocalCluster) -> None:
    create_topic(cluster, {"min.insync.replicas": "2"})
    lead = leader(cluster)
    acknowledged = []
    for i in range(20):
        value = f"acked-{i}".encode()
        assert produce(lead, [value], ACKS_ALL)[0] == 0
        acknowledged.append(value)
    lead.kill9()
    new_leader = wait_for(lambda: (n := leader(cluster)) is not lead and n, 20, "a new leader")
    assert isinstance(new_leader, Node)
    wait_for(lambda: consume(new_leader)[1] == acknowledged, 15, "the new leader to serve every acked record")
    assert produce(new_leader, [b"next"], ACKS_ALL) == (0, 20)


def test_former_leader_truncates_its_divergent_tail(cluster: LocalCluster) -> None:
    create_topic(cluster, {"min.insync.replicas": "1", "unclean.leader.election.enable": "true"})
    old = leader(cluster)
    assert produce(old, [b"common-0", b"common-1"], ACKS_ALL) == (0, 0)
    wait_identical(cluster.brokers, "the common prefix on every replica")
    others = [b for b in cluster.brokers if b is not old]
    for node in others:
        node.kill9()
    wait_for(lambda: (s := partition_state(cluster)) and s[4] == [old.node_id], 15, "the ISR to shrink to the leader")
    assert produce(old, [b"divergent-0", b"divergent-1"], 1) == (0, 2)
    old.kill9()
    # An out-of-sync replica comes back first and becomes leader (unclean election), then the others follow it.
    others[0].start().wait_serving()
    wait_for(lambda: (s := partition_state(cluster)) and s[1] == others[0].node_id, 20, "the unclean election")
    assert produce(others[0], [b"new-2"], 1) == (0, 2)
    others[1].start().wait_serving()
    old.start().wait_serving()
    stored = wait_identical(cluster.brokers, "every replica to end byte-identical")
    assert values_of(stored) == [b"common-0", b"common-1", b"new-2"]
