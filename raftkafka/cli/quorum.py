"""``raftkafka quorum status``: the metadata quorum's leader, epoch and every voter's progress.

Asks a broker (which forwards to the active controller) or, with ``--controller``, a controller directly.
"""

from __future__ import annotations

import json
from typing import Any

import click

from raftkafka.cli.options import bootstrap_option, config_option, log_level_option, run_command, setup_logging
from raftkafka.client.bootstrap import parse_address
from raftkafka.client.network import ClientNetwork
from raftkafka.net.api import ApiKey
from raftkafka.net.eventloop import run

COLUMNS = ("NodeId", "Raft", "Listener", "Status", "CommittedOffset", "Lag", "Connected")


async def fetch_quorum_status(bootstrap: str, controller: str | None, timeout_ms: int) -> dict[str, Any]:
    """The QUORUM_STATUS body from the active controller (through a broker unless ``controller`` is given)."""
    network = ClientNetwork(controller or bootstrap, request_timeout_ms=timeout_ms, retry_backoff_ms=100)
    try:
        address = parse_address(controller) if controller else None
        status: dict[str, Any] = await network.request(ApiKey.QUORUM_STATUS, {}, address=address)
        if not status.get("is_leader"):  # only the leader knows every voter's progress: ask it when we can
            leader = next((v for v in status.get("voters", []) if v.get("node_id") == status.get("leader_id")), None)
            if leader is not None and leader.get("listener"):
                status = await network.request(ApiKey.QUORUM_STATUS, {}, address=parse_address(leader["listener"]))
        return status
    finally:
        await network.close()


def format_quorum_table(status: dict[str, Any]) -> str:
    """Kafka's ``kafka-metadata-quorum describe --status/--replication`` facts as one text block."""
    lines = [
        f"LeaderId:        {status.get('leader_id')}",
        f"LeaderEpoch:     {status.get('controller_epoch')}",
        f"MetadataOffset:  {status.get('metadata_offset')}",
        f"CommitIndex:     {status.get('commit_index')}",
        "",
    ]
    rows = [COLUMNS]
    leader = status.get("leader_id")
    for voter in status.get("voters", []):
        rows.append((
            str(voter.get("node_id")),
            str(voter.get("raft")),
            str(voter.get("listener") or "-"),
            "Leader" if voter.get("node_id") == leader else "Follower",
            "-" if voter.get("committed_offset") is None else str(voter["committed_offset"]),
            "-" if voter.get("lag") is None else str(voter["lag"]),
            str(voter.get("connected", "-")),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


@click.group()
def quorum() -> None:
    """Inspect the controller quorum."""


@quorum.command()
@config_option
@bootstrap_option
@click.option("--controller", default=None, help="Ask this controller HOST:PORT directly instead of a broker.")
@click.option("--timeout-ms", type=click.IntRange(100), default=10_000, show_default=True, help="Request timeout.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@log_level_option
def status(bootstrap: str, controller: str | None, timeout_ms: int, output: str, log_level: str) -> None:
    """Leader, epoch, and each voter's committed offset and lag (Raft entries; see the docs)."""
    setup_logging(log_level)
    body = run_command(lambda: run(fetch_quorum_status(bootstrap, controller, timeout_ms)))
    click.echo(json.dumps(body, indent=2, sort_keys=True) if output == "json" else format_quorum_table(body))
