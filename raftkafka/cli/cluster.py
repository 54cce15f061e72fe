"""``raftkafka cluster``: a local multi-process cluster (N controllers, M brokers) for a laptop or tests.

Each node is a real ``raftkafka controller`` / ``raftkafka broker`` child process with its own data dir;
Ctrl-C or SIGTERM stops every child (brokers first, with a controlled shutdown), and the children are
told by the kernel to exit if this supervisor dies.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from raftkafka.cli.options import config_option, data_dir_option, log_level_option, setup_logging
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret, secret_path

CONTROLLER_ID_BASE = 1000
"""Controllers get node ids 1001, 1002, ...; brokers 1, 2, ... (ids are unique across roles)."""
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class NodePlan:
    """One process of the local cluster and the command line that starts it."""

    role: str
    node_id: int
    listen: str
    args: list[str]


def plan_cluster(
    controllers: int, brokers: int, data_dir: Path, host: str, base_port: int, secret_file: Path
) -> list[NodePlan]:
    """The processes of a cluster: controllers listen on ``base_port+100+i`` (Raft on ``+200+i``), brokers on
    ``base_port+i``."""
    voters = {CONTROLLER_ID_BASE + i + 1: f"{host}:{base_port + 200 + i}" for i in range(controllers)}
    voters_flag = ",".join(f"{node_id}@{address}" for node_id, address in voters.items())
    controller_listeners = [f"{host}:{base_port + 100 + i}" for i in range(controllers)]
    plans = []
    for i, (node_id, raft) in enumerate(voters.items()):
        listen = controller_listeners[i]
        plans.append(NodePlan("controller", node_id, listen, [
            "controller", "--node-id", str(node_id), "--listen", listen, "--raft", raft, "--voters", voters_flag,
            "--data-dir", str(data_dir / f"controller-{node_id}"), "--cluster-secret-file", str(secret_file),
        ]))
    for i in range(brokers):
        node_id = i + 1
        listen = f"{host}:{base_port + i}"
        plans.append(NodePlan("broker", node_id, listen, [
            "broker", "--node-id", str(node_id), "--listen", listen, "--controllers", ",".join(controller_listeners),
            "--data-dir", str(data_dir / f"broker-{node_id}"),
        ]))
    return plans


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the supervisor exits (Linux only)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _stop(children: list[tuple[NodePlan, subprocess.Popen[bytes]]], timeout: float) -> None:
    """SIGTERM brokers then controllers, each group waited for; SIGKILL whatever outlives ``timeout``."""
    for role in ("broker", "controller"):
        group = [proc for plan, proc in children if plan.role == role and proc.poll() is None]
        for proc in group:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in group:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@click.command()
@config_option
@click.option("--controllers", type=click.IntRange(1, 9), default=3, show_default=True, help="Controller count.")
@click.option("--brokers", type=click.IntRange(1, 64), default=3, show_default=True, help="Broker count.")
@data_dir_option("./raftkafka-cluster")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address every node binds to.")
@click.option(
    "--base-port", type=click.IntRange(1024, 65000), default=9092, show_default=True,
    help="Brokers listen on BASE+i, controllers on BASE+100+i, their Raft ports on BASE+200+i.",
)
@log_level_option
def cluster(controllers: int, brokers: int, data_dir: Path, host: str, base_port: int, log_level: str) -> None:
    """Run a local cluster of separate controller and broker processes until Ctrl-C or SIGTERM."""
    setup_logging(log_level)
    data_dir.mkdir(parents=True, exist_ok=True)
    secret_dir = data_dir / "secret"
    ensure_cluster_secret(secret_dir)
    secret_file = secret_path(secret_dir)
    plans = plan_cluster(controllers, brokers, data_dir, host, base_port, secret_file)
    children: list[tuple[NodePlan, subprocess.Popen[bytes]]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        for plan in plans:
            command = [sys.executable, "-m", "raftkafka", *plan.args, "--log-level", log_level]
            log_file = open(data_dir / f"{plan.role}-{plan.node_id}.log", "ab")  # noqa: SIM115 - the child owns it
            proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)  # noqa: PLW1509 - no threads here
            log_file.close()
            children.append((plan, proc))
            click.echo(f"{plan.role} {plan.node_id} on {plan.listen} (log: {data_dir}/{plan.role}-{plan.node_id}.log)")
        bootstrap = ",".join(plan.listen for plan in plans if plan.role == "broker")
        click.echo(f"bootstrap: {bootstrap}  (Ctrl-C stops the cluster)", err=True)
        while not stopping:
            for plan, proc in children:
                if proc.poll() is not None:
                    click.echo(f"{plan.role} {plan.node_id} exited with status {proc.returncode}", err=True)
                    children.remove((plan, proc))
                    break
            time.sleep(0.2)
    finally:
        click.echo("stopping the cluster", err=True)
        _stop(children, timeout=15.0)
