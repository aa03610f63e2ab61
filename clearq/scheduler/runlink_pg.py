"""The PostgreSQL driver of a RunLink: psycopg, imported only for a PostgreSQL store."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from clearq.errors import ConnectionLost, StoreError, StoreUnavailable


class PgDriver:
    """One autocommit psycopg connection; multi-statement writes in explicit transactions."""

    def __init__(self, conninfo: str, *, prepare: bool = True) -> None:
        self._conninfo = conninfo
        # Behind pgbouncer in transaction mode nothing may be prepared: the next
        # statement may run on another server connection (CLEARQ_DATABASE_PGBOUNCER).
        self._prepare_threshold: int | None = 5 if prepare else None
        self._where = _without_password(conninfo)
        self._conn = self._open()

    def _open(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(
                self._conninfo, autocommit=True, prepare_threshold=self._prepare_threshold
            )
        except psycopg.Error as e:
            why = " ".join(str(e).split())
            raise ConnectionLost(
                f"cannot connect to {self._where} ({why}): check the database URL "
                "(CLEARQ_DATABASE_URL) and that the server is running"
            ) from e

    def _live(self) -> psycopg.Connection[Any]:
        # A connection the server dropped (restart, failover) is replaced on next use.
        if self._conn.broken or self._conn.closed:
            self._conn = self._open()
        return self._conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, rolled back on any error."""
        self._live()
        try:
            with self._conn.transaction():
                yield
        except psycopg.Error as e:
            raise self._error(e) from e

    postgres = True

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned."""
        try:
            cursor = self._live().execute(sql, params)
            return list(cursor.fetchall()) if cursor.description is not None else []
        except psycopg.Error as e:
            raise self._error(e) from e

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement for each row (pipelined by psycopg)."""
        try:
            with self._live().cursor() as cursor:
                cursor.executemany(sql, rows)
        except psycopg.Error as e:
            raise self._error(e) from e

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _error(self, e: psycopg.Error) -> StoreError:
        said = f"the PostgreSQL store at {self._where} said: {' '.join(str(e).split())}"
        if self._conn.broken or self._conn.closed:
            return ConnectionLost(said)  # the next call reconnects
        if isinstance(e, psycopg.OperationalError):
            return StoreUnavailable(said)  # a timeout, a shutdown: it may work later
        return StoreError(said)


def _without_password(conninfo: str) -> str:
    scheme, _, rest = conninfo.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return conninfo
    return f"{scheme}://{userinfo.split(':', 1)[0]}@{host}"
