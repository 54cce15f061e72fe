"""Pure broker-lifecycle decisions: fencing with leader election, unclean election, unfencing,
controlled shutdown, heartbeats, and re-registration of a fenced broker."""

from __future__ import annotations

import pytest

from raftkafka.controller.brokers import (
    BrokerRegistrationRequest,
    HeartbeatReply,
    HeartbeatRequest,
    broker_heartbeat,
    fence_brokers,
    register_broker,
)
from raftkafka.controller.elections import elect_leaderless, elect_preferred_leaders, remove_broker
from raftkafka.errors import BrokerIdNotRegisteredError, InvalidRequestError, StaleBrokerEpochError
from raftkafka.metadata.image import EMPTY_IMAGE, NO_LEADER, MetadataImage, PartitionState, replay_all
from raftkafka.metadata.records import (
    CreateTopic,
    FenceBroker,
    MetadataRecord,
    PartitionChange,
    RegisterBroker,
    UnfenceBroker,
)


def apply(image: MetadataImage, records: list[MetadataRecord]) -> MetadataImage:
    return replay_all(image, records, image.offset + 1)


def cluster(*topics: CreateTopic, brokers: tuple[int, ...] = (1, 2, 3)) -> MetadataImage:
    """Brokers registered at offsets 0.. (so broker n has epoch n - 1), then the topics."""
    registrations = [RegisterBroker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in brokers]
    return replay_all(EMPTY_IMAGE, [*registrations, *topics], 0)


def partition(image: MetadataImage, topic: str, index: int) -> PartitionState:
    found = image.topic(topic)
    assert found is not None
    return found.partitions[index]


T = CreateTopic("t", "id-t", ((1, 2, 3), (2, 3, 1), (3, 1, 2)), {})
SOLO = CreateTopic("solo", "id-solo", ((1,),), {})


def test_fencing_moves_leadership_to_the_next_live_isr_member_and_shrinks_isrs() -> None:
    image = cluster(T)
    records = fence_brokers(image, [1])
    assert records == [
        PartitionChange("t", 0, 2, (2, 3), 1, (1, 2, 3)),  # led by 1: new leader, new leader epoch
        PartitionChange("t", 1, 2, (2, 3), 0, (2, 3, 1)),  # follower: out of the ISR, same leader epoch
        PartitionChange("t", 2, 3, (3, 2), 0, (3, 1, 2)),
        FenceBroker(1),
    ]
    after = apply(image, records)
    assert after.brokers[1].fenced
    assert after.partitions_led_by(1) == ()


def test_fencing_skips_fenced_candidates_and_keeps_the_last_isr_member() -> None:
    image = apply(cluster(T, SOLO), fence_brokers(cluster(T, SOLO), [2]))
    records = fence_brokers(image, [1])
    after = apply(image, records)
    assert partition(after, "t", 0) == PartitionState(0, (1, 2, 3), (3,), 3, 1, 2)
    solo = partition(after, "solo", 0)
    assert (solo.leader, solo.isr, solo.leader_epoch) == (NO_LEADER, (1,), 1)


def test_fencing_several_brokers_at_once_never_elects_one_of_them() -> None:
    image = cluster(T)
    after = apply(image, fence_brokers(image, [1, 2]))
    assert [p.leader for p in after.topics["t"].partitions] == [3, 3, 3]
    assert all(p.isr == (3,) for p in after.topics["t"].partitions)
    assert fence_brokers(after, [1, 2, 99]) == []  # already fenced, or unknown: nothing


def test_no_live_in_sync_replica_means_no_leader_unless_unclean_election_is_enabled() -> None:
    for unclean, expected in (("false", (NO_LEADER, (1,))), ("true", (2, (2,)))):
        topic = CreateTopic("u", "id-u", ((1, 2),), {"unclean.leader.election.enable": unclean})
        image = cluster(topic)
        image = apply(image, [PartitionChange("u", 0, 1, (1,), 0, (1, 2))])  # 2 fell out of sync
        after = apply(image, fence_brokers(image, [1]))
        state = partition(after, "u", 0)
        assert (state.leader, state.isr) == expected
        assert state.leader_epoch == 1


def test_unfencing_heartbeat_elects_the_broker_for_leaderless_partitions_in_its_isr() -> None:
    image = cluster(SOLO)
    image = apply(image, fence_brokers(image, [1]))
    epoch = image.brokers[1].epoch
    records, reply = broker_heartbeat(image, HeartbeatRequest(1, epoch, image.offset, want_shutdown=False))
    assert reply == HeartbeatReply(fenced=False, should_shutdown=False)
    assert records == [UnfenceBroker(1), PartitionChange("solo", 0, 1, (1,), 2, (1,))]
    after = apply(image, records)
    assert not after.brokers[1].fenced and partition(after, "solo", 0).leader == 1


def test_a_fenced_broker_behind_its_own_registration_stays_fenced() -> None:
    image = cluster()
    image = apply(image, [FenceBroker(2)])
    request = HeartbeatRequest(2, image.brokers[2].epoch, image.brokers[2].epoch - 1, want_shutdown=False)
    assert broker_heartbeat(image, request) == ([], HeartbeatReply(fenced=True, should_shutdown=False))


def test_controlled_shutdown_moves_leadership_then_fences() -> None:
    image = cluster(T)
    records, reply = broker_heartbeat(image, HeartbeatRequest(2, 1, image.offset, want_shutdown=True))
    assert reply == HeartbeatReply(fenced=True, should_shutdown=True)
    assert records[-1] == FenceBroker(2)
    after = apply(image, records)
    assert after.partitions_led_by(2) == ()
    assert all(2 not in p.isr for p in after.topics["t"].partitions)
    # asked again (the answer was lost): nothing more to do, same answer
    assert broker_heartbeat(after, HeartbeatRequest(2, 1, after.offset, want_shutdown=True)) == (
        [],
        HeartbeatReply(fenced=True, should_shutdown=True),
    )


def test_a_live_broker_heartbeat_changes_nothing() -> None:
    image = cluster(T)
    assert broker_heartbeat(image, HeartbeatRequest(3, 2, 0, False)) == ([], HeartbeatReply(False, False))


def test_heartbeats_of_unknown_brokers_and_stale_epochs_are_refused() -> None:
    image = cluster()
    with pytest.raises(BrokerIdNotRegisteredError):
        broker_heartbeat(image, HeartbeatRequest(9, 0, 0, False))
    with pytest.raises(StaleBrokerEpochError):
        broker_heartbeat(image, HeartbeatRequest(1, 5, 0, False))
    with pytest.raises(InvalidRequestError):
        broker_heartbeat(image, HeartbeatRequest(1, 0, 0, "yes"))  # type: ignore[arg-type]


def test_re_registering_a_fenced_broker_unfences_it_and_elects_it() -> None:
    image = cluster(SOLO)
    image = apply(image, fence_brokers(image, [1]))
    records = register_broker(image, BrokerRegistrationRequest(1, "127.0.0.1", 9001, "restarted"), {1})
    assert records == [
        RegisterBroker(1, "127.0.0.1", 9001, "restarted"),
        PartitionChange("solo", 0, 1, (1,), 2, (1,)),
    ]
    after = apply(image, records)
    assert after.brokers[1].epoch == image.offset + 1


def test_elections_leave_unrelated_partitions_alone() -> None:
    image = cluster(T, brokers=(1, 2, 3, 4))
    assert remove_broker(image, 4) == []
    assert elect_leaderless(image, 1) == []


def test_preferred_leaders_return_once_live_and_in_sync() -> None:
    image = cluster(T)
    assert elect_preferred_leaders(image) == []  # every partition is led by its first replica
    image = apply(image, fence_brokers(image, [1]))  # 1 leaves: t-0 goes to 2, and 1 leaves every ISR
    assert elect_preferred_leaders(image) == []  # 1 is fenced
    image = apply(image, [UnfenceBroker(1)])
    assert elect_preferred_leaders(image) == []  # 1 is live again but not in sync yet
    image = apply(image, [PartitionChange("t", 0, 2, (2, 3, 1), 1, (1, 2, 3))])  # the ISR took 1 back
    assert elect_preferred_leaders(image) == [PartitionChange("t", 0, 1, (2, 3, 1), 2, (1, 2, 3))]
    assert elect_preferred_leaders(apply(image, elect_preferred_leaders(image))) == []
