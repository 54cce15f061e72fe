"""``raftkafka broker``: one broker process talking to a remote quorum of controllers.

It fetches the metadata log until it has caught up, then listens, registers and heartbeats.
SIGINT stops it at once; SIGTERM first asks the controller to move leadership off it (controlled
shutdown, bounded), then stops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import click

from raftkafka.broker.broker import Broker
from raftkafka.broker.config import BrokerConfig, parse_host_port
from raftkafka.broker.controller_client import Address, RemoteController
from raftkafka.broker.lifecycle import DEFAULT_DUPLICATE_TIMEOUT_S, DEFAULT_HEARTBEAT_INTERVAL_MS
from raftkafka.broker.metadata_fetcher import MetadataFetcher
from raftkafka.cli.options import (
    config_option,
    data_dir_option,
    idle_poll_option,
    log_level_option,
    run_command,
    setup_logging,
)
from raftkafka.errors import DuplicateBrokerRegistrationError, InvalidConfigError
from raftkafka.net.eventloop import run

log = logging.getLogger(__name__)

CATCH_UP_REPORT_S = 5.0
"""How often a broker still waiting for the metadata log says so."""


def parse_controllers(text: str) -> list[Address]:
    """The ``HOST:PORT,...`` list of ``--controllers`` (``InvalidConfigError`` if empty or malformed)."""
    addresses = [parse_host_port(part.strip(), what="--controllers") for part in text.split(",") if part.strip()]
    if not addresses:
        raise InvalidConfigError("--controllers needs at least one HOST:PORT")
    return addresses


async def _start(broker: Broker, fetcher: MetadataFetcher) -> None:
    fetcher.start()
    while not await fetcher.wait_caught_up(CATCH_UP_REPORT_S):
        log.warning("broker still catching up with the metadata log (at offset %d)", fetcher.image.offset)
    try:
        host, port = await broker.start()
    except DuplicateBrokerRegistrationError as exc:
        raise DuplicateBrokerRegistrationError(
            f"node id {broker.config.node_id} is held by another live broker process; "
            f"stop it or pick another --node-id ({exc.message})"
        ) from None
    click.echo(f"raftkafka broker {broker.config.node_id}: listening on {host}:{port}", err=True)


async def serve_broker(
    config: BrokerConfig,
    controllers: list[Address],
    *,
    heartbeat_interval_ms: int,
    shutdown_timeout_s: float,
    duplicate_timeout_s: float,
) -> None:
    """Run one broker until SIGINT (stop now) or SIGTERM (controlled shutdown, then stop)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.data_dir.chmod(0o700)
    controller = RemoteController(controllers)
    fetcher = MetadataFetcher(controller)
    broker = Broker(
        config,
        controller,
        fetcher,
        heartbeat_interval_ms=heartbeat_interval_ms,
        requested_heartbeat_interval_ms=lambda: controller.requested_heartbeat_interval_ms,
        shutdown_timeout_s=shutdown_timeout_s,
        duplicate_timeout_s=duplicate_timeout_s,
    )
    stop = asyncio.Event()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    starting = asyncio.create_task(_start(broker, fetcher))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a fatal start failure (a duplicate node id) ends the process here
            await stopping
        if received and received[0] == signal.SIGTERM and starting.done():
            click.echo("raftkafka broker: controlled shutdown", err=True)
            await broker.controlled_shutdown()
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        await broker.stop()
        await fetcher.stop()
        await controller.close()


@click.command()
@config_option
@click.option("--node-id", type=click.IntRange(0), required=True, help="This broker's node id.")
@click.option("--listen", default="127.0.0.1:9092", show_default=True, help="Client listener HOST:PORT.")
@click.option("--advertised", default=None, help="HOST:PORT clients are told to use (default: --listen).")
@click.option("--controllers", required=True, help="Controller listeners HOST:PORT[,HOST:PORT...].")
@data_dir_option("./raftkafka-broker")
@click.option(
    "--heartbeat-interval-ms",
    type=click.IntRange(10),
    default=DEFAULT_HEARTBEAT_INTERVAL_MS,
    show_default=True,
    help="broker.heartbeat.interval.ms: how often the broker heartbeats to the active controller "
    "(more often if the controller asks for a shorter interval).",
)
@click.option(
    "--controlled-shutdown-timeout-ms",
    type=click.IntRange(0),
    default=10_000,
    show_default=True,
    help="How long SIGTERM waits for the controller to move leadership off the broker.",
)
@click.option(
    "--duplicate-registration-timeout-ms",
    type=click.IntRange(0),
    default=int(DEFAULT_DUPLICATE_TIMEOUT_S * 1000),
    show_default=True,
    help="How long to retry a registration refused because another live process holds the node id "
    "(a restarted broker's predecessor, until its session expires) before exiting.",
)
@click.option(
    "--replica-lag-time-max-ms",
    type=click.IntRange(10),
    default=BrokerConfig.replica_lag_time_max_ms,
    show_default=True,
    help="replica.lag.time.max.ms: a follower that has not caught up with the leader for this long leaves the ISR.",
)
@idle_poll_option()
@log_level_option
def broker(
    node_id: int,
    listen: str,
    advertised: str | None,
    controllers: str,
    data_dir: Path,
    heartbeat_interval_ms: int,
    controlled_shutdown_timeout_ms: int,
    duplicate_registration_timeout_ms: int,
    replica_lag_time_max_ms: int,
    idle_poll_us: int,
    log_level: str,
) -> None:
    """Run one broker of a cluster whose controllers run as separate processes."""
    setup_logging(log_level)

    def start() -> None:
        host, port = parse_host_port(listen, what="--listen")
        advertised_host, advertised_port = (
            parse_host_port(advertised, what="--advertised") if advertised else (None, None)
        )
        config = BrokerConfig(
            node_id=node_id,
            data_dir=data_dir,
            listen_host=host,
            listen_port=port,
            advertised_host=advertised_host,
            advertised_port=advertised_port,
            replica_lag_time_max_ms=replica_lag_time_max_ms,
            idle_poll_us=idle_poll_us,
        )
        run(
            serve_broker(
                config,
                parse_controllers(controllers),
                heartbeat_interval_ms=heartbeat_interval_ms,
                shutdown_timeout_s=controlled_shutdown_timeout_ms / 1000,
                duplicate_timeout_s=duplicate_registration_timeout_ms / 1000,
            )
        )

    run_command(start)
    sys.exit(0)
