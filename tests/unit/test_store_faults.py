"""Riding out the database: error translation, libpq timeouts, outage reports, give-up times."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from clearq.config import Settings
from clearq.errors import ConnectionLost, SchemaError, StoreError, StoreUnavailable
from clearq.runtime.executor import Control
from clearq.runtime.outage import Outage, retry_while_held
from clearq.scheduler import engine
from clearq.scheduler.engine import pg_connect_args, translate
from clearq.scheduler.notify import Backoff

WHERE = "postgresql+psycopg://u@db/x"


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _operational(message: str, sqlstate: str | None = None, *, invalidated: bool = False) -> Any:
    return OperationalError(
        "SELECT 1", {}, _DriverError(message, sqlstate), connection_invalidated=invalidated
    )


def test_libpq_gets_every_timeout_as_a_named_setting() -> None:
    args = pg_connect_args(Settings())
    assert args["connect_timeout"] == "10"
    assert (args["keepalives"], args["keepalives_idle"], args["keepalives_count"]) == (
        "1",
        "10",
        "3",
    )
    assert args["tcp_user_timeout"] == "30000"
    assert args["options"] == (
        "-c statement_timeout=60000 -c idle_in_transaction_session_timeout=10000"
    )


def test_a_zero_timeout_is_not_sent_and_the_url_query_wins() -> None:
    settings = Settings(
        db_statement_timeout_seconds=0,
        db_idle_in_transaction_seconds=0,
        db_tcp_user_timeout_seconds=0,
    )
    args = pg_connect_args(settings, make_url("postgresql://u@h/db?connect_timeout=3"))
    assert "options" not in args
    assert "tcp_user_timeout" not in args
    assert "connect_timeout" not in args  # the URL's own value is used


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (
            _operational("terminating connection due to administrator command", "57P01"),
            ConnectionLost,
        ),
        (
            _operational("server closed the connection unexpectedly", invalidated=True),
            ConnectionLost,
        ),
        (_operational("consuming input failed"), ConnectionLost),
        (_operational("canceling statement due to statement timeout", "57014"), StoreUnavailable),
    ],
)
def test_postgres_driver_errors_become_store_errors(error: Any, kind: type[StoreError]) -> None:
    translated = translate(error, WHERE, postgres=True)
    assert type(translated) is kind
    assert WHERE in str(translated)


def test_sqlite_driver_errors_become_store_errors() -> None:
    locked = translate(_operational("database is locked"), "sqlite:///x.db", postgres=False)
    assert type(locked) is StoreUnavailable
    missing = translate(_operational("no such table: tasks"), "x", postgres=False)
    assert isinstance(missing, SchemaError)
    assert "clearq db upgrade" in str(missing)


def test_a_refused_statement_is_a_plain_store_error_not_an_outage() -> None:
    error = IntegrityError("INSERT", {}, _DriverError("duplicate key", "23505"))
    translated = translate(error, WHERE, postgres=True)
    assert type(translated) is StoreError
    assert not isinstance(translated, StoreUnavailable)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_reported_once_when_lost_and_once_when_back() -> None:
    said: list[str] = []
    clock = _Clock()
    outage = Outage("the database", said.append, clock=clock, wall=lambda: 0.0)
    outage.ok()
    for _ in range(5):
        outage.failed(ConnectionLost("server closed the connection"))
        clock.now += 1
    outage.ok()
    outage.ok()
    assert len(said) == 2
    assert said[0].startswith("lost the database at 1970-01-01 00:00:00 UTC: server closed")
    assert said[1] == (
        "the database is back at 1970-01-01 00:00:00 UTC after 5.0 s (5 failed calls retried)"
    )
    outage.failed(ConnectionLost("again"))
    assert len(said) == 3


def test_a_call_is_retried_through_an_outage_while_the_attempt_is_held() -> None:
    tries = itertools.count(1)

    def call() -> str:
        if next(tries) < 3:
            raise ConnectionLost("down")
        return "written"

    assert retry_while_held(call, lambda: True, pause=0) == "written"


def test_a_call_is_given_up_once_the_attempt_is_no_longer_held() -> None:
    def call() -> str:
        raise ConnectionLost("down")

    with pytest.raises(ConnectionLost):
        retry_while_held(call, lambda: False, pause=0)


def test_an_attempt_is_lost_once_its_give_up_time_passes() -> None:
    clock = _Clock()
    control = Control(hold_until=110.0, clock=clock)
    assert not control.lost
    control.renewed(105.0)  # an older renewal never shortens the hold
    clock.now = 109.9
    assert not control.lost
    clock.now = 110.0
    assert control.lost
    assert control.outlived
    assert control.interrupted
    control.renewed(120.0)
    assert not control.lost


def test_reconnect_delays_double_with_jitter_up_to_a_limit() -> None:
    backoff = Backoff(1.0, 4.0, rng=lambda: 1.0)
    assert [backoff.delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.delay() == 1.0
    low = Backoff(1.0, 4.0, rng=lambda: 0.0)
    assert low.delay() == 0.5


def test_a_call_from_before_the_recovery_does_not_open_a_new_outage() -> None:
    said: list[str] = []
    clock = _Clock()
    outage = Outage("the database", said.append, clock=clock, wall=lambda: 0.0)
    outage.failed(ConnectionLost("down"), started=100.0)
    clock.now = 103.0
    outage.ok(started=99.0)  # began before the outage: proves nothing
    assert not said[1:]
    outage.ok(started=102.0)
    assert len(said) == 2
    outage.failed(ConnectionLost("late"), started=101.5)  # in flight during the old outage
    assert len(said) == 2
    outage.failed(ConnectionLost("new"), started=104.0)
    assert len(said) == 3


def test_a_server_refusing_startup_options_is_connected_to_without_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engine, "_OPTIONS_REFUSED", False)
    calls: list[dict[str, str]] = []

    def connect(**kwargs: str) -> str:
        calls.append(kwargs)
        if "options" in kwargs:
            raise ConnectionError("FATAL: unsupported startup parameter: options")
        return "connected"

    args = {"options": "-c statement_timeout=1000", "connect_timeout": "2"}
    assert engine.connect_with_options(connect, args, ConnectionError) == "connected"
    assert engine.connect_with_options(connect, args, ConnectionError) == "connected"
    assert calls == [args, {"connect_timeout": "2"}, {"connect_timeout": "2"}]


def test_other_connection_failures_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "_OPTIONS_REFUSED", False)

    def connect(**kwargs: str) -> str:
        raise ConnectionError("connection refused")

    with pytest.raises(ConnectionError, match="refused"):
        engine.connect_with_options(connect, {"options": "-c x=1"}, ConnectionError)
