"""Queue ordering logic that needs no database: rotation and interleaving."""

from __future__ import annotations

import uuid

import pytest

from clearq.errors import InvalidInput
from clearq.models import ClaimOrder
from clearq.scheduler.claim import Claimer, _interleave
from clearq.scheduler.engine import Database


@pytest.fixture
def db() -> Database:
    # The engine connects lazily: nothing here touches the file.
    return Database("sqlite:////nonexistent/never-opened.db")


def test_interleave_takes_one_from_each_queue_in_turn() -> None:
    a = [(1, uuid.uuid4(), "a"), (2, uuid.uuid4(), "a"), (3, uuid.uuid4(), "a")]
    b = [(4, uuid.uuid4(), "b")]
    c = [(5, uuid.uuid4(), "c"), (6, uuid.uuid4(), "c")]
    order = [entry[0] for entry in _interleave([a, b, c])]
    assert order == [1, 4, 5, 2, 6, 3]


def test_ranked_is_the_given_order_and_filters(db: Database) -> None:
    claimer = Claimer(db, worker="w", queues=["a", "b", "c"], lease_seconds=1)
    assert claimer.ranked() == ["a", "b", "c"]
    assert claimer.ranked(among=["c", "a"]) == ["a", "c"]


@pytest.mark.parametrize("queues", [[], ["a", "a"]])
def test_claimer_rejects_bad_queue_lists(db: Database, queues: list[str]) -> None:
    with pytest.raises(InvalidInput):
        Claimer(db, worker="w", queues=queues, order=ClaimOrder.ROUND_ROBIN, lease_seconds=1)
