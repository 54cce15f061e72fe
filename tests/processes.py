"""Real server processes for tests: start ``raftkafka dev`` on free loopback ports, wait until it answers,
and always clean up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from raftkafka.net.api import ApiKey
from raftkafka.net.frame import FrameDecoder, decode_response, encode_request

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, never the same one twice in this process."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def request(address: str, api_key: int, body: object, timeout: float = 10.0) -> tuple[int, Any]:
    """One blocking request to ``host:port``: ``(error_code, body)`` of the answer; ``OSError`` if none came."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(encode_request(api_key, 0, 1, body))
        decoder = FrameDecoder(1 << 30)
        while True:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionResetError(f"{address} closed the connection without answering")
            frames = decoder.feed(data)
            if frames:
                _, error, answer = decode_response(frames[0])
                return error, answer


def answers_api_versions(host: str, port: int) -> bool:
    """True when a server at ``host:port`` answers an API_VERSIONS request."""
    try:
        return request(f"{host}:{port}", ApiKey.API_VERSIONS, {}, timeout=1)[0] == 0
    except OSError:
        return False


class DevServer:
    """A ``raftkafka dev`` subprocess bound to 127.0.0.1 on free ports, restartable on the same data dir."""

    def __init__(self, data_dir: Path, *extra_args: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DevServer:
        """Start the process and wait (polling, with a deadline) until it answers requests."""
        cmd = [sys.executable, "-m", "raftkafka", "dev", "--data-dir", str(self.data_dir),
               "--listen", self.bootstrap, "--log-level", "info", *self.extra_args]
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"raftkafka dev exited with {self.proc.returncode}:\n{self.log()}")
            if answers_api_versions("127.0.0.1", self.port):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"raftkafka dev did not answer within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill9(self) -> None:
        """SIGKILL the process (a crash: nothing is flushed or closed)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout``; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids
