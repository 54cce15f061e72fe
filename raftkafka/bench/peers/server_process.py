"""A peer's server process for ``bench compare``: found on the machine (or said to be missing, with the command
that installs it), started on free loopback ports in a temporary directory, and killed at the end.

The process runs in its own session and is told by the kernel to exit if the benchmark dies (as the nodes of
``local_cluster`` are); ``stop()`` SIGKILLs it.
"""

from __future__ import annotations

import importlib
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from raftkafka.bench.local_cluster import (
    HOST,
    PORT_RANGE,
    _die_with_parent,
    file_tail,
    kill_process_group,
    port_is_free,
)
from raftkafka.errors import KafkaTimeoutError

SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
"""Where Debian puts some servers (``nats-server``), often not on a user's PATH."""
START_TIMEOUT_S = 30.0
POLL_S = 0.02


def find_binary(name: str, override: str | None = None) -> str | None:
    """The path of server ``name``: ``override`` if given (None unless it is an executable file), else ``name`` on
    PATH or in an sbin directory."""
    if override is not None:
        return override if os.path.isfile(override) and os.access(override, os.X_OK) else None
    found = shutil.which(name)
    if found is not None:
        return found
    return shutil.which(name, path=os.pathsep.join(SBIN_DIRS))


def not_installed(binary: str, override: str | None, install: str) -> str:
    """The one line that says a server is missing and how to install it."""
    where = f"{override} is not an executable file" if override is not None else f"{binary} is not installed"
    return f"{where}: {install}"


def client_installed(module: str) -> bool:
    """Whether the Python client ``module`` imports (a broken install counts as missing)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    rng = random.Random()
    ports: list[int] = []
    for _ in range(100 * count):
        port = rng.randrange(*PORT_RANGE)
        if port not in ports and port_is_free(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise OSError(f"no {count} free loopback ports")


def port_answers(port: int, host: str = HOST) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server: its command line, its log file in ``directory``, and (while running) its process."""

    def __init__(self, name: str, command: Sequence[str], directory: Path, port: int) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log_path = directory / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        """Start the process (output to its log file)."""
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                self.command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.log_path.parent,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - one prctl call, and the server needs it
            )  # fmt: skip
        return self

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the server accepts connections on its port; ``KafkaTimeoutError`` (with its log) if not."""
        deadline = time.monotonic() + timeout
        while not port_answers(self.port):
            if self.proc is not None and self.proc.poll() is not None:
                raise KafkaTimeoutError(f"{self.name} exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise KafkaTimeoutError(f"{self.name} did not listen on port {self.port}:\n{self.log_tail()}")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGKILL the process group and reap it."""
        kill_process_group(self.proc)

    def log_tail(self) -> str:
        """The end of the server's log file."""
        return file_tail(self.log_path)
