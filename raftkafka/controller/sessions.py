"""Broker sessions: the active controller's in-memory record of when each broker last heartbeated.

Soft state, never logged: a broker's session is live while its last contact is younger than
``broker.session.timeout.ms``. A new active controller knows nothing of the old one's table, so it
starts every registered broker's session at the moment it became active (``grant_all``) before it
fences anyone. Such a granted session keeps the broker from being fenced, but it proves nothing about
the broker process: ``heard_live`` names only the brokers heard from (a heartbeat or a registration)
since the grant, the ones whose registration another incarnation may not take over. The clock is
injected (seconds, monotonic) so tests drive time by hand.

Event loop thread only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

Clock = Callable[[], float]


class BrokerSessions:
    """Last contact per broker node id, judged against ``timeout_s``."""

    def __init__(self, timeout_s: float, clock: Clock = time.monotonic) -> None:
        if timeout_s <= 0:
            raise ValueError("the broker session timeout must be positive")
        self.timeout_s = timeout_s
        self._clock = clock
        self._last_contact: dict[int, float] = {}
        self._heard: set[int] = set()

    def touch(self, node_id: int) -> None:
        """The broker was heard from now (a heartbeat or a registration)."""
        self._last_contact[node_id] = self._clock()
        self._heard.add(node_id)

    def grant_all(self, node_ids: Iterable[int]) -> None:
        """Start a fresh session for each of ``node_ids`` now, forgetting every other session and contact."""
        now = self._clock()
        self._last_contact = dict.fromkeys(node_ids, now)
        self._heard = set()

    def cut_short(self, node_id: int, remaining_s: float) -> None:
        """Let the broker's session end ``remaining_s`` from now unless it is heard from again (its connection
        closed: a crashed process is fenced in moments, a reconnecting one heartbeats in time)."""
        last = self._last_contact.get(node_id)
        if last is not None:
            self._last_contact[node_id] = min(last, self._clock() - self.timeout_s + remaining_s)

    def remove(self, node_id: int) -> None:
        """Forget the broker's session (it shut down)."""
        self._last_contact.pop(node_id, None)
        self._heard.discard(node_id)

    def is_live(self, node_id: int) -> bool:
        """Whether the broker has a session younger than the timeout."""
        last = self._last_contact.get(node_id)
        return last is not None and self._clock() - last < self.timeout_s

    def live(self) -> set[int]:
        """Node ids with a live session."""
        now = self._clock()
        return {node_id for node_id, last in self._last_contact.items() if now - last < self.timeout_s}

    def heard_live(self) -> set[int]:
        """Node ids with a live session that were heard from since the last ``grant_all``."""
        return {node_id for node_id in self.live() if node_id in self._heard}

    def expired(self, node_ids: Iterable[int]) -> list[int]:
        """Those of ``node_ids`` whose session expired; one without a session gets a fresh one instead."""
        now = self._clock()
        out = []
        for node_id in node_ids:
            last = self._last_contact.setdefault(node_id, now)
            if now - last >= self.timeout_s:
                out.append(node_id)
        return out
