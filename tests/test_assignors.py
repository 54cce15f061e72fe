"""Consumer group partition assignors: coverage and exclusivity, determinism, balance, range's per-topic ranges,
roundrobin's dealing order and sticky's minimal movement, on hypothesis-generated groups and Kafka's examples."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from random import Random
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raftkafka.controller.assignors import STRATEGIES, Assignment, assign

Subscriptions = dict[str, list[str]]
Counts = dict[str, int]
Previous = dict[str, list[tuple[str, int]]]
Group = tuple[Subscriptions, Counts]
T = TypeVar("T")

TOPICS = ("a", "b", "c", "d")
member_ids = st.text(alphabet="abcxyz019", min_size=1, max_size=4)


@st.composite
def groups(draw: st.DrawFn, max_members: int = 10, max_partitions: int = 12) -> Group:
    """Members subscribing to any topics (some missing, some twice), topics with 0 or more partitions."""
    counts = draw(st.dictionaries(st.sampled_from(TOPICS), st.integers(0, max_partitions)))
    members = draw(st.lists(member_ids, min_size=1, max_size=max_members, unique=True))
    names = st.sampled_from([*TOPICS, "missing"])
    return {member: draw(st.lists(names, max_size=5)) for member in members}, counts


@st.composite
def same_subscriptions(draw: st.DrawFn, max_members: int = 12, max_partitions: int = 30) -> Group:
    """Members that all subscribe to the same topics."""
    counts = draw(st.dictionaries(st.sampled_from(TOPICS), st.integers(0, max_partitions), min_size=1))
    members = draw(st.lists(member_ids, min_size=1, max_size=max_members, unique=True))
    topics = draw(st.lists(st.sampled_from(sorted(counts)), min_size=1, unique=True))
    return {member: list(topics) for member in members}, counts


@st.composite
def previous_generations(draw: st.DrawFn, members: Sequence[str], counts: Mapping[str, int]) -> Previous:
    """What members, present or gone, owned before: partitions that may no longer exist, topics they may no
    longer subscribe to, and partitions claimed twice."""
    owners = [*members, "gone-1", "gone-2"]
    partitions = st.tuples(st.sampled_from([*TOPICS, "missing"]), st.integers(-1, 1 + max(counts.values(), default=0)))
    return draw(st.dictionaries(st.sampled_from(owners), st.lists(partitions, max_size=8)))


def partitions_of(subscriptions: Mapping[str, Sequence[str]], counts: Mapping[str, int]) -> set[tuple[str, int]]:
    """Every partition of every subscribed topic that exists."""
    topics = {topic for subscribed in subscriptions.values() for topic in subscribed if topic in counts}
    return {(topic, partition) for topic in topics for partition in range(counts[topic])}


def check_assignment(result: Assignment, subscriptions: Mapping[str, Sequence[str]], counts: Mapping[str, int]) -> None:
    """Every member present; each partition of a subscribed topic with exactly one subscriber; nothing else."""
    assert list(result) == sorted(subscriptions)
    owned = [tp for partitions in result.values() for tp in partitions]
    assert len(owned) == len(set(owned)), "a partition with two owners"
    assert set(owned) == partitions_of(subscriptions, counts)
    for member, partitions in result.items():
        assert partitions == sorted(partitions)
        assert all(type(tp) is tuple and tp[0] in subscriptions[member] for tp in partitions)


def spread(result: Assignment) -> int:
    sizes = [len(partitions) for partitions in result.values()]
    return max(sizes) - min(sizes)


def owner_of(result: Mapping[str, Sequence[tuple[str, int]]]) -> dict[tuple[str, int], str]:
    return {tp: member for member, partitions in result.items() for tp in partitions}


def moved(before: Assignment, after: Assignment) -> int:
    """Partitions of ``before`` with another owner (or none) in ``after``."""
    owners = owner_of(after)
    return sum(owners.get(tp) != member for member, partitions in before.items() for tp in partitions)


def shuffled(rng: Random, mapping: Mapping[str, Sequence[T]]) -> dict[str, list[T]]:
    """The same mapping with its keys and each value's items in another order."""
    keys = list(mapping)
    rng.shuffle(keys)
    return {key: rng.sample(list(mapping[key]), len(mapping[key])) for key in keys}


# -- every strategy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@given(group=groups(), data=st.data())
def test_every_partition_goes_to_exactly_one_subscriber(strategy: str, group: Group, data: st.DataObject) -> None:
    subscriptions, counts = group
    previous = data.draw(previous_generations(list(subscriptions), counts))
    check_assignment(assign(strategy, subscriptions, counts, previous), subscriptions, counts)


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=50)
@given(group=groups(), data=st.data(), rng=st.randoms(use_true_random=False))
def test_the_result_does_not_depend_on_input_order(
    strategy: str, group: Group, data: st.DataObject, rng: Random
) -> None:
    subscriptions, counts = group
    previous = data.draw(previous_generations(list(subscriptions), counts))
    expected = assign(strategy, subscriptions, counts, previous)
    keys = list(counts)
    rng.shuffle(keys)
    reordered = assign(strategy, shuffled(rng, subscriptions), {k: counts[k] for k in keys}, shuffled(rng, previous))
    assert reordered == expected


def test_the_result_does_not_depend_on_the_hash_seed() -> None:
    """Sets of strings iterate in another order in every process: the assignment must not follow them (here
    with different subscriptions, so that sticky moves partitions along chains of members)."""
    script = """if True:
        import random
        from raftkafka.controller.assignors import STRATEGIES, assign
        rng = random.Random(5)
        counts = {f"t{j}": rng.randint(1, 40) for j in range(8)}
        subscriptions = {f"m{i}": rng.sample(sorted(counts), rng.randint(1, 3)) for i in range(60)}
        previous = {f"m{i}": [(f"t{rng.randrange(8)}", rng.randrange(40)) for _ in range(5)] for i in range(0, 80, 2)}
        print([assign(s, subscriptions, counts, previous) for s in STRATEGIES])
    """
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in (1, 2, 3, 4)
    }
    assert len(outputs) == 1


@pytest.mark.parametrize("strategy", ["roundrobin", "sticky"])
@given(group=same_subscriptions())
def test_identical_subscriptions_give_counts_within_one(strategy: str, group: Group) -> None:
    subscriptions, counts = group
    assert spread(assign(strategy, subscriptions, counts)) <= 1


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_three_members_on_six_partitions_get_two_each_and_a_fourth_gets_one(strategy: str) -> None:
    counts = {"t": 6}
    three = assign(strategy, {m: ["t"] for m in ("c1", "c2", "c3")}, counts)
    assert [len(partitions) for partitions in three.values()] == [2, 2, 2]
    four = assign(strategy, {m: ["t"] for m in ("c1", "c2", "c3", "c4")}, counts, three)
    assert [len(partitions) for partitions in four.values()] == [2, 2, 1, 1]
    check_assignment(four, {m: ["t"] for m in four}, counts)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_members_without_existing_topics_get_nothing(strategy: str) -> None:
    result = assign(strategy, {"b": ["t", "missing"], "a": ["missing"], "c": [], "d": ["empty"]}, {"t": 2, "empty": 0})
    assert result == {"a": [], "b": [("t", 0), ("t", 1)], "c": [], "d": []}
    assert assign(strategy, {}, {"t": 2}) == {}


def test_an_unknown_strategy_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'cooperative-sticky'.*range, roundrobin, sticky"):
        assign("cooperative-sticky", {"a": ["t"]}, {"t": 1})


# -- range ---------------------------------------------------------------------------------------------------


@given(group=groups())
def test_range_splits_each_topic_into_contiguous_ranges_in_member_order(group: Group) -> None:
    """Kafka's RangeAssignor: per topic, its subscribers sorted by member id get consecutive ranges, and the
    first ``partitions % subscribers`` of them one partition more than the rest."""
    subscriptions, counts = group
    result = assign("range", subscriptions, counts)
    for topic, count in counts.items():
        members = sorted(m for m, subscribed in subscriptions.items() if topic in subscribed)
        if not members:
            continue
        ranges = [[p for t, p in result[member] if t == topic] for member in members]
        assert [p for partitions in ranges for p in partitions] == list(range(count))
        sizes = [len(partitions) for partitions in ranges]
        assert sizes == [count // len(members) + (i < count % len(members)) for i in range(len(members))]


def test_range_matches_kafkas_example() -> None:
    # Kafka's RangeAssignor javadoc: C0 and C1 on t0 and t1 with 3 partitions each
    subscriptions = {"C1": ["t0", "t1"], "C0": ["t1", "t0"]}
    assert assign("range", subscriptions, {"t0": 3, "t1": 3}) == {
        "C0": [("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)],
        "C1": [("t0", 2), ("t1", 2)],
    }


# -- roundrobin ----------------------------------------------------------------------------------------------


def kafka_round_robin(subscriptions: Mapping[str, Sequence[str]], counts: Mapping[str, int]) -> Assignment:
    """A literal port of Kafka's RoundRobinAssignor loop: a circular iterator over the sorted members, advanced
    past members not subscribed to the partition's topic."""
    members = sorted(subscriptions)
    result: Assignment = {member: [] for member in members}
    topics = sorted({t for subscribed in subscriptions.values() for t in subscribed if t in counts})
    cursor = 0
    for topic in topics:
        for partition in range(counts[topic]):
            while topic not in subscriptions[members[cursor % len(members)]]:
                cursor += 1
            result[members[cursor % len(members)]].append((topic, partition))
            cursor += 1
    return result


@given(group=groups())
def test_roundrobin_deals_like_kafka(group: Group) -> None:
    subscriptions, counts = group
    assert assign("roundrobin", subscriptions, counts) == kafka_round_robin(subscriptions, counts)


def test_roundrobin_matches_kafkas_example() -> None:
    # Kafka's RoundRobinAssignor javadoc: C0 and C1 on t0 and t1 with 3 partitions each; then C0 on t0,
    # C1 on t0 and t1, C2 on t0, t1 and t2 (with 1, 2 and 3 partitions)
    assert assign("roundrobin", {"C0": ["t0", "t1"], "C1": ["t0", "t1"]}, {"t0": 3, "t1": 3}) == {
        "C0": [("t0", 0), ("t0", 2), ("t1", 1)],
        "C1": [("t0", 1), ("t1", 0), ("t1", 2)],
    }
    subscriptions = {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]}
    assert assign("roundrobin", subscriptions, {"t0": 1, "t1": 2, "t2": 3}) == {
        "C0": [("t0", 0)],
        "C1": [("t1", 0)],
        "C2": [("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)],
    }


# -- sticky --------------------------------------------------------------------------------------------------


def possible_counts(
    subscriptions: Mapping[str, Sequence[str]], counts: Mapping[str, int], previous: Previous | None = None
) -> dict[tuple[int, ...], int]:
    """Every tuple of per-member partition counts (members in id order) that some assignment respecting the
    subscriptions has, with the most partitions such an assignment leaves with a member that owned them in
    ``previous``: an exhaustive search over all assignments, merging those with the same counts."""
    members = sorted(subscriptions)
    owned = {(member, tp) for member, partitions in (previous or {}).items() for tp in partitions}
    found = {(0,) * len(members): 0}
    for topic, partition in sorted(partitions_of(subscriptions, counts)):
        extended: dict[tuple[int, ...], int] = {}
        for sizes, kept in found.items():
            for i, member in enumerate(members):
                if topic in subscriptions[member]:
                    key = (*sizes[:i], sizes[i] + 1, *sizes[i + 1 :])
                    extended[key] = max(extended.get(key, 0), kept + ((member, (topic, partition)) in owned))
        found = extended
    return found


@st.composite
def small_mixed_groups(draw: st.DrawFn) -> Group:
    """2 to 4 members subscribing to different topics among 2 or 3 small ones."""
    counts = draw(st.dictionaries(st.sampled_from(("t", "u", "v")), st.integers(1, 3), min_size=2))
    members = draw(st.lists(st.sampled_from("abcde"), min_size=2, max_size=4, unique=True))
    topics = st.lists(st.sampled_from(sorted(counts)), min_size=1, unique=True)
    return {member: draw(topics) for member in members}, counts


@settings(max_examples=300)
@given(group=small_mixed_groups())
def test_sticky_is_balanced_whenever_the_subscriptions_allow_it(group: Group) -> None:
    subscriptions, counts = group
    result = assign("sticky", subscriptions, counts)
    if any(max(sizes) - min(sizes) <= 1 for sizes in possible_counts(subscriptions, counts)):
        assert spread(result) <= 1


@settings(max_examples=300)
@given(group=same_subscriptions(max_members=5, max_partitions=3), data=st.data())
def test_sticky_keeps_as_many_partitions_as_balance_allows(group: Group, data: st.DataObject) -> None:
    """With the same subscriptions everywhere, no balanced assignment leaves more partitions with the member that
    owned them (each owned by at most one member before, as a previous generation is)."""
    subscriptions, counts = group
    everything = sorted(partitions_of(subscriptions, counts))
    stale = [("a", 3), ("missing", 0)]  # a partition that no longer exists, a topic nobody subscribes to
    owners = data.draw(st.lists(st.sampled_from([*subscriptions, "gone", None]), min_size=len(everything) + 2))
    previous: Previous = {}
    for tp, owner in zip(everything + stale, owners, strict=False):
        if owner is not None:
            previous.setdefault(owner, []).append(tp)
    result = assign("sticky", subscriptions, counts, previous)
    assert spread(result) <= 1

    kept = sum(tp in previous.get(member, ()) for member, partitions in result.items() for tp in partitions)
    possible = possible_counts(subscriptions, counts, previous)
    assert kept == max(kept for sizes, kept in possible.items() if max(sizes) - min(sizes) <= 1)


@st.composite
def balanced_groups(draw: st.DrawFn) -> tuple[Subscriptions, Counts, Assignment]:
    """A group with identical subscriptions and a balanced assignment of it (sticky's or roundrobin's)."""
    subscriptions, counts = draw(same_subscriptions(max_members=30, max_partitions=120))
    strategy = draw(st.sampled_from(["roundrobin", "sticky"]))
    return subscriptions, counts, assign(strategy, subscriptions, counts)


@given(group=balanced_groups(), joiner=member_ids)
def test_sticky_moves_only_the_joiners_share_when_a_member_joins(
    group: tuple[Subscriptions, Counts, Assignment], joiner: str
) -> None:
    subscriptions, counts, before = group
    if joiner in subscriptions:
        joiner += "-new"
    topics = next(iter(subscriptions.values()))
    after = assign("sticky", {**subscriptions, joiner: topics}, counts, before)
    check_assignment(after, {**subscriptions, joiner: topics}, counts)
    assert spread(after) <= 1
    total = sum(len(partitions) for partitions in before.values())
    assert moved(before, after) == len(after[joiner]) == total // (len(subscriptions) + 1)
    assert all(set(after[member]) <= set(partitions) for member, partitions in before.items())


@given(group=balanced_groups(), data=st.data())
def test_sticky_moves_only_the_leavers_partitions_when_a_member_leaves(
    group: tuple[Subscriptions, Counts, Assignment], data: st.DataObject
) -> None:
    subscriptions, counts, before = group
    leaver = data.draw(st.sampled_from(sorted(subscriptions)))
    rest = {member: topics for member, topics in subscriptions.items() if member != leaver}
    after = assign("sticky", rest, counts, before)
    check_assignment(after, rest, counts)
    assert not rest or spread(after) <= 1
    assert moved(before, after) == len(before[leaver])
    assert all(set(partitions) <= set(after[member]) for member, partitions in before.items() if member != leaver)


def test_sticky_drops_stale_ownership_and_settles_double_claims_by_member_id() -> None:
    subscriptions = {"b": ["t"], "a": ["t"], "c": ["u"]}
    previous = {
        "a": [("t", 1), ["t", 0], ("t", 9), ("u", 0)],  # t-9 no longer exists, a left u (lists as msgpack gives)
        "b": [("t", 1), ("t", 2)],  # t-1 claimed by a too: a, the lower id, keeps it
        "gone": [("t", 3)],
    }
    assert assign("sticky", subscriptions, {"t": 4, "u": 2}, previous) == {  # type: ignore[arg-type]
        "a": [("t", 0), ("t", 1)],
        "b": [("t", 2), ("t", 3)],
        "c": [("u", 0), ("u", 1)],
    }


def test_sticky_balances_different_subscriptions_through_a_chain_of_members() -> None:
    # dealt to the member holding the fewest, u-0 goes to a, t-0 to b (c, also at 0, comes later), u-1 to a:
    # (2, 1, 0); only c can take t-0 from b, which then takes a u from a
    result = assign("sticky", {"a": ["t", "u"], "b": ["u", "t"], "c": ["t"]}, {"t": 1, "u": 2})
    assert result == {"a": [("u", 1)], "b": [("u", 0)], "c": [("t", 0)]}


def test_sticky_gives_a_free_partition_back_to_its_previous_owner_on_a_tie() -> None:
    # c owned all of t but keeps only its share (1 of 4 partitions for 4 members) at first; t-1 then goes to a,
    # which has none, and t-2 back to c rather than to a (both hold one by then). d stays empty: u has 1 partition
    subscriptions = {"a": ["t"], "b": ["u"], "c": ["t", "u"], "d": ["u"]}
    previous = {"b": [("u", 0)], "c": [("t", 0), ("t", 1), ("t", 2)]}
    assert assign("sticky", subscriptions, {"t": 3, "u": 1}, previous) == {
        "a": [("t", 1)],
        "b": [("u", 0)],
        "c": [("t", 0), ("t", 2)],
        "d": [],
    }


def test_sticky_is_fast_and_sticky_for_a_thousand_members_on_ten_thousand_partitions() -> None:
    counts = {f"topic-{j}": 1_000 for j in range(10)}
    subscriptions = {f"member-{i:04d}": list(counts) for i in range(1_000)}
    started = time.perf_counter()
    first = assign("sticky", subscriptions, counts)
    joined = assign("sticky", {**subscriptions, "member-new": list(counts)}, counts, first)
    left = assign("sticky", {m: t for m, t in subscriptions.items() if m != "member-0500"}, counts, first)
    elapsed = time.perf_counter() - started
    assert Counter(map(len, first.values())) == {10: 1_000}
    assert spread(joined) <= 1 and moved(first, joined) == len(joined["member-new"]) == 9
    assert spread(left) <= 1 and moved(first, left) == 10
    rng = Random(7)
    mixed = {m: rng.sample(list(counts), rng.randint(1, 3)) for m in subscriptions}
    started = time.perf_counter()
    regrouped = assign("sticky", mixed, counts, first)
    elapsed += time.perf_counter() - started
    check_assignment(regrouped, mixed, counts)
    # a generous bound (about 0.3 s for all four here): it catches an accidentally quadratic
    # algorithm, not a slow or busy machine
    assert elapsed < 5, elapsed
