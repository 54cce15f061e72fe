"""Pure partition assignors for consumer groups: ``(strategy, subscriptions, counts, previous) -> Assignment``.

Every member of the group gets a sorted list of ``(topic, partition)``; each partition of a subscribed topic
that exists goes to exactly one member subscribing to it, and nothing else is assigned. The answer depends
only on the contents of the arguments (members are taken in member id order; no clock, no randomness, no
iteration over sets of strings), so every process computes the same assignment.

- ``range`` (Kafka's ``RangeAssignor``): per topic, its subscribers in member id order get contiguous ranges
  of partitions, the first ``partitions % subscribers`` of them one partition more. Balanced per topic, not
  overall: the same members get the extra partition of every topic.
- ``roundrobin`` (Kafka's ``RoundRobinAssignor``): every partition, in ``(topic, partition)`` order, goes to
  the next member in member id order (cyclically) that subscribes to its topic.
- ``sticky`` (Kafka's ``StickyAssignor`` contract, a simpler algorithm): balanced -- partition counts differ
  by at most one whenever some assignment that respects the subscriptions allows it -- and, subject to that,
  as many partitions as possible stay with their previous owner (the most possible when all members have
  the same subscriptions; a greedy effort otherwise).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections import deque
from collections.abc import Mapping, Sequence
from types import MappingProxyType

STRATEGIES: tuple[str, ...] = ("range", "roundrobin", "sticky")
"""The assignment strategy names accepted on the wire."""

Assignment = dict[str, list[tuple[str, int]]]
"""member id -> its partitions as a sorted list of ``(topic, partition)``."""

NO_PREVIOUS: Mapping[str, Sequence[tuple[str, int]]] = MappingProxyType({})
"""An empty, immutable ``previous`` (the default: a first generation)."""

_Holdings = dict[str, dict[str, set[int]]]
"""topic -> member -> the partitions of the topic the member holds (only non-empty entries)."""


def assign(
    strategy: str,
    subscriptions: Mapping[str, Sequence[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Sequence[tuple[str, int]]] = NO_PREVIOUS,
) -> Assignment:
    """Assign the partitions of the topics the members subscribe to, with ``strategy``.

    ``subscriptions``: member id -> subscribed topic names; ``partition_counts``: topic -> number of partitions
    (topics absent from it do not exist and are skipped); ``previous``: member id -> the partitions it owned in
    the previous generation (only ``sticky`` uses it). Raises ``ValueError`` for an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown partition assignment strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    topics = {
        member: sorted({t for t in subscriptions[member] if partition_counts.get(t, 0) > 0})
        for member in sorted(subscriptions)
    }
    if strategy == "range":
        return _range(topics, partition_counts)
    if strategy == "roundrobin":
        return _roundrobin(topics, partition_counts)
    return _sticky(topics, partition_counts, previous)


def _subscribers(topics: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """topic -> its subscribers in member id order, topics in name order (``topics`` is in member id order)."""
    subscribers: dict[str, list[str]] = {}
    for member, subscribed in topics.items():
        for topic in subscribed:
            subscribers.setdefault(topic, []).append(member)
    return dict(sorted(subscribers.items()))


def _range(topics: Mapping[str, list[str]], partition_counts: Mapping[str, int]) -> Assignment:
    result: Assignment = {member: [] for member in topics}
    for topic, members in _subscribers(topics).items():
        per_member, extra = divmod(partition_counts[topic], len(members))
        start = 0
        for index, member in enumerate(members):
            end = start + per_member + (index < extra)
            result[member].extend((topic, partition) for partition in range(start, end))
            start = end
    return {member: sorted(partitions) for member, partitions in result.items()}


def _roundrobin(topics: Mapping[str, list[str]], partition_counts: Mapping[str, int]) -> Assignment:
    members = list(topics)
    result: Assignment = {member: [] for member in members}
    position = {member: index for index, member in enumerate(members)}
    cursor = 0  # the index of the member dealt to next, if it subscribes
    for topic, subscribers in _subscribers(topics).items():
        eligible = [position[member] for member in subscribers]  # ascending
        for partition in range(partition_counts[topic]):
            at = bisect_left(eligible, cursor)
            index = eligible[at] if at < len(eligible) else eligible[0]
            result[members[index]].append((topic, partition))
            cursor = (index + 1) % len(members)
    return result


def _sticky(
    topics: Mapping[str, list[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Sequence[tuple[str, int]]],
) -> Assignment:
    """Keep each member's previous partitions up to its share, hand the rest out to the subscribers holding
    the fewest, then move partitions along chains of members until the counts are as even as they can be."""
    subscribers = _subscribers(topics)
    owners = _previous_owners(topics, partition_counts, previous)
    count = dict.fromkeys(topics, 0)
    holdings: _Holdings = {topic: {} for topic in subscribers}

    # 1. keep previous partitions, up to ``share`` each and ``share + 1`` for the first ``extra`` that can
    eligible = [member for member, subscribed in topics.items() if subscribed]
    share, extra = divmod(sum(partition_counts[t] for t in subscribers), len(eligible)) if eligible else (0, 0)
    claims: dict[str, list[tuple[str, int]]] = {}
    for topic_partition, owner in sorted(owners.items()):
        claims.setdefault(owner, []).append(topic_partition)
    for member in topics:
        kept = claims.get(member, [])
        if len(kept) > share and extra:
            extra -= 1
            kept = kept[: share + 1]
        else:
            kept = kept[:share]
        for topic, partition in kept:
            holdings[topic].setdefault(member, set()).add(partition)
        count[member] = len(kept)

    # 2. the rest, each to the subscriber holding the fewest (its previous owner on a tie), all topics at once
    # (interleaved by the fraction of their free partitions handed out: topic by topic, the first topics would
    # fill up members that only the later ones could have)
    free: list[tuple[float, int, str, int]] = []
    for topic, members in subscribers.items():
        held = set().union(*holdings[topic].values())
        rest = [p for p in range(partition_counts[topic]) if p not in held]
        free.extend(((2 * i + 1) / (2 * len(rest)), len(members), topic, p) for i, p in enumerate(rest))
    free.sort()
    heaps: dict[tuple[str, ...], list[tuple[int, str]]] = {}
    heap_of = {topic: heaps.setdefault(tuple(members), []) for topic, members in subscribers.items()}
    for topic, members in subscribers.items():
        if not heap_of[topic]:
            heap_of[topic].extend((count[member], member) for member in members)
            heapq.heapify(heap_of[topic])
    for _, _, topic, partition in free:
        heap = heap_of[topic]
        while heap[0][0] != count[heap[0][1]]:  # a stale entry: the member got partitions of another topic
            heapq.heapreplace(heap, (count[heap[0][1]], heap[0][1]))
        member = heap[0][1]
        owner = owners.get((topic, partition))
        if owner is not None and owner != member and count[owner] == count[member]:
            member = owner  # its heap entry goes stale, and is refreshed when it surfaces
        else:
            heapq.heapreplace(heap, (count[member] + 1, member))
        holdings[topic].setdefault(member, set()).add(partition)
        count[member] += 1

    # 3. even out what the greedy pass could not (only with different subscriptions)
    _balance(topics, holdings, count, owners)

    result: Assignment = {member: [] for member in topics}
    for topic in sorted(holdings):
        for member, partitions in holdings[topic].items():
            result[member].extend((topic, partition) for partition in sorted(partitions))
    return result


def _previous_owners(
    topics: Mapping[str, list[str]],
    partition_counts: Mapping[str, int],
    previous: Mapping[str, Sequence[tuple[str, int]]],
) -> dict[tuple[str, int], str]:
    """``(topic, partition)`` -> its previous owner, for owners still in the group that still subscribe to the
    topic and partitions that still exist; a partition claimed by several members goes to the lowest id."""
    owners: dict[tuple[str, int], str] = {}
    for member, subscribed in topics.items():
        subscribed_set = set(subscribed)
        for topic, partition in previous.get(member, ()):
            if topic in subscribed_set and 0 <= partition < partition_counts[topic]:
                owners.setdefault((topic, partition), member)
    return owners


def _balance(
    topics: Mapping[str, list[str]], holdings: _Holdings, count: dict[str, int], owners: Mapping[tuple[str, int], str]
) -> None:
    """Move partitions along chains of members, each handing one to the next (which subscribes to its topic),
    from a member holding at least two more than the last one, until no such chain exists.

    Then the counts differ by at most one whenever any assignment respecting the subscriptions allows it: the
    members that can reach (through such chains) a member with the fewest hold every partition any of them
    could take, and if none holds two more than the fewest, they hold too few for everyone to have
    ``total // members``. Each move lowers the sum of squared counts, so this ends.
    """
    while max(count.values(), default=0) - min(count.values(), default=0) > 1:
        chain = _find_chain(topics, holdings, count)
        if chain is None:
            return
        giver, links = chain
        for taker, topic in links:
            held = holdings[topic][giver]
            # rather a partition that has moved already, or one going back to its previous owner
            partition = min(held, key=lambda p: (owners.get((topic, p)) == giver, owners.get((topic, p)) != taker, p))
            held.discard(partition)
            if not held:
                del holdings[topic][giver]
            holdings[topic].setdefault(taker, set()).add(partition)
            count[giver] -= 1
            count[taker] += 1
            giver = taker


def _find_chain(
    topics: Mapping[str, list[str]], holdings: _Holdings, count: Mapping[str, int]
) -> tuple[str, list[tuple[str, str]]] | None:
    """A member holding at least two more than another that can reach it, and the ``(taker, topic)`` links from
    the first to the last; None if there is none.

    Searches backwards from the members with the fewest partitions first. A member reached from an earlier
    start holds at most one more than that start, and so does everything reaching it: later searches, from
    members holding no fewer, need not pass through it again.
    """
    most = max(count.values())
    seen_members: set[str] = set()
    seen_topics: set[str] = set()
    for _, start in sorted((n, m) for m, n in count.items() if n + 2 <= most):
        if start in seen_members:
            continue
        seen_members.add(start)
        link: dict[str, tuple[str, str]] = {}  # giver -> (taker, topic)
        queue = deque([start])
        best: str | None = None
        while queue:
            taker = queue.popleft()
            for topic in topics[taker]:
                if topic in seen_topics:
                    continue
                seen_topics.add(topic)
                for giver in holdings[topic]:
                    if giver in seen_members:
                        continue
                    seen_members.add(giver)
                    link[giver] = (taker, topic)
                    queue.append(giver)
                    if count[giver] >= count[start] + 2 and (best is None or count[giver] > count[best]):
                        best = giver
                if best is not None and count[best] == most:
                    break
            if best is not None and count[best] == most:
                break
        if best is not None:
            links = []
            giver = best
            while giver != start:
                links.append(link[giver])
                giver = link[giver][0]
            return best, links
    return None
