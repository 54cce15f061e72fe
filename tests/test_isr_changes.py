"""Pure ISR change decisions (AlterPartition): who may change an ISR, to what, and the records it commits."""

from __future__ import annotations

import pytest

from raftkafka.controller.isr_changes import IsrChange, IsrChangeResult, alter_isr
from raftkafka.errors import (
    NONE,
    FencedLeaderEpochError,
    IneligibleReplicaError,
    InvalidRequestError,
    InvalidUpdateVersionError,
    StaleBrokerEpochError,
    UnknownTopicError,
)
from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import CreateTopic, FenceBroker, PartitionChange, RegisterBroker

REPLICAS = (1, 2, 3)


def cluster(*records: object) -> MetadataImage:
    """Brokers 1-4 (epochs 0-3) and topic ``t`` with one partition on 1, 2, 3 (leader 1, epoch 0)."""
    base = [RegisterBroker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in (1, 2, 3, 4)]
    return replay_all(EMPTY_IMAGE, [*base, CreateTopic("t", "id-t", (REPLICAS,), {}), *records], 0)  # type: ignore[list-item]


def epoch_of(image: MetadataImage, node_id: int) -> int:
    return image.brokers[node_id].epoch


def change(isr: tuple[int, ...], leader_epoch: int = 0, partition_epoch: int = 0, partition: int = 0) -> IsrChange:
    return IsrChange("t", partition, leader_epoch, partition_epoch, isr)


def test_shrink_commits_a_partition_change_with_the_same_leader_and_epoch() -> None:
    image = cluster()
    records, results = alter_isr(image, 1, epoch_of(image, 1), [change((1, 2))])
    assert records == [PartitionChange("t", 0, 1, (1, 2), 0, REPLICAS)]
    assert results == [IsrChangeResult("t", 0, NONE, 1, 0, (1, 2), 1)]
    after = replay_all(image, records, image.offset + 1).topics["t"].partitions[0]
    assert (after.isr, after.leader, after.leader_epoch, after.partition_epoch) == ((1, 2), 1, 0, 1)


def test_shrink_to_the_leader_alone_is_allowed() -> None:
    image = cluster()
    records, results = alter_isr(image, 1, epoch_of(image, 1), [change((1,))])
    assert records and results[0].error_code == NONE and results[0].isr == (1,)


def test_expand_adds_a_live_replica_back() -> None:
    image = cluster(PartitionChange("t", 0, 1, (1,), 0, REPLICAS))
    records, results = alter_isr(image, 1, epoch_of(image, 1), [change((1, 3), partition_epoch=1)])
    assert records == [PartitionChange("t", 0, 1, (1, 3), 0, REPLICAS)]
    assert results == [IsrChangeResult("t", 0, NONE, 1, 0, (1, 3), 2)]


def test_the_current_isr_again_commits_nothing() -> None:
    image = cluster()
    records, results = alter_isr(image, 1, epoch_of(image, 1), [change(REPLICAS)])
    assert records == [] and results == [IsrChangeResult("t", 0, NONE, 1, 0, REPLICAS, 0)]


def test_a_stale_broker_epoch_refuses_the_whole_request() -> None:
    image = cluster()
    with pytest.raises(StaleBrokerEpochError):
        alter_isr(image, 1, epoch_of(image, 1) + 100, [change((1, 2))])
    with pytest.raises(StaleBrokerEpochError):
        alter_isr(image, 9, 0, [change((1, 2))])


@pytest.mark.parametrize(
    ("requester", "request_change", "error"),
    [
        (1, change((1, 2), leader_epoch=1), FencedLeaderEpochError),  # a newer epoch than the controller's
        (2, change((1, 2)), InvalidRequestError),  # not the leader
        (1, change((1, 2), partition_epoch=5), InvalidUpdateVersionError),
        (1, change((2, 3)), InvalidRequestError),  # leader missing
        (1, change((1, 4)), InvalidRequestError),  # 4 is not a replica
        (1, change((1, 1, 2)), InvalidRequestError),  # duplicate member
        (1, change(()), InvalidRequestError),
    ],
)
def test_refused_changes_commit_nothing_and_report_the_current_state(
    requester: int, request_change: IsrChange, error: type[Exception]
) -> None:
    image = cluster()
    records, results = alter_isr(image, requester, epoch_of(image, requester), [request_change])
    assert records == []
    assert results == [IsrChangeResult("t", 0, error.code, 1, 0, REPLICAS, 0)]  # type: ignore[attr-defined]


def test_a_deposed_leader_is_fenced_by_the_leader_epoch() -> None:
    image = cluster(PartitionChange("t", 0, 2, (2, 3), 1, REPLICAS))  # 2 took over at epoch 1
    _, results = alter_isr(image, 1, epoch_of(image, 1), [change((1,), leader_epoch=0, partition_epoch=0)])
    assert results == [IsrChangeResult("t", 0, FencedLeaderEpochError.code, 2, 1, (2, 3), 1)]


def test_only_registered_unfenced_replicas_may_be_added() -> None:
    image = cluster(PartitionChange("t", 0, 1, (1, 2), 0, REPLICAS), FenceBroker(3))
    _, results = alter_isr(image, 1, epoch_of(image, 1), [change((1, 2, 3), partition_epoch=1)])
    assert results[0].error_code == IneligibleReplicaError.code
    # a fenced member that is already in the ISR may stay (only additions are checked)
    image = cluster(FenceBroker(3))
    records, results = alter_isr(image, 1, epoch_of(image, 1), [change((1, 3))])
    assert results[0].error_code == NONE and records


def test_unknown_topic_or_partition() -> None:
    image = cluster()
    _, results = alter_isr(image, 1, epoch_of(image, 1), [IsrChange("nope", 0, 0, 0, (1,)), change((1,), partition=7)])
    assert results == [
        IsrChangeResult("nope", 0, UnknownTopicError.code, -1, -1, (), -1),
        IsrChangeResult("t", 7, UnknownTopicError.code, -1, -1, (), -1),
    ]


def test_later_changes_in_one_request_see_earlier_ones() -> None:
    image = cluster()
    records, results = alter_isr(
        image, 1, epoch_of(image, 1), [change((1, 2)), change((1,)), change((1, 2, 3), partition_epoch=1)]
    )
    assert [r.error_code for r in results] == [NONE, InvalidUpdateVersionError.code, NONE]
    assert results[2].isr == REPLICAS and results[2].partition_epoch == 2
    assert [r.isr for r in records] == [(1, 2), REPLICAS]
