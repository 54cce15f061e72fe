"""``raftkafka dev``: one process running a single-voter controller quorum and one broker.

Same code as the separate ``controller`` and ``broker`` processes, wired together in process: the
controller commits the cluster id when it first becomes active, and the broker takes it from the image.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from pathlib import Path

import click

from raftkafka.broker.broker import Broker
from raftkafka.broker.config import BrokerConfig, parse_host_port
from raftkafka.cli.options import (
    config_option,
    data_dir_option,
    idle_poll_option,
    log_level_option,
    run_command,
    setup_logging,
)
from raftkafka.controller.controller import QuorumController
from raftkafka.net.eventloop import run
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret
from raftkafka.raftlog.metadata_log import MetadataLog

log = logging.getLogger(__name__)


def free_port(host: str) -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def serve_dev(
    data_dir: Path, listen: tuple[str, int], raft: tuple[str, int], node_id: int, idle_poll_us: int = 0
) -> None:
    """Run the controller and the broker until SIGINT or SIGTERM, then stop both cleanly."""
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    metadata_dir = data_dir / "metadata"
    metadata_dir.mkdir(exist_ok=True)
    raft_host, raft_port = raft
    if raft_port == 0:
        raft_port = free_port(raft_host)
    metadata_log = MetadataLog(
        f"{raft_host}:{raft_port}", [], metadata_dir, password=ensure_cluster_secret(metadata_dir)
    )
    controller = QuorumController(metadata_log, node_id=node_id)
    broker = Broker(
        BrokerConfig(
            node_id=node_id, data_dir=data_dir, listen_host=listen[0], listen_port=listen[1], idle_poll_us=idle_poll_us
        ),
        controller,
        controller,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await controller.start()
        host, port = await broker.start()
        click.echo(f"raftkafka dev: broker {node_id} listening on {host}:{port}, data in {data_dir}", err=True)
        await stop.wait()
        click.echo("raftkafka dev: stopping", err=True)
    finally:
        await broker.stop()
        await controller.stop()


@click.command()
@config_option
@data_dir_option("./raftkafka-data")
@click.option("--listen", default="127.0.0.1:9092", show_default=True, help="Client listener HOST:PORT.")
@click.option(
    "--raft",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT of the single-voter metadata quorum's Raft port (port 0: any free port).",
)
@click.option("--node-id", type=int, default=1, show_default=True, help="Node id of the broker and controller.")
@idle_poll_option()
@log_level_option
def dev(data_dir: Path, listen: str, raft: str, node_id: int, idle_poll_us: int, log_level: str) -> None:
    """Run a one-process cluster (a single-voter controller quorum and one broker) for a laptop or tests."""
    setup_logging(log_level)

    def start() -> None:
        listen_address = parse_host_port(listen, what="--listen")
        raft_address = parse_host_port(raft, what="--raft")
        run(serve_dev(data_dir, listen_address, raft_address, node_id, idle_poll_us))

    run_command(start)
    sys.exit(0)
