"""API keys, their supported versions and the shapes of their bodies.

Bodies are msgpack maps with string keys (partition lists are positional arrays, for speed):

=================  ==========================================================================================
API                request body → response body
=================  ==========================================================================================
API_VERSIONS       ``{}`` → ``{"apis": [[key, min_version, max_version], ...]}``
METADATA           ``{"topics": [name, ...] | None, "include_config": bool}`` →
                   ``{"cluster_id", "controller_id", "brokers": [[node_id, host, port], ...],
                   "topics": [{"name", "error", "message", "topic_id",
                   "partitions": [[id, leader, leader_epoch, replicas, isr], ...], "config": {k: v}}]}``
PRODUCE            ``{"acks": 0|1|-1, "timeout_ms", "topics": [[topic, [[partition, batches_bytes], ...]], ...]}``
                   → ``{"topics": [[topic, [[partition, error, base_offset, message], ...]], ...]}``;
                   no response at all when acks is 0. acks=1 answers after the leader's append; acks=-1 (all)
                   fails with ``NOT_ENOUGH_REPLICAS`` (nothing appended) when the ISR is smaller than the
                   topic's ``min.insync.replicas``, else answers once the high watermark passed the batches
                   (``NOT_ENOUGH_REPLICAS_AFTER_APPEND`` if the ISR shrank below it meanwhile,
                   ``REQUEST_TIMED_OUT`` after ``timeout_ms``, default 30000, ``NOT_LEADER`` if leadership moved).
FETCH              ``{"max_wait_ms", "min_bytes", "max_bytes", "replica_id" (optional, -1),
                   "topics": [[topic, [[partition, offset, partition_max_bytes(, leader_epoch)], ...]], ...]}``
                   → ``{"topics": [[topic, [[partition, error, high_watermark, log_start_offset, records], ...]]]}``.
                   Consumers (``replica_id`` -1) read below the high watermark. A follower sends its node id as
                   ``replica_id`` and its log end offset as ``offset``: it reads up to the leader's log end, the
                   leader records the offset as the follower's log end offset, and a long poll also returns
                   when the high watermark moves; ``OFFSET_OUT_OF_RANGE`` answers to a follower carry the high
                   watermark and log start offset. With ``leader_epoch`` (not -1) the partition is served only
                   at that leader epoch: ``FENCED_LEADER_EPOCH`` when it is older than the broker's,
                   ``UNKNOWN_LEADER_EPOCH`` when newer.
OFFSETS_FOR_LEADER_EPOCH ``{"topics": [[topic, [[partition, leader_epoch], ...]], ...]}`` → ``{"topics": [[topic,
                   [[partition, error, leader_epoch, end_offset], ...]], ...]}``, answered by the partition's
                   leader (else ``NOT_LEADER``): the largest epoch at or below the asked one in its leader epoch
                   cache and the offset where that epoch ends (the start of the next epoch, or the log end
                   offset for the current epoch); -1, -1 when the asked epoch is newer than every epoch it has.
                   A new follower truncates its log there before fetching.
LIST_OFFSETS       ``{"topics": [[topic, [[partition, timestamp], ...]], ...]}`` (timestamp -1 latest,
                   -2 earliest) → ``{"topics": [[topic, [[partition, error, offset, timestamp], ...]], ...]}``
CREATE_TOPICS      ``{"topics": [{"name", "partitions", "replication_factor", "config": {k: v}}],
                   "timeout_ms", "validate_only"}`` → ``{"topics": [[name, error, message], ...]}``
DELETE_TOPICS      ``{"topics": [name, ...], "timeout_ms"}`` → ``{"topics": [[name, error, message], ...]}``
CREATE_PARTITIONS  ``{"topics": [{"name", "count"}], "timeout_ms", "validate_only"}`` → ``{"topics": [[name, error,
                   message], ...]}``: grow each topic to ``count`` partitions (``INVALID_PARTITIONS`` unless more than
                   now; a topic never shrinks), placed like a new topic's with the same replication factor. Keys of
                   records with a key map to new partitions from then on, as in Kafka. Forwarded like CREATE_TOPICS.
INIT_PRODUCER_ID   ``{"timeout_ms"}`` → ``{"producer_id", "producer_epoch"}``: a new producer id (unique in the
                   cluster, never handed out twice, across controller failovers too) at epoch 0 for an
                   idempotent producer (Kafka's InitProducerId without a transactional id). Brokers forward it
                   to the active controller (controllers answer it too, plus ``controller_epoch``), which hands
                   out ids from blocks it reserved in the metadata log. Safe to retry: an id lost with its answer
                   is only skipped. Idempotent PRODUCE batches carry the id, the epoch and a sequence number
                   per partition (the first record's; each record counts one, from 0): the partition leader
                   answers a retry of one of the producer's last 5 batches with the stored batch's base offset
                   without appending it again, and refuses a gap or an overlap (``OUT_OF_ORDER_SEQUENCE``), an
                   older epoch (``INVALID_PRODUCER_EPOCH``), a first batch not at sequence 0 from a producer id
                   the partition has no record of (``UNKNOWN_PRODUCER_ID``) and an idempotent batch that is
                   not alone in its partition entry (``INVALID_REQUEST``).
=================  ==========================================================================================

Consumer group APIs. The active controller is every group's coordinator: brokers forward these requests
to it unchanged and pass its answers back (controllers answer them too, plus ``controller_epoch``).
Members choose their own ``member_id`` (unique: the client id and a random UUID), so a retried join is
the same member. A member is alive while it heartbeats within its ``session_timeout_ms`` (or waits in
a join); the coordinator removes a silent one and rebalances. A rebalance starts when a member joins,
leaves, dies or changes its subscription, or when a subscribed topic's partition count changes: every
member's heartbeat then answers ``REBALANCE_IN_PROGRESS`` and each member commits what it processed and
joins again. When every member has joined (or ``rebalance_timeout_ms`` removed the others) the
coordinator assigns the partitions with the strategy every member supports (the first in the members'
preference order), commits the group's next generation (``GroupChange``) and answers every join.

=================  ==========================================================================================
JOIN_GROUP         ``{"group_id", "member_id", "client_id", "topics": [name, ...], "strategies": [name, ...],
                   "session_timeout_ms", "rebalance_timeout_ms"}`` → ``{"generation", "member_id", "strategy",
                   "assignment": [[topic, [partition, ...]], ...], "members": count}``, once the rebalance
                   completed (a member of the current generation rejoining with the same subscription while
                   none runs is answered at once). ``topics`` is the subscription (a pattern is resolved by the
                   client); ``strategies`` among ``range``, ``roundrobin``, ``sticky``. Errors:
                   ``INVALID_GROUP_ID``, ``INVALID_SESSION_TIMEOUT``, ``INCONSISTENT_GROUP_PROTOCOL``,
                   ``GROUP_MAX_SIZE_REACHED``, ``REBALANCE_IN_PROGRESS`` (a newer join of the same member
                   replaced this one, or the member was removed meanwhile: join again).
HEARTBEAT          ``{"group_id", "member_id", "generation"}`` → ``{}``. ``REBALANCE_IN_PROGRESS``: join again
                   (commits at the current generation are still accepted); ``UNKNOWN_MEMBER_ID`` or
                   ``ILLEGAL_GENERATION``: the member is out of the group, join again.
LEAVE_GROUP        ``{"group_id", "member_id"}`` → ``{}``; the group rebalances without the member (a member
                   not in the group is not an error).
OFFSET_COMMIT      ``{"group_id", "member_id", "generation", "offsets": [[topic, [[partition, offset], ...]],
                   ...]}`` → ``{"topics": [[topic, [[partition, error], ...]], ...]}`` after the ``CommitOffsets``
                   record committed. ``offset`` is the next record to consume (>= 0). The member must be in the
                   group's current generation (``UNKNOWN_MEMBER_ID`` / ``ILLEGAL_GENERATION`` for the whole
                   request), so a fenced member never overwrites newer commits; ``member_id`` "" with
                   ``generation`` -1 commits for a group without members (manual assignment, offset resets)
                   and creates the group if needed. ``UNKNOWN_TOPIC`` for a partition that does not exist.
OFFSET_FETCH       ``{"group_id", "topics": [[topic, [partition, ...]], ...] | None}`` →
                   ``{"topics": [[topic, [[partition, offset], ...]], ...]}``: the committed offsets (-1 where
                   none), every committed one when ``topics`` is None.
LIST_GROUPS        ``{}`` → ``{"groups": [[group_id, state, member_count], ...]}``; ``state`` is ``Empty``,
                   ``PreparingRebalance`` or ``Stable``.
DESCRIBE_GROUPS    ``{"groups": [group_id, ...]}`` → ``{"groups": [{"group_id", "error", "state", "strategy",
                   "generation", "members": [{"member_id", "client_id", "topics", "assignment": [[topic,
                   [partition, ...]], ...]}], "offsets": [[topic, [[partition, offset], ...]], ...]}]}``;
                   ``GROUP_ID_NOT_FOUND`` (state ``Dead``) for a group that does not exist.
DELETE_GROUPS      ``{"groups": [group_id, ...]}`` → ``{"groups": [[group_id, error, message], ...]}``: the group
                   and its committed offsets are removed (``NON_EMPTY_GROUP`` while it has members,
                   ``GROUP_ID_NOT_FOUND``).

Controller APIs (served by every controller; those that change metadata are answered only by the
active controller, and the other voters answer ``NOT_CONTROLLER`` with a message containing
``"leader=<node_id>@<host>:<port>"`` when they know the active controller's listener). Every
controller response body carries ``"controller_epoch"`` (the Raft term it answered in); brokers and
clients drop responses older than the newest epoch they have seen. Brokers forward CREATE_TOPICS and
DELETE_TOPICS to the active controller unchanged (controllers answer them with the broker's shapes
plus ``controller_epoch``). Metadata *offsets* number the records of the metadata log from 0.

=================  ==========================================================================================
BROKER_REGISTER    ``{"node_id", "host", "port", "incarnation_id"}`` → ``{"broker_epoch", "controller_epoch",
                   "heartbeat_interval_ms", "session_timeout_ms"}``; ``broker_epoch`` is the offset of the
                   registration record. ``DUPLICATE_BROKER_REGISTRATION`` while another incarnation of the
                   node id is unfenced with a live session. A new or fenced broker is registered unfenced
                   and becomes leader of the leaderless partitions whose ISR holds it.
BROKER_HEARTBEAT   ``{"node_id", "broker_epoch", "metadata_offset", "want_shutdown": bool}`` →
                   ``{"fenced": bool, "should_shutdown": bool, "controller_epoch", "heartbeat_interval_ms"}``;
                   ``metadata_offset`` is the offset of the last metadata record the broker applied (its
                   image's offset, -1 for none). A fenced broker is unfenced by a heartbeat of the same
                   registration once ``metadata_offset >= broker_epoch``. ``want_shutdown``: leadership moves
                   off the broker, it leaves ISRs with other members, it is fenced, and the answer says
                   ``should_shutdown: true``. ``BROKER_ID_NOT_REGISTERED`` (unknown node id) and
                   ``STALE_BROKER_EPOCH`` (not the current registration): register again.
METADATA_LOG       ``{"offset": next offset wanted, "max_wait_ms", "max_records"}`` →
                   ``{"controller_epoch", "high_offset", "first_offset", "records": bytes | None,
                   "snapshot": bytes | None}``: ``high_offset`` is the offset of the last record the answering
                   voter has committed (-1: none). ``records`` (``metadata.records.encode_records``, None when
                   there are none) start at ``first_offset == offset``. When ``offset`` is older than the
                   records kept in memory, ``snapshot`` (``MetadataImage.to_bytes()``, the whole current image)
                   replaces the broker's image, ``records`` is None and ``first_offset`` is the offset after the
                   snapshot (ask from there next). ``offset`` past ``high_offset`` waits up to ``max_wait_ms``
                   (capped by the controller) for a commit. Every voter answers from its own committed log, so
                   brokers use the active controller and tests can compare voters.
QUORUM_STATUS      ``{}`` → ``{"controller_epoch", "leader_id": int | None, "node_id" (the voter that
                   answered), "is_leader", "commit_index", "metadata_offset", "voters": [{"node_id", "raft",
                   "listener": "host:port" | None, "committed_offset", "lag", "connected"}]}``. Every voter
                   answers with its own view; only the leader knows the others' progress. ``committed_offset``
                   is a *Raft log index* (pysyncobj's: it counts entries, each a batch of records, plus
                   election no-ops, so it is not a metadata offset): the voter's commit index for itself,
                   the index the leader knows is stored on each follower, None where unknown. ``lag`` is the
                   leader's commit index minus that, in Raft entries (None where unknown).
                   ``metadata_offset`` is the answering voter's last applied metadata offset.
ALTER_PARTITION    ``{"broker_id", "broker_epoch", "topics": [[topic, [[partition, leader_epoch, partition_epoch,
                   new_isr], ...]], ...]}`` → ``{"controller_epoch", "topics": [[topic, [[partition, error, leader,
                   leader_epoch, isr, partition_epoch], ...]], ...]}``: a partition leader asks to shrink or expand
                   the ISR (Kafka's AlterPartition, KIP-497). Accepted only from the current leader at the current
                   leader epoch (else ``FENCED_LEADER_EPOCH``) and partition epoch (else ``INVALID_UPDATE_VERSION``);
                   ``new_isr`` must be a subset of the replicas holding the leader (else ``INVALID_REQUEST``) and
                   may add only registered, unfenced brokers (else ``INELIGIBLE_REPLICA``). The answer comes after
                   the ``PartitionChange`` committed and carries the partition's state after it (leader and leader
                   epoch unchanged, ``partition_epoch`` one higher; unchanged state when ``new_isr`` is the current
                   ISR); on an error the other fields hold the controller's current state (``UNKNOWN_TOPIC``
                   and -1/[] for a partition it does not know). ``STALE_BROKER_EPOCH`` for the whole request
                   when ``broker_epoch`` is not the broker's current registration.
=================  ==========================================================================================

A request that fails as a whole is answered with its error code and the body ``{"message": str}``.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

from raftkafka.errors import InvalidRequestError


class ApiKey(IntEnum):
    """Wire API keys."""

    API_VERSIONS = 0
    METADATA = 1
    PRODUCE = 2
    FETCH = 3
    LIST_OFFSETS = 4
    CREATE_TOPICS = 5
    DELETE_TOPICS = 6
    OFFSETS_FOR_LEADER_EPOCH = 7
    INIT_PRODUCER_ID = 8
    OFFSET_COMMIT = 9
    OFFSET_FETCH = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    LIST_GROUPS = 14
    DESCRIBE_GROUPS = 15
    DELETE_GROUPS = 16
    CREATE_PARTITIONS = 17
    BROKER_REGISTER = 20
    BROKER_HEARTBEAT = 21
    METADATA_LOG = 22
    QUORUM_STATUS = 23
    ALTER_PARTITION = 24


MALFORMED_BODY_ERRORS = (KeyError, IndexError, TypeError, ValueError)
"""What reading a body of the wrong shape raises (a missing key, a short entry, a value of the wrong type)."""

SUPPORTED_VERSIONS: dict[int, tuple[int, int]] = {key: (0, 0) for key in ApiKey}
"""Inclusive (min, max) version per API key this build speaks."""

ACKS_ALL = -1
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1

T = TypeVar("T")


def field(body: Any, name: str, kind: type[T] | tuple[type, ...], default: Any = ...) -> T:
    """``body[name]`` checked to be of ``kind``; ``InvalidRequestError`` naming the field otherwise.

    ``bool`` is never accepted where ``int`` is asked for.
    """
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a map, not {type(body).__name__}")
    value = body.get(name, default)
    if value is ...:
        raise InvalidRequestError(f"missing field {name!r}")
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidRequestError(f"field {name!r} has the wrong type ({type(value).__name__})")
    return value  # type: ignore[return-value]


def topic_changes(body: Any) -> tuple[list[dict[str, Any]], bool, float]:
    """``(entries, validate_only, timeout_s)`` of a CREATE_TOPICS or CREATE_PARTITIONS body."""
    entries = field(body, "topics", list)
    if not all(isinstance(entry, dict) for entry in entries):
        raise InvalidRequestError("each entry of 'topics' must be a map")
    timeout_ms = field(body, "timeout_ms", int, 30_000)
    if timeout_ms <= 0:
        raise InvalidRequestError(f"timeout_ms must be positive, got {timeout_ms}")
    return entries, field(body, "validate_only", bool, False), timeout_ms / 1000


def topic_partition_lists(body: Any, name: str = "topics") -> list[tuple[str, list[list[Any]]]]:
    """The ``[[topic, [[partition, ...], ...]], ...]`` list shared by produce, fetch and list offsets."""
    entries = field(body, name, list)
    out: list[tuple[str, list[list[Any]]]] = []
    for entry in entries:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
        ):
            raise InvalidRequestError(f"each entry of {name!r} must be [topic, [partition entries]]")
        for part in entry[1]:
            if not isinstance(part, list) or not part or type(part[0]) is not int:
                raise InvalidRequestError(f"partition entries of {entry[0]!r} must be lists starting with an int")
        out.append((entry[0], entry[1]))
    return out
