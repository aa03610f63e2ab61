"""The store's contract for schedules and triggers, on the in-memory twin, SQLite and PostgreSQL.

A schedule keeps one waiting clone in its queue; the claim that takes it fires the
schedule (the next clone waits for the next time); a trigger's clone waits until a task
reaches its status. Nothing here asserts timings: times are compared with the clock the
store reported, and waits are on conditions with generous deadlines.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput, NotFound
from clearq.models import Claim, ScheduleKind, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.testing import MemoryStore
from tests.contract.test_store_contract import BACKENDS

DEADLINE = 60.0


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store of each kind (as the store contract's fixture)."""
    settings = Settings(home=tmp_path / "home", lease_seconds=30)
    if request.param == "memory":
        yield MemoryStore(settings=settings)
        return
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = str(request.getfixturevalue("pg_url"))
    else:
        url = str(request.getfixturevalue("sqlite_url"))
    with Store(url, settings=settings) as store:
        yield store


def _task(store: Any, name: str = "nightly", project: str = "p", **spec: Any) -> uuid.UUID:
    task_id: uuid.UUID = store.tasks.create(TaskSpec(project=project, name=name, **spec)).id
    return task_id


def _claim_within(claim: Callable[[], list[Claim]], seconds: float = DEADLINE) -> Claim:
    deadline = time.monotonic() + seconds
    while True:
        claims = claim()
        if claims:
            assert len(claims) == 1
            return claims[0]
        assert time.monotonic() < deadline, "nothing became claimable"
        time.sleep(0.1)


def _waiting(store: Any, queue: str) -> list[uuid.UUID]:
    return [t.id for t in store.tasks.list(queue=queue, status=TaskStatus.QUEUED)]


def test_an_interval_schedule_waits_then_fires_a_clone_and_writes_the_next(
    any_store: Any,
) -> None:
    any_store.queues.create("cron")
    template = _task(any_store, parameters={"Args/lr": "0.1"})
    info = any_store.schedules.add(template, "cron", every_seconds=1, user="alice")
    assert (info.kind, info.every_seconds, info.fired, info.queue) == (
        ScheduleKind.EVERY,
        1.0,
        0,
        "cron",
    )
    assert info.next_at == info.created_at + timedelta(seconds=1)
    waiting = any_store.tasks.get(info.next_task_id)
    assert (waiting.status, waiting.parent_id, waiting.name) == (
        TaskStatus.QUEUED,
        template,
        "nightly",
    )
    assert waiting.parameters == {"Args/lr": "0.1"}
    assert waiting.user == "alice"

    claimer = any_store.claimer("w1", ["cron"])
    claim = _claim_within(claimer.claim)
    assert claim.task_id == info.next_task_id
    after = any_store.schedules.get(info.id)
    assert (after.fired, after.last_task_id) == (1, claim.task_id)
    assert after.next_task_id not in (None, claim.task_id)
    assert after.next_at is not None
    assert after.next_at > info.next_at
    assert _waiting(any_store, "cron") == [after.next_task_id]
    assert any_store.tasks.get(claim.task_id).status is TaskStatus.RUNNING


def test_missed_times_run_once_and_the_next_waits_for_a_time_ahead(any_store: Any) -> None:
    any_store.queues.create("cron")
    info = any_store.schedules.add(_task(any_store), "cron", every_seconds=1)
    time.sleep(3.5)  # no agent: three times pass
    claimer = any_store.claimer("w1", ["cron"])
    started = datetime.now(UTC)
    claim = _claim_within(claimer.claim)
    after = any_store.schedules.get(info.id)
    assert after.fired == 1
    assert claim.task_id == info.next_task_id
    # The next clone waits for the first time after the claim, not for the missed ones.
    assert after.next_at is not None
    assert after.next_at > started - timedelta(seconds=0.5)
    assert after.next_at >= info.created_at + timedelta(seconds=4)
    assert len(_waiting(any_store, "cron")) == 1


def test_a_cron_schedule_waits_for_the_next_whole_minute(any_store: Any) -> None:
    any_store.queues.create("cron")
    info = any_store.schedules.add(
        _task(any_store), "cron", cron="* * * * *", timezone="Europe/Berlin"
    )
    assert (info.kind, info.cron, info.timezone) == (
        ScheduleKind.CRON,
        "* * * * *",
        "Europe/Berlin",
    )
    assert info.next_at is not None
    assert (info.next_at.second, info.next_at.microsecond) == (0, 0)
    assert timedelta(0) < info.next_at - info.created_at <= timedelta(minutes=1)


def test_schedules_are_listed_and_removed_with_their_waiting_clone(any_store: Any) -> None:
    any_store.queues.create("cron")
    a = any_store.schedules.add(_task(any_store), "cron", every_seconds=3600, name="hourly")
    b = any_store.schedules.add(_task(any_store), "cron", cron="0 3 * * *")
    assert [s.id for s in any_store.schedules.list()] == [a.id, b.id]
    assert any_store.schedules.get(a.id).name == "hourly"
    removed = any_store.schedules.remove(a.id)
    assert removed.id == a.id
    assert [s.id for s in any_store.schedules.list()] == [b.id]
    with pytest.raises(NotFound):
        any_store.tasks.get(a.next_task_id)
    with pytest.raises(NotFound, match="clearq schedule list"):
        any_store.schedules.get(a.id)
    with pytest.raises(NotFound):
        any_store.schedules.remove(a.id)
    assert _waiting(any_store, "cron") == [b.next_task_id]


def test_bad_schedules_are_refused_saying_what_to_write(any_store: Any) -> None:
    any_store.queues.create("cron")
    template = _task(any_store)
    with pytest.raises(InvalidInput, match="either --every"):
        any_store.schedules.add(template, "cron", every_seconds=60, cron="* * * * *")
    with pytest.raises(InvalidInput, match="either --every"):
        any_store.schedules.add(template, "cron")
    with pytest.raises(InvalidInput, match="cron line"):
        any_store.schedules.add(template, "cron", cron="61 * * * *")
    with pytest.raises(InvalidInput, match="unknown time zone"):
        any_store.schedules.add(template, "cron", cron="0 3 * * *", timezone="Mars/Olympus")
    with pytest.raises(NotFound, match="clearq queue create"):
        any_store.schedules.add(template, "nowhere", every_seconds=60)
    with pytest.raises(NotFound):
        any_store.schedules.add(uuid.uuid4(), "cron", every_seconds=60)
    with pytest.raises(InvalidInput, match="runs or ends"):
        any_store.schedules.add_trigger(template, "cron", on_status=TaskStatus.QUEUED)
    assert any_store.schedules.list() == []
    assert _waiting(any_store, "cron") == []


def _run_to(store: Any, task_id: uuid.UUID, status: TaskStatus) -> None:
    """Enqueue, claim and end ``task_id`` as an agent would."""
    store.queues.enqueue(task_id, "work")
    claim = _claim_within(store.claimer("runner", ["work"]).claim, 10)
    assert claim.task_id == task_id
    store.leases.finish(claim.fence, status)


def test_a_trigger_fires_once_per_task_reaching_its_status(any_store: Any) -> None:
    for name in ("work", "eval"):
        any_store.queues.create(name)
    evaluate = _task(
        any_store, "evaluate", project="models", parameters={"Args/of": "${trigger.task.id}"}
    )
    info = any_store.schedules.add_trigger(
        evaluate, "eval", on_status=TaskStatus.COMPLETED, on_project="train"
    )
    assert (info.kind, info.on_status, info.on_project, info.next_at) == (
        ScheduleKind.TRIGGER,
        TaskStatus.COMPLETED,
        "train",
        None,
    )
    claimer = any_store.claimer("w1", ["eval"])
    assert claimer.claim() == []  # held until a task of "train" completes

    other_project = _task(any_store, "elsewhere", project="other")
    _run_to(any_store, other_project, TaskStatus.COMPLETED)
    failed = _task(any_store, "broken", project="train")
    _run_to(any_store, failed, TaskStatus.FAILED)
    assert claimer.claim() == []

    first, second = _task(any_store, "a", project="train"), _task(any_store, "b", project="train")
    _run_to(any_store, first, TaskStatus.COMPLETED)
    _run_to(any_store, second, TaskStatus.COMPLETED)
    assert any_store.schedules.get(info.id).pending_events == 2
    runs = [_claim_within(claimer.claim), _claim_within(claimer.claim)]
    assert [any_store.tasks.get(c.task_id).parameters["Args/of"] for c in runs] == [
        str(first),
        str(second),
    ]
    assert claimer.claim() == []  # both events ran; the next clone waits for a third
    after = any_store.schedules.get(info.id)
    assert (after.fired, after.pending_events) == (2, 0)
    assert after.next_task_id is not None
    assert after.next_task_id not in {c.task_id for c in runs}


def test_a_trigger_does_not_fire_on_its_own_clones(any_store: Any) -> None:
    for name in ("work", "eval"):
        any_store.queues.create(name)
    report = _task(any_store, "report", project="train")
    info = any_store.schedules.add_trigger(report, "eval", on_status=TaskStatus.COMPLETED)
    _run_to(any_store, _task(any_store, "a", project="train"), TaskStatus.COMPLETED)
    claimer = any_store.claimer("w1", ["eval"])
    claim = _claim_within(claimer.claim)
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED)  # a clone of report
    assert any_store.schedules.get(info.id).pending_events == 0
    assert claimer.claim() == []


def test_a_removed_trigger_takes_its_held_clone_with_it(any_store: Any) -> None:
    any_store.queues.create("eval")
    info = any_store.schedules.add_trigger(
        _task(any_store), "eval", on_status=TaskStatus.FAILED, on_project="train"
    )
    assert _waiting(any_store, "eval") == [info.next_task_id]
    any_store.schedules.remove(info.id)
    assert _waiting(any_store, "eval") == []
    assert any_store.schedules.list() == []


def test_a_tag_trigger_fires_when_a_task_gains_its_tag(any_store: Any) -> None:
    any_store.queues.create("deploy")
    deploy = _task(any_store, "deploy", project="ops", parameters={"Args/of": "${trigger.task.id}"})
    info = any_store.schedules.add_trigger(deploy, "deploy", on_tag="release", on_project="train")
    assert (info.on_tag, info.on_status) == ("release", None)
    claimer = any_store.claimer("w1", ["deploy"])
    tagged = _task(any_store, "model", project="train", tags=("candidate",))
    any_store.tasks.edit(tagged, tags=["candidate", "reviewed"])
    elsewhere = _task(any_store, "model", project="other")
    any_store.tasks.edit(elsewhere, tags=["release"])
    assert claimer.claim() == []  # no task of "train" gained "release" yet
    any_store.tasks.edit(tagged, tags=["candidate", "reviewed", "release"])
    any_store.tasks.edit(tagged, tags=["release", "reviewed"])  # kept, not gained again
    run = _claim_within(claimer.claim)
    assert any_store.tasks.get(run.task_id).parameters["Args/of"] == str(tagged)
    assert claimer.claim() == []
    with pytest.raises(InvalidInput, match=r"a status .* or a tag"):
        any_store.schedules.add_trigger(deploy, "deploy")
    with pytest.raises(InvalidInput, match=r"a status .* or a tag"):
        any_store.schedules.add_trigger(
            deploy, "deploy", on_status=TaskStatus.COMPLETED, on_tag="release"
        )
