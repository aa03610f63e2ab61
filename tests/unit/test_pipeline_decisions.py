"""The pipeline controllers' decisions, on the in-memory store, with a fake agent.

What a step's failure does to the steps after it, retries, caching by fingerprint,
resuming and rerunning a pipeline, held steps, and ``PipelineController``'s callbacks:
all of it is rows the controller writes and a claim reads, so the twin
(``clearq.testing``, kept honest by ``tests/contract``) and ``tests/unit/fake_agent``
stand in for the database and the agents. Real agents running real steps are
``tests/acceptance/test_pipeline.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from clearq.automation import Pipeline, PipelineController
from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.sdk.session import SESSION
from clearq.testing import MemoryStore
from tests.unit.fake_agent import Ending, FakeAgent

COMPLETED, FAILED, SKIPPED = TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The twin as the SDK's store (what ``Task.get_task`` and the controllers use)."""
    twin = MemoryStore(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    monkeypatch.setattr(SESSION, "store", twin)
    monkeypatch.setattr(SESSION, "records", None)
    monkeypatch.setattr(SESSION, "current", None)
    return twin


@pytest.fixture
def base(store: MemoryStore) -> uuid.UUID:
    spec = TaskSpec(
        project="p",
        name="base",
        script=Script(source="print(1)\n", entry_point="step.py"),
        parameters={"General/x": "1"},
    )
    return store.tasks.create(spec).id


def _failing(*names: str, first_attempt_only: bool = False) -> Any:
    def decide(task: Any) -> Ending:
        if task.name in names and (not first_attempt_only or task.attempt == 1):
            return Ending(FAILED, reason=f"{task.name} broke")
        return Ending()

    return decide


def _pipe(base: uuid.UUID, name: str = "pipe", **steps: dict[str, Any]) -> Pipeline:
    pipe = Pipeline(name, project="p", default_queue="q")
    for step, options in steps.items():
        pipe.add_step(step, base, **options)
    return pipe


def test_a_failed_step_skips_its_dependents_unless_they_continue_on_failure(
    store: MemoryStore, base: uuid.UUID
) -> None:
    pipe = _pipe(
        base,
        a={},
        b={"parents": ["a"]},
        d={"parents": ["b"]},
        c={"parents": ["a"], "continue_on_failure": True},
        lone={},
    ).start()
    agent = FakeAgent(store, decide=_failing("a"))
    agent.drain()
    statuses = pipe.wait(timeout=5)
    assert statuses == {"a": FAILED, "b": SKIPPED, "d": SKIPPED, "c": COMPLETED, "lone": COMPLETED}
    assert sorted(store.tasks.get(c.task_id).name for c in agent.ran) == ["a", "c", "lone"]
    b = store.tasks.get(pipe._tasks["b"])
    assert b.status_reason == f"skipped: task 'a' ({pipe._tasks['a']}) it depends on failed"


def test_a_step_with_retries_runs_again_before_its_children(
    store: MemoryStore, base: uuid.UUID
) -> None:
    pipe = _pipe(base, flaky={"max_retries": 1}, after={"parents": ["flaky"]}, brittle={}).start()
    agent = FakeAgent(store, decide=_failing("flaky", "brittle", first_attempt_only=True))
    agent.drain()
    assert pipe.wait(timeout=5) == {"flaky": COMPLETED, "after": COMPLETED, "brittle": FAILED}
    order = [store.tasks.get(c.task_id).name for c in agent.ran]
    assert order.count("flaky") == 2
    assert order.index("after") > max(i for i, n in enumerate(order) if n == "flaky")
    assert store.tasks.get(pipe._tasks["flaky"]).attempt == 2


def test_a_cached_step_reuses_a_completed_task_with_the_same_fingerprint(
    store: MemoryStore, base: uuid.UUID
) -> None:
    agent = FakeAgent(store)
    first = _pipe(base, "first", prep={"cache_executed_step": True}).start()
    agent.drain()
    done = first._tasks["prep"]
    again = _pipe(base, "second", prep={"cache_executed_step": True}).start()
    assert again._tasks["prep"] == done
    assert agent.drain() == 0  # nothing to run: the cached task stands
    assert again.wait(timeout=5) == {"prep": COMPLETED}
    changed = {"cache_executed_step": True, "parameter_override": {"General/x": 2}}
    other = _pipe(base, "third", prep=changed).start()
    assert other._tasks["prep"] != done
    uncached = _pipe(base, "fourth", prep={}).start()
    assert uncached._tasks["prep"] != done
    forced = _pipe(base, "fifth", prep={"cache_executed_step": True}).start(force=True)
    assert forced._tasks["prep"] != done
    assert agent.drain() == 3


def test_a_cached_step_downstream_of_a_changed_parent_runs_again(
    store: MemoryStore, base: uuid.UUID
) -> None:
    agent = FakeAgent(store)
    cached = {"cache_executed_step": True}
    first = _pipe(base, "one", up=cached, down={**cached, "parents": ["up"]}).start()
    agent.drain()
    changed = {**cached, "parameter_override": {"General/x": 5}}
    second = _pipe(base, "two", up=changed, down={**cached, "parents": ["up"]}).start()
    assert second._tasks["up"] != first._tasks["up"]
    assert second._tasks["down"] != first._tasks["down"]  # its input's key changed


def test_starting_an_unfinished_pipeline_again_keeps_what_completed(
    store: MemoryStore, base: uuid.UUID
) -> None:
    agent = FakeAgent(store, decide=_failing("b"))
    steps = {"a": {}, "b": {"parents": ["a"]}, "c": {"parents": ["b"]}}
    first = _pipe(base, **steps).start()
    agent.drain()
    assert first.wait(timeout=5) == {"a": COMPLETED, "b": FAILED, "c": SKIPPED}
    agent.decide = lambda task: Ending()
    again = _pipe(base, **steps).start()
    assert again.id == first.id
    assert again._tasks == first._tasks
    agent.ran.clear()
    agent.drain()
    assert [store.tasks.get(c.task_id).name for c in agent.ran] == ["b", "c"]
    assert again.wait(timeout=5) == {"a": COMPLETED, "b": COMPLETED, "c": COMPLETED}
    assert _pipe(base, **steps).start().id != first.id  # a finished run: the next is new


def test_rerun_runs_a_step_and_its_descendants_only(store: MemoryStore, base: uuid.UUID) -> None:
    agent = FakeAgent(store)
    pipe = _pipe(base, a={}, b={"parents": ["a"]}, c={"parents": ["b"]}, side={}).start()
    agent.drain()
    agent.ran.clear()
    pipe.rerun("b")
    agent.drain()
    assert sorted(store.tasks.get(c.task_id).name for c in agent.ran) == ["b", "c"]
    assert set(pipe.wait(timeout=5).values()) == {COMPLETED}


def test_a_held_step_waits_a_draft_until_released_or_skipped(
    store: MemoryStore, base: uuid.UUID
) -> None:
    pipe = _pipe(
        base,
        held={"hold": True},
        after_held={"parents": ["held"]},
        gate={"hold": True},
        after_gate={"parents": ["gate"]},
    ).start()
    assert store.tasks.get(pipe._tasks["held"]).status is TaskStatus.CREATED
    agent = FakeAgent(store)
    assert agent.drain() == 0  # both held, their children wait
    pipe.skip("held", "its callback said no")
    pipe.release("gate", {"General/x": 7})
    assert store.tasks.get(pipe._tasks["gate"]).parameters["General/x"] == "7"
    agent.drain()
    assert pipe.wait(timeout=5) == {
        "held": SKIPPED,
        "after_held": SKIPPED,
        "gate": COMPLETED,
        "after_gate": COMPLETED,
    }
    assert store.tasks.get(pipe._tasks["held"]).status_reason == "skipped: its callback said no"


def test_a_controllers_pre_execute_callback_can_skip_a_step_and_post_execute_sees_the_rest(
    store: MemoryStore, base: uuid.UUID
) -> None:
    seen: list[tuple[str, str | None]] = []

    def pre(controller: PipelineController, node: Any, parameters: dict[str, Any]) -> bool:
        if node.name == "b":
            return False
        parameters["General/x"] = "42"
        return True

    def post(controller: PipelineController, node: Any) -> None:
        seen.append((node.name, node.status))

    pipe = PipelineController(name="ctl", project="p", pool_frequency=0.001)
    pipe.set_default_execution_queue("q")
    pipe.add_step("a", base_task_id=str(base), post_execute_callback=post)
    pipe.add_step("b", base_task_id=str(base), parents=["a"], pre_execute_callback=pre)
    pipe.add_step("c", base_task_id=str(base), parents=["b"], post_execute_callback=post)
    pipe.add_step("d", base_task_id=str(base), parents=["a"], pre_execute_callback=pre)
    FakeAgent(store).beside(pipe.start_locally, pipe.stop)
    dag = pipe.get_pipeline_dag()
    assert {n: node.status for n, node in dag.items()} == {
        "a": "completed",
        "b": "skipped",
        "c": "skipped",
        "d": "completed",
    }
    assert dag["d"].parameters["General/x"] == "42"  # what pre_execute changed went in
    assert seen == [("a", "completed")]  # a skipped step gets no post_execute
    assert not pipe.is_successful()


def test_a_controller_that_aborts_on_failure_stops_the_steps_still_waiting(
    store: MemoryStore, base: uuid.UUID
) -> None:
    pipe = PipelineController(
        name="strict", project="p", pool_frequency=0.001, abort_on_failure=True
    )
    pipe.set_default_execution_queue("q")
    pipe.add_step("a", base_task_id=str(base))
    pipe.add_step("b", base_task_id=str(base), parents=["a"], pre_execute_callback=lambda *a: True)
    pipe.add_step("other", base_task_id=str(base), pre_execute_callback=lambda *a: True)
    agent = FakeAgent(store, decide=_failing("a"))
    agent.beside(pipe.start_locally, pipe.stop)
    statuses = {n: node.status for n, node in pipe.get_pipeline_dag().items()}
    assert statuses["a"] == "failed"
    assert statuses["b"] == "created"  # held, never released: the pipeline stopped first
    assert "b" not in {store.tasks.get(c.task_id).name for c in agent.ran}
