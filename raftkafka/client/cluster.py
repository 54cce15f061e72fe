"""The client's cache of cluster metadata: brokers, the controller, and each topic's partitions and leaders.

Pure: built from METADATA response bodies (see ``raftkafka.net.api``), no I/O. Written on the event loop
thread only; ``partition_counts`` may be read from any thread (single dict lookups are atomic).
"""

from __future__ import annotations

from typing import Any

from raftkafka.errors import NONE, RaftKafkaError, from_wire
from raftkafka.structs import BrokerInfo, PartitionInfo, TopicDescription, TopicPartition


class ClusterMetadata:
    """What the client knows about the cluster; ``version`` counts the updates applied."""

    def __init__(self) -> None:
        self.cluster_id: str | None = None
        self.controller_id = -1
        self.brokers: dict[int, BrokerInfo] = {}
        self.topics: dict[str, TopicDescription] = {}
        self.partition_counts: dict[str, int] = {}
        self.version = 0
        self._leaders: dict[TopicPartition, int] = {}

    def update(self, body: dict[str, Any], *, all_topics: bool = False) -> dict[str, RaftKafkaError]:
        """Apply a METADATA response; returns the errors of the topics it reports as failed (those are
        dropped from the cache). ``all_topics``: the response lists every topic, so forget the others."""
        self.cluster_id = body.get("cluster_id", self.cluster_id)
        self.controller_id = body.get("controller_id", -1)
        self.brokers = {node: BrokerInfo(node, host, port) for node, host, port in body.get("brokers", [])}
        if all_topics:
            self.topics.clear()
            self.partition_counts.clear()
            self._leaders.clear()
        errors: dict[str, RaftKafkaError] = {}
        for entry in body.get("topics", []):
            name = entry["name"]
            error = entry.get("error", NONE)
            self._forget(name)
            if error != NONE:
                errors[name] = from_wire(error, entry.get("message") or f"topic {name!r}")
                continue
            partitions = sorted(
                PartitionInfo(pid, leader, list(replicas), list(isr))
                for pid, leader, _epoch, replicas, isr in entry["partitions"]
            )
            self.topics[name] = TopicDescription(name, partitions, dict(entry.get("config") or {}))
            for p in partitions:
                self._leaders[TopicPartition(name, p.id)] = p.leader
            self.partition_counts[name] = len(partitions)
        self.version += 1
        return errors

    def _forget(self, topic: str) -> None:
        description = self.topics.pop(topic, None)
        self.partition_counts.pop(topic, None)
        if description is not None:
            for p in description.partitions:
                self._leaders.pop(TopicPartition(topic, p.id), None)

    def leader(self, tp: TopicPartition) -> BrokerInfo | None:
        """The leader of ``tp`` if it is known and has one."""
        node = self._leaders.get(tp, -1)
        return self.brokers.get(node) if node >= 0 else None

    def partitions(self, topic: str) -> list[TopicPartition] | None:
        """Every partition of ``topic``, or None if the topic is not known."""
        description = self.topics.get(topic)
        if description is None:
            return None
        return [TopicPartition(topic, p.id) for p in description.partitions]
