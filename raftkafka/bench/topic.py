"""Making sure the benchmark topic exists and every partition has a leader and a full ISR before the clock starts."""

from __future__ import annotations

import time

from raftkafka.bench.settings import BenchSettings
from raftkafka.client import Admin
from raftkafka.errors import (
    InvalidReplicationFactorError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    UnknownTopicError,
)
from raftkafka.structs import TopicDescription

READY_TIMEOUT_S = 30.0
READY_POLL_S = 0.05


def is_ready(description: TopicDescription) -> bool:
    """Whether every partition has a leader and all its replicas in the ISR."""
    return bool(description.partitions) and all(
        p.leader >= 0 and set(p.isr) >= set(p.replicas) for p in description.partitions
    )


def ensure_topic(settings: BenchSettings) -> TopicDescription:
    """Create ``settings.topic`` unless it exists; wait until each of its partitions is ready.

    A replication factor above the brokers registered so far (a cluster just started) is retried until
    the deadline.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    with Admin(bootstrap=settings.bootstrap) as admin:
        while True:
            try:
                admin.create_topic(
                    settings.topic,
                    partitions=settings.partitions,
                    replication_factor=settings.replicas,
                    config=settings.topic_config(),
                )
                break
            except TopicAlreadyExistsError:
                break
            except InvalidReplicationFactorError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(READY_POLL_S)
        while True:
            try:
                description = admin.describe_topic(settings.topic)
                if is_ready(description):
                    return description
            except UnknownTopicError:
                pass
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"topic {settings.topic!r} has no leader or no full ISR for every partition")
            time.sleep(READY_POLL_S)
