"""Replica placement for new partitions: Kafka's rack-unaware round robin with shifted followers.

Pure: the caller picks ``start_index`` (Kafka picks it at random) so the result is reproducible.
Partition ``p``'s preferred leader is broker ``(p + start) % n`` of the sorted live brokers, so leaders
are spread evenly; followers sit at a shift from the leader that changes every ``n`` partitions, so
the followers of one broker's partitions are spread over the other brokers too.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftkafka.errors import InvalidPartitionsError, InvalidReplicationFactorError


def place_replicas(
    partitions: int, replication_factor: int, live_broker_ids: Iterable[int], start_index: int
) -> tuple[tuple[int, ...], ...]:
    """One replica list per partition (first = preferred leader) over ``live_broker_ids``."""
    brokers = sorted(set(live_broker_ids))
    count = len(brokers)
    if partitions < 1:
        raise InvalidPartitionsError(f"number of partitions must be at least 1, got {partitions}")
    if replication_factor < 1:
        raise InvalidReplicationFactorError(f"replication factor must be at least 1, got {replication_factor}")
    if replication_factor > count:
        raise InvalidReplicationFactorError(
            f"replication factor {replication_factor} is larger than the {count} available brokers"
        )
    start = start_index % count
    shift = start_index % count
    placement = []
    for partition in range(partitions):
        if partition > 0 and partition % count == 0:
            shift += 1
        first = (partition + start) % count
        replicas = [brokers[first]]
        for follower in range(replication_factor - 1):
            step = 1 + (shift + follower) % (count - 1)
            replicas.append(brokers[(first + step) % count])
        placement.append(tuple(replicas))
    return tuple(placement)
