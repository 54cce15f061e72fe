"""Issue 4's chaos run, checked by the history checker (``tests/history.py``).

3 controllers and 3 brokers (real processes), a topic with 6 partitions, RF=3 and
``min.insync.replicas=2``; an ``acks=all`` producer sends unique values for 60 s while a consumer reads
along. Meanwhile a broker is ``kill -9``ed and restarted every 5-10 s (fixed seed), and once the active
controller too. Then every node runs again, the producer is flushed, the ISRs are full again, and every
partition is read from offset 0 and each replica's segments from its data dir: the checker must find
nothing lost, unexpected, out of order, inconsistent, or read although its send failed.

Duplicates: with the idempotent producer (issue 4 item 6) none are allowed. Until it exists the
producer is not idempotent (with one request in flight per broker, so retries keep send order), and a
retry of a batch that was stored but not acknowledged stores its values twice; the run then reports the
duplicates separately and does not fail on them (every other anomaly still fails it).

Send outcomes: a send is ``ok`` with its acknowledged offset, ``info`` for any error (timeouts, leader
changes and ``NOT_ENOUGH_REPLICAS`` after retries do not prove the record was not stored), and ``fail``
only for errors the broker raises before appending (malformed or oversized batches).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftkafka import Admin, Consumer, Producer, TopicPartition
from raftkafka.errors import (
    CorruptBatchError,
    FeatureNotAvailableError,
    InvalidTopicError,
    MessageTooLargeError,
    RaftKafkaError,
)
from raftkafka.net.api import ApiKey
from tests.cluster import LocalCluster, Node, running, wait_for
from tests.history import History, check, read_replica_batches
from tests.processes import request

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(420),
]

TOPIC = "chaos"
PARTITIONS = 6
RUN_S = 60.0
SEED = 4
SEND_RATE = 1000
"""Sends per second (bounded load on 2 cores)."""
DEFINITE_FAILURES = (CorruptBatchError, MessageTooLargeError, InvalidTopicError)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running(LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=3,
        controller_args=["--broker-session-timeout-ms", "3000"],
        broker_args=["--heartbeat-interval-ms", "300", "--replica-lag-time-max-ms", "2000"],
    ))


def make_producer(bootstrap: str) -> tuple[Producer, bool]:
    """An acks=all producer, idempotent when the client has it; and whether it is. Without idempotence one
    request in flight per broker keeps retries in send order (as Kafka's ``max.in.flight.requests=1``)."""
    settings: dict[str, Any] = {"acks": "all", "linger_ms": 5, "delivery_timeout_ms": 30_000}
    try:
        return Producer(bootstrap, idempotent=True, **settings), True
    except FeatureNotAvailableError:
        return Producer(bootstrap, idempotent=False, max_in_flight=1, **settings), False


def produce(producer: Producer, history: History, stop: threading.Event) -> None:
    """Send unique values at ``SEND_RATE`` until ``stop``; each outcome lands in ``history``."""

    def record(send: Any) -> Any:
        def done(future: Any) -> None:
            error = future.exception(0)
            if error is None:
                metadata = future.result(0)
                history.ok(send, metadata.partition, metadata.offset)
            elif isinstance(error, DEFINITE_FAILURES):
                history.fail(send, error)
            else:
                history.info(send, error)

        return done

    started = time.monotonic()
    seq = 0
    while not stop.is_set():
        send = history.invoke("p0", f"p0-{seq:08d}".encode())
        try:
            producer.send(TOPIC, send.value).add_done_callback(record(send))
        except Exception as exc:  # buffer full or no metadata for max_block_ms: it may not have been queued
            history.info(send, exc)
        seq += 1
        pause = started + seq / SEND_RATE - time.monotonic()
        if pause > 0:
            stop.wait(pause)


def consume(bootstrap: str, history: History, stop: threading.Event, errors: list[BaseException]) -> None:
    """Read every partition along from the beginning until ``stop``; a consumer that fails (its brokers are
    being killed) is replaced by one resuming at the next offsets. Unexpected failures land in ``errors``."""
    tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    positions = dict.fromkeys(range(PARTITIONS), 0)
    try:
        while not stop.is_set():
            try:
                with Consumer(bootstrap=bootstrap, auto_offset_reset="earliest") as consumer:
                    consumer.assign(tps)
                    for tp in tps:
                        consumer.seek(tp, positions[tp.partition])
                    while not stop.is_set():
                        try:
                            records = consumer.poll(timeout_ms=200)
                        except RaftKafkaError:  # leaders move; the next poll retries
                            continue
                        for rec in records:
                            history.consume(rec.partition, rec.offset, rec.value)
                            positions[rec.partition] = rec.offset + 1
            except RaftKafkaError:
                stop.wait(0.2)
    except BaseException as exc:
        errors.append(exc)


def active_controller(cluster: LocalCluster) -> Node | None:
    for node in cluster.controllers:
        if not node.alive:
            continue
        try:
            error, status = request(node.address, ApiKey.QUORUM_STATUS, {}, timeout=2)
        except OSError:
            continue
        if error == 0 and status.get("leader_id") is not None:
            return next((c for c in cluster.controllers if c.node_id == status["leader_id"]), None)
    return None


def inject_faults(cluster: LocalCluster, rng: random.Random, stop: threading.Event) -> list[str]:
    """Kill -9 and restart a random broker every 5-10 s, and the active controller once, until ``stop``."""
    faults: list[str] = []
    controller_done = False
    started = time.monotonic()
    while not stop.is_set():
        if not controller_done and time.monotonic() - started > RUN_S / 2:
            victim = active_controller(cluster)
            if victim is not None:
                controller_done = True
                faults.append(f"kill -9 active controller {victim.node_id}")
                victim.kill9()
                stop.wait(rng.uniform(2, 4))
                victim.start()
                continue
        broker = rng.choice(cluster.brokers)
        faults.append(f"kill -9 broker {broker.node_id}")
        broker.kill9()
        stop.wait(rng.uniform(2, 4))
        broker.start()
        stop.wait(rng.uniform(3, 6))
    return faults


def isr_full(cluster: LocalCluster) -> bool:
    try:
        error, body = request(cluster.brokers[0].address, ApiKey.METADATA, {"topics": [TOPIC]}, timeout=2)
    except OSError:
        return False
    return error == 0 and all(len(p[4]) == 3 and p[1] >= 0 for p in body["topics"][0]["partitions"])


def read_everything(bootstrap: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every partition from offset 0 up to its end (the high watermark)."""
    final: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    with Consumer(bootstrap=bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, 0)
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "could not read every partition to its end"
            for rec in consumer.poll(timeout_ms=500):
                if rec.offset < ends[TopicPartition(TOPIC, rec.partition)]:
                    final[rec.partition].append((rec.offset, rec.value))
    return final


def test_chaos_run_loses_nothing(cluster: LocalCluster) -> None:
    with Admin(bootstrap=cluster.bootstrap) as admin:
        admin.create_topic(TOPIC, partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
    wait_for(lambda: isr_full(cluster), 30, "a full ISR on every partition")
    history = History()
    stop = threading.Event()
    producer, idempotent = make_producer(cluster.bootstrap)
    consumer_errors: list[BaseException] = []
    threads = [
        threading.Thread(target=produce, args=(producer, history, stop), name="chaos-producer"),
        threading.Thread(
            target=consume, args=(cluster.bootstrap, history, stop, consumer_errors), name="chaos-consumer"
        ),
    ]
    for thread in threads:
        thread.start()
    faults: list[str] = []
    fault_thread = threading.Thread(
        target=lambda: faults.extend(inject_faults(cluster, random.Random(SEED), stop)), name="chaos-faults"
    )
    fault_thread.start()
    try:
        stop.wait(RUN_S)
    finally:
        stop.set()
        for thread in [fault_thread, *threads]:
            thread.join(timeout=60)
    # heal: every node back, every outcome known, every ISR full
    for node in cluster.nodes:
        if not node.alive:
            node.start()
    for node in cluster.nodes:
        node.wait_serving()
    producer.close(timeout=60)
    wait_for(lambda: isr_full(cluster), 60, "full ISRs after healing")

    final = read_everything(cluster.bootstrap)
    replicas = {
        p: {b.node_id: read_replica_batches(b.data_dir / "logs" / f"{TOPIC}-{p}") for b in cluster.brokers}
        for p in range(PARTITIONS)
    }
    report = check(history, final, replicas=replicas)
    print(f"faults: {faults}\nidempotent producer: {idempotent}\n{report.summary()}", file=sys.stderr)
    counts = report.counts()
    if not idempotent:
        counts.pop("duplicate")  # retries of a non-idempotent producer may store a value twice (see the module doc)
    assert not any(counts.values()), report.summary()
    assert report.sends["ok"] > RUN_S * SEND_RATE / 4, report.summary()  # the run did make progress
    assert not consumer_errors and len(history.consumed) > report.sends["ok"] / 2, (
        consumer_errors,
        len(history.consumed),
    )
