"""The broker failover rounds: time from ``kill -9`` of a partition's leader to the next acknowledged acks=all write.

The cluster (3 controllers, 3 brokers) gets a topic of one partition with replication factor 3 and
``min.insync.replicas=2``. An ``AsyncProducer`` (acks=all, linger 0, the client's default retries and
backoff) writes that partition one record at a time, without pause, for the whole run. Each round idles
``idle_s``, finds the partition's leader (every live broker's METADATA must agree), SIGKILLs it and starts
the clock; the clock stops when a record *sent after the kill* is acknowledged (a record sent before it
could be acknowledged by the dead leader's last answer, still in the socket). The figure is what the
producer sees: the controller fencing the silent broker once its session expires, electing a new leader
from the ISR, the brokers learning it, the client's metadata refresh and retry backoff. The killed broker
is then restarted on its data dir and the next round waits until it is back in the partition's ISR.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from raftkafka.aio import AsyncProducer
from raftkafka.bench.failover_result import FailoverSettings, KillResult
from raftkafka.bench.local_cluster import LocalCluster, request
from raftkafka.bench.quorum import topic_errors
from raftkafka.bench.settings import MIN_INSYNC_REPLICAS, make_payload
from raftkafka.errors import (
    BrokerNotAvailableError,
    InvalidReplicationFactorError,
    KafkaTimeoutError,
    NetworkError,
    RaftKafkaError,
    TopicAlreadyExistsError,
)
from raftkafka.net.api import ApiKey

PRODUCER_LOGGER = "raftkafka.client.producer"
"""Its retry warnings (one per 100 ms backoff while the leader is down) are what is measured: kept to errors."""
PARTITION = 0
REPLICATION_FACTOR = 3
RECORD_SIZE = 100
ACK_TIMEOUT_S = 120.0
"""How long a round may wait for the next acknowledged write (well above the 9 s default session timeout)."""
SETTLE_TIMEOUT_S = 60.0
POLL_S = 0.05


class AckedWriter:
    """Writes one record at a time to one partition, forever; tells when a write sent after a moment is acked."""

    def __init__(self, producer: AsyncProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._payload = make_payload(RECORD_SIZE)
        self._waiter: tuple[float, asyncio.Future[float]] | None = None
        self.acked = 0

    async def run(self) -> None:
        """Write until cancelled (a write that fails for good ends it with that error)."""
        clock = time.perf_counter
        while True:
            sent = clock()
            await self._producer.send_and_wait(self._topic, self._payload, partition=PARTITION)
            acked = clock()
            self.acked += 1
            if self._waiter is not None and sent >= self._waiter[0]:
                if not self._waiter[1].done():
                    self._waiter[1].set_result(acked)
                self._waiter = None

    def acked_after(self, moment: float) -> asyncio.Future[float]:
        """A future of the ``perf_counter`` time at which the first write sent at or after ``moment`` was acked."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiter = (moment, future)
        return future


def partition_state(answer: Any, topic: str) -> tuple[int, list[int]] | None:
    """(leader, isr) of ``PARTITION`` of ``topic`` in a METADATA answer; None if it is not there (yet)."""
    for entry in answer.get("topics", []) if isinstance(answer, dict) else []:
        if isinstance(entry, dict) and entry.get("name") == topic and not entry.get("error"):
            for partition in entry.get("partitions", []):
                if partition[0] == PARTITION:
                    return partition[1], list(partition[4])
    return None


async def agreed_state(addresses: Sequence[str], topic: str) -> tuple[int, list[int]] | None:
    """The partition's (leader, isr) if every broker at ``addresses`` reports the same one, else None."""
    states = set()
    for address in addresses:
        try:
            state = partition_state(await request(address, ApiKey.METADATA, {"topics": [topic]}), topic)
        except (RaftKafkaError, TimeoutError):
            return None
        if state is None:
            return None
        states.add((state[0], tuple(sorted(state[1]))))
    if len(states) != 1:
        return None
    leader, isr = states.pop()
    return leader, list(isr)


async def wait_for_state(
    addresses: Sequence[str], topic: str, ready: Callable[[int, list[int]], bool], what: str
) -> int:
    """Poll until the brokers agree on a partition state that is ``ready``; its leader."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        state = await agreed_state(addresses, topic)
        if state is not None and ready(*state):
            return state[0]
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"brokers {', '.join(addresses)} did not agree that {what}")
        await asyncio.sleep(POLL_S)


async def create_topic(address: str, topic: str) -> None:
    """Create the one-partition RF=3 ``min.insync.replicas=2`` topic through ``address`` (retried until placed)."""
    body = {
        "topics": [
            {
                "name": topic,
                "partitions": 1,
                "replication_factor": REPLICATION_FACTOR,
                "config": {"min.insync.replicas": str(MIN_INSYNC_REPLICAS)},
            }
        ],
        "timeout_ms": int(SETTLE_TIMEOUT_S * 1000),
        "validate_only": False,
    }
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        try:
            error = topic_errors(await request(address, ApiKey.CREATE_TOPICS, body, timeout=SETTLE_TIMEOUT_S))[0]
            if error is None or isinstance(error, TopicAlreadyExistsError):
                return
        except (NetworkError, BrokerNotAvailableError, TimeoutError):
            error = None
        if error is not None and not error.retriable and not isinstance(error, InvalidReplicationFactorError):
            raise error
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"topic {topic!r} could not be created")
        await asyncio.sleep(POLL_S)


async def first_ack(writer: AckedWriter, writing: asyncio.Task[None], moment: float) -> float:
    """When the first write sent after ``moment`` was acked; the writer's own error if it failed first."""
    acked = writer.acked_after(moment)
    done, _ = await asyncio.wait({acked, writing}, timeout=ACK_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if acked in done:
        return acked.result()
    if writing in done:
        writing.result()
    acked.cancel()
    raise KafkaTimeoutError(f"no acks=all write was acknowledged within {ACK_TIMEOUT_S:g} s of the kill")


async def broker_kill_round(
    cluster: LocalCluster, topic: str, writer: AckedWriter, writing: asyncio.Task[None]
) -> KillResult:
    """Kill the partition's leader, time the next acked write, restart the victim and wait until it is in the ISR."""
    everyone = [node.address for node in cluster.brokers]
    victim = cluster.broker(await wait_for_state(everyone, topic, lambda leader, isr: leader >= 0, "it has a leader"))
    survivors = [node.address for node in cluster.brokers if node is not victim]
    start = time.perf_counter()
    victim.kill()
    acked_at = await first_ack(writer, writing, time.perf_counter())
    seconds = acked_at - start
    new_leader = await wait_for_state(
        survivors, topic, lambda leader, isr: leader not in (-1, victim.node_id), "a new leader was elected"
    )
    victim.start()
    await victim.wait_serving()
    await wait_for_state(everyone, topic, lambda leader, isr: victim.node_id in isr, f"{victim} is back in the ISR")
    return KillResult(victim.node_id, new_leader, seconds)


async def broker_kill_rounds(
    cluster: LocalCluster, settings: FailoverSettings, on_kill: Callable[[int, KillResult], None] | None
) -> list[KillResult]:
    """``settings.kills`` rounds of killing the leader of a partition written continuously with acks=all."""
    topic = f"bench-broker-failover-{secrets.token_hex(4)}"
    addresses = [node.address for node in cluster.brokers]
    await create_topic(addresses[0], topic)
    await wait_for_state(
        addresses, topic, lambda leader, isr: leader >= 0 and len(isr) == REPLICATION_FACTOR, "all replicas are in sync"
    )
    producer_log = logging.getLogger(PRODUCER_LOGGER)
    level = producer_log.level
    producer_log.setLevel(max(logging.ERROR, producer_log.getEffectiveLevel()))
    try:
        return await write_and_kill(cluster, settings, on_kill, topic)
    finally:
        producer_log.setLevel(level)


async def write_and_kill(
    cluster: LocalCluster, settings: FailoverSettings, on_kill: Callable[[int, KillResult], None] | None, topic: str
) -> list[KillResult]:
    """Write ``topic`` continuously while ``settings.kills`` rounds kill its leader."""
    kills = []
    async with AsyncProducer(cluster.bootstrap, acks="all", linger_ms=0) as producer:
        writer = AckedWriter(producer, topic)
        writing = asyncio.create_task(writer.run())
        try:
            for index in range(settings.kills):
                await asyncio.sleep(settings.idle_s)
                if writing.done():
                    writing.result()
                kill = await broker_kill_round(cluster, topic, writer, writing)
                kills.append(kill)
                if on_kill is not None:
                    on_kill(index, kill)
        finally:
            writing.cancel()
            await asyncio.gather(writing, return_exceptions=True)
    return kills
