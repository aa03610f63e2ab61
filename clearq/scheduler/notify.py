"""Wake-up hints: NOTIFY on PostgreSQL, polling elsewhere.

A notification is only a hint that something changed (a queue got an entry, a task
was asked to stop); it never carries the data. Whoever wakes reads the store, so a
lost or duplicated hint costs latency, never correctness.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import StoreError
from clearq.models import _Frozen
from clearq.scheduler.engine import Database

ENQUEUE_CHANNEL = "clearq_enqueue"
"""Payload: the id of the queue that got an entry."""
STOP_CHANNEL = "clearq_stop"
"""Payload: the id of the task asked to stop."""


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

    def close(self) -> None:
        """Stop listening."""
        ...


class PollingListener:
    """The fallback where the database cannot notify: waiting is sleeping."""

    def wait(self, timeout: float) -> list[Notice]:
        """Sleep ``timeout`` seconds; the caller then polls the store."""
        time.sleep(timeout)
        return []

    def close(self) -> None:
        """Nothing to release."""


class PgListener:
    """LISTEN on a dedicated PostgreSQL connection."""

    def __init__(self, db: Database, channels: tuple[str, ...]) -> None:
        import psycopg  # only PostgreSQL needs it: SQLite users never pay its import

        self._error = psycopg.Error
        dsn = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
            for channel in channels:
                self._conn.execute(f'LISTEN "{channel}"')
        except psycopg.Error as e:
            raise StoreError(f"cannot listen for notifications: {e}") from e

    def wait(self, timeout: float) -> list[Notice]:
        """Block until hints arrive (all that are pending are returned) or the timeout."""
        try:
            first = list(self._conn.notifies(timeout=timeout, stop_after=1))
            rest = list(self._conn.notifies(timeout=0)) if first else []
        except self._error as e:
            raise StoreError(f"lost the notification connection: {e}") from e
        return [Notice(channel=n.channel, payload=n.payload) for n in first + rest]

    def close(self) -> None:
        """Close the listening connection."""
        self._conn.close()

    def __enter__(self) -> PgListener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def listen(db: Database, channels: tuple[str, ...]) -> Listener:
    """A listener for ``channels``: LISTEN on PostgreSQL, polling on SQLite."""
    if db.is_postgres:
        return PgListener(db, channels)
    return PollingListener()
