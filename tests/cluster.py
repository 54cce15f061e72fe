"""A real multi-process cluster for tests: ``raftkafka controller`` and ``raftkafka broker`` children on free
127.0.0.1 ports, each killable (-9), stoppable (SIGTERM) and restartable on its own data dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from raftkafka.net.api import ApiKey
from raftkafka.raftlog.cluster_secret import ensure_cluster_secret, secret_path
from tests.processes import answers_api_versions, free_port, processes_mentioning, request

CONTROLLER_ID_BASE = 1000


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll ``condition`` until it returns something truthy; ``AssertionError`` naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Node:
    """One child process of the cluster."""

    def __init__(self, role: str, node_id: int, data_dir: Path, args: list[str], port: int) -> None:
        self.role = role
        self.node_id = node_id
        self.data_dir = data_dir
        self.args = args
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{role}-{node_id}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Node:
        cmd = [sys.executable, "-m", "raftkafka", *self.args, "--log-level", "info"]
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_serving(self, timeout: float = 30.0) -> Node:
        def serving() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"{self.role} {self.node_id} exited with {self.proc.returncode}:\n{self.log()}")
            return answers_api_versions("127.0.0.1", self.port)

        wait_for(serving, timeout, f"{self.role} {self.node_id} to answer on {self.address}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


class LocalCluster:
    """``controllers`` voters and ``brokers`` brokers under ``root``; always ``close()`` it (the fixtures do)."""

    def __init__(self, root: Path, *, controllers: int = 3, brokers: int = 3, broker_args: list[str] | None = None,
                 controller_args: list[str] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        secret_dir = root / "secret"
        ensure_cluster_secret(secret_dir)
        secret_file = secret_path(secret_dir)
        raft_ports = {CONTROLLER_ID_BASE + i + 1: free_port() for i in range(controllers)}
        voters = ",".join(f"{node_id}@127.0.0.1:{port}" for node_id, port in raft_ports.items())
        self.controllers: list[Node] = []
        for node_id, raft_port in raft_ports.items():
            port = free_port()
            data_dir = root / f"controller-{node_id}"
            args = ["controller", "--node-id", str(node_id), "--listen", f"127.0.0.1:{port}",
                    "--raft", f"127.0.0.1:{raft_port}", "--voters", voters, "--data-dir", str(data_dir),
                    "--cluster-secret-file", str(secret_file), *(controller_args or [])]
            self.controllers.append(Node("controller", node_id, data_dir, args, port))
        controller_listeners = ",".join(node.address for node in self.controllers)
        self.brokers: list[Node] = []
        for i in range(brokers):
            node_id, port = i + 1, free_port()
            data_dir = root / f"broker-{node_id}"
            args = ["broker", "--node-id", str(node_id), "--listen", f"127.0.0.1:{port}",
                    "--controllers", controller_listeners, "--data-dir", str(data_dir), *(broker_args or [])]
            self.brokers.append(Node("broker", node_id, data_dir, args, port))

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.brokers)

    @property
    def nodes(self) -> list[Node]:
        return [*self.controllers, *self.brokers]

    def start(self, timeout: float = 60.0) -> LocalCluster:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_serving(timeout)
        return self

    def broker(self, node_id: int) -> Node:
        return next(node for node in self.brokers if node.node_id == node_id)

    def close(self) -> None:
        for node in [*self.brokers, *self.controllers]:
            node.stop(signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"==== {node.role} {node.node_id}\n{node.log()}" for node in self.nodes)


def quorum_status(node: Node) -> dict[str, Any] | None:
    """QUORUM_STATUS from one controller, or None if it does not answer."""
    try:
        error, body = request(node.address, ApiKey.QUORUM_STATUS, {}, timeout=2)
    except OSError:
        return None
    return body if error == 0 else None


def active_controller(cluster: LocalCluster) -> Node:
    """The controller every live voter agrees is the leader (polled for up to 15 s)."""

    def agreed() -> Node | None:
        leaders = {s["leader_id"] for n in cluster.controllers if n.alive and (s := quorum_status(n))}
        if len(leaders) == 1 and (leader := leaders.pop()) not in (None, -1):
            return next((n for n in cluster.controllers if n.node_id == leader and n.alive), None)
        return None

    return wait_for(agreed, 15, "the live controllers to agree on a leader")  # type: ignore[return-value]


def running(local: LocalCluster) -> Iterator[LocalCluster]:
    """For fixtures, ``yield from running(LocalCluster(...))``: start the cluster, print its logs if the test
    fails, always close it."""
    try:
        yield local.start()
    except BaseException:
        print(local.logs(), file=sys.stderr)
        raise
    finally:
        local.close()


def partition_leader(cluster: LocalCluster, topic: str, exclude: Node | None = None) -> Node:
    """The live leader of ``topic``'s partition 0 (not ``exclude``), as a live broker's METADATA names it (polled
    for up to 20 s)."""

    def live_leader() -> Node | None:
        for node in cluster.brokers:
            if not node.alive:
                continue
            try:
                error, body = request(node.address, ApiKey.METADATA, {"topics": [topic]}, timeout=2)
            except OSError:
                continue
            partitions: list[Any] = body["topics"][0]["partitions"] if error == 0 else []
            if partitions and partitions[0][1] >= 0:
                leader = cluster.broker(partitions[0][1])
                return leader if leader.alive and leader is not exclude else None
        return None

    return wait_for(live_leader, 20, "a live partition leader")  # type: ignore[return-value]


def wait_own_cluster_gone(tmp_path: Path, timeout: float = 10) -> None:
    """Wait until the processes a bench started with ``TMPDIR=tmp_path`` have ended; its data dir must be gone."""
    wait_for(lambda: not processes_mentioning(str(tmp_path)), timeout, "the cluster's processes to end")
    assert not list(tmp_path.glob("raftkafka-bench-*")), "the cluster's data dir was left behind"
