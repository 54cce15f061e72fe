"""Talking to the metadata quorum from a benchmark: find the active controller, commit one change.

One metadata *change* is a CREATE_TOPICS request for one topic of one partition and replication factor 1:
the active controller decides it, commits one ``CreateTopic`` record through the Raft quorum and answers
after the commit, so its round trip is one committed metadata record. Controllers serve CREATE_TOPICS
directly; a broker (``raftkafka dev``) serves it too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from raftkafka.bench.local_cluster import request
from raftkafka.errors import InvalidRequestError, KafkaTimeoutError, RaftKafkaError, UnknownTopicError, from_wire
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection

ADMIN_TIMEOUT_MS = 30_000
"""The ``timeout_ms`` sent with each change (the controller's own deadline for the commit)."""
FIND_TIMEOUT_S = 30.0
RETRY_S = 0.05
DELETE_CHUNK = 500


def create_topic_body(names: Sequence[str]) -> dict[str, Any]:
    """The CREATE_TOPICS body for one-partition, replication-factor-1 topics named ``names``."""
    return {
        "topics": [{"name": name, "partitions": 1, "replication_factor": 1, "config": {}} for name in names],
        "timeout_ms": ADMIN_TIMEOUT_MS,
        "validate_only": False,
    }


def topic_errors(answer: Any) -> list[RaftKafkaError | None]:
    """Per topic of a CREATE_TOPICS/DELETE_TOPICS answer, its error (None for success)."""
    entries = answer.get("topics") if isinstance(answer, dict) else None
    if not isinstance(entries, list):
        raise InvalidRequestError("malformed topic answer")
    errors: list[RaftKafkaError | None] = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 3 or type(entry[1]) is not int:
            raise InvalidRequestError("malformed topic result")
        errors.append(from_wire(entry[1], entry[2] if isinstance(entry[2], str) else "") if entry[1] else None)
    return errors


async def create_topic(connection: Connection, name: str, timeout_s: float) -> None:
    """Commit one change (create topic ``name``); raise its error if it failed."""
    answer = await connection.request(ApiKey.CREATE_TOPICS, 0, create_topic_body([name]), timeout=timeout_s)
    error = topic_errors(answer)[0]
    if error is not None:
        raise error


def leader_listener(status: Any, asked: str) -> str | None:
    """The client listener of the active controller according to a QUORUM_STATUS answer from ``asked``.

    A voter that leads and has no listener of its own in the image (a ``raftkafka dev`` broker, or a
    broker forwarding to the leader before it registered) is reached at ``asked`` itself.
    """
    if not isinstance(status, dict) or status.get("leader_id") is None:
        return None
    for voter in status.get("voters", []):
        if isinstance(voter, dict) and voter.get("node_id") == status["leader_id"]:
            listener = voter.get("listener")
            if isinstance(listener, str):
                return listener
    return asked if status.get("is_leader") else None


async def find_active_controller(addresses: Iterable[str], timeout_s: float = FIND_TIMEOUT_S) -> str:
    """The listener of the active controller, asking each of ``addresses`` (brokers or controllers) in turn."""
    candidates = list(addresses)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        for address in candidates:
            try:
                listener = leader_listener(await request(address, ApiKey.QUORUM_STATUS, {}), address)
            except (RaftKafkaError, TimeoutError) as exc:
                last = exc
                continue
            if listener is not None:
                return listener
        if time.monotonic() >= deadline:
            raise KafkaTimeoutError(f"no active controller found through {', '.join(candidates)} ({last})")
        await asyncio.sleep(RETRY_S)


async def open_connection(address: str) -> Connection:
    """A pipelined connection to ``host:port``."""
    host, _, port = address.rpartition(":")
    return await Connection.open(host, int(port))


async def delete_topics(address: str, names: Sequence[str]) -> None:
    """Delete ``names`` through ``address`` (in chunks); topics that do not exist are fine."""
    connection = await open_connection(address)
    try:
        for start in range(0, len(names), DELETE_CHUNK):
            chunk = list(names[start : start + DELETE_CHUNK])
            body = {"topics": chunk, "timeout_ms": ADMIN_TIMEOUT_MS}
            answer = await connection.request(ApiKey.DELETE_TOPICS, 0, body, timeout=ADMIN_TIMEOUT_MS / 1000)
            for error in topic_errors(answer):
                if error is not None and not isinstance(error, UnknownTopicError):
                    raise error
    finally:
        connection.close()
