"""The QUORUM_STATUS answer, built purely from a voter's Raft status and its metadata image."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raftkafka.metadata.image import MetadataImage
from raftkafka.raftlog.metadata_log import RaftStatus


def describe_quorum(
    status: RaftStatus, image: MetadataImage, voters: Mapping[int, str], node_id: int
) -> dict[str, Any]:
    """The wire body of QUORUM_STATUS (see ``raftkafka.net.api``); ``voters`` maps node id → Raft address."""
    node_ids = {raft: voter_id for voter_id, raft in voters.items()}
    rows = []
    for voter_id, raft in sorted(voters.items()):
        listener = image.controllers.get(voter_id)
        committed: int | None = None
        lag: int | None = None
        if raft == status.self_address:
            committed = status.commit_index
            lag = 0 if status.is_leader else None
        elif status.is_leader and raft in status.match_index:
            committed = status.match_index[raft]
            lag = max(0, status.commit_index - committed)
        rows.append({
            "node_id": voter_id,
            "raft": raft,
            "listener": None if listener is None else f"{listener.host}:{listener.port}",
            "committed_offset": committed,
            "lag": lag,
            "connected": status.partners.get(raft, raft == status.self_address),
        })  # fmt: skip
    return {
        "controller_epoch": status.term,
        "leader_id": node_ids.get(status.leader) if status.leader is not None else None,
        "node_id": node_id,
        "is_leader": status.is_leader,
        "commit_index": status.commit_index,
        "metadata_offset": image.offset,
        "voters": rows,
    }
