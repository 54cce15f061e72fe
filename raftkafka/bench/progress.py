"""Progress of a benchmark run: a rate line on stderr (silent in ``--json`` mode or when disabled) and the
timeline of records done over time that ``--plot`` draws."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REFRESH_S = 0.5


class Progress:
    """Shows ``done/total records, rate`` at most every ``REFRESH_S``; call ``update`` per batch, not per record.

    Every ``update`` is also kept in ``timeline`` as ``(seconds since the progress began, records done)``, whether
    or not the line is shown (a silent progress, for warm-ups, keeps nothing). ``total`` None is a run of unknown
    length (``--duration``): the line then shows the elapsed time instead of a percentage.
    """

    def __init__(
        self, label: str, total: int | None, *, enabled: bool = True, stream: TextIO | None = None, keep: bool = True
    ) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.timeline: list[tuple[float, int]] = []
        self._keep = keep
        self._tty = self.stream.isatty()
        self._start = time.perf_counter()
        self._next_draw = self._start + REFRESH_S

    @classmethod
    def silent(cls) -> Progress:
        """A progress that shows and keeps nothing (for warm-ups)."""
        return cls("", 0, enabled=False, keep=False)

    def update(self, done: int) -> None:
        """Note that ``done`` records are finished; redraw when the refresh interval has passed."""
        if not self._keep:
            return
        now = time.perf_counter()
        self.timeline.append((now - self._start, done))
        if self.enabled and now >= self._next_draw:
            self._next_draw = now + REFRESH_S
            self._draw(done, now)

    def finish(self, done: int) -> None:
        """Note the final count, draw the final state and end the line."""
        if not self._keep:
            return
        now = time.perf_counter()
        self.timeline.append((now - self._start, done))
        if self.enabled:
            self._draw(done, now)
            if self._tty:
                self.stream.write("\n")
            self.stream.flush()

    def _draw(self, done: int, now: float) -> None:
        elapsed = now - self._start
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total is None:
            text = f"{self.label}: {done:,} records in {elapsed:.1f} s, {rate:,.0f} records/s"
        else:
            percent = 100.0 * done / self.total if self.total else 100.0
            text = f"{self.label}: {done:,}/{self.total:,} records ({percent:.0f}%), {rate:,.0f} records/s"
        self.stream.write(f"\r{text}\x1b[K" if self._tty else f"{text}\n")
        self.stream.flush()
