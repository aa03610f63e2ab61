"""An agent started before its database waits for it; one the database refuses stops."""

from __future__ import annotations

import pytest

from clearq.errors import ConnectionLost, SchemaError, StoreUnavailable
from clearq.runtime.outage import refused, when_reachable
from clearq.scheduler.notify import Backoff

pytestmark = pytest.mark.fast

DOWN = ConnectionLost(
    "cannot connect to postgresql+psycopg://u@db/x (connection failed: Connection refused)"
)


class Opener:
    """Fails with ``errors`` one after the other, then opens."""

    def __init__(self, *errors: Exception) -> None:
        self._errors = list(errors)
        self.tries = 0

    def __call__(self) -> str:
        self.tries += 1
        if self._errors:
            raise self._errors.pop(0)
        return "store"


def test_it_waits_through_an_unreachable_database_saying_so_once() -> None:
    said: list[str] = []
    pauses: list[float] = []
    opener = Opener(DOWN, DOWN, StoreUnavailable("database is locked"), DOWN)
    backoff = Backoff(1.0, 4.0, rng=lambda: 1.0)
    store = when_reachable(opener, said.append, backoff=backoff, sleep=pauses.append)
    assert store == "store"
    assert opener.tries == 5
    assert pauses == [1.0, 2.0, 4.0, 4.0]  # doubling, capped; jittered by rng
    assert len(said) == 2
    assert said[0].startswith("the database is unreachable at ")
    assert "Connection refused" in said[0]
    assert said[1].startswith("the database is reachable at ")
    assert "(4 failed tries); starting" in said[1]


def test_a_reachable_database_says_nothing() -> None:
    said: list[str] = []
    assert when_reachable(Opener(), said.append, sleep=pytest.fail) == "store"
    assert said == []


@pytest.mark.parametrize(
    "words",
    [
        'FATAL: password authentication failed for user "u"',
        'FATAL: role "u" does not exist',
        'FATAL: database "x" does not exist',
        'FATAL: no pg_hba.conf entry for host "10.0.0.1"',
        "unable to open database file",
    ],
)
def test_a_database_that_refuses_is_a_configuration_error_at_once(words: str) -> None:
    error = ConnectionLost(f"cannot connect to postgresql+psycopg://u@db/x ({words})")
    assert refused(error)
    opener = Opener(DOWN, error)
    with pytest.raises(ConnectionLost, match=words.split(":")[-1].strip()[:20]):
        when_reachable(opener, lambda text: None, sleep=lambda s: None)
    assert opener.tries == 2


def test_other_errors_are_not_waited_for() -> None:
    opener = Opener(SchemaError("the schema is at 0003; run clearq db upgrade"))
    with pytest.raises(SchemaError):
        when_reachable(opener, lambda text: None, sleep=pytest.fail)
    assert not refused(DOWN)
