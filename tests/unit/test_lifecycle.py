"""The task state machine: exactly the allowed transitions, clear errors otherwise."""

from __future__ import annotations

import itertools
import uuid

import pytest

from clearq.errors import IllegalTransition
from clearq.models import TaskStatus as S
from clearq.scheduler.lifecycle import TRANSITIONS, can_transition, check_transition

REQUIRED = {
    (S.CREATED, S.QUEUED),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CREATED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.STOPPED),
    (S.COMPLETED, S.CREATED),
    (S.FAILED, S.CREATED),
    (S.STOPPED, S.CREATED),
}
# Beyond the required ones: requeue of a lost or given-back run, and a script run by hand;
# a task waiting on a parent that failed is skipped, and can be reset; a run by hand
# can leave its task as a draft (execute_remotely with no queue).
EXTRA = {
    (S.RUNNING, S.QUEUED),
    (S.CREATED, S.RUNNING),
    (S.CREATED, S.SKIPPED),
    (S.QUEUED, S.SKIPPED),
    (S.SKIPPED, S.CREATED),
    (S.RUNNING, S.CREATED),
}


def test_every_status_has_an_entry() -> None:
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize(("current", "target"), sorted(itertools.product(S, S)))
def test_transition_allowed_exactly_when_listed(current: S, target: S) -> None:
    allowed = (current, target) in REQUIRED | EXTRA
    assert can_transition(current, target) is allowed
    if allowed:
        check_transition(uuid.uuid4(), current, target)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(uuid.uuid4(), current, target)


def test_error_names_the_task_the_states_and_what_to_do() -> None:
    task_id = uuid.uuid4()
    with pytest.raises(IllegalTransition) as err:
        check_transition(task_id, S.COMPLETED, S.QUEUED)
    message = str(err.value)
    assert str(task_id) in message
    assert "completed" in message
    assert "queued" in message
    assert "reset" in message


def test_final_statuses() -> None:
    assert {s for s in S if s.is_final} == {S.COMPLETED, S.FAILED, S.STOPPED, S.SKIPPED}
