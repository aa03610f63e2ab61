"""The PostgreSQL connection pool: one connection while quiet, a second only under pressure.

The database's connection budget is a fleet's ceiling (DESIGN, Scale): an agent holds
one pooled connection and its LISTEN session, whatever it runs. SQLAlchemy's
``QueuePool`` cannot say that: it keeps every connection it ever opened up to its size,
so one moment when the claim loop and the heartbeat thread met keeps a second
connection open for good, and with overflow it opens and closes one at every such
moment (a server process forked each time).

:class:`ElasticPool` is a pool of up to ``pool_size`` connections (plus ``max_overflow``
closed as soon as they are given back) that:

- hands out the connection given back last (the warm one), and when every open one is
  in use waits up to ``grow_after`` seconds for one before opening another: statements
  last milliseconds, so threads that merely meet share one connection;
- closes a connection given back while another one is idle once no caller has had to
  wait for ``idle_close`` seconds, so a busy spell's extra connection does not outlive it;
- pings a connection that sat idle longer than ``ping_after_idle`` seconds before handing
  it out, and replaces it if it is dead (a server restart, an idle timeout on the way).
  One that was in use a moment ago is not pinged: a ping on every checkout costs a round
  trip per store call, up to half the claim + finish throughput of several workers
  (benchmarks/claim_throughput.py); a connection that died within that time fails its
  next statement instead, and the store then replaces every connection it holds.

:meth:`ElasticPool.lend` hands out a pooled connection without SQLAlchemy's checkout
proxy, for the store's hot single statements (the claim, a finish): that proxy and the
``Connection`` around it cost the client about as many instructions as the statement
itself (``benchmarks/claim_instructions.py``).

The agent's threads (claim loop, heartbeat and reaper, task slots, attempt channels)
all share one such pool; ``benchmarks/agent_connections.py`` counts the result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.pool.base import _ConnectionRecord

GROW_AFTER_SECONDS = 0.2
"""How long a caller waits for a busy connection before the pool opens another."""
IDLE_CLOSE_SECONDS = 10.0
"""How long without a waiting caller before the pool closes its extra idle connections."""
DEFAULT_TIMEOUT_SECONDS = 30.0
"""How long a caller waits for a connection when the pool is at its limit."""
_IDLE_SINCE = "clearq_idle_since"


class ElasticPool(Pool):
    """Up to ``pool_size`` (+ ``max_overflow``) connections; one kept while quiet."""

    def __init__(
        self,
        creator: Callable[..., Any],
        pool_size: int = 2,
        max_overflow: int = 0,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        grow_after: float = GROW_AFTER_SECONDS,
        idle_close: float = IDLE_CLOSE_SECONDS,
        ping_after_idle: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(creator, **kw)
        self._size = pool_size
        self._overflow = max_overflow
        self._timeout = timeout
        self._grow_after = grow_after
        self._idle_close = idle_close
        self._ping_after = ping_after_idle
        self._idle: list[ConnectionPoolEntry] = []  # the last one given back at the end
        self._open = 0  # idle + in use, counting one being opened
        self._waited_at = float("-inf")  # when a caller last found none idle
        self._disposed = False
        self._cond = threading.Condition()

    # ---- what Pool asks of a subclass -----------------------------------------------------

    def _do_get(self) -> ConnectionPoolEntry:
        with self._cond:
            found = self._take_or_reserve()
        if found is not None:
            self._ping_if_idle(found)
            return found
        try:
            return self._create_connection()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        with self._cond:
            close = (
                self._disposed
                or self._open > self._size
                or (bool(self._idle) and time.monotonic() - self._waited_at > self._idle_close)
            )
            if close:
                self._open -= 1
            else:
                record.info[_IDLE_SINCE] = time.monotonic()
                self._idle.append(record)
            self._cond.notify()
        if close:
            record.close()

    def _ping_if_idle(self, record: ConnectionPoolEntry) -> None:
        # A dead connection is invalidated here: the record connects again when it is
        # handed out (``get_connection``), as after any other invalidation.
        since = record.info.get(_IDLE_SINCE)  # none yet on a fresh connection
        if self._ping_after is None or since is None or record.dbapi_connection is None:
            return
        if time.monotonic() - since < self._ping_after:
            return
        dialect = cast(Dialect, self._dialect)  # create_engine gives the pool its dialect
        try:
            dialect.do_ping(record.dbapi_connection)
        except dialect.loaded_dbapi.Error as e:
            record.invalidate(e)

    def _take_or_reserve(self) -> ConnectionPoolEntry | None:
        """An idle connection, or None with a new one reserved (``_open`` counts it)."""
        start = time.monotonic()
        while not self._idle:
            waited = time.monotonic() - start
            if self._open == 0 or (
                waited >= self._grow_after and self._open < self._size + self._overflow
            ):
                self._open += 1
                return None
            if waited >= self._timeout:
                raise exc.TimeoutError(
                    f"no database connection free after {self._timeout:g} s: "
                    f"all {self._open} in use ({self.status()})"
                )
            self._waited_at = time.monotonic()
            until = self._grow_after if waited < self._grow_after else self._timeout
            self._cond.wait(until - waited)
        return self._idle.pop()

    def recreate(self) -> ElasticPool:
        """A fresh pool like this one (``Engine.dispose`` replaces the pool with it)."""
        return self.__class__(
            self._creator,
            pool_size=self._size,
            max_overflow=self._overflow,
            timeout=self._timeout,
            grow_after=self._grow_after,
            idle_close=self._idle_close,
            ping_after_idle=self._ping_after,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    # ---- the hot path's checkout ----------------------------------------------------------

    @property
    def lends(self) -> bool:
        """Whether :meth:`lend` may be used: nobody listens to checkouts or checkins,
        which a lent connection does not announce."""
        return not (self.dispatch.checkout or self.dispatch.checkin or self.dispatch.reset)

    def lend(self) -> ConnectionPoolEntry:
        """A pooled connection, connected (``record.dbapi_connection``), for a caller that
        talks to the driver itself; it gives it back with :meth:`give_back`.

        The same record a SQLAlchemy checkout gets, pinged when it sat idle, connected
        again when it was invalidated; what this leaves out is the proxy and the checkout
        and checkin events (:attr:`lends`).
        """
        record = cast(_ConnectionRecord, self._do_get())
        try:
            record.get_connection()  # connects a record that was invalidated or is new
        except BaseException as e:
            record.invalidate(e)
            self._do_return_conn(record)
            raise
        return record

    def give_back(self, record: ConnectionPoolEntry) -> None:
        """Return a lent connection, rolled back first as SQLAlchemy's reset on return does
        (nothing is sent for a connection in autocommit outside a transaction)."""
        dbapi_connection = record.dbapi_connection
        try:
            if dbapi_connection is not None:
                dbapi_connection.rollback()
        except cast(Dialect, self._dialect).loaded_dbapi.Error as e:
            record.invalidate(e)
        finally:
            self._do_return_conn(record)

    def dispose(self) -> None:
        """Close the idle connections, and those in use when they are given back."""
        with self._cond:
            self._disposed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
        for record in idle:
            record.close()

    def status(self) -> str:
        """A line for logs and errors."""
        return (
            f"ElasticPool size {self._size} overflow {self._overflow}: "
            f"{self.checkedin()} idle, {self.checkedout()} in use"
        )

    # ---- counts -----------------------------------------------------------------------------

    def size(self) -> int:
        """The most connections kept open while busy."""
        return self._size

    @property
    def overflow_limit(self) -> int:
        """The connections it may open beyond its size for a moment."""
        return self._overflow

    def checkedin(self) -> int:
        """Connections open and idle."""
        return len(self._idle)

    def checkedout(self) -> int:
        """Connections in use (or being opened)."""
        return self._open - len(self._idle)
