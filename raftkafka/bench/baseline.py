"""The machine's floor for one-at-a-time latency: a TCP ping-pong between two Python processes on loopback.

``bench e2e`` measures it in the same run and reports its latency also as a multiple of it, so figures from
different machines (or from one machine in a busy and a quiet hour) can be compared. The floor differs a
lot: a process asleep in the kernel is woken by its peer's write, which on a virtual machine whose idle
CPUs halt costs far more than on bare metal (measured here: 135 µs per round trip on the benchmark VM,
26 µs on the same VM with the guest polling before it halts).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import IO, cast

from raftkafka.bench.stats import LatencySummary, summarize_latencies

ROUND_TRIPS = 2_000
WARMUP_ROUND_TRIPS = 200
START_TIMEOUT_S = 30.0

ECHO_SERVER = """
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while data := conn.recv(65536):
    conn.sendall(data)
"""
"""Echoes what it reads until the connection closes; blocking sockets, as simple as a server gets."""


def loopback_round_trip(size: int = 100, count: int = ROUND_TRIPS) -> LatencySummary:
    """Time ``count`` round trips of ``size`` bytes to an echo server in a child process (after a warm-up)."""
    echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        line = cast(IO[str], echo.stdout).readline().strip()
        if not line.isdigit():
            raise ChildProcessError(f"the loopback echo server did not start (exit status {echo.poll()})")
        with socket.create_connection(("127.0.0.1", int(line)), timeout=START_TIMEOUT_S) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            message = b"x" * max(size, 1)
            samples = [_round_trip(conn, message) for _ in range(WARMUP_ROUND_TRIPS + count)]
        echo.wait(START_TIMEOUT_S)
    finally:
        echo.kill()
        echo.wait()
    return summarize_latencies(samples[WARMUP_ROUND_TRIPS:])


def _round_trip(conn: socket.socket, message: bytes) -> int:
    start = time.perf_counter_ns()
    conn.sendall(message)
    missing = len(message)
    while missing:
        received = conn.recv(missing)
        if not received:
            raise ConnectionError("the echo server closed the connection")
        missing -= len(received)
    return time.perf_counter_ns() - start
