"""A throwaway local cluster for benchmarks: ``raftkafka controller``/``raftkafka broker`` child processes.

The processes are the ones ``raftkafka cluster`` plans (``plan_cluster``), on loopback ports that were
free a moment ago, with one generated cluster secret, their data and logs in one directory (a temporary
one unless given). Each child can be killed with SIGKILL and started again on its own data dir. The
kernel sends the children SIGTERM if the benchmark process dies; ``close()`` (or leaving the ``async
with``) SIGKILLs whatever is left and removes a temporary directory. ``LocalCluster.dev()`` is one
``raftkafka dev`` process instead (its own single-voter quorum and broker 1); ``own_cluster`` starts either
kind for a sync workload and always removes it.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from raftkafka.cli.cluster import NodePlan, plan_cluster
from raftkafka.errors import BrokerNotAvailableError, KafkaTimeoutError, NetworkError
from raftkafka.net.api import ApiKey
from raftkafka.net.connection import Connection
from raftkafka.net.eventloop import run
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret, secret_path

HOST = "127.0.0.1"
PORT_RANGE = (20_000, 60_000)
"""Where base ports are drawn from (below the usual ephemeral range)."""
PORT_ATTEMPTS = 50
START_TIMEOUT_S = 60.0
POLL_S = 0.05
REQUEST_TIMEOUT_S = 2.0
LOG_TAIL_BYTES = 4000


def kill_process_group(proc: subprocess.Popen[Any] | None) -> None:
    """SIGKILL the process group led by ``proc`` (started with a new session) and reap ``proc``."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def file_tail(path: Path, max_bytes: int = LOG_TAIL_BYTES) -> str:
    """The last ``max_bytes`` of a log file ("" when it does not exist)."""
    if not path.exists():
        return ""
    with open(path, "rb") as file:
        file.seek(max(0, path.stat().st_size - max_bytes))
        return file.read().decode(errors="replace")


_PR_SET_PDEATHSIG = 1


def planned_ports(plans: Iterable[NodePlan]) -> list[int]:
    """Every TCP port the planned processes bind: listeners, and the controllers' Raft ports."""
    ports = []
    for plan in plans:
        ports.append(int(plan.listen.rpartition(":")[2]))
        if plan.role == "controller":
            ports.append(int(plan.args[plan.args.index("--raft") + 1].rpartition(":")[2]))
    return ports


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether ``host:port`` can be bound right now."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel for SIGTERM when the benchmark process exits (Linux only)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


async def request(address: str, api_key: int, body: Any, timeout: float = REQUEST_TIMEOUT_S) -> Any:
    """One request on a fresh connection to ``host:port``; its answer body (errors raised as exceptions)."""
    host, _, port = address.rpartition(":")
    connection = await Connection.open(host, int(port), timeout=timeout)
    try:
        return await connection.request(api_key, 0, body, timeout=timeout)
    finally:
        connection.close()


class ClusterProcess:
    """One node of the cluster: its plan, its log file and (while running) its process."""

    def __init__(self, plan: NodePlan, log_path: Path, log_level: str) -> None:
        self.plan = plan
        self.log_path = log_path
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def node_id(self) -> int:
        return self.plan.node_id

    @property
    def address(self) -> str:
        """The client listener ``host:port``."""
        return self.plan.listen

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process (output appended to its log file)."""
        command = [sys.executable, "-m", "raftkafka", *self.plan.args, "--log-level", self.log_level]
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, and the children need it
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL the process group and reap it (a crash: nothing is flushed or closed)."""
        kill_process_group(self.proc)

    async def wait_serving(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the node answers API_VERSIONS; ``KafkaTimeoutError`` (with its log tail) if it does not."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise KafkaTimeoutError(f"{self} exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                await request(self.address, ApiKey.API_VERSIONS, {}, timeout=1.0)
                return
            except (NetworkError, BrokerNotAvailableError, TimeoutError):
                pass
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"{self} did not answer within {timeout:g}s:\n{self.log_tail()}")
            await asyncio.sleep(POLL_S)

    def log_tail(self) -> str:
        """The end of the node's log file."""
        return file_tail(self.log_path)

    def __str__(self) -> str:
        return f"{self.plan.role} {self.node_id} ({self.address})"


class LocalCluster:
    """``controllers`` voters and ``brokers`` brokers on loopback; use as ``async with LocalCluster(...)``.

    ``controller_args`` are appended to every controller's command line (e.g. a shorter
    ``--broker-session-timeout-ms``), ``broker_args`` to every broker's (and the dev process's).
    """

    def __init__(
        self,
        controllers: int,
        brokers: int = 1,
        *,
        data_dir: Path | None = None,
        log_level: str = "warning",
        controller_args: Sequence[str] = (),
        broker_args: Sequence[str] = (),
    ) -> None:
        self._temporary = data_dir is None
        self.broker_args = list(broker_args)
        self.data_dir = Path(tempfile.mkdtemp(prefix="raftkafka-bench-")) if data_dir is None else data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_level = log_level
        secret_dir = self.data_dir / "secret"
        ensure_cluster_secret(secret_dir)
        plans = _plan_on_free_ports(controllers, brokers, self.data_dir, secret_path(secret_dir))
        extra = {"controller": list(controller_args), "broker": self.broker_args}
        plans = [replace(p, args=[*p.args, *extra[p.role]]) for p in plans]
        nodes = [self._process(plan) for plan in plans]
        self.controllers = [node for node in nodes if node.plan.role == "controller"]
        self.brokers = [node for node in nodes if node.plan.role == "broker"]

    @classmethod
    def dev(
        cls, *, data_dir: Path | None = None, log_level: str = "warning", broker_args: Sequence[str] = ()
    ) -> LocalCluster:
        """One ``raftkafka dev`` process (controller and broker 1 in one), counted as the cluster's broker."""
        cluster = cls(0, 0, data_dir=data_dir, log_level=log_level, broker_args=broker_args)
        listen = f"{HOST}:{_free_port()}"
        args = ["dev", "--data-dir", str(cluster.data_dir / "dev"), "--listen", listen, *cluster.broker_args]
        cluster.brokers.append(cluster._process(NodePlan("dev", 1, listen, args)))
        return cluster

    def _process(self, plan: NodePlan) -> ClusterProcess:
        return ClusterProcess(plan, self.data_dir / f"{plan.role}-{plan.node_id}.log", self.log_level)

    @property
    def bootstrap(self) -> str:
        """Every broker's client listener, comma-separated."""
        return ",".join(node.address for node in self.brokers)

    def broker(self, node_id: int) -> ClusterProcess:
        """The broker with ``node_id`` (``KeyError`` if there is none)."""
        for node in self.brokers:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    @property
    def nodes(self) -> list[ClusterProcess]:
        return [*self.controllers, *self.brokers]

    def processes(self) -> list[tuple[str, int]]:
        """``(name, pid)`` of every running node ("broker 1", "controller 2"...)."""
        return [(f"{node.plan.role} {node.node_id}", node.proc.pid) for node in self.nodes if node.proc is not None]

    @property
    def controller_addresses(self) -> list[str]:
        """Every controller's client listener."""
        return [node.address for node in self.controllers]

    def controller(self, node_id: int) -> ClusterProcess:
        """The controller with ``node_id`` (``KeyError`` if there is none)."""
        for node in self.controllers:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    async def start(self, timeout: float = START_TIMEOUT_S) -> LocalCluster:
        """Start every node and wait until all of them answer (brokers answer once registered)."""
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            await node.wait_serving(timeout)
        return self

    def close(self) -> None:
        """SIGKILL every node and remove the data dir if it is a temporary one."""
        for node in self.nodes:
            node.kill()
        if self._temporary:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    async def __aenter__(self) -> LocalCluster:
        try:
            return await self.start()
        except BaseException:
            self.close()
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def own_cluster(kind: str, *, log_level: str = "warning", broker_args: Sequence[str] = ()) -> Iterator[LocalCluster]:
    """Start a ``"dev"`` or ``"3x3"`` cluster (3 controllers, 3 brokers) for a sync workload; always remove it."""
    if kind == "dev":
        cluster = LocalCluster.dev(log_level=log_level, broker_args=broker_args)
    else:
        cluster = LocalCluster(3, 3, log_level=log_level, broker_args=broker_args)
    try:
        run(cluster.start())
        yield cluster
    finally:
        cluster.close()


def _free_port() -> int:
    rng = random.Random()
    for _ in range(PORT_ATTEMPTS):
        port = rng.randrange(*PORT_RANGE)
        if port_is_free(port):
            return port
    raise OSError("no free loopback port")


def _plan_on_free_ports(controllers: int, brokers: int, data_dir: Path, secret_file: Path) -> list[NodePlan]:
    rng = random.Random()
    for _ in range(PORT_ATTEMPTS):
        plans = plan_cluster(controllers, brokers, data_dir, HOST, rng.randrange(*PORT_RANGE), secret_file)
        if all(port_is_free(port) for port in planned_ports(plans)):
            return plans
    raise OSError(f"no free block of loopback ports for {controllers} controllers and {brokers} brokers")
