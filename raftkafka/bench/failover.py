"""The failover workload: time from ``kill -9`` of the active controller to the next committed change, or (target
``broker``, see ``bench.broker_failover``) of a partition's leader broker to the next acknowledged acks=all write.

The workload starts its own cluster (``controllers`` voters and one broker, or three brokers for the broker
target; real processes). For the controller target each round
lets the quorum sit idle for ``idle_s`` seconds, finds the active controller with QUORUM_STATUS, SIGKILLs
it and starts the clock. Every surviving controller is then asked for a change (CREATE_TOPICS of a new
one-partition topic, see ``bench.quorum``) every ``PROBE_INTERVAL_S``: a follower answers NOT_CONTROLLER at
once, the new leader once it is active and the record committed. The first success stops the clock, so
the figure is the quorum's (election, activation, one commit), not a client's retry backoff; asking every
survivor covers any NOT_CONTROLLER hint. The killed controller is then restarted on its data dir and the
next round waits until it has caught up with the leader's metadata offset.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from raftkafka.bench.broker_failover import broker_kill_rounds
from raftkafka.bench.failover_result import FailoverResult, FailoverSettings, KillResult
from raftkafka.bench.local_cluster import LocalCluster, request
from raftkafka.bench.quorum import create_topic, leader_listener, open_connection
from raftkafka.errors import KafkaTimeoutError, RaftKafkaError
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.net.eventloop import run

PROBE_INTERVAL_S = 0.005
PROBE_TIMEOUT_S = 5.0
"""How long one probe request may wait for its answer before the next is sent."""
FAILOVER_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 60.0
POLL_S = 0.05


async def quorum_status(addresses: Sequence[str]) -> dict[str, Any]:
    """The QUORUM_STATUS answer of the first of ``addresses`` that knows a leader."""
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while True:
        for address in addresses:
            try:
                status = await request(address, ApiKey.QUORUM_STATUS, {})
            except (RaftKafkaError, TimeoutError):
                continue
            if leader_listener(status, address) is not None:
                return status  # type: ignore[no-any-return]
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"no controller of {', '.join(addresses)} knows a leader")
        await asyncio.sleep(POLL_S)


async def first_commit(addresses: Sequence[str], names: Iterator[str]) -> str:
    """Ask every one of ``addresses`` for a change every ``PROBE_INTERVAL_S`` until one commits; its address."""
    connections: dict[str, Connection] = {}

    async def probe(address: str) -> str:
        while True:
            try:
                connection = connections.get(address)
                if connection is None or connection.closed:
                    connection = connections[address] = await open_connection(address)
                await create_topic(connection, next(names), PROBE_TIMEOUT_S)
                return address
            except TimeoutError:
                pass
            except RaftKafkaError as exc:
                if not exc.retriable:
                    raise
            await asyncio.sleep(PROBE_INTERVAL_S)

    tasks = [asyncio.create_task(probe(address)) for address in addresses]
    try:
        done, _ = await asyncio.wait(tasks, timeout=FAILOVER_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise KafkaTimeoutError(f"no controller committed a change within {FAILOVER_TIMEOUT_S:g}s")
        return next(iter(done)).result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in connections.values():
            connection.close()


async def wait_caught_up(address: str, offset: int) -> None:
    """Wait until the controller at ``address`` has applied the metadata record at ``offset``."""
    deadline = time.monotonic() + CATCH_UP_TIMEOUT_S
    while True:
        try:
            status = await request(address, ApiKey.QUORUM_STATUS, {})
            if status.get("metadata_offset", -1) >= offset:
                return
        except (RaftKafkaError, TimeoutError):
            pass
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"controller {address} did not catch up to offset {offset}")
        await asyncio.sleep(POLL_S)


async def kill_round(cluster: LocalCluster, names: Iterator[str]) -> KillResult:
    """Kill the active controller, time the next commit, restart the victim and wait until it caught up."""
    status = await quorum_status(cluster.controller_addresses)
    victim = cluster.controller(status["leader_id"])
    survivors = [node for node in cluster.controllers if node is not victim]
    start = time.perf_counter()
    victim.kill()
    winner = await first_commit([node.address for node in survivors], names)
    seconds = time.perf_counter() - start
    new_leader = next(node.node_id for node in survivors if node.address == winner)
    victim.start()
    await victim.wait_serving()
    leader_status = await request(winner, ApiKey.QUORUM_STATUS, {})
    await wait_caught_up(victim.address, leader_status["metadata_offset"])
    return KillResult(victim.node_id, new_leader, seconds)


OnKill = Callable[[int, KillResult], None]


async def controller_kill_rounds(
    cluster: LocalCluster, settings: FailoverSettings, on_kill: OnKill | None
) -> list[KillResult]:
    """``settings.kills`` rounds of killing the active controller."""
    prefix = f"bench-failover-{secrets.token_hex(4)}"
    names = (f"{prefix}-{i}" for i in itertools.count())
    await first_commit(cluster.controller_addresses, names)  # the quorum has an active controller
    kills = []
    for index in range(settings.kills):
        await asyncio.sleep(settings.idle_s)
        kill = await kill_round(cluster, names)
        kills.append(kill)
        if on_kill is not None:
            on_kill(index, kill)
    return kills


async def measure(settings: FailoverSettings, *, on_kill: OnKill | None = None) -> FailoverResult:
    """Start the cluster, run ``settings.kills`` rounds against the target, and always remove the cluster."""
    rounds = controller_kill_rounds if settings.target == "controller" else broker_kill_rounds
    async with LocalCluster(
        settings.controllers, brokers=settings.brokers, controller_args=settings.controller_args()
    ) as cluster:
        kills = await rounds(cluster, settings, on_kill)
    return FailoverResult(settings, tuple(kills))


def run_failover(settings: FailoverSettings, *, on_kill: OnKill | None = None) -> FailoverResult:
    """Run the workload; ``on_kill(index, kill)`` after each round (the CLI's progress)."""
    return run(measure(settings.validate(), on_kill=on_kill))
