"""Which running attempts' leases are dead, on each dialect's idea of time.

PostgreSQL has one clock, the server's: a lease is dead once ``lease_expires_at`` is
before ``now()``, and every agent's reaper asks the same clock.

An SQLite file has no clock of its own: ``julianday('now')`` is the wall clock of
whichever process runs the statement. One agent whose clock runs ahead would see every
other agent's leases expired, and a wall-clock step (NTP) would expire them all at once.
So on SQLite no clock is compared with a stored time. Each renewal increments the
attempt's ``beats`` counter, and a reaper declares a lease dead only when the counter
(with the attempt and the worker) has not moved for a whole lease length of the
reaper's *own monotonic clock*. A reaper that just started has seen nothing move yet
and needs one lease length before it reaps anything.

The agent running an attempt gives it up a fraction of a lease after it *sent* its
last successful renewal (``clearq.runtime.agent.HOLD_FRACTION``); a reaper cannot have
seen that renewal's count before it was written, so the agent always stops first.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Running:
    """What the reaper reads of one running attempt on SQLite."""

    task_id: uuid.UUID
    attempt: int
    worker: str | None
    beats: int


class BeatWatch:
    """A reaper's memory of each running attempt's renewal counter and when it last moved."""

    def __init__(
        self, lease_seconds: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lease = lease_seconds
        self._clock = clock
        self._seen: dict[uuid.UUID, tuple[tuple[int, str | None, int], float]] = {}

    def dead(self, running: Iterable[Running]) -> list[uuid.UUID]:
        """The attempts among ``running`` whose counter stood still for a lease length.

        ``running`` is every running attempt now: one no longer among them is forgotten.
        """
        now = self._clock()
        seen: dict[uuid.UUID, tuple[tuple[int, str | None, int], float]] = {}
        dead = []
        for r in running:
            state = (r.attempt, r.worker, r.beats)
            before = self._seen.get(r.task_id)
            if before is None or before[0] != state:
                seen[r.task_id] = (state, now)  # new, or it moved: watch from now
                continue
            seen[r.task_id] = before
            if now - before[1] >= self._lease:
                dead.append(r.task_id)
        self._seen = seen
        return dead
