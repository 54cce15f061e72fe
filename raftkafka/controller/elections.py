"""Pure partition leader elections when a broker leaves or returns: ``(image, node id) -> PartitionChange``s.

Kafka's rules (KIP-841 for the ISR): a broker that is fenced or shuts down leaves the ISR of every
partition whose ISR has other members (the last member stays: it may be the only one with every
acknowledged record), and each partition it led gets the first live in-sync replica, in replica
order, as leader with a new leader epoch, or no leader (-1). Only a topic with
``unclean.leader.election.enable=true`` may elect an out-of-sync live replica, whose ISR is then
itself. A broker that returns leads every leaderless partition whose ISR holds it (or, unclean
election enabled, any leaderless partition it replicates). Periodically, a partition whose preferred
replica (the first) is live and in sync again is handed back to it, so leadership stays spread.
"""

from __future__ import annotations

from raftkafka.metadata.image import NO_LEADER, MetadataImage, PartitionState, TopicImage
from raftkafka.metadata.records import PartitionChange

UNCLEAN_LEADER_ELECTION = "unclean.leader.election.enable"


def unclean_election_enabled(topic: TopicImage) -> bool:
    """Whether the topic lets an out-of-sync replica become leader."""
    return topic.config.get(UNCLEAN_LEADER_ELECTION, "false").strip().lower() == "true"


def _is_live(image: MetadataImage, node_id: int) -> bool:
    broker = image.brokers.get(node_id)
    return broker is not None and not broker.fenced


def _change(topic: TopicImage, partition: PartitionState, leader: int, isr: tuple[int, ...]) -> PartitionChange:
    epoch = partition.leader_epoch + 1 if leader != partition.leader else partition.leader_epoch
    return PartitionChange(topic.name, partition.partition, leader, isr, epoch, partition.replicas)


def remove_broker(image: MetadataImage, node_id: int) -> list[PartitionChange]:
    """Move leadership off ``node_id`` and take it out of ISRs that have other members."""
    changes = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for partition in topic.partitions:
            if partition.leader != node_id and node_id not in partition.isr:
                continue
            isr = tuple(r for r in partition.isr if r != node_id) or partition.isr
            leader = partition.leader
            if leader == node_id:
                others = [r for r in partition.replicas if r != node_id and _is_live(image, r)]
                leader = next((r for r in others if r in isr), NO_LEADER)
                if leader == NO_LEADER and others and unclean_election_enabled(topic):
                    leader, isr = others[0], (others[0],)
            if (leader, isr) != (partition.leader, partition.isr):
                changes.append(_change(topic, partition, leader, isr))
    return changes


def elect_leaderless(image: MetadataImage, node_id: int) -> list[PartitionChange]:
    """Make the returning ``node_id`` leader of the leaderless partitions it may lead."""
    changes = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for partition in topic.partitions:
            if partition.leader != NO_LEADER or node_id not in partition.replicas:
                continue
            if node_id in partition.isr:
                changes.append(_change(topic, partition, node_id, partition.isr))
            elif unclean_election_enabled(topic) and not any(_is_live(image, r) for r in partition.isr):
                changes.append(_change(topic, partition, node_id, (node_id,)))
    return changes


def elect_preferred_leaders(image: MetadataImage) -> list[PartitionChange]:
    """Give each partition back to its preferred leader (its first replica) where that replica is live and in
    the ISR but does not lead (Kafka's preferred-leader election, ``auto.leader.rebalance.enable``)."""
    changes = []
    for topic in sorted(image.topics.values(), key=lambda t: t.name):
        for partition in topic.partitions:
            preferred = partition.replicas[0] if partition.replicas else NO_LEADER
            if (
                partition.leader != preferred
                and preferred in partition.isr
                and _is_live(image, preferred)
            ):
                changes.append(_change(topic, partition, preferred, partition.isr))
    return changes
