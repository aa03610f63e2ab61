"""The store's contract: what every implementation of the ports must do, tested on each.

The same tests run on the in-memory twin (``clearq.testing.MemoryStore``), on SQLite and
on PostgreSQL, so the twin that the agent's, executor's and controllers' unit tests use
cannot drift from the real store without one of these failing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.errors import AlreadyExists, IllegalTransition, InvalidInput, LeaseLost, NotFound
from clearq.models import (
    STEP_KEY_PREFIX,
    ClaimOrder,
    RunResult,
    ScalarPoint,
    TaskSpec,
    TaskStatus,
    WorkerCommand,
    WorkerMetrics,
    WorkerState,
)
from clearq.scheduler import Store
from clearq.testing import MemoryStore

BACKENDS = ("memory", "sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store of each kind, with a short lease."""
    settings = Settings(home=tmp_path / "home", lease_seconds=0.5, worker_gone_seconds=0.5)
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


def _new(store: Any, name: str = "t", **spec: Any) -> uuid.UUID:
    task_id: uuid.UUID = store.tasks.create(TaskSpec(project="p", name=name, **spec)).id
    return task_id


def _queued(store: Any, queue: str, name: str = "t", **kw: Any) -> uuid.UUID:
    task_id = _new(store, name)
    store.queues.enqueue(task_id, queue, **kw)
    return task_id


def _until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_tasks_are_created_read_listed_and_edited(any_store: Any) -> None:
    a = _new(any_store, "a", tags=("x",), parameters={"General/lr": "0.1"})
    b = _new(any_store, "b")
    task = any_store.tasks.get(a)
    assert (task.status, task.attempt, task.tries, task.parameters) == (
        TaskStatus.CREATED,
        0,
        0,
        {"General/lr": "0.1"},
    )
    assert {t.id for t in any_store.tasks.list(project="p")} == {a, b}
    assert [t.id for t in any_store.tasks.list(tags=["x"])] == [a]
    assert any_store.tasks.edit(a, name="a2", comment="c").name == "a2"
    merged = any_store.tasks.update_parameters(a, {"General/epochs": "3"})
    assert merged.parameters == {"General/lr": "0.1", "General/epochs": "3"}
    with pytest.raises(NotFound):
        any_store.tasks.get(uuid.uuid4())
    with pytest.raises(InvalidInput, match="at least 1"):
        any_store.tasks.edit(a, max_attempts=0)


def test_a_task_keeps_who_made_it_and_lists_filter_by_it(any_store: Any) -> None:
    a = _new(any_store, "a", user="carol")
    _new(any_store, "b", user="dave")
    assert any_store.tasks.get(a).user == "carol"
    assert [t.id for t in any_store.tasks.list(user="carol")] == [a]
    assert any_store.tasks.list(user="erin") == []


def test_a_tasks_own_environment_is_kept_replaced_and_checked(any_store: Any) -> None:
    a = _new(any_store, "a", environment={"HF_HOME": "/data"})
    assert any_store.tasks.get(a).environment == {"HF_HOME": "/data"}
    assert any_store.tasks.edit(a, environment={"B": "2"}).environment == {"B": "2"}
    assert any_store.tasks.edit(a, environment={}).environment == {}
    with pytest.raises(InvalidInput, match="set by the agent only"):
        any_store.tasks.edit(a, environment={"CLEARQ_HOME": "/x"})


def test_queues_refuse_duplicates_and_unknown_names(any_store: Any) -> None:
    any_store.queues.create("q")
    with pytest.raises(AlreadyExists):
        any_store.queues.create("q")
    with pytest.raises(InvalidInput):
        any_store.queues.create(" q ")
    with pytest.raises(NotFound, match="clearq queue create"):
        any_store.queues.enqueue(_new(any_store), "nope")
    task_id = _queued(any_store, "q")
    with pytest.raises(IllegalTransition):
        any_store.queues.enqueue(task_id, "q")
    [info] = any_store.queues.list()
    assert (info.name, info.length) == ("q", 1)
    assert any_store.queues.dequeue(task_id).status is TaskStatus.CREATED
    assert any_store.queues.list()[0].length == 0


def test_a_claim_takes_by_priority_then_fifo_and_starts_an_attempt(any_store: Any) -> None:
    any_store.queues.create("q")
    low = _queued(any_store, "q", "low")
    high = _queued(any_store, "q", "high", priority=5)
    later = _queued(any_store, "q", "later")
    claimer = any_store.claimer("w", ["q"])
    claims = claimer.claim(3)
    assert [c.task_id for c in claims] == [high, low, later]
    task = any_store.tasks.get(high)
    assert (task.status, task.worker, task.attempt, task.tries) == (TaskStatus.RUNNING, "w", 1, 1)
    assert task.lease_expires_at is not None
    assert claimer.claim() == []


def test_strict_and_round_robin_orders_across_queues(any_store: Any) -> None:
    for q in ("a", "b"):
        any_store.queues.create(q)
    a1, a2 = _queued(any_store, "a", "a1"), _queued(any_store, "a", "a2")
    b1 = _queued(any_store, "b", "b1")
    strict = any_store.claimer("s", ["a", "b"])
    assert [c.task_id for c in strict.claim()] == [a1]
    robin = any_store.claimer("r", ["a", "b"], order=ClaimOrder.ROUND_ROBIN)
    assert [c.task_id for c in robin.claim()] == [a2]
    assert [c.queue for c in robin.claim()] == ["b"]
    assert any_store.tasks.get(b1).status is TaskStatus.RUNNING


def test_heartbeats_hold_lose_and_carry_stop_requests(any_store: Any) -> None:
    any_store.queues.create("q")
    _queued(any_store, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    beat = any_store.leases.heartbeat("w", [claim.fence])
    assert (beat.held, beat.lost, beat.stop_requested) == ({claim.task_id}, set(), set())
    any_store.leases.request_stop(claim.task_id)
    assert any_store.leases.heartbeat("w", [claim.fence]).stop_requested == {claim.task_id}
    other = claim.fence.model_copy(update={"worker": "someone-else"})
    assert any_store.leases.heartbeat("w", [other]).lost == {claim.task_id}


def test_finishing_ends_the_attempt_once(any_store: Any) -> None:
    any_store.queues.create("q")
    _queued(any_store, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    task = any_store.tasks.get(claim.task_id)
    assert (task.status, task.exit_code, task.lease_expires_at) == (TaskStatus.COMPLETED, 0, None)
    with pytest.raises(LeaseLost, match="no longer current"):
        any_store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=1)
    with pytest.raises(InvalidInput):
        any_store.leases.finish(claim.fence, TaskStatus.RUNNING)
    assert any_store.leases.finish_many(
        [RunResult(fence=claim.fence, status=TaskStatus.COMPLETED)]
    ) == {claim.task_id}


def test_a_failure_with_retries_left_goes_back_to_the_front(any_store: Any) -> None:
    any_store.queues.create("q")
    flaky = _new(any_store, "flaky", max_retries=1)
    any_store.queues.enqueue(flaky, "q")
    claimer = any_store.claimer("w", ["q"])
    [first] = claimer.claim()
    _queued(any_store, "q", "behind")
    any_store.leases.finish(first.fence, TaskStatus.FAILED, exit_code=2, reason="boom")
    task = any_store.tasks.get(flaky)
    assert task.status is TaskStatus.QUEUED
    assert task.status_reason == "retry 1 of 1 after attempt 1: boom"
    [again] = claimer.claim()
    assert (again.task_id, again.attempt) == (flaky, 2)
    any_store.leases.finish(again.fence, TaskStatus.FAILED, exit_code=2, reason="boom")
    assert any_store.tasks.get(flaky).status is TaskStatus.FAILED


def test_children_wait_for_parents_and_are_skipped_when_one_fails(any_store: Any) -> None:
    any_store.queues.create("q")
    parent = _queued(any_store, "q", "parent")
    child = _queued(any_store, "q", "child", depends_on=[parent])
    grandchild = _queued(any_store, "q", "grandchild", depends_on=[child])
    claimer = any_store.claimer("w", ["q"])
    [claim] = claimer.claim(3)
    assert claim.task_id == parent
    lone = _new(any_store, "lone")
    with pytest.raises(InvalidInput, match="itself"):
        any_store.queues.enqueue(lone, "q", depends_on=[lone])
    any_store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=1, reason="x")
    assert any_store.tasks.get(child).status is TaskStatus.SKIPPED
    assert "'parent'" in any_store.tasks.get(child).status_reason
    assert any_store.tasks.get(grandchild).status is TaskStatus.SKIPPED
    assert claimer.claim() == []


def test_a_completed_parent_frees_its_child(any_store: Any) -> None:
    any_store.queues.create("q")
    parent = _queued(any_store, "q", "parent")
    child = _queued(any_store, "q", "child", depends_on=[parent])
    claimer = any_store.claimer("w", ["q"])
    [claim] = claimer.claim(2)
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    assert [c.task_id for c in claimer.claim()] == [child]


def test_requeue_goes_to_the_front_and_counts_infrastructure_failures(any_store: Any) -> None:
    any_store.queues.create("q")
    first = _new(any_store, "first", max_attempts=1)
    any_store.queues.enqueue(first, "q")
    claimer = any_store.claimer("w", ["q"])
    [claim] = claimer.claim()
    _queued(any_store, "q", "second")
    back = any_store.leases.requeue(claim.fence, reason="shutting down")
    assert back.status is TaskStatus.QUEUED
    assert "shutting down" in back.status_reason
    [again] = claimer.claim()
    assert again.task_id == first
    failed = any_store.leases.requeue(again.fence, reason="no network", infra=True)
    assert failed.status is TaskStatus.FAILED
    assert "attempts are spent" in failed.status_reason


def test_an_expired_lease_is_reaped(any_store: Any) -> None:
    any_store.queues.create("q")
    task_id = _new(any_store, max_attempts=2)
    any_store.queues.enqueue(task_id, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    reaped: list[uuid.UUID] = []
    _until(lambda: bool(reaped.extend(any_store.leases.reap().requeued) or reaped))
    assert reaped == [task_id]
    assert any_store.tasks.get(task_id).status is TaskStatus.QUEUED
    with pytest.raises(LeaseLost):
        any_store.outputs.append_logs(claim.fence, [("stdout", "late\n")])


def test_anything_ready_is_false_exactly_when_a_claim_now_would_take_nothing(
    any_store: Any,
) -> None:
    any_store.queues.create("q")
    any_store.queues.create("other")
    claimer = any_store.claimer("w", ["q"])
    both = any_store.claimer("w2", ["q", "other"])
    assert claimer.anything_ready() is False
    elsewhere = _queued(any_store, "other", "elsewhere")
    assert claimer.anything_ready() is False  # another queue's entry
    assert both.anything_ready() is True
    assert both.anything_ready(among=["q"]) is False
    child = _new(any_store, "child")
    any_store.queues.enqueue(child, "q", depends_on=[elsewhere])  # waits for its parent
    flaky = _new(any_store, "flaky", max_retries=1, retry_delay_seconds=3600)
    any_store.queues.enqueue(flaky, "q")
    assert claimer.anything_ready() is True
    [claim] = claimer.claim()
    assert claim.task_id == flaky
    any_store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=1)  # back in an hour
    assert any_store.tasks.get(flaky).status is TaskStatus.QUEUED
    assert claimer.anything_ready() is False  # a delayed retry and a waiting child
    assert claimer.claim() == []
    plain = _queued(any_store, "q", "plain")
    assert claimer.anything_ready() is True
    assert [c.task_id for c in claimer.claim()] == [plain]
    assert claimer.anything_ready() is False


def test_an_idle_agents_sample_is_its_heartbeat_and_a_reaper_counts_the_active(
    any_store: Any,
) -> None:
    for wid in ("h:a", "h:b", "h:c"):
        any_store.workers.register(wid, host="h", pid=None, queues=["q"])
    _until(lambda: any_store.leases.reap().active_workers == 0)  # silent 0.5 s: all gone
    before = any_store.workers.get("h:a").last_seen
    any_store.workers.record_metrics("h:a", WorkerMetrics(cpu_percent=7), seen=["h:a", "h:b"])
    states = {w.id: w.state for w in any_store.workers.list()}
    assert states == {"h:a": WorkerState.ACTIVE, "h:b": WorkerState.ACTIVE, "h:c": WorkerState.GONE}
    assert any_store.workers.get("h:a").last_seen > before
    any_store.workers.record_metrics("h:c", WorkerMetrics(cpu_percent=8))  # no heartbeat
    assert any_store.workers.get("h:c").state is WorkerState.GONE

    def two_counted() -> bool:  # a pass within 0.5 s of the beat sees the two it revived
        any_store.workers.record_metrics("h:a", WorkerMetrics(), seen=["h:a", "h:b"])
        return bool(any_store.leases.reap().active_workers == 2)

    _until(two_counted)


def test_outputs_are_fenced_ordered_and_summarised(any_store: Any) -> None:
    any_store.queues.create("q")
    _queued(any_store, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    any_store.outputs.append_logs(claim.fence, [("stdout", "a\n"), ("stderr", "b\n")])
    any_store.outputs.append_logs(claim.fence, [("stdout", "c\n")])
    lines = any_store.outputs.logs(claim.task_id)
    assert [(x.stream, x.text, x.attempt) for x in lines] == [
        ("stdout", "a\n", 1),
        ("stderr", "b\n", 1),
        ("stdout", "c\n", 1),
    ]
    assert [x.text for x in any_store.outputs.logs(claim.task_id, after=lines[1].seq)] == ["c\n"]
    with pytest.raises(InvalidInput, match="unknown log streams"):
        any_store.outputs.append_logs(claim.fence, [("video", "x")])
    points = [
        ScalarPoint(title="loss", series="train", iteration=i, value=v)
        for i, v in enumerate([3.0, 1.0, 2.0])
    ]
    any_store.outputs.append_scalars(claim.fence, points[:2])
    any_store.outputs.append_scalars(claim.fence, points[2:])
    assert any_store.outputs.scalars(claim.task_id) == points
    [summary] = any_store.outputs.summary(claim.task_id)
    assert (summary.last, summary.min, summary.max, summary.last_iteration) == (2.0, 1.0, 3.0, 2)


def test_reset_makes_a_draft_and_forgets_outputs(any_store: Any) -> None:
    any_store.queues.create("q")
    _queued(any_store, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    any_store.outputs.append_logs(claim.fence, [("stdout", "x\n")])
    with pytest.raises(IllegalTransition):
        any_store.tasks.reset(claim.task_id)
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    task = any_store.tasks.reset(claim.task_id)
    assert (task.status, task.attempt) == (TaskStatus.CREATED, 1)
    assert any_store.outputs.logs(claim.task_id) == []


def test_a_running_attempt_writes_its_parameters_runtime_and_references(any_store: Any) -> None:
    any_store.queues.create("q")
    record = _new(any_store, "pipeline")
    first = _new(any_store, "first", parent_id=record)
    step = _new(any_store, "step", parent_id=record, parameters={"General/up": "${first.id}"})
    any_store.tasks.update_parameters(record, {f"{STEP_KEY_PREFIX}first": str(first)})
    any_store.queues.enqueue(step, "q")
    [claim] = any_store.claimer("w", ["q"]).claim()
    assert any_store.tasks.resolve_references(claim.fence) == {"General/up": str(first)}
    any_store.tasks.update_parameters(step, {"General/lr": "1"}, fence=claim.fence)
    any_store.tasks.update_runtime(claim.fence, {"host": "h"})
    task = any_store.tasks.get(step)
    assert task.parameters == {"General/up": str(first), "General/lr": "1"}
    assert task.runtime == {"host": "h"}
    with pytest.raises(InvalidInput, match="only a draft"):
        any_store.tasks.update_parameters(step, {"General/lr": "2"})


def test_workers_register_and_go(any_store: Any) -> None:
    info = any_store.workers.register("h:w", host="h", pid=1, queues=["q"], gpus=["0"])
    assert (info.id, info.queues, info.gpus) == ("h:w", ("q",), ("0",))
    assert [w.id for w in any_store.workers.list()] == ["h:w"]
    any_store.workers.unregister("h:w")
    assert any_store.workers.list() == []


def test_an_operators_command_reaches_an_agents_rows_until_resumed_or_re_registered(
    any_store: Any,
) -> None:
    workers = any_store.workers
    for worker_id in ("h:a:1", "h:a:2", "h:b", "g:b"):
        workers.register(worker_id, host=worker_id.split(":")[0], pid=1, queues=["q"])
    assert workers.command(["h:a:1", "h:a:2"]) is None
    assert workers.set_command("h:a", WorkerCommand.PAUSE) == ["h:a:1", "h:a:2"]
    assert workers.command(["h:a:1", "h:a:2"]) is WorkerCommand.PAUSE
    assert workers.get("h:a:2").command is WorkerCommand.PAUSE
    assert workers.get("h:b").command is None
    workers.set_command("h:a:2", WorkerCommand.DRAIN)
    assert workers.command(["h:a:1", "h:a:2"]) is WorkerCommand.DRAIN  # drain wins
    any_store.leases.heartbeat("h:a:1")
    assert workers.get("h:a:1").command is WorkerCommand.PAUSE  # a heartbeat keeps it
    assert workers.set_command("a", None) == ["h:a:1", "h:a:2"]
    assert workers.command(["h:a:1", "h:a:2"]) is None
    with pytest.raises(InvalidInput, match="several hosts"):
        workers.set_command("b", WorkerCommand.DRAIN)
    with pytest.raises(NotFound, match="no worker 'nobody'"):
        workers.set_command("nobody", WorkerCommand.DRAIN)
    workers.set_command("g:b", WorkerCommand.DRAIN)
    workers.register("g:b", host="g", pid=2, queues=["q"])
    assert workers.get("g:b").command is None  # a restarted agent serves again
    assert workers.command([]) is None


def test_a_queue_has_a_description_and_tags_that_can_be_edited(any_store: Any) -> None:
    made = any_store.queues.create("gpu", description="A100 boxes", tags=["a100", "fast", "a100"])
    assert (made.description, made.tags) == ("A100 boxes", ("a100", "fast"))
    edited = any_store.queues.edit("gpu", tags=["slow"])
    assert (edited.description, edited.tags) == ("A100 boxes", ("slow",))
    cleared = any_store.queues.edit("gpu", description="", tags=[])
    assert (cleared.description, cleared.tags) == ("", ())
    assert any_store.queues.create("plain").tags == ()
    assert [(q.name, q.tags) for q in any_store.queues.list()] == [("gpu", ()), ("plain", ())]
    with pytest.raises(InvalidInput, match="queue tag ' x' is empty or has surrounding spaces"):
        any_store.queues.edit("gpu", tags=[" x"])
    with pytest.raises(NotFound, match="no queue named 'nope'"):
        any_store.queues.edit("nope", description="d")


def test_moving_a_queued_task_to_the_front_the_back_or_another_queue(any_store: Any) -> None:
    any_store.queues.create("q")
    any_store.queues.create("other")
    a = _queued(any_store, "q", "a", priority=2)
    b = _queued(any_store, "q", "b")
    c = _queued(any_store, "q", "c")
    any_store.queues.move_to_front(c)
    any_store.queues.move_to_back(a)
    waiting = _queued(any_store, "other", "waiting", priority=5)
    moved = any_store.queues.move_to_queue(b, "other")
    assert (moved.status, moved.queue) == (TaskStatus.QUEUED, "other")
    assert [x.task_id for x in any_store.claimer("w", ["q"]).claim(3)] == [c, a]
    assert [x.task_id for x in any_store.claimer("w", ["other"]).claim(3)] == [waiting, b]
    with pytest.raises(InvalidInput, match="only a queued task"):
        any_store.queues.move_to_front(a)


def test_the_workers_serving_a_queue_are_the_live_ones(any_store: Any) -> None:
    workers = any_store.workers
    workers.register("h:a", host="h", pid=1, queues=["q", "r"])
    workers.register("h:b", host="h", pid=2, queues=["r"])
    assert [w.id for w in workers.serving("q")] == ["h:a"]
    assert [w.id for w in workers.serving("r")] == ["h:a", "h:b"]
    workers.set_command("h:a", WorkerCommand.PAUSE)
    assert [w.command for w in workers.serving("q")] == [WorkerCommand.PAUSE]
    seen = {w.id: w.last_seen for w in workers.list()}
    time.sleep(0.7)  # past this store's 0.5 s lease: not heard from, so not live
    assert workers.serving("q") == []
    any_store.leases.heartbeat(["h:a", "h:b"])  # an agent's rows, beaten at once
    assert all(w.last_seen > seen[w.id] for w in workers.list())


def test_a_stop_request_carries_its_reason_and_force_ends_the_attempt_now(any_store: Any) -> None:
    any_store.queues.create("q")
    _queued(any_store, "q", "a")
    _queued(any_store, "q", "b")
    [a, b] = any_store.claimer("w", ["q"]).claim(2)
    any_store.leases.request_stop(a.task_id, reason="budget spent")
    beat = any_store.leases.heartbeat("w", [a.fence, b.fence])
    assert beat.stop_requested == {a.task_id}
    assert beat.stop_reasons == {a.task_id: "stop requested: budget spent"}
    forced = any_store.leases.request_stop(b.task_id, reason="now", force=True)
    assert forced.status is TaskStatus.STOPPED
    assert forced.status_reason == "stop requested: now (forced)"
    assert any_store.leases.heartbeat("w", [b.fence]).lost == {b.task_id}
    with pytest.raises(InvalidInput, match="not running"):
        any_store.leases.request_stop(b.task_id, force=True)
