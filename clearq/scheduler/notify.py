"""Wake-up hints: NOTIFY on PostgreSQL, polling elsewhere.

A notification is only a hint that something changed (a queue got an entry, a task
was asked to stop, an operator drained or paused a worker); it never carries the data.
Whoever wakes reads the store, so a lost or duplicated hint costs latency, never
correctness.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import select
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import ConnectionLost, StoreError
from clearq.models import _Frozen
from clearq.scheduler.engine import (
    Database,
    connect_with_options,
    normalise_url,
    pg_connect_args,
)

log = logging.getLogger(__name__)

ENQUEUE_CHANNEL = "clearq_enqueue"
"""Payload: the id of the queue that got an entry, ``ID@SECONDS`` when the entry may be
claimed only that many seconds later (``fenced.entry_payload``); other writes that free
work (a finished parent, a raised cap or quota) send a payload of their own."""
STOP_CHANNEL = "clearq_stop"
"""Payload: the id of the task asked to stop."""
WORKER_CHANNEL = "clearq_worker"
"""Payload: the id of a worker an operator drained, paused or resumed."""
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 15.0
_said_polling = False
"""The one-time notice that LISTEN cannot work behind pgbouncer was logged."""


class Notice(_Frozen):
    """One hint: which channel, and the id it names."""

    channel: str
    payload: str


def notify(conn: Connection, db: Database, channel: str, payload: str) -> None:
    """Send a hint when the transaction commits (PostgreSQL); nothing on SQLite."""
    if db.is_postgres:
        conn.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


class Listener(Protocol):
    """Waits for hints on some channels."""

    def wait(self, timeout: float) -> list[Notice]:
        """Block until at least one hint arrives or ``timeout`` seconds pass."""
        ...

    def wake(self) -> None:
        """Make a wait in progress, or else the next one, return at once (signal-safe)."""
        ...

    def close(self) -> None:
        """Stop listening."""
        ...

    @property
    def connected(self) -> bool:
        """True while hints arrive (a LISTEN connection is up, here or in a relay)."""
        ...


class PollingListener:
    """The fallback where the database cannot notify: waiting is sleeping."""

    connected = False

    def __init__(self) -> None:
        self._woken = threading.Event()

    def wait(self, timeout: float) -> list[Notice]:
        """Sleep ``timeout`` seconds or until woken; the caller then polls the store."""
        self._woken.wait(timeout)
        self._woken.clear()
        return []

    def wake(self) -> None:
        """End the sleep."""
        self._woken.set()

    def close(self) -> None:
        """Nothing to release."""


class Backoff:
    """Jittered exponential delays: ``first``, then doubling up to ``most``, each 50-100 %.

    The jitter spreads a fleet's reconnects after a restart instead of every agent
    knocking at the same instant.
    """

    def __init__(
        self,
        first: float = RECONNECT_FIRST_SECONDS,
        most: float = RECONNECT_MAX_SECONDS,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._first = first
        self._most = most
        self._rng = rng
        self._next = first

    def delay(self) -> float:
        """The pause before the next try; the one after will be longer."""
        base = self._next
        self._next = min(self._most, self._next * 2)
        return base * (0.5 + self._rng() / 2)

    def reset(self) -> None:
        """A try succeeded: start again from ``first``."""
        self._next = self._first


def listen_target(db: Database) -> tuple[str, str, dict[str, Any]]:
    """Where LISTEN connects: (libpq URL, the URL to show, libpq options).

    The database URL, or ``CLEARQ_LISTEN_URL`` where it is set: a direct session to the
    server, past a transaction pooler, with its own libpq options.
    """
    url = db.url
    args = db.pg_connect_args()
    direct = db.settings.listen_url
    if direct:
        url = normalise_url(direct)
        args = pg_connect_args(db.settings.replace(database_pgbouncer=False), url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return dsn, url.render_as_string(hide_password=True), args


class PgListener:
    """LISTEN on a dedicated PostgreSQL connection, reconnected when it drops.

    A dropped connection (a restart, a killed backend, a network fault) is not an
    error for the waiter: ``wait`` turns into a polling sleep while the listener
    reconnects with a jittered backoff, and ``on_change`` hears the loss (with the
    error) and the recovery (with None). Hints sent while it was away are lost, which
    costs latency only: waiters read the store after every wait.
    """

    def __init__(
        self,
        db: Database,
        channels: tuple[str, ...],
        *,
        on_change: Callable[[StoreError | None], None] | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import psycopg  # only PostgreSQL needs it: SQLite users never pay its import

        self._psycopg = psycopg
        self._dsn, self._where, self._args = listen_target(db)
        self._channels = channels
        self._on_change = on_change
        self._backoff = backoff or Backoff()
        self._clock = clock
        self._conn: Any = None
        self._retry_at = 0.0
        self._lost: StoreError | None = None
        # wake() writes a byte here (os.write is safe in a signal handler); wait() selects
        # on it beside the connection's socket.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._connect()

    @property
    def connected(self) -> bool:
        """True while the LISTEN connection is up."""
        return self._conn is not None

    def _connect(self) -> bool:
        psycopg = self._psycopg
        try:
            conn = connect_with_options(
                lambda **kw: psycopg.connect(self._dsn, autocommit=True, **kw),
                self._args,
                psycopg.OperationalError,
            )
            try:
                for channel in self._channels:
                    conn.execute(f'LISTEN "{channel}"')
            except psycopg.Error:
                conn.close()
                raise
        except psycopg.Error as e:
            self._dropped(f"cannot listen for notifications on {self._where}", e)
            return False
        self._conn = conn
        self._backoff.reset()
        if self._lost is not None:
            self._lost = None
            if self._on_change is not None:
                self._on_change(None)
        return True

    def _dropped(self, what: str, error: Exception) -> None:
        if self._conn is not None:
            with contextlib.suppress(self._psycopg.Error):
                self._conn.close()
        self._conn = None
        self._retry_at = self._clock() + self._backoff.delay()
        if self._lost is None:
            why = " ".join(str(error).split())
            self._lost = ConnectionLost(f"{what} ({why}): reconnecting, polling meanwhile")
            if self._on_change is not None:
                self._on_change(self._lost)

    def wait(self, timeout: float) -> list[Notice]:
        """Block until hints arrive (all that are pending are returned) or the timeout.

        While the connection is down this sleeps (the caller then polls the store),
        trying to reconnect whenever the backoff allows.
        """
        deadline = self._clock() + timeout
        if self._conn is None:
            if self._clock() >= self._retry_at and self._connect():
                return []  # back: the caller polls for what it missed
            self._sleep(max(0.0, min(deadline, self._retry_at) - self._clock()))
            return []
        try:
            pending = list(self._conn.notifies(timeout=0))  # read before: none is missed
            if not pending and not self._sleep(timeout, also=self._conn.fileno()):
                pending = list(self._conn.notifies(timeout=0))
        except self._psycopg.Error as e:
            self._dropped("lost the notification connection", e)
            return []
        return [Notice(channel=n.channel, payload=n.payload) for n in pending]

    def wake(self) -> None:
        """End a wait in progress, or the next one."""
        with contextlib.suppress(BlockingIOError):  # a wake-up is already pending
            os.write(self._wake_w, b"w")

    def _sleep(self, timeout: float, *, also: int | None = None) -> bool:
        """Wait ``timeout`` seconds, for a wake-up or for ``also`` to be readable; True
        when woken (the wake-up is used up)."""
        fds = [self._wake_r] if also is None else [self._wake_r, also]
        ready, _, _ = select.select(fds, [], [], timeout)
        if self._wake_r not in ready:
            return False
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 64)
        return True

    def close(self) -> None:
        """Close the listening connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):  # closed already: close() twice
                os.close(fd)

    def __enter__(self) -> PgListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def listen(
    db: Database,
    channels: tuple[str, ...],
    *,
    on_change: Callable[[StoreError | None], None] | None = None,
) -> Listener:
    """A listener for ``channels``: LISTEN on PostgreSQL, polling on SQLite.

    ``on_change`` hears a lost LISTEN connection (the error) and its return (None).
    The listeners of one machine share one LISTEN connection (``CLEARQ_LISTEN_RELAY``,
    :mod:`clearq.scheduler.relay`); ``off`` gives each its own.
    Behind pgbouncer in transaction mode LISTEN goes to ``CLEARQ_LISTEN_URL``; without
    one it cannot work (the pooler hands the listening server connection to others),
    so the listener polls and says so once.
    """
    if can_listen(db):
        if db.settings.listen_relay == "off":
            return PgListener(db, channels, on_change=on_change)
        from clearq.scheduler.relay import shared_listener  # a cycle: relay uses PgListener

        return shared_listener(db, channels, on_change=on_change)
    if db.is_postgres:
        _say_polling_once()
    return PollingListener()


def can_listen(db: Database) -> bool:
    """True where this store's hints arrive: PostgreSQL, past any transaction pooler."""
    settings = db.settings
    return db.is_postgres and (not settings.database_pgbouncer or bool(settings.listen_url))


def _say_polling_once() -> None:
    global _said_polling
    if _said_polling:
        return
    _said_polling = True
    log.warning(
        "CLEARQ_DATABASE_PGBOUNCER is set without CLEARQ_LISTEN_URL: LISTEN cannot work "
        "through a transaction pooler, so agents poll the store (wake-ups within about a "
        "second, stop requests at the next lease renewal). Set CLEARQ_LISTEN_URL to a "
        "direct PostgreSQL URL to keep them immediate."
    )
