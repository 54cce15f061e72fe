"""Pure decisions about broker registration: ``(image, request) -> records``.

A broker registers at start with its node id, listener and an incarnation id that is new for every
process start. A second incarnation is refused while the first is unfenced *and* still holds a live
session with the active controller, so a restarted broker is accepted as soon as its predecessor's
session is gone (at once after a controller restart, as in ``raftkafka dev``). Session tracking is
controller soft state and is passed in.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from raftkafka.errors import DuplicateBrokerRegistrationError, InvalidRequestError
from raftkafka.metadata.image import MetadataImage
from raftkafka.metadata.records import MetadataRecord, RegisterBroker

MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class BrokerRegistrationRequest:
    """A broker process announcing itself."""

    node_id: int
    host: str
    port: int
    incarnation_id: str

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


def register_broker(
    image: MetadataImage, request: BrokerRegistrationRequest, live_sessions: Set[int]
) -> list[MetadataRecord]:
    """The records that register ``request`` (none for an identical retry).

    Raises ``InvalidRequestError`` for a malformed request and ``DuplicateBrokerRegistrationError``
    when another incarnation of the node id is unfenced and in ``live_sessions``.
    """
    request.validate()
    current = image.brokers.get(request.node_id)
    if current is not None and not current.fenced:
        if current.incarnation_id == request.incarnation_id:
            if (current.host, current.port) == (request.host, request.port):
                return []
        elif request.node_id in live_sessions:
            raise DuplicateBrokerRegistrationError(
                f"broker {request.node_id} is registered by another live process (incarnation {current.incarnation_id})"
            )
    return [RegisterBroker(request.node_id, request.host, request.port, request.incarnation_id, fenced=False)]
