"""Pure decisions about broker lifecycles: registration, heartbeats, fencing: ``(image, request) -> records``.

A broker registers at start with its node id, listener and an incarnation id that is new for every
process start; its *broker epoch* is the log offset of its registration record. A second incarnation
is refused while the first is unfenced *and* has been heard from by the active controller within the
session timeout, so a restarted broker is accepted as soon as its predecessor's session is gone, and at
once after a controller failover (the new controller has not heard from the dead predecessor) or when it
names the predecessor's incarnation as its ``previous_incarnation_id`` (a broker does so only while
holding the data dir the predecessor used, which proves that process gone). Session tracking is
controller soft state (``sessions``) and is passed in.

A broker is fenced when its session expires or when it asks to shut down (leadership moved off it
first, see ``elections``); a heartbeat of the same registration unfences it once the broker's image
has caught up to its own registration record, and registering anew returns it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from raftkafka.controller.elections import elect_leaderless, remove_broker
from raftkafka.errors import (
    BrokerIdNotRegisteredError,
    DuplicateBrokerRegistrationError,
    InvalidRequestError,
    StaleBrokerEpochError,
)
from raftkafka.metadata.image import MetadataImage, replay_all
from raftkafka.metadata.records import FenceBroker, MetadataRecord, RegisterBroker, UnfenceBroker

MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class BrokerRegistrationRequest:
    """A broker process announcing itself."""

    node_id: int
    host: str
    port: int
    incarnation_id: str
    previous_incarnation_id: str | None = None
    """The incarnation that used this broker's data dir before it (known to be gone), if any."""

    def validate(self) -> None:
        """Raise ``InvalidRequestError`` naming the first bad field."""
        if type(self.node_id) is not int or self.node_id < 0:
            raise InvalidRequestError(f"broker node id must be a non-negative int, got {self.node_id!r}")
        if not isinstance(self.host, str) or not self.host:
            raise InvalidRequestError(f"broker host must be a non-empty string, got {self.host!r}")
        if type(self.port) is not int or not 0 < self.port <= MAX_PORT:
            raise InvalidRequestError(f"broker port must be in 1..{MAX_PORT}, got {self.port!r}")
        if not isinstance(self.incarnation_id, str) or not self.incarnation_id:
            raise InvalidRequestError("broker incarnation id must be a non-empty string")
        if self.previous_incarnation_id is not None and not isinstance(self.previous_incarnation_id, str):
            raise InvalidRequestError("broker previous incarnation id must be a string or absent")


def register_broker(
    image: MetadataImage, request: BrokerRegistrationRequest, live_sessions: Set[int]
) -> list[MetadataRecord]:
    """The records that register ``request`` (none for an identical retry of a live registration).

    A broker that was fenced or is new also becomes leader of the leaderless partitions it may lead; a
    new incarnation replacing an unfenced one fences that one first.

    Raises ``InvalidRequestError`` for a malformed request and ``DuplicateBrokerRegistrationError``
    when another incarnation of the node id is unfenced, in ``live_sessions`` (brokers heard from within
    the session timeout) and not the request's ``previous_incarnation_id``.
    """
    request.validate()
    current = image.brokers.get(request.node_id)
    record = RegisterBroker(request.node_id, request.host, request.port, request.incarnation_id, fenced=False)
    if current is None or current.fenced:
        return [record, *elect_leaderless(image, request.node_id)]
    if current.incarnation_id == request.incarnation_id:
        return [] if (current.host, current.port) == (request.host, request.port) else [record]
    if request.node_id in live_sessions and request.previous_incarnation_id != current.incarnation_id:
        raise DuplicateBrokerRegistrationError(
            f"broker {request.node_id} is registered by another live process (incarnation {current.incarnation_id})"
        )
    # The predecessor is gone and the new process may have lost what it had not flushed: fence the
    # predecessor first (leadership moves, it leaves ISRs with other members), as its session expiry would.
    fenced = fence_brokers(image, [request.node_id])
    image = replay_all(image, fenced, image.offset + 1)
    return [*fenced, record, *elect_leaderless(image, request.node_id)]


def fence_brokers(image: MetadataImage, node_ids: Iterable[int]) -> list[MetadataRecord]:
    """Fence each of ``node_ids`` (registered and unfenced), moving its leadership to the brokers left."""
    records: list[MetadataRecord] = []
    for node_id in node_ids:
        broker = image.brokers.get(node_id)
        if broker is None or broker.fenced:
            continue
        fenced = [*remove_broker(image, node_id), FenceBroker(node_id)]
        image = replay_all(image, fenced, image.offset + 1)
        records.extend(fenced)
    return records


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    """A broker's heartbeat; ``metadata_offset`` is the offset of the last metadata record it applied."""

    node_id: int
    broker_epoch: int
    metadata_offset: int
    want_shutdown: bool

    def validate(self) -> None:
        """Raise ``InvalidRequestError`` naming the first bad field."""
        for name in ("node_id", "broker_epoch", "metadata_offset"):
            if type(getattr(self, name)) is not int:
                raise InvalidRequestError(f"heartbeat {name} must be an int")
        if type(self.want_shutdown) is not bool:
            raise InvalidRequestError("heartbeat want_shutdown must be a bool")


@dataclass(frozen=True, slots=True)
class HeartbeatReply:
    """What the controller tells the broker."""

    fenced: bool
    should_shutdown: bool


def broker_heartbeat(image: MetadataImage, request: HeartbeatRequest) -> tuple[list[MetadataRecord], HeartbeatReply]:
    """The records a heartbeat causes (unfencing, or a controlled shutdown) and the reply.

    Raises ``BrokerIdNotRegisteredError`` for an unknown node id and ``StaleBrokerEpochError`` for an
    epoch that is not the current registration's (the broker must register again).
    """
    request.validate()
    broker = image.brokers.get(request.node_id)
    if broker is None:
        raise BrokerIdNotRegisteredError(f"broker {request.node_id} is not registered")
    if broker.epoch != request.broker_epoch:
        raise StaleBrokerEpochError(
            f"broker {request.node_id} epoch {request.broker_epoch} is not the current one ({broker.epoch})"
        )
    if request.want_shutdown:
        return fence_brokers(image, [request.node_id]), HeartbeatReply(fenced=True, should_shutdown=True)
    if broker.fenced and request.metadata_offset >= broker.epoch:
        records = [UnfenceBroker(request.node_id), *elect_leaderless(image, request.node_id)]
        return records, HeartbeatReply(fenced=False, should_shutdown=False)
    return [], HeartbeatReply(fenced=broker.fenced, should_shutdown=False)
