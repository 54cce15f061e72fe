"""A rate line on stderr while a benchmark runs (silent in ``--json`` mode or when disabled)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REFRESH_S = 0.5


class Progress:
    """Shows ``done/total records, rate`` at most every ``REFRESH_S``; call ``update`` per batch, not per record."""

    def __init__(self, label: str, total: int, *, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._tty = self.stream.isatty()
        self._start = time.perf_counter()
        self._next_draw = self._start + REFRESH_S

    @classmethod
    def silent(cls) -> Progress:
        """A progress that shows nothing (for warm-ups)."""
        return cls("", 0, enabled=False)

    def update(self, done: int) -> None:
        """Note that ``done`` records are finished; redraw when the refresh interval has passed."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if now >= self._next_draw:
            self._next_draw = now + REFRESH_S
            self._draw(done, now)

    def finish(self, done: int) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw(done, time.perf_counter())
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()

    def _draw(self, done: int, now: float) -> None:
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        percent = 100.0 * done / self.total if self.total else 100.0
        text = f"{self.label}: {done:,}/{self.total:,} records ({percent:.0f}%), {rate:,.0f} records/s"
        self.stream.write(f"\r{text}\x1b[K" if self._tty else f"{text}\n")
        self.stream.flush()
