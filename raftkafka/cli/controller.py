"""``raftkafka controller``: one voter of the metadata quorum, serving the controller APIs."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import click

from raftkafka.cli.options import config_option, data_dir_option, fail, log_level_option, run_command, setup_logging
from raftkafka.controller.config import DEFAULT_HEARTBEAT_INTERVAL_MS, ControllerConfig, parse_address, parse_voters
from raftkafka.controller.group_coordinator import GroupLimits
from raftkafka.controller.server import ControllerServer
from raftkafka.net.eventloop import run
from raftkafka.raftlog.cluster_secret import resolve_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLogConfig

log = logging.getLogger(__name__)

SECRET_ENV = "RAFTKAFKA_CLUSTER_SECRET"


async def serve_controller(config: ControllerConfig, cluster_secret: str) -> None:
    """Run one controller until SIGINT or SIGTERM, then leave the quorum cleanly."""
    server = ControllerServer(config, cluster_secret)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        host, port = await server.start()
        click.echo(
            f"raftkafka controller: node {config.node_id} listening on {host}:{port}, "
            f"Raft on {config.raft_host}:{config.raft_port}, data in {config.data_dir}",
            err=True,
        )
        await stop.wait()
        click.echo("raftkafka controller: stopping", err=True)
    finally:
        await server.stop()


@click.command()
@config_option
@click.option("--node-id", type=int, required=True, help="This controller's node id (one of --voters).")
@click.option("--listen", required=True, help="HOST:PORT for brokers, admin clients and other controllers.")
@click.option("--raft", required=True, help="HOST:PORT of this voter's Raft port (as listed in --voters).")
@click.option("--voters", required=True, help="Every voter's Raft address: ID@HOST:PORT,ID@HOST:PORT,...")
@data_dir_option("./raftkafka-controller")
@click.option(
    "--cluster-secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"File (mode 0600) holding the secret all voters share (or env {SECRET_ENV}); "
    "default: DATA_DIR/metadata/cluster.secret, generated only for a single voter.",
)
@click.option("--broker-session-timeout-ms", type=int, default=9_000, show_default=True,
              help="broker.session.timeout.ms: a broker silent this long is fenced.")
@click.option("--broker-heartbeat-interval-ms", type=int, default=DEFAULT_HEARTBEAT_INTERVAL_MS, show_default=True,
              help="broker.heartbeat.interval.ms: the heartbeat interval brokers are told to use.")
@click.option("--leader-imbalance-check-interval-ms", type=click.IntRange(1), default=300_000, show_default=True,
              help="How often leadership returns to preferred replicas that are in sync again.")
@click.option("--offsets-retention-minutes", type=click.IntRange(1), default=7 * 24 * 60, show_default=True,
              help="offsets.retention.minutes: committed offsets of a group without members expire after this.")
@log_level_option
def controller(
    node_id: int,
    listen: str,
    raft: str,
    voters: str,
    data_dir: Path,
    cluster_secret_file: Path | None,
    broker_session_timeout_ms: int,
    broker_heartbeat_interval_ms: int,
    leader_imbalance_check_interval_ms: int,
    offsets_retention_minutes: int,
    log_level: str,
) -> None:
    """Run one controller: a voter of the Raft metadata quorum (the leader is the active controller)."""
    setup_logging(log_level)
    try:
        listen_host, listen_port = parse_address(listen, "--listen")
        raft_host, raft_port = parse_address(raft, "--raft")
        config = ControllerConfig(
            node_id=node_id,
            listen_host=listen_host,
            listen_port=listen_port,
            raft_host=raft_host,
            raft_port=raft_port,
            voters=parse_voters(voters),
            data_dir=data_dir,
            broker_session_timeout_ms=broker_session_timeout_ms,
            broker_heartbeat_interval_ms=broker_heartbeat_interval_ms,
            leader_imbalance_check_interval_ms=leader_imbalance_check_interval_ms,
            metadata_log=MetadataLogConfig(),
            groups=GroupLimits(offsets_retention_ms=offsets_retention_minutes * 60_000),
        ).validate()
        data_dir.mkdir(parents=True, exist_ok=True)
        data_dir.chmod(0o700)
        secret = resolve_cluster_secret(
            config.metadata_dir,
            secret_file=cluster_secret_file,
            secret_text=os.environ.get(SECRET_ENV),
            single_voter=len(config.voters) == 1,
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    run_command(lambda: run(serve_controller(config, secret)))
    sys.exit(0)
