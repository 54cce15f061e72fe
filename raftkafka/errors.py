"""One error hierarchy for client, broker and wire: one class per wire error code.

Every class carries its wire ``code`` and whether a client may retry the request (``retriable``).
``for_code(code)`` maps a code read off the wire back to its class; lower-layer errors (OSError,
msgpack errors) are mapped to these at the boundary where they occur.
"""

from __future__ import annotations


class RaftKafkaError(Exception):
    """Base of every raftkafka error; ``code`` is its wire error code."""

    code: int = -1
    name: str = "UNKNOWN_SERVER_ERROR"
    retriable: bool = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.name)
        self.message = message or self.name

    def __str__(self) -> str:
        return self.message if self.message == self.name else f"{self.name}: {self.message}"


_BY_CODE: dict[int, type[RaftKafkaError]] = {}


def _error(code: int, name: str, *, retriable: bool = False, doc: str = "") -> type[RaftKafkaError]:
    cls_name = "".join(part.capitalize() for part in name.split("_")) + "Error"
    cls = type(cls_name, (RaftKafkaError,), {"code": code, "name": name, "retriable": retriable, "__doc__": doc})
    cls.__module__ = __name__
    _BY_CODE[code] = cls
    return cls


UnknownServerError = _error(-1, "UNKNOWN_SERVER_ERROR", doc="The server failed in a way it could not name.")
OffsetOutOfRangeError = _error(1, "OFFSET_OUT_OF_RANGE", doc="The requested offset is not in the log.")
CorruptBatchError = _error(2, "CORRUPT_BATCH", doc="A record batch failed its length or CRC check.")
UnknownTopicError = _error(3, "UNKNOWN_TOPIC", retriable=True, doc="The topic or partition does not exist.")
InvalidFetchSizeError = _error(4, "INVALID_FETCH_SIZE", doc="A fetch asked for a non-positive size.")
LeaderNotAvailableError = _error(5, "LEADER_NOT_AVAILABLE", retriable=True, doc="The partition has no leader.")
NotLeaderError = _error(6, "NOT_LEADER", retriable=True, doc="This broker does not lead the partition.")
RequestTimedOutError = _error(7, "REQUEST_TIMED_OUT", retriable=True, doc="The request did not finish in time.")
BrokerNotAvailableError = _error(8, "BROKER_NOT_AVAILABLE", retriable=True, doc="The broker is not reachable.")
MessageTooLargeError = _error(10, "MESSAGE_TOO_LARGE", doc="A batch or request is larger than allowed.")
NetworkError = _error(13, "NETWORK_EXCEPTION", retriable=True, doc="The connection failed mid-request.")
NotControllerError = _error(
    14, "NOT_CONTROLLER", retriable=True, doc="This node is not the active controller (a hint may follow)."
)
InvalidTopicError = _error(17, "INVALID_TOPIC", doc="The topic name breaks the naming rules.")
NotEnoughReplicasError = _error(19, "NOT_ENOUGH_REPLICAS", retriable=True, doc="Fewer in-sync replicas than required.")
NotEnoughReplicasAfterAppendError = _error(
    20, "NOT_ENOUGH_REPLICAS_AFTER_APPEND", retriable=True,
    doc="The batch was appended, but the ISR shrank below min.insync.replicas before it was replicated.",
)
InvalidRequiredAcksError = _error(21, "INVALID_REQUIRED_ACKS", doc="acks must be 0, 1 or -1 (all).")
UnsupportedVersionError = _error(35, "UNSUPPORTED_VERSION", doc="The API version is not supported.")
TopicAlreadyExistsError = _error(36, "TOPIC_ALREADY_EXISTS", doc="A topic with that name exists.")
InvalidPartitionsError = _error(37, "INVALID_PARTITIONS", doc="The partition count is invalid.")
InvalidReplicationFactorError = _error(38, "INVALID_REPLICATION_FACTOR", doc="The replication factor is invalid.")
InvalidRequestError = _error(42, "INVALID_REQUEST", doc="The request is malformed.")
InvalidConfigError = _error(40, "INVALID_CONFIG", doc="A configuration key or value is invalid.")
UnknownApiError = _error(44, "UNKNOWN_API", doc="The API key is not known to the server.")
OutOfOrderSequenceError = _error(
    45, "OUT_OF_ORDER_SEQUENCE",
    doc="An idempotent batch's sequence number does not follow the producer's last one on the partition.",
)
InvalidProducerEpochError = _error(
    47, "INVALID_PRODUCER_EPOCH", doc="The producer epoch is older than one the partition has seen for the producer id."
)
KafkaStorageError = _error(56, "STORAGE_ERROR", retriable=True, doc="The broker failed to read or write its disk.")
UnknownProducerIdError = _error(
    59, "UNKNOWN_PRODUCER_ID",
    doc="The partition has no record of the producer id, and the batch's sequence number does not start at 0.",
)
FencedLeaderEpochError = _error(
    74, "FENCED_LEADER_EPOCH", retriable=True, doc="The leader epoch in the request is older than the current one."
)
UnknownLeaderEpochError = _error(
    75, "UNKNOWN_LEADER_EPOCH", retriable=True, doc="The request's leader epoch is newer than the broker's."
)
StaleBrokerEpochError = _error(
    77, "STALE_BROKER_EPOCH", doc="The broker epoch is not the current registration's; register again."
)
InvalidUpdateVersionError = _error(
    95, "INVALID_UPDATE_VERSION", doc="The partition epoch in the request is not the current one (stale state)."
)
DuplicateBrokerRegistrationError = _error(
    101, "DUPLICATE_BROKER_REGISTRATION", doc="Another live incarnation of the broker holds the node id."
)
BrokerIdNotRegisteredError = _error(
    102, "BROKER_ID_NOT_REGISTERED", doc="The controller has no registration for the broker's node id; register first."
)
IneligibleReplicaError = _error(
    107, "INELIGIBLE_REPLICA", doc="A replica proposed for the ISR is not registered or is fenced."
)
InconsistentClusterIdError = _error(
    104, "INCONSISTENT_CLUSTER_ID", doc="The broker's data dir belongs to another cluster than the one it joined."
)
CoordinatorNotAvailableError = _error(
    15, "COORDINATOR_NOT_AVAILABLE", retriable=True, doc="The group coordinator (active controller) is unavailable."
)
IllegalGenerationError = _error(
    22, "ILLEGAL_GENERATION", doc="The member's generation is not the group's current one: rejoin the group."
)
InconsistentGroupProtocolError = _error(
    23, "INCONSISTENT_GROUP_PROTOCOL", doc="No assignment strategy is supported by every member of the group."
)
InvalidGroupIdError = _error(24, "INVALID_GROUP_ID", doc="The group id is empty or too long.")
UnknownMemberIdError = _error(25, "UNKNOWN_MEMBER_ID", doc="The member is not in the group: rejoin the group.")
InvalidSessionTimeoutError = _error(
    26, "INVALID_SESSION_TIMEOUT", doc="The session timeout is outside the range the coordinator allows."
)
RebalanceInProgressError = _error(
    27, "REBALANCE_IN_PROGRESS", doc="The group is rebalancing: commit what was processed and rejoin."
)
NonEmptyGroupError = _error(68, "NON_EMPTY_GROUP", doc="The group still has members.")
GroupIdNotFoundError = _error(69, "GROUP_ID_NOT_FOUND", doc="The group does not exist.")
GroupMaxSizeReachedError = _error(81, "GROUP_MAX_SIZE_REACHED", doc="The group has as many members as allowed.")
ClientClosedError = _error(1001, "CLIENT_CLOSED", doc="The client was closed.")
FeatureNotAvailableError = _error(1002, "FEATURE_NOT_AVAILABLE", doc="The feature is not built yet.")
KafkaTimeoutError = _error(1003, "TIMED_OUT", retriable=True, doc="A client-side deadline expired.")
NoOffsetForPartitionError = _error(
    1004, "NO_OFFSET_FOR_PARTITION", doc="The consumer has no position for a partition and auto_offset_reset is none."
)


def for_code(code: int) -> type[RaftKafkaError]:
    """The error class for a wire code (``UnknownServerError`` for codes this version does not know)."""
    return _BY_CODE.get(code, UnknownServerError)


def from_wire(code: int, message: str | None = None) -> RaftKafkaError:
    """An error instance for a code and optional message read off the wire."""
    return for_code(code)(message or "")


NONE = 0
"""The wire code for success."""
