"""The idempotent producer's client side: on by default with acks=all, its batches carry a producer id and
per-partition sequence numbers (read back raw), conflicting settings, and a leader ``kill -9`` mid-stream on a
3x3 cluster after which every value is stored exactly once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin, Producer
from raftkafka.errors import InvalidConfigError
from raftkafka.net.api import ApiKey
from raftkafka.storage.record_batch import BatchHeader, decode_records, iter_batches
from tests.cluster import LocalCluster, partition_leader, running, wait_for
from tests.processes import request

pytestmark = pytest.mark.timeout(120)

TOPIC = "idem"


def fetch_batches(address: str, partition: int = 0) -> list[tuple[BatchHeader, list[bytes]]]:
    """Every batch header of the partition, with its values, read with raw FETCHes from ``address``."""
    batches: list[tuple[BatchHeader, list[bytes]]] = []
    offset = 0
    while True:
        body = {"max_wait_ms": 0, "topics": [[TOPIC, [[partition, offset, 1 << 20]]]]}
        error, answer = request(address, ApiKey.FETCH, body)
        assert error == 0, answer
        ((_, ((_, partition_error, _, _, records),)),) = answer["topics"]
        assert partition_error == 0, partition_error
        if not records:
            return batches
        for header in iter_batches(records):
            batches.append((header, [record[2] for record in decode_records(records, header.position, header)]))
            offset = header.next_offset


def test_default_acks_all_producer_is_idempotent(dev_server: str) -> None:
    with Admin(bootstrap=dev_server) as admin:
        admin.create_topic(TOPIC, partitions=1)
    with Producer(bootstrap=dev_server, linger_ms=0) as producer:
        assert producer.idempotent
        for round_ in range(3):  # three flushed rounds: at least three batches
            futures = [producer.send(TOPIC, f"{round_}-{i}".encode(), partition=0) for i in range(round_ + 2)]
            producer.flush()
            assert [f.result(0).offset for f in futures] == sorted(f.result(0).offset for f in futures)
    with Producer(bootstrap=dev_server, acks=1) as plain:
        assert not plain.idempotent
        plain.send(TOPIC, b"plain", partition=0).result(10)
    batches = fetch_batches(dev_server)
    idempotent, (last,) = batches[:-1], batches[-1:]
    sent = [f"{r}-{i}".encode() for r in range(3) for i in range(r + 2)]
    assert [v for _, values in idempotent for v in values] == sent
    assert len({h.producer_id for h, _ in idempotent}) == 1 and idempotent[0][0].producer_id >= 0
    assert {h.producer_epoch for h, _ in idempotent} == {0}
    sequence = 0
    for header, values in idempotent:  # consecutive sequence numbers from 0, one per record
        assert header.base_sequence == sequence
        sequence += len(values)
    assert last[1] == [b"plain"] and (last[0].producer_id, last[0].base_sequence) == (-1, -1)


CONFLICTS = [{"acks": 1}, {"acks": 0}, {"max_in_flight": 6}, {"acks": "1", "max_in_flight": 9}]


@pytest.mark.parametrize("settings", CONFLICTS)
def test_explicit_idempotence_with_conflicting_settings_raises(dev_server: str, settings: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfigError, match="idempotent producer needs acks='all' and max_in_flight <= 5"):
        Producer(bootstrap=dev_server, idempotent=True, **settings)


def test_default_idempotence_quietly_off_with_such_settings(dev_server: str) -> None:
    for settings, expected in [({"acks": 1}, False), ({"acks": 0}, False), ({"max_in_flight": 6}, False),
                               ({"acks": -1, "max_in_flight": 5}, True), ({"idempotent": False}, False)]:
        with Producer(bootstrap=dev_server, **settings) as producer:
            assert producer.idempotent is expected, settings


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", "3000"],
        broker_args=["--heartbeat-interval-ms", "300"],
    ))


def test_leader_kill9_mid_stream_stores_every_value_exactly_once(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic(TOPIC, partitions=1, replication_factor=3, config={"min.insync.replicas": "2"})
    leader = partition_leader(cluster, TOPIC)
    futures: list[tuple[bytes, Any]] = []
    stop = threading.Event()
    with Producer(bootstrap=cluster.bootstrap, linger_ms=2, delivery_timeout_ms=60_000) as producer:
        assert producer.idempotent

        def produce() -> None:
            seq = 0
            while not stop.is_set():
                value = f"v{seq:06d}".encode()
                futures.append((value, producer.send(TOPIC, value, partition=0)))
                seq += 1
                stop.wait(0.001)

        sender = threading.Thread(target=produce)
        sender.start()
        try:
            wait_for(lambda: sum(f.done() for _, f in futures) >= 200, 20, "acknowledged records before the kill")
            leader.kill9()
            started = time.monotonic()
            wait_for(lambda: len(futures) >= 2 * 200 and time.monotonic() - started > 3, 30, "sends during failover")
        finally:
            stop.set()
            sender.join()
        producer.flush(60)
    acked = [value for value, future in futures if future.exception(0) is None]
    assert len(acked) == len(futures), [future.exception(0) for _, future in futures if future.exception(0)][:3]
    new_leader = partition_leader(cluster, TOPIC, exclude=leader)
    stored = [v for _, values in fetch_batches(new_leader.address) for v in values]
    counts = Counter(stored)
    assert [v for v, n in counts.items() if n > 1] == []
    assert stored == [value for value, _ in futures]  # all of them, once each, in send order
    offsets = [future.result(0).offset for _, future in futures]
    assert offsets == list(range(len(futures)))

