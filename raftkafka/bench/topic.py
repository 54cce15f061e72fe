"""Making sure the benchmark topic exists and every partition has a leader before the clock starts."""

from __future__ import annotations

import time

from raftkafka.bench.settings import BenchSettings
from raftkafka.client import Admin
from raftkafka.errors import KafkaTimeoutError, TopicAlreadyExistsError, UnknownTopicError
from raftkafka.structs import TopicDescription

READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.05


def ensure_topic(settings: BenchSettings) -> TopicDescription:
    """Create ``settings.topic`` unless it exists; wait until each of its partitions has a leader."""
    with Admin(bootstrap=settings.bootstrap) as admin:
        try:
            admin.create_topic(
                settings.topic, partitions=settings.partitions, replication_factor=settings.replication_factor
            )
        except TopicAlreadyExistsError:
            pass
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                description = admin.describe_topic(settings.topic)
                if description.partitions and all(p.leader >= 0 for p in description.partitions):
                    return description
            except UnknownTopicError:
                pass
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"topic {settings.topic!r} has no leader for every partition yet")
            time.sleep(READY_POLL_S)
