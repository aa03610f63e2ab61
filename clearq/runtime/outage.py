"""Riding out a database that stops answering: outage reports and bounded retries.

An agent talks to its database from several threads (claims, heartbeats, reaping,
metrics, a run's own writes, the notification listener). When the database goes away
they all fail at once and keep failing at every retry; an operator should read one line
when the connection is lost and one when it is back, with the times, not one per retry.
:class:`Outage` keeps that state. :func:`retry_while_held` retries a store call through
an outage for as long as the attempt it serves is still this agent's.
:func:`when_reachable` opens the store for an agent that starts while its database is
down: it says so once, retries with a jittered backoff, and says when it got through;
a database that answers but refuses (a wrong password, no such role or database, an
unreadable SQLite file) is a configuration error, raised at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from clearq.errors import StoreUnavailable
from clearq.scheduler.notify import Backoff

RETRY_SECONDS = 0.5
"""Pause between two tries of a store call during an outage."""

T = TypeVar("T")


def _clock_text(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Outage:
    """Whether ``what`` (a connection) is down now; says so once when lost and once when back.

    ``failed`` and ``ok`` may be called from any thread, as often as calls fail or
    succeed: only the first failure after a success and the first success after a
    failure are reported to ``say``.
    """

    def __init__(
        self,
        what: str,
        say: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._what = what
        self._say = say
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._since: float | None = None
        self._back_at = float("-inf")
        self._failures = 0

    @property
    def down(self) -> bool:
        """True between a reported loss and the next success."""
        return self._since is not None

    def failed(self, error: Exception, *, started: float | None = None) -> None:
        """A call that began at ``started`` (monotonic; default now) could not reach ``what``.

        A call that began before the last recovery belongs to the outage already over
        and reports nothing.
        """
        with self._lock:
            if started is not None and started < self._back_at:
                return
            self._failures += 1
            if self._since is not None:
                return
            self._since = self._clock()
            self._failures = 1
        self._say(f"lost {self._what} at {_clock_text(self._wall())}: {error}; retrying")

    def ok(self, *, started: float | None = None) -> None:
        """A call that began at ``started`` succeeded; report the end of an outage.

        A call that began before the outage did proves nothing about its end.
        """
        with self._lock:
            if self._since is None or (started is not None and started < self._since):
                return
            self._back_at = self._clock()
            lasted = self._back_at - self._since
            failures, self._since = self._failures, None
        self._say(
            f"{self._what} is back at {_clock_text(self._wall())} after {lasted:.1f} s "
            f"({failures} failed call{'s' if failures != 1 else ''} retried)"
        )


def retry_while_held(
    call: Callable[[], T],
    held: Callable[[], bool],
    *,
    outage: Outage | None = None,
    pause: float = RETRY_SECONDS,
) -> T:
    """``call()``, tried again through StoreUnavailable while ``held()`` stays True.

    The last StoreUnavailable is raised once ``held()`` is False (the attempt's lease was
    outlived: another agent may own the task by now, and nothing written matters).
    """
    while True:
        started = time.monotonic()
        try:
            result = call()
        except StoreUnavailable as e:
            if outage is not None:
                outage.failed(e, started=started)
            if not held():
                raise
            time.sleep(pause)
            continue
        if outage is not None:
            outage.ok(started=started)
        return result


REFUSALS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",  # the role or the database
    "permission denied",
    "unable to open database file",
)
"""Words of a database that answered and said no: no retry makes it say yes."""


def refused(error: StoreUnavailable) -> bool:
    """True when the database answered and refused: fix the settings, do not wait."""
    text = str(error).lower()
    return any(words in text for words in REFUSALS)


def when_reachable(
    open_store: Callable[[], T],
    say: Callable[[str], None],
    *,
    what: str = "the database",
    backoff: Backoff | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> T:
    """``open_store()``, tried again with a jittered backoff while ``what`` is unreachable.

    Says once that it is unreachable and once when it got through; a refusal
    (:func:`refused`) and every other error are raised at once.
    """
    backoff = backoff or Backoff()
    since: float | None = None
    tries = 0
    while True:
        try:
            result = open_store()
        except StoreUnavailable as e:
            if refused(e):
                raise
            tries += 1
            if since is None:
                since = clock()
                say(f"{what} is unreachable at {_clock_text(wall())}: {e}; waiting for it")
            sleep(backoff.delay())
            continue
        if since is not None:
            say(
                f"{what} is reachable at {_clock_text(wall())} after {clock() - since:.1f} s "
                f"({tries} failed tr{'ies' if tries != 1 else 'y'}); starting"
            )
        return result
