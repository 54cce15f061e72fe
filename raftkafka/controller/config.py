"""The controller process's settings, with Kafka's names for the broker-session keys.

``voters`` maps every voter's node id to its Raft address (``--voters ID@HOST:PORT,...``), this
controller included; a controller learns the leader's *node id* from the Raft address pysyncobj
reports through this map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from raftkafka.controller.group_coordinator import GroupLimits
from raftkafka.raftlog.metadata_log import MetadataLogConfig

DEFAULT_HEARTBEAT_INTERVAL_MS = 500
"""``broker.heartbeat.interval.ms``. Kafka uses 2000 ms; a shorter interval lets the active controller fence a
crashed broker (its heartbeat connection closed) after two intervals instead of the whole session timeout."""

MAX_PORT = 65535
Address = tuple[str, int]


def parse_address(text: str, what: str) -> Address:
    """``(host, port)`` of ``HOST:PORT`` (IPv6 hosts in brackets); ``ValueError`` naming ``what`` otherwise."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= MAX_PORT:
        raise ValueError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port_text)


def parse_voters(text: str) -> dict[int, Address]:
    """The voters of ``ID@HOST:PORT,ID@HOST:PORT,...`` (Raft addresses); ``ValueError`` if malformed."""
    voters: dict[int, Address] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        node_text, sep, address = item.partition("@")
        if not sep or not node_text.strip().isdigit():
            raise ValueError(f"each voter must be ID@HOST:PORT, got {item!r}")
        node_id = int(node_text)
        if node_id in voters:
            raise ValueError(f"voter {node_id} is listed twice")
        voters[node_id] = parse_address(address, f"voter {node_id}'s Raft address")
    if not voters:
        raise ValueError("at least one voter is needed (ID@HOST:PORT,...)")
    return voters


def raft_address(address: Address) -> str:
    """The ``host:port`` text pysyncobj names a voter by."""
    return f"{address[0]}:{address[1]}"


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """One controller process (a voter of the metadata quorum)."""

    node_id: int
    listen_host: str
    listen_port: int
    raft_host: str
    raft_port: int
    voters: Mapping[int, Address]
    data_dir: Path
    broker_session_timeout_ms: int = 9_000
    """``broker.session.timeout.ms``: a broker silent this long is fenced."""
    broker_heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS
    """``broker.heartbeat.interval.ms``: told to brokers in the registration and heartbeat answers."""
    leadership_poll_ms: int = 50
    """How often the process checks for a leadership or term change and for expired sessions."""
    leader_imbalance_check_interval_ms: int = 300_000
    """``leader.imbalance.check.interval.seconds`` (Kafka's 300 s): how often leadership goes back to preferred
    replicas that are in sync again."""
    metadata_log_max_records: int = 10_000
    """The most records one METADATA_LOG answer carries."""
    metadata_log_max_wait_ms: int = 30_000
    """The longest long poll a METADATA_LOG request may ask for."""
    metadata_log: MetadataLogConfig = field(default_factory=MetadataLogConfig)
    groups: GroupLimits = field(default_factory=GroupLimits)
    """Consumer group coordination: session timeout bounds, group size, offsets retention."""

    @property
    def metadata_dir(self) -> Path:
        """Where the Raft journal, snapshots and the cluster secret live."""
        return self.data_dir / "metadata"

    @property
    def partner_addresses(self) -> list[str]:
        """The Raft addresses of the other voters."""
        return [raft_address(address) for node_id, address in sorted(self.voters.items()) if node_id != self.node_id]

    @property
    def node_ids_by_raft_address(self) -> dict[str, int]:
        """Raft address -> voter node id."""
        return {raft_address(address): node_id for node_id, address in self.voters.items()}

    def validate(self) -> ControllerConfig:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if self.node_id < 0:
            raise ValueError(f"node id must be non-negative, got {self.node_id}")
        for name, port in (("listen", self.listen_port), ("raft", self.raft_port)):
            if not 0 <= port <= MAX_PORT:
                raise ValueError(f"--{name} port must be in 0..{MAX_PORT}, got {port}")
        if self.raft_port == 0:
            raise ValueError("--raft needs a fixed port: the other voters reach this one there")
        own = self.voters.get(self.node_id)
        if own is None:
            raise ValueError(f"node {self.node_id} is not one of the voters {sorted(self.voters)}")
        if own != (self.raft_host, self.raft_port):
            raise ValueError(
                f"--raft {raft_address((self.raft_host, self.raft_port))} differs from this node's voter entry "
                f"{raft_address(own)}"
            )
        if len(set(self.voters.values())) != len(self.voters):
            raise ValueError("two voters share one Raft address")
        if self.broker_heartbeat_interval_ms < 1 or self.broker_session_timeout_ms <= self.broker_heartbeat_interval_ms:
            raise ValueError("broker.session.timeout.ms must exceed broker.heartbeat.interval.ms (both positive)")
        if self.groups.offsets_retention_ms < 1:
            raise ValueError("offsets retention must be positive")
        if self.leader_imbalance_check_interval_ms < 1:
            raise ValueError("leader_imbalance_check_interval_ms must be positive")
        if self.leadership_poll_ms < 1 or self.metadata_log_max_records < 1 or self.metadata_log_max_wait_ms < 0:
            raise ValueError("leadership_poll_ms and metadata_log_max_records must be positive")
        self.metadata_log.validate()
        return self
