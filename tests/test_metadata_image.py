"""The metadata image: replay of every record kind, ignored misfits, deltas and the byte encoding."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkafka.metadata.image import (
    EMPTY_IMAGE,
    BrokerRegistration,
    ControllerRegistration,
    GroupImage,
    MetadataDelta,
    MetadataImage,
    PartitionState,
    replay_all,
)
from raftkafka.metadata.records import (
    CommitOffsets,
    ConfigChange,
    CreatePartitions,
    CreateTopic,
    DeleteGroup,
    DeleteTopic,
    FenceBroker,
    GroupChange,
    GroupMember,
    MetadataDecodeError,
    MetadataRecord,
    PartitionChange,
    ProducerIdsBlock,
    RegisterBroker,
    RegisterController,
    SetClusterId,
    UnfenceBroker,
)

THREE_BROKERS = [RegisterBroker(n, "127.0.0.1", 9090 + n, f"inc-{n}") for n in (1, 2, 3)]
EVENTS = CreateTopic("events", "id-events", ((1, 2), (2, 3), (3, 1)), {"retention.ms": "1000"})


def cluster() -> MetadataImage:
    return replay_all(EMPTY_IMAGE, [*THREE_BROKERS, EVENTS], 0)


def test_empty_image() -> None:
    assert EMPTY_IMAGE.offset == -1
    assert EMPTY_IMAGE.topic("x") is None
    assert EMPTY_IMAGE.live_brokers() == ()


def test_register_fence_unfence() -> None:
    image = replay_all(EMPTY_IMAGE, THREE_BROKERS, 10)
    assert image.offset == 12
    assert image.brokers[2] == BrokerRegistration(2, "127.0.0.1", 9092, "inc-2", fenced=False, epoch=11)
    fenced = replay_all(image, [FenceBroker(2)], 13)
    assert [b.node_id for b in fenced.live_brokers()] == [1, 3]
    assert fenced.brokers[2].fenced and fenced.brokers[2].epoch == 11
    unfenced = replay_all(fenced, [UnfenceBroker(2)], 14)
    assert [b.node_id for b in unfenced.live_brokers()] == [1, 2, 3]
    reregistered = replay_all(unfenced, [RegisterBroker(2, "h", 1, "inc-2b", fenced=True)], 15)
    assert reregistered.brokers[2] == BrokerRegistration(2, "h", 1, "inc-2b", fenced=True, epoch=15)


def test_create_topic_sets_preferred_leaders_and_full_isr() -> None:
    topic = cluster().topic("events")
    assert topic is not None
    assert topic.topic_id == "id-events"
    assert dict(topic.config) == {"retention.ms": "1000"}
    assert topic.partitions[1] == PartitionState(1, (2, 3), (2, 3), 2, 0, 0)
    assert [p.leader for p in topic.partitions] == [1, 2, 3]


def test_partitions_led_by() -> None:
    led = cluster().partitions_led_by(2)
    assert [(name, p.partition) for name, p in led] == [("events", 1)]


def test_partition_change_bumps_partition_epoch() -> None:
    image = replay_all(cluster(), [PartitionChange("events", 0, 2, (2,), 1, (1, 2))], 4)
    state = image.topics["events"].partitions[0]
    assert state == PartitionState(0, (1, 2), (2,), 2, 1, 1)
    # a second change in the same delta builds on the first
    image = replay_all(
        image,
        [PartitionChange("events", 0, -1, (), 2, (1, 2)), PartitionChange("events", 0, 1, (1,), 3, (1, 2))],
        5,
    )
    assert image.topics["events"].partitions[0] == PartitionState(0, (1, 2), (1,), 1, 3, 3)
    assert image.topics["events"].partitions[1] == cluster().topics["events"].partitions[1]


def test_config_change_replaces_config() -> None:
    image = replay_all(cluster(), [ConfigChange("events", {"segment.bytes": "1024"})], 4)
    assert dict(image.topics["events"].config) == {"segment.bytes": "1024"}
    assert image.topics["events"].partitions == cluster().topics["events"].partitions


def test_delete_topic_then_recreate_in_one_delta() -> None:
    base = cluster()
    delta = MetadataDelta(base)
    assert delta.replay(PartitionChange("events", 0, 2, (2,), 1, (1, 2)), 4)
    assert delta.replay(DeleteTopic("events", "id-events"), 5)
    assert delta.replay(CreateTopic("events", "id-2", ((3,),), {}), 6)
    image = delta.apply()
    topic = image.topics["events"]
    assert topic.topic_id == "id-2"
    assert topic.partitions == (PartitionState(0, (3,), (3,), 3, 0, 0),)
    assert base == cluster()  # the base image is untouched


@pytest.mark.parametrize(
    "record",
    [
        DeleteTopic("nope", "x"),
        DeleteTopic("events", "wrong-id"),
        CreateTopic("events", "other", ((1,),), {}),  # exists
        CreateTopic("empty", "e", (), {}),
        CreateTopic("no-replicas", "e", ((1,), ()), {}),
        CreateTopic("dup-replicas", "e", ((1, 1),), {}),
        FenceBroker(42),
        UnfenceBroker(42),
        PartitionChange("nope", 0, 1, (1,), 1, (1,)),
        PartitionChange("events", 3, 1, (1,), 1, (1,)),
        PartitionChange("events", -1, 1, (1,), 1, (1,)),
        PartitionChange("events", 0, 3, (1,), 1, (1, 2)),  # leader not in ISR
        PartitionChange("events", 0, 1, (1, 3), 1, (1, 2)),  # ISR not within replicas
        PartitionChange("events", 0, 1, (), 1, ()),  # no replicas
        ConfigChange("nope", {}),
    ],
)
def test_records_that_do_not_fit_are_ignored(record: MetadataRecord) -> None:
    base = cluster()
    delta = MetadataDelta(base)
    assert delta.replay(record, 4) is False
    image = delta.apply()
    assert image.offset == 4  # the record still takes its offset
    assert image.brokers == base.brokers
    assert image.topics == base.topics


def test_stale_leader_epoch_is_ignored() -> None:
    image = replay_all(cluster(), [PartitionChange("events", 0, 2, (2,), 5, (1, 2))], 4)
    stale = replay_all(image, [PartitionChange("events", 0, 1, (1,), 4, (1, 2))], 5)
    assert stale.topics == image.topics


def test_image_is_immutable() -> None:
    image = cluster()
    with pytest.raises(TypeError):
        image.topics["x"] = image.topics["events"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        image.offset = 3  # type: ignore[misc]


def test_to_bytes_round_trip() -> None:
    image = replay_all(
        cluster(), [FenceBroker(3), PartitionChange("events", 2, 1, (1,), 1, (3, 1)), ConfigChange("events", {})], 4
    )
    data = image.to_bytes()
    assert MetadataImage.from_bytes(data) == image
    assert MetadataImage.from_bytes(data).to_bytes() == data
    assert MetadataImage.from_bytes(EMPTY_IMAGE.to_bytes()) == EMPTY_IMAGE


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        msgpack.packb([5, -1, [], [], [], None, 0]),  # unknown format version
        msgpack.packb([4, -1, [], [], [], None]),  # version 4 without the next producer id
        msgpack.packb([2, -1, [], []]),  # version 2 without the controllers
        msgpack.packb([3, -1, [], [], [], 7]),  # a cluster id that is not a string
        msgpack.packb([1, -1, [[1, "h", 1, "i", False, 0], [1, "h", 1, "i", False, 0]], []]),
        msgpack.packb([1, -1, [], [["t", "i", {}, []], ["t", "i", {}, []]]]),
        msgpack.packb([1, -1, [], [["t", "i", {}, [[[1], [1], 1, 0]]]]]),
        msgpack.packb([1, -1, [[1, "h", 1, "i", 0, 0]], []]),
        msgpack.packb([1, -1, []]),
    ],
)
def test_from_bytes_rejects_malformed(payload: bytes) -> None:
    with pytest.raises(MetadataDecodeError):
        MetadataImage.from_bytes(payload)


small = st.integers(0, 4)
replica_lists = st.lists(small, min_size=0, max_size=3, unique=True).map(tuple)
any_record: st.SearchStrategy[MetadataRecord] = st.one_of(
    st.builds(RegisterBroker, small, st.just("h"), small, st.sampled_from(["a", "b"]), st.booleans()),
    st.builds(FenceBroker, small),
    st.builds(UnfenceBroker, small),
    st.builds(
        CreateTopic,
        st.sampled_from(["a", "b"]),
        st.sampled_from(["i1", "i2"]),
        st.lists(replica_lists, max_size=3).map(tuple),
        st.dictionaries(st.sampled_from(["k", "l"]), st.sampled_from(["1", "2"])),
    ),
    st.builds(DeleteTopic, st.sampled_from(["a", "b"]), st.sampled_from(["i1", "i2"])),
    st.builds(
        PartitionChange, st.sampled_from(["a", "b"]), small, st.integers(-1, 4), replica_lists, small, replica_lists
    ),
    st.builds(ConfigChange, st.sampled_from(["a", "b"]), st.dictionaries(st.sampled_from(["k"]), st.just("v"))),
    st.builds(SetClusterId, st.sampled_from(["", "c1", "c2"])),
    st.builds(ProducerIdsBlock, st.integers(0, 3000)),
)


@given(st.lists(any_record, max_size=30), st.integers(0, 30))
def test_any_record_sequence_applies_and_round_trips(records: list[MetadataRecord], split: int) -> None:
    whole = replay_all(EMPTY_IMAGE, records, 0)
    # replaying in two deltas gives the same image as one
    first = replay_all(EMPTY_IMAGE, records[:split], 0)
    assert replay_all(first, records[split:], min(split, len(records))) == whole
    assert whole.offset == len(records) - 1
    assert MetadataImage.from_bytes(whole.to_bytes()) == whole


def test_controller_listeners_replay_and_encode() -> None:
    registrations = [RegisterController(1001, "127.0.0.1", 7001), RegisterController(1002, "h", 7002)]
    image = replay_all(cluster(), registrations, 4)
    image = replay_all(image, [RegisterController(1001, "127.0.0.1", 7005)], 6)  # moved: the newest wins
    assert image.controllers == {
        1001: ControllerRegistration(1001, "127.0.0.1", 7005),
        1002: ControllerRegistration(1002, "h", 7002),
    }
    assert MetadataImage.from_bytes(image.to_bytes()) == image


def test_version_1_to_4_images_without_controllers_cluster_id_producer_ids_or_groups_still_load() -> None:
    image = cluster()
    version, offset, brokers, topics, controllers, cluster_id, next_producer_id, groups = msgpack.unpackb(
        image.to_bytes()
    )
    assert (version, controllers, cluster_id, next_producer_id, groups) == (5, [], None, 0, [])
    version_4 = msgpack.packb([4, offset, brokers, topics, controllers, None, 7], use_bin_type=True)
    assert MetadataImage.from_bytes(version_4) == replay_all(image, [ProducerIdsBlock(7)], image.offset)
    version_3 = msgpack.packb([3, offset, brokers, topics, controllers, "c"], use_bin_type=True)
    assert MetadataImage.from_bytes(version_3) == replay_all(image, [SetClusterId("c")], image.offset)
    old = msgpack.packb([1, offset, brokers, topics], use_bin_type=True)
    assert MetadataImage.from_bytes(old) == image
    with_controllers = replay_all(image, [RegisterController(1001, "h", 7001)], 4)
    _, offset, brokers, topics, controllers, _, _, _ = msgpack.unpackb(with_controllers.to_bytes())
    version_2 = msgpack.packb([2, offset, brokers, topics, controllers], use_bin_type=True)
    assert MetadataImage.from_bytes(version_2) == with_controllers


def test_the_first_committed_cluster_id_stays() -> None:
    assert EMPTY_IMAGE.cluster_id is None
    delta = MetadataDelta(cluster())
    assert not delta.replay(SetClusterId(""), 4)  # never an empty id
    assert delta.replay(SetClusterId("first"), 5)
    assert not delta.replay(SetClusterId("second"), 6)  # a controller that decided on an older image
    image = delta.apply()
    assert (image.cluster_id, image.offset) == ("first", 6)
    assert replay_all(image, [SetClusterId("third")], 7).cluster_id == "first"
    assert MetadataImage.from_bytes(image.to_bytes()) == image


def test_producer_id_blocks_only_move_forward() -> None:
    assert EMPTY_IMAGE.next_producer_id == 0
    delta = MetadataDelta(cluster())
    assert delta.replay(ProducerIdsBlock(1000), 4)
    assert delta.replay(ProducerIdsBlock(2000), 5)
    assert not delta.replay(ProducerIdsBlock(1000), 6)  # decided on an older image: reserves nothing
    image = delta.apply()
    assert (image.next_producer_id, image.offset) == (2000, 6)
    assert MetadataImage.from_bytes(image.to_bytes()) == image


def _member(member_id: str, *assignment: tuple[str, int]) -> GroupMember:
    return GroupMember(member_id, "client", ("events",), 10_000, 30_000, assignment)


def test_group_generations_only_move_forward_and_keep_offsets() -> None:
    image = replay_all(cluster(), [GroupChange("g", 1, "range", (_member("a", ("events", 0)),), 100)], 4)
    group = image.groups["g"]
    assert (group.generation, group.strategy, group.activity_ms) == (1, "range", 100)
    assert group.member("a") == _member("a", ("events", 0)) and group.member("b") is None
    image = replay_all(image, [CommitOffsets("g", 1, "a", (("events", 0, 42),), 200)], 5)
    stale = GroupChange("g", 1, "range", (), 300)  # decided on an older generation: ignored
    delta = MetadataDelta(image)
    assert not delta.replay(stale, 6)
    assert delta.replay(GroupChange("g", 2, "range", (), 400), 7)
    group = delta.apply().groups["g"]
    assert (group.generation, group.members, dict(group.offsets), group.activity_ms) == (
        2,
        (),
        {("events", 0): 42},
        400,
    )


def test_commits_need_the_current_generation_and_member() -> None:
    image = replay_all(cluster(), [GroupChange("g", 3, "range", (_member("a"),), 100)], 4)
    delta = MetadataDelta(image)
    assert not delta.replay(CommitOffsets("g", 2, "a", (("events", 0, 1),), 0), 5)  # fenced generation
    assert not delta.replay(CommitOffsets("g", 3, "zombie", (("events", 0, 1),), 0), 6)
    assert not delta.replay(CommitOffsets("g", -1, "", (("events", 0, 1),), 0), 7)  # the group has members
    assert delta.replay(CommitOffsets("g", 3, "a", (("events", 0, 9), ("events", 99, 1), ("nope", 0, 1)), 0), 8)
    assert dict(delta.apply().groups["g"].offsets) == {("events", 0): 9}  # unknown partitions are skipped


def test_commits_without_members_create_the_group_and_deleting_removes_it() -> None:
    image = replay_all(cluster(), [CommitOffsets("solo", -1, "", (("events", 1, 5),), 100)], 4)
    assert image.groups["solo"] == GroupImage("solo", 0, "", (), {("events", 1): 5}, 100)
    assert MetadataImage.from_bytes(image.to_bytes()) == image
    gone = replay_all(image, [DeleteGroup("solo")], 5)
    assert "solo" not in gone.groups
    busy = replay_all(image, [GroupChange("solo", 1, "range", (_member("a"),), 200)], 5)
    assert "solo" in replay_all(busy, [DeleteGroup("solo")], 6).groups  # never a group with members


def test_deleting_a_topic_drops_its_committed_offsets() -> None:
    image = replay_all(cluster(), [CommitOffsets("g", -1, "", (("events", 0, 5),), 100)], 4)
    topic_id = image.topics["events"].topic_id
    image = replay_all(image, [DeleteTopic("events", topic_id)], 5)
    assert dict(image.groups["g"].offsets) == {}
    assert MetadataImage.from_bytes(image.to_bytes()) == image


def test_created_partitions_follow_the_last_one_and_keep_pending_changes() -> None:
    image = cluster()
    topic_id = image.topics["events"].topic_id
    delta = MetadataDelta(image)
    assert delta.replay(PartitionChange("events", 0, 2, (1, 2), 1, (1, 2)), 4)
    assert not delta.replay(CreatePartitions("events", "other-id", ((1,),)), 5)  # another topic of that name
    assert not delta.replay(CreatePartitions("events", topic_id, ((1, 1),)), 6)
    assert delta.replay(CreatePartitions("events", topic_id, ((2, 3), (3,))), 7)
    assert delta.replay(PartitionChange("events", 4, -1, (), 1, (3,)), 8)  # a new partition changes like the others
    partitions = delta.apply().topics["events"].partitions
    assert [(p.partition, p.leader, p.leader_epoch) for p in partitions] == [(0, 2, 1), (1, 2, 0), (2, 3, 0),
                                                                             (3, 2, 0), (4, -1, 1)]  # fmt: skip
