"""Idle polling: an event loop keeps polling for I/O for a short window after network activity instead of
going to sleep at once.

A process asleep in ``epoll_wait`` is woken by the peer's write, and on a virtual machine whose idle CPUs
halt (Firecracker and most clouds) that costs the writer a virtual interrupt and the sleeper the time for
its CPU to resume: here a Python ping-pong between two processes on two CPUs takes 135 µs per round trip
when both sleep and 26 µs when both poll. While the window is open the loop always has a callback ready,
so it polls with a zero timeout and picks up the next request or answer the moment it lands.

Seastar's reactor (Redpanda) polls 200 µs before sleeping for the same reason (``--idle-poll-time-us``)
and turns it off with ``--overprovisioned``: polling takes CPU that other processes on the same cores
need. Here it is off unless asked for (``--idle-poll-us`` on the broker, ``idle_poll_us`` on the asyncio
clients), and bounded: a loop with no network activity for the window sleeps as before.
"""

from __future__ import annotations

import asyncio
from time import monotonic

from raftkafka.errors import InvalidConfigError

MAX_IDLE_POLL_US = 100_000


def validate_idle_poll_us(window_us: int) -> int:
    """``window_us`` if it is a valid idle-poll window (0 = off), else ``InvalidConfigError``."""
    if not 0 <= window_us <= MAX_IDLE_POLL_US:
        raise InvalidConfigError(f"the idle-poll window must be 0 to {MAX_IDLE_POLL_US} µs, not {window_us}")
    return window_us


class IdlePoll:
    """Keeps the event loop it is first kicked on polling until ``window_us`` after the latest ``kick``."""

    def __init__(self, window_us: int) -> None:
        self.window_s = validate_idle_poll_us(window_us) / 1_000_000
        self._until = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None

    def kick(self) -> None:
        """Network activity now: poll for another window (event loop thread only)."""
        self._until = monotonic() + self.window_s
        if self._handle is None:
            loop = self._loop = self._loop or asyncio.get_running_loop()
            self._handle = loop.call_soon(self._poll)

    def _poll(self) -> None:
        if monotonic() < self._until:
            self._handle = self._loop.call_soon(self._poll)  # type: ignore[union-attr]
        else:
            self._handle = None

    def stop(self) -> None:
        """Stop polling now (a later ``kick`` starts again)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def idle_poll(window_us: int) -> IdlePoll | None:
    """An ``IdlePoll`` of ``window_us``, or None for 0 (off)."""
    return IdlePoll(window_us) if validate_idle_poll_us(window_us) else None
