"""The database connection: one engine, transactions that mean the same on both dialects.

PostgreSQL runs at READ COMMITTED and relies on row locks (``FOR UPDATE``, ``SKIP
LOCKED``). SQLite has one writer at a time: every write transaction starts with
``BEGIN IMMEDIATE`` so it takes the write lock up front and never fails half way on a
lock upgrade; readers use a deferred ``BEGIN`` and, in WAL mode, never block writers.

Driver errors are translated here, where they enter the store (:func:`translate`): a
connection that dropped or could not be opened is ``ConnectionLost``, a database that
cannot answer now (busy, a statement timed out) is ``StoreUnavailable``; both are
infrastructure faults a caller may retry. PostgreSQL connections carry libpq timeouts
and TCP keepalives (:func:`pg_connect_args`) so a server or network that stops
answering ends in an error instead of a hang.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry

from clearq.config import Settings, ensure_home
from clearq.errors import ConfigError, ConnectionLost, SchemaError, StoreError, StoreUnavailable
from clearq.scheduler.pool import ElasticPool
from clearq.scheduler.statements import sqlite_math

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled PostgreSQL connection idle longer than this is pinged before use (ElasticPool)."""
POOL_WAIT_FACTOR = 3
"""A caller waits for a pooled connection this many connect timeouts before giving up."""
KEEPALIVE_PROBES = 3
"""Unanswered TCP keepalive probes before the kernel drops a PostgreSQL connection."""
_PG_CONNECTION_CLASSES = ("08", "57P")
"""SQLSTATE prefixes of a connection gone: connection exceptions, the server shutting down."""
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o")
"""SQLite messages of a file that cannot be used now, but may be later."""
_BEGIN_OPTION = "clearq_sqlite_begin"
_OPTIONS_REFUSED = False
"""Set once a server refused the ``options`` startup parameter: later connections skip it."""
logger = logging.getLogger(__name__)
T = TypeVar("T")


def normalise_url(url: str) -> URL:
    """Parse a database URL, choosing psycopg 3 for PostgreSQL.

    ``postgresql://`` and ``postgres://`` (as managed services print them) both mean
    psycopg 3. Raises ConfigError for anything clearq cannot use.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise ConfigError(
            f"cannot parse database URL {url!r}: {e}. Use postgresql://user@host/db "
            "or sqlite:///path/to/clearq.db"
        ) from e
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(
                "an in-memory SQLite database cannot be shared by agents and tasks: "
                "give a file, e.g. sqlite:///clearq.db"
            )
        return parsed.set(drivername="sqlite")
    raise ConfigError(f"database {backend!r} is not supported: clearq runs on PostgreSQL or SQLite")


def pg_connect_args(settings: Settings, url: URL | None = None) -> dict[str, Any]:
    """libpq parameters that bound how long a dead server or network can hold a call.

    ``connect_timeout`` bounds opening a connection; keepalives and ``tcp_user_timeout``
    make the kernel drop a connection whose peer stopped answering; the server ends a
    statement past ``statement_timeout`` and a session idle in a transaction past
    ``idle_in_transaction_session_timeout`` (so a cut-off agent's locks free themselves).
    A parameter given in the URL's query wins.

    Behind pgbouncer in transaction mode (``settings.database_pgbouncer``) psycopg
    prepares nothing (``prepare_threshold=None``: a prepared statement lives on one
    server connection, and the next transaction may run on another) and no
    ``options`` startup parameter is sent (pgbouncer refuses it): set the two server
    timeouts on the server or role instead.
    """
    keepalive = str(round(settings.db_keepalive_seconds))
    args: dict[str, Any] = {
        "connect_timeout": str(max(1, round(settings.db_connect_timeout_seconds))),
        "keepalives": "1",
        "keepalives_idle": keepalive,
        "keepalives_interval": keepalive,
        "keepalives_count": str(KEEPALIVE_PROBES),
    }
    if settings.db_tcp_user_timeout_seconds:
        args["tcp_user_timeout"] = str(round(settings.db_tcp_user_timeout_seconds * 1000))
    options = [
        f"-c {name}={round(seconds * 1000)}"
        for name, seconds in (
            ("statement_timeout", settings.db_statement_timeout_seconds),
            ("idle_in_transaction_session_timeout", settings.db_idle_in_transaction_seconds),
        )
        if seconds
    ]
    if settings.database_pgbouncer:
        args["prepare_threshold"] = None
    elif options:
        args["options"] = " ".join(options)
    given = set(url.query) if url is not None else set()
    return {key: value for key, value in args.items() if key not in given}


def connect_with_options(
    connect: Callable[..., T], kwargs: dict[str, Any], refused: type[Exception]
) -> T:
    """``connect(**kwargs)``; without ``options`` if the server refuses that parameter.

    ``refused`` is the driver's error for a failed connection.

    pgbouncer (before 1.20, or without ``ignore_startup_parameters = options``) refuses
    the ``options`` startup parameter that carries the server-side timeouts: the
    connection is then opened without them, with one warning saying where to set them.
    """
    global _OPTIONS_REFUSED
    if _OPTIONS_REFUSED and "options" in kwargs:
        kwargs = {k: v for k, v in kwargs.items() if k != "options"}
    try:
        return connect(**kwargs)
    except refused as e:
        if "options" not in kwargs or "unsupported startup parameter" not in str(e):
            raise
    if not _OPTIONS_REFUSED:
        _OPTIONS_REFUSED = True
        logger.warning(
            "the database refuses the 'options' startup parameter (pgbouncer?): connecting "
            "without statement_timeout and idle_in_transaction_session_timeout; set them on "
            "the server (ALTER ROLE ... SET) or in pgbouncer (query_timeout, "
            "idle_transaction_timeout)"
        )
    return connect(**{k: v for k, v in kwargs.items() if k != "options"})


def translate(error: DBAPIError, where: str, *, postgres: bool) -> StoreError:
    """The clearq error for a driver error raised while talking to the store at ``where``."""
    why = " ".join(str(error.orig).split())
    sqlstate = str(getattr(error.orig, "sqlstate", "") or "")
    transient = isinstance(error, OperationalError)
    if (
        error.connection_invalidated
        or sqlstate.startswith(_PG_CONNECTION_CLASSES)
        or (postgres and transient and not sqlstate)  # psycopg's own: the socket failed
    ):
        return ConnectionLost(
            f"lost the connection to {where} ({why}): the server restarted or the network "
            "dropped it; clearq reconnects on the next call"
        )
    if postgres and transient:
        return StoreUnavailable(f"{where} cannot answer now ({why}): retry later")
    if transient:  # SQLite
        if "no such table" in why:
            return SchemaError(f"{where} has no clearq schema ({why}): run `clearq db upgrade`")
        if any(word in why.lower() for word in _SQLITE_TRANSIENT):
            return StoreUnavailable(f"{where} cannot be used now ({why}): retry later")
    return StoreError(f"{where} refused a statement: {why}")


class Lent(NamedTuple):
    """A pooled connection lent by :meth:`Database.lend`, and the pool it goes back to."""

    pool: ElasticPool
    record: ConnectionPoolEntry


class Database:
    """An engine plus the two kinds of transaction clearq uses."""

    def __init__(self, url: str, *, settings: Settings | None = None) -> None:
        self.url = normalise_url(url)
        self.dialect = self.url.get_backend_name()
        self._settings = settings or Settings()
        self._where = self.url.render_as_string(hide_password=True)
        try:
            self.engine = self._create_engine()
        except NoSuchModuleError as e:
            raise ConfigError(f"no driver for {self.url.drivername}: {e}") from e

    @property
    def is_postgres(self) -> bool:
        """True on PostgreSQL, False on SQLite."""
        return self.dialect == "postgresql"

    def _create_engine(self) -> Engine:
        if self.is_postgres:
            # One pool for everything, its connections in autocommit: a single statement
            # (the claim, a finish) commits by itself, without BEGIN and COMMIT round
            # trips, and a transaction says BEGIN itself (:meth:`write`, :meth:`read`).
            # Switching a pooled connection between the two modes at every checkout cost
            # about as much client time as the statement; two pools cost connections.
            engine = sa.create_engine(
                self.url,
                connect_args=self.pg_connect_args(),
                isolation_level="AUTOCOMMIT",
                poolclass=ElasticPool,
                ping_after_idle=PING_AFTER_IDLE_SECONDS,
                **self._pool_sizes(),
            )
            _connect_with_options(engine)
            return engine
        if self.url.database and self.url.database != ":memory:":
            _create_sqlite_file(Path(self.url.database).expanduser())
        engine = sa.create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine

    def _pool_sizes(self) -> dict[str, int]:
        # Set explicitly (SQLAlchemy's default is 5 + 10): the database's connection
        # budget is the fleet's ceiling (CLEARQ_DB_POOL_SIZE, CLEARQ_DB_MAX_OVERFLOW).
        # A caller waits for a pooled connection POOL_WAIT_FACTOR times as long as opening
        # one may take (30 s by default, SQLAlchemy's own): a busy connection may be in
        # the middle of a long statement, and giving up sooner turns load into outages.
        return {
            "pool_size": self._settings.db_pool_size,
            "max_overflow": self._settings.db_max_overflow,
            "pool_timeout": round(POOL_WAIT_FACTOR * self._settings.db_connect_timeout_seconds),
        }

    @property
    def settings(self) -> Settings:
        """The settings this store's connections were made with."""
        return self._settings

    def pg_connect_args(self) -> dict[str, Any]:
        """The libpq timeouts of this store's PostgreSQL connections (:func:`pg_connect_args`)."""
        return pg_connect_args(self._settings, self.url)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that will write; on SQLite it holds the write lock from the start."""
        with self._translated(), self._connect() as conn:
            conn = conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
            with conn.begin():
                self._begin_on_postgres(conn)
                yield conn

    @contextmanager
    def write_one(self) -> Iterator[Connection]:
        """A write that is a single statement, which is its own transaction.

        On PostgreSQL the connection is left in autocommit mode: the statement commits when
        it completes, without BEGIN and COMMIT round trips (the hot path: the claim, a
        finish). On SQLite it is :meth:`write`. Statements after the first are separate
        transactions on PostgreSQL, so only a read that is allowed to see a later state
        (an error message) may follow the write.
        """
        if not self.is_postgres:
            with self.write() as conn:
                yield conn
            return
        with self._translated(), self._connect() as conn:
            yield conn

    @property
    def lends(self) -> bool:
        """Whether :meth:`lend` may be used: PostgreSQL, and no one listening to the
        engine's statements or the pool's checkouts (a test capturing statements, a
        benchmark stamping commits), which a lent connection would go around."""
        pool = self.engine.pool
        return (
            self.is_postgres
            and isinstance(pool, ElasticPool)
            and pool.lends
            and not self.engine._has_events
        )

    def lend(self) -> Lent:
        """A pooled PostgreSQL connection at the driver level, in autocommit, for single
        statements that are their own transactions; give it back with :meth:`give_back`.

        The hot path's :meth:`write_one` (``sqla_exec.statement``: the claim, a finish)
        without SQLAlchemy's ``Connection`` and checkout proxy, only where :attr:`lends`.
        The caller runs its statements on ``lent.record.dbapi_connection``, raises a
        driver error as SQLAlchemy's ``DBAPIError`` and invalidates the record when the
        connection is lost (``lent.record.invalidate``), as ``sqla_exec`` does.
        """
        pool = self.engine.pool
        if not isinstance(pool, ElasticPool):
            raise TypeError(f"a {type(pool).__name__} lends no connections")
        try:
            return Lent(pool, pool.lend())
        except PoolTimeout as e:
            raise self._no_connection_free(e) from e
        except self.engine.dialect.loaded_dbapi.OperationalError as e:
            raise self._cannot_connect(e) from e

    def give_back(self, lent: Lent, error: BaseException | None = None) -> None:
        """Return a lent connection. ``error``, raised while it was lent, is raised again
        as the store's error when it is a driver error (translated as in :meth:`write_one`)."""
        lent.pool.give_back(lent.record)
        if isinstance(error, DBAPIError):
            raise self._translate(error) from error

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads."""
        with self._translated(), self._connect() as conn, conn.begin():
            self._begin_on_postgres(conn)
            yield conn

    def _begin_on_postgres(self, conn: Connection) -> None:
        # The pool's connections are in autocommit (see _create_engine): a transaction
        # opens with its own BEGIN, and SQLAlchemy's commit or rollback at the end of the
        # block reaches the server because psycopg sends COMMIT / ROLLBACK whenever the
        # session is inside a transaction, autocommit or not.
        if self.is_postgres:
            conn.exec_driver_sql("BEGIN")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        # Every statement, commit and rollback of a transaction runs inside this block.
        try:
            yield
        except DBAPIError as e:
            raise self._translate(e) from e

    def _translate(self, e: DBAPIError) -> StoreError:
        error = translate(e, self._where, postgres=self.is_postgres)
        if isinstance(error, ConnectionLost):
            self._drop_pools()
        return error

    def _drop_pools(self) -> None:
        # The server went away: every pooled connection is dead too. A new pool replaces
        # them, so the next call of any kind connects afresh instead of failing once more
        # on a dead connection (connections in use end with their call).
        self.engine.dispose()

    def _connect(self) -> Connection:
        # The one place a missing server or an unreadable file shows up: say so plainly.
        try:
            return self.engine.connect()
        except PoolTimeout as e:
            raise self._no_connection_free(e) from e
        except OperationalError as e:
            raise self._cannot_connect(e.orig or e) from e

    def _no_connection_free(self, error: PoolTimeout) -> StoreUnavailable:
        # Every pooled connection stayed in use (statements hung on a server or network
        # that stopped answering, or more threads than the pool serves).
        return StoreUnavailable(
            f"no connection to {self._where} came free in time ({error}): the database "
            "is not answering, or CLEARQ_DB_POOL_SIZE is too small for this process"
        )

    def _cannot_connect(self, error: BaseException) -> ConnectionLost:
        why = " ".join(str(error).split())
        return ConnectionLost(
            f"cannot connect to {self._where} ({why}): "
            "check the database URL (CLEARQ_DATABASE_URL) and that the server is running"
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _connect_with_options(engine: Engine) -> None:
    """Open the engine's connections through :func:`connect_with_options`."""

    @event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        connect = lambda **kw: dialect.connect(*cargs, **kw)  # noqa: E731
        return connect_with_options(connect, cparams, dialect.loaded_dbapi.OperationalError)


SQLITE_FILE_MODE = 0o600
"""The database file (and, after it, SQLite's journal and WAL files): owner only."""


def _create_sqlite_file(path: Path) -> None:
    """The SQLite file's folder (0700 when made here) and the file itself (0600), if new."""
    try:
        ensure_home(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, SQLITE_FILE_MODE)
    except FileExistsError:
        return
    except OSError as e:
        raise ConfigError(f"cannot create the SQLite file {path}: {e}") from e
    os.close(fd)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (the pysqlite driver would
        # otherwise start deferred transactions on its own, too late to choose).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
        sqlite_math(dbapi_conn)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
