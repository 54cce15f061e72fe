"""The asynchronous admin client: create, delete, list and describe topics.

Create and delete go to the active controller when the metadata names it (any broker otherwise) and are
retried there after ``NOT_CONTROLLER``; listing and describing read a broker's metadata.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from raftkafka.client.network import ClientNetwork
from raftkafka.errors import (
    BrokerNotAvailableError,
    NetworkError,
    NotControllerError,
    RaftKafkaError,
    UnknownTopicError,
    from_wire,
)
from raftkafka.net.api import ApiKey
from raftkafka.structs import BrokerInfo, TopicDescription

_REROUTE = (NotControllerError, BrokerNotAvailableError, NetworkError)


class AsyncAdmin:
    """Manages topics. Use ``async with`` or ``start()``/``close()``; errors are ``raftkafka.errors`` classes
    (``TopicAlreadyExistsError``, ``InvalidTopicError``, ``UnknownTopicError``, ...)."""

    def __init__(
        self,
        bootstrap: str | Sequence[str] = "127.0.0.1:9092",
        *,
        request_timeout_ms: float = 30_000,
        retry_backoff_ms: float = 100,
    ) -> None:
        self.request_timeout = request_timeout_ms / 1000
        self._network = ClientNetwork(
            bootstrap, request_timeout_ms=request_timeout_ms, retry_backoff_ms=retry_backoff_ms
        )

    async def start(self) -> None:
        """Connect (``BrokerNotAvailableError`` if no bootstrap server answers)."""
        try:
            await self._network.refresh([])
        except BaseException:
            await self._network.close()
            raise

    async def __aenter__(self) -> AsyncAdmin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections."""
        await self._network.close()

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Create topic ``name``; returns once the controller has committed it."""
        entry = {
            "name": name,
            "partitions": partitions,
            "replication_factor": replication_factor,
            "config": {str(k): str(v) for k, v in (config or {}).items()},
        }
        body = {"topics": [entry], "timeout_ms": int(self.request_timeout * 1000), "validate_only": validate_only}
        await self._controller_request(ApiKey.CREATE_TOPICS, body)

    async def delete_topic(self, name: str) -> None:
        """Delete topic ``name`` and all its data."""
        body = {"topics": [name], "timeout_ms": int(self.request_timeout * 1000)}
        await self._controller_request(ApiKey.DELETE_TOPICS, body)

    async def list_topics(self) -> list[str]:
        """The names of every topic, sorted."""
        await self._network.refresh(all_topics=True)
        return sorted(self._network.cluster.topics)

    async def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (leader, replicas, ISR) and config of topic ``name`` (``UnknownTopicError`` if none)."""
        errors = await self._describe([name])
        if name in errors:
            raise errors[name]
        description = self._network.cluster.topics.get(name)
        if description is None:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        return description

    async def describe_cluster(self) -> list[BrokerInfo]:
        """The brokers of the cluster."""
        await self._network.refresh([])
        return sorted(self._network.cluster.brokers.values())

    async def _describe(self, topics: list[str]) -> dict[str, RaftKafkaError]:
        body = await self._network.request(ApiKey.METADATA, {"topics": topics, "include_config": True})
        return self._network.cluster.update(body)

    async def _controller_request(self, api: ApiKey, body: dict[str, Any]) -> None:
        network = self._network
        deadline = time.monotonic() + self.request_timeout
        while True:
            try:
                response = await network.request(api, body, address=network.address(network.cluster.controller_id))
                break
            except _REROUTE:
                if time.monotonic() + network.retry_backoff >= deadline:
                    raise
            await asyncio.sleep(network.retry_backoff)
            try:
                await network.refresh([])
            except RaftKafkaError:
                pass  # the next attempt reports the failure if it persists
        for _name, error, message in response["topics"]:
            if error:
                raise from_wire(error, message)
