"""Pure controller decisions: replica placement, topic creation/deletion, broker registration."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkafka.controller.brokers import BrokerRegistrationRequest, register_broker
from raftkafka.controller.placement import place_replicas
from raftkafka.controller.topics import MAX_PARTITIONS, NewTopic, TopicResult, create_topic, delete_topic
from raftkafka.errors import (
    DuplicateBrokerRegistrationError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicError,
)
from raftkafka.metadata.image import EMPTY_IMAGE, MetadataImage, replay_all
from raftkafka.metadata.records import CreateTopic, DeleteTopic, FenceBroker, PartitionChange, RegisterBroker


def brokers(*ids: int) -> MetadataImage:
    return replay_all(EMPTY_IMAGE, [RegisterBroker(n, "127.0.0.1", 9000 + n, f"i{n}") for n in ids], 0)


# -- placement -------------------------------------------------------------------------------------


def test_placement_matches_kafkas_round_robin() -> None:
    # Kafka's AdminUtils example: 5 brokers, 10 partitions, rf 3, fixed start index 0
    assert place_replicas(10, 3, [0, 1, 2, 3, 4], 0) == (
        (0, 1, 2),
        (1, 2, 3),
        (2, 3, 4),
        (3, 4, 0),
        (4, 0, 1),
        (0, 2, 3),
        (1, 3, 4),
        (2, 4, 0),
        (3, 0, 1),
        (4, 1, 2),
    )


@given(
    st.integers(1, 6).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(1, 4), st.integers(0, 100))
    )
)
def test_placement_spreads_replicas_and_leaders_evenly(args: tuple[int, int, int, int]) -> None:
    broker_count, rf, rounds, start = args
    ids = [10 * n for n in range(broker_count)]
    partitions = broker_count * rounds
    placement = place_replicas(partitions, rf, ids, start)
    assert len(placement) == partitions
    for replicas in placement:
        assert len(replicas) == rf == len(set(replicas))
        assert set(replicas) <= set(ids)
    leaders = Counter(replicas[0] for replicas in placement)
    assert set(leaders.values()) == {rounds}  # every broker leads the same number of partitions
    load = Counter(b for replicas in placement for b in replicas)
    assert set(load.values()) == {rounds * rf}  # and holds the same number of replicas


def test_placement_start_index_moves_the_first_leader() -> None:
    assert [r[0] for r in place_replicas(3, 1, [1, 2, 3], 1)] == [2, 3, 1]


@pytest.mark.parametrize(
    ("partitions", "rf", "live", "error"),
    [
        (1, 4, [1, 2, 3], InvalidReplicationFactorError),
        (1, 0, [1, 2, 3], InvalidReplicationFactorError),
        (1, 1, [], InvalidReplicationFactorError),
        (0, 1, [1], InvalidPartitionsError),
    ],
)
def test_placement_refusals(partitions: int, rf: int, live: list[int], error: type[Exception]) -> None:
    with pytest.raises(error):
        place_replicas(partitions, rf, live, 0)


# -- topics ----------------------------------------------------------------------------------------


def test_create_topic_emits_one_record() -> None:
    records, result = create_topic(brokers(1, 2, 3), NewTopic("events", 3, 2, {"retention.ms": "1000"}), "tid", 0)
    assert result == TopicResult("events") and result.error is None
    assert records == [CreateTopic("events", "tid", ((1, 2), (2, 3), (3, 1)), {"retention.ms": "1000"})]
    image = replay_all(brokers(1, 2, 3), records, 3)
    assert [p.leader for p in image.topics["events"].partitions] == [1, 2, 3]
    assert all(p.isr == p.replicas and p.leader_epoch == 0 for p in image.topics["events"].partitions)


def test_create_topic_uses_only_live_brokers() -> None:
    image = replay_all(brokers(1, 2, 3), [FenceBroker(2)], 3)
    records, _ = create_topic(image, NewTopic("t", 4, 2), "tid", 0)
    assert isinstance(records[0], CreateTopic)
    assert {b for replicas in records[0].partitions for b in replicas} == {1, 3}
    _, result = create_topic(image, NewTopic("t", 1, 3), "tid", 0)
    assert isinstance(result.error, InvalidReplicationFactorError)
    assert "2 available brokers" in result.error.message


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (NewTopic("bad/name", 1, 1), InvalidTopicError),
        (NewTopic("..", 1, 1), InvalidTopicError),
        (NewTopic("", 1, 1), InvalidTopicError),
        (NewTopic(7, 1, 1), InvalidTopicError),  # type: ignore[arg-type]
        (NewTopic("t", 0, 1), InvalidPartitionsError),
        (NewTopic("t", MAX_PARTITIONS + 1, 1), InvalidPartitionsError),
        (NewTopic("t", "3", 1), InvalidPartitionsError),  # type: ignore[arg-type]
        (NewTopic("t", True, 1), InvalidPartitionsError),  # type: ignore[arg-type]
        (NewTopic("t", 1, 0), InvalidReplicationFactorError),
        (NewTopic("t", 1, 2), InvalidReplicationFactorError),
        (NewTopic("t", 1, None), InvalidReplicationFactorError),  # type: ignore[arg-type]
        (NewTopic("t", 1, 1, {"no.such.key": "1"}), InvalidConfigError),
        (NewTopic("t", 1, 1, {"retention.ms": "soon"}), InvalidConfigError),
        (NewTopic("t", 1, 1, {"segment.bytes": "1"}), InvalidConfigError),
        (NewTopic("t", 1, 1, {"retention.ms": 5}), InvalidConfigError),  # type: ignore[dict-item]
        (NewTopic("t", 1, 1, ["retention.ms"]), InvalidConfigError),  # type: ignore[arg-type]
        (NewTopic("existing", 1, 1), TopicAlreadyExistsError),
    ],
)
def test_create_topic_refusals(request_: NewTopic, error: type[Exception]) -> None:
    image = replay_all(brokers(1), [CreateTopic("existing", "x", ((1,),), {})], 1)
    records, result = create_topic(image, request_, "tid", 0)
    assert records == []
    assert isinstance(result.error, error)
    assert result.error_code == result.error.code
    assert result.message


def test_new_topic_from_wire() -> None:
    body = {"name": "t", "partitions": 2, "replication_factor": 1, "config": {"retention.ms": "5"}}
    assert NewTopic.from_wire(body) == NewTopic("t", 2, 1, {"retention.ms": "5"})
    _, result = create_topic(brokers(1), NewTopic.from_wire({"name": "t"}), "tid", 0)
    assert isinstance(result.error, InvalidPartitionsError)


def test_delete_topic() -> None:
    image = replay_all(brokers(1), [CreateTopic("t", "tid", ((1,),), {})], 1)
    assert delete_topic(image, "t") == ([DeleteTopic("t", "tid")], TopicResult("t"))
    records, result = delete_topic(image, "nope")
    assert records == [] and isinstance(result.error, UnknownTopicError)


# -- brokers ---------------------------------------------------------------------------------------


def test_register_new_broker() -> None:
    request = BrokerRegistrationRequest(1, "127.0.0.1", 9092, "a")
    assert register_broker(EMPTY_IMAGE, request, set()) == [RegisterBroker(1, "127.0.0.1", 9092, "a")]


def test_identical_retry_emits_nothing() -> None:
    assert register_broker(brokers(1), BrokerRegistrationRequest(1, "127.0.0.1", 9001, "i1"), {1}) == []


def test_second_live_incarnation_is_refused() -> None:
    with pytest.raises(DuplicateBrokerRegistrationError):
        register_broker(brokers(1), BrokerRegistrationRequest(1, "127.0.0.1", 9001, "other"), {1})


def test_new_incarnation_accepted_when_old_has_no_session_or_is_fenced() -> None:
    request = BrokerRegistrationRequest(1, "127.0.0.1", 9001, "other")
    # the unfenced predecessor is fenced first, as its session expiry would have done
    replaced = [FenceBroker(1), RegisterBroker(1, "127.0.0.1", 9001, "other")]
    assert register_broker(brokers(1), request, set()) == replaced
    fenced = replay_all(brokers(1), [FenceBroker(1)], 1)
    assert register_broker(fenced, request, {1}) == [RegisterBroker(1, "127.0.0.1", 9001, "other")]


def test_successor_on_the_predecessors_data_dir_replaces_it_at_once() -> None:
    image = replay_all(brokers(1, 2), [CreateTopic("t", "tid", ((1, 2), (2, 1)), {})], 2)
    successor = BrokerRegistrationRequest(1, "127.0.0.1", 9001, "i1-restarted", previous_incarnation_id="i1")
    records = register_broker(image, successor, {1, 2})
    assert records == [
        PartitionChange("t", 0, 2, (2,), 1, (1, 2)),  # leadership moves, the predecessor leaves the ISR
        PartitionChange("t", 1, 2, (2,), 0, (2, 1)),
        FenceBroker(1),
        RegisterBroker(1, "127.0.0.1", 9001, "i1-restarted"),
    ]
    impostor = BrokerRegistrationRequest(1, "127.0.0.1", 9001, "i1-other", previous_incarnation_id="not-i1")
    with pytest.raises(DuplicateBrokerRegistrationError):
        register_broker(image, impostor, {1, 2})


@pytest.mark.parametrize(
    "request_",
    [
        BrokerRegistrationRequest(-1, "h", 1, "i"),
        BrokerRegistrationRequest(1, "", 1, "i"),
        BrokerRegistrationRequest(1, "h", 0, "i"),
        BrokerRegistrationRequest(1, "h", 65536, "i"),
        BrokerRegistrationRequest(1, "h", 1, ""),
        BrokerRegistrationRequest(True, "h", 1, "i"),  # type: ignore[arg-type]
    ],
)
def test_malformed_registration_is_refused(request_: BrokerRegistrationRequest) -> None:
    with pytest.raises(InvalidRequestError):
        register_broker(EMPTY_IMAGE, request_, set())
