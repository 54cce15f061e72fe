"""The machine's limits that benchmark figures are reported against, measured in the same run.

- One-at-a-time latency (``bench e2e``): a TCP ping-pong between two Python processes on loopback
  (``loopback_round_trip``). The floor differs a lot: a process asleep in the kernel is woken by its peer's
  write, which on a virtual machine whose idle CPUs halt costs far more than on bare metal (measured here:
  135 µs per round trip on the benchmark VM, 26 µs on the same VM with the guest polling before it halts).
- Throughput (``bench produce`` and ``bench consume``): the same records streamed over loopback between two
  Python processes with the least per-record work a client can do (``stream_ceiling``). Producing, this
  process hands each record to a one-line Python function that appends it to a list (the thinnest per-record
  API), packs them into msgpack frames (``frame_records`` each) and sends them to a child that appends the
  frames to a file and acknowledges each (at most ``STREAM_WINDOW`` unacknowledged); consuming, the child
  sends frames of records and this process unpacks each and counts its records. Records are not compressed;
  the fastest of ``STREAM_ROUNDS`` rounds counts. No client gets there (it checks, sizes, partitions,
  timestamps and tracks every record, and a broker stores and indexes them); the ratio says how far a client
  is from the machine's limit at that moment, so figures from different machines, or from a busy and a quiet
  hour, compare.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, cast

import msgpack

from raftkafka.bench.stats import LatencySummary, Throughput, summarize_latencies, throughput

ROUND_TRIPS = 2_000
WARMUP_ROUND_TRIPS = 200
START_TIMEOUT_S = 30.0
STREAM_FRAME_RECORDS = 1_000
STREAM_FRAME_BYTES = 1 << 20
"""A frame holds ``STREAM_FRAME_RECORDS`` records, fewer when they would pass this many bytes (at least one)."""
STREAM_WINDOW = 8
"""Frames the producing side may have sent and not yet seen acknowledged."""
STREAM_RECORDS = 1_000_000
"""The most records a ceiling measurement streams (a fraction of a second on the benchmark VM)."""
STREAM_ROUNDS = 5
"""Rounds a ceiling measurement splits its records into; the fastest counts (the machine at its best)."""

_LISTEN = """
import socket, struct, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(1)
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
"""

ECHO_SERVER = _LISTEN + """
while data := conn.recv(65536):
    conn.sendall(data)
"""
"""Echoes what it reads until the connection closes; blocking sockets, as simple as a server gets."""

SINK_SERVER = _LISTEN + """
frames = conn.makefile("rb")
written = 0
with open(sys.argv[1], "ab") as log:
    while header := frames.read(4):
        frame = frames.read(struct.unpack(">I", header)[0])
        log.write(frame)
        written += len(frame)
        conn.sendall(b"+")
conn.sendall(struct.pack(">Q", written))
"""
"""Appends each length-prefixed frame it reads to the file ``argv[1]`` and acknowledges it with one byte; at
the end of the stream, answers with the number of bytes it wrote."""

SOURCE_SERVER = _LISTEN + """
frame = open(sys.argv[1], "rb").read()
for _ in range(int(sys.argv[2])):
    conn.sendall(frame)
conn.shutdown(socket.SHUT_WR)
conn.recv(1)
"""
"""Sends the length-prefixed frame of the file ``argv[1]`` ``argv[2]`` times, then waits for the reader to close."""

_LENGTH = struct.Struct(">I")
_WRITTEN = struct.Struct(">Q")


@contextlib.contextmanager
def _child_server(script: str, *args: str) -> Iterator[socket.socket]:
    """Run ``script`` (one of the servers above) in a child process and yield a connection to it; the child
    is gone when the block ends."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    try:
        line = cast(IO[str], child.stdout).readline().strip()
        if not line.isdigit():
            raise ChildProcessError(f"the loopback test server did not start (exit status {child.poll()})")
        with socket.create_connection(("127.0.0.1", int(line)), timeout=START_TIMEOUT_S) as conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            yield conn
        child.wait(START_TIMEOUT_S)
    finally:
        child.kill()
        child.wait()


def loopback_round_trip(size: int = 100, count: int = ROUND_TRIPS) -> LatencySummary:
    """Time ``count`` round trips of ``size`` bytes to an echo server in a child process (after a warm-up)."""
    with _child_server(ECHO_SERVER) as conn:
        message = b"x" * max(size, 1)
        samples = [_round_trip(conn, message) for _ in range(WARMUP_ROUND_TRIPS + count)]
    return summarize_latencies(samples[WARMUP_ROUND_TRIPS:])


def _round_trip(conn: socket.socket, message: bytes) -> int:
    start = time.perf_counter_ns()
    conn.sendall(message)
    _receive(conn, len(message))
    return time.perf_counter_ns() - start


def _receive(conn: socket.socket | IO[bytes], size: int) -> bytes:
    """Exactly ``size`` bytes from ``conn``; ``ConnectionError`` if it closes first."""
    chunks = []
    while size:
        chunk = conn.recv(size) if isinstance(conn, socket.socket) else conn.read(size)
        if not chunk:
            raise ConnectionError("the loopback test server closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def stream_ceiling(workload: str, record_size: int, count: int | None = None) -> Throughput:
    """The fastest of ``STREAM_ROUNDS`` rounds streaming ``record_size``-byte records the thinnest way Python can
    (see the module's docstring): produced from this process into a child's file (``workload`` "produce"), or
    read from a child (``workload`` "consume"). The rounds share ``count`` records, at most (by default)
    ``STREAM_RECORDS``; each round moves at least one whole frame."""
    count = STREAM_RECORDS if count is None else min(count, STREAM_RECORDS)
    per_frame = frame_records(record_size)
    frames = max(1, -(-count // (per_frame * STREAM_ROUNDS)))
    payload = b"x" * record_size
    with tempfile.TemporaryDirectory(prefix="raftkafka-ceiling-") as scratch:
        path = f"{scratch}/stream"
        if workload == "produce":
            rounds = _produce_stream(path, payload, per_frame, frames)
        elif workload == "consume":
            rounds = _consume_stream(path, payload, per_frame, frames)
        else:
            raise ValueError(f"no stream ceiling for workload {workload!r}")
    return throughput(frames * per_frame, record_size, min(rounds))


def frame_records(record_size: int) -> int:
    """Records of ``record_size`` bytes in one frame of the streaming ceiling."""
    return max(1, min(STREAM_FRAME_RECORDS, STREAM_FRAME_BYTES // max(record_size, 1)))


def _produce_stream(path: str, payload: bytes, per_frame: int, frames: int) -> list[int]:
    """Nanoseconds of each round of ``frames`` frames sent and acknowledged."""
    packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
    rounds: list[int] = []
    sent = 0
    with _child_server(SINK_SERVER, path) as conn:
        for _ in range(STREAM_ROUNDS):
            start = time.perf_counter_ns()
            for frame_number in range(frames):
                batch: list[bytes] = []
                send = _api(batch.append)
                for _ in range(per_frame):
                    send(payload)
                frame = packb(batch)
                conn.sendall(_LENGTH.pack(len(frame)) + frame)
                sent += len(frame)
                if frame_number >= STREAM_WINDOW:
                    _receive(conn, 1)
            _receive(conn, min(frames, STREAM_WINDOW))
            rounds.append(time.perf_counter_ns() - start)
        conn.shutdown(socket.SHUT_WR)
        (written,) = _WRITTEN.unpack(_receive(conn, _WRITTEN.size))
    if written != sent:
        raise ConnectionError(f"the loopback sink wrote {written} bytes of the {sent} sent")
    return rounds


def _api(append: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """The thinnest per-record API a Python producer can have: one Python-level call that keeps the record."""

    def send(value: bytes) -> None:
        append(value)

    return send


def _consume_stream(path: str, payload: bytes, per_frame: int, frames: int) -> list[int]:
    """Nanoseconds of each round of ``frames`` frames read and unpacked."""
    frame = msgpack.packb([payload] * per_frame, use_bin_type=True)
    with open(path, "wb") as file:
        file.write(_LENGTH.pack(len(frame)) + frame)
    unpackb = msgpack.unpackb
    rounds: list[int] = []
    got = 0
    with _child_server(SOURCE_SERVER, path, str(frames * STREAM_ROUNDS)) as conn, conn.makefile("rb") as reader:
        for _ in range(STREAM_ROUNDS):
            start = time.perf_counter_ns()
            for _ in range(frames):
                got += len(unpackb(_receive(reader, _LENGTH.unpack(_receive(reader, _LENGTH.size))[0])))
            rounds.append(time.perf_counter_ns() - start)
        if reader.read(1):
            raise ConnectionError("the loopback source sent more frames than asked")
    if got != frames * per_frame * STREAM_ROUNDS:
        raise ConnectionError(f"read {got} records of the {frames * per_frame * STREAM_ROUNDS} the source sent")
    return rounds
