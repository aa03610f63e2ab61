"""What the controllers and ``clearq task run`` use beyond the agent's ports, on the memory
twin, SQLite and PostgreSQL alike: cloning (``ports.ControllerTasks``), skipping and labels
(``ports.SkipPort``, the admin's ``annotate``), nodes asked at enqueue, and claiming one
named task (``ports.OneTaskStore.claim_task``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clearq.errors import IllegalTransition, InvalidInput, NotFound
from clearq.models import EnvSpec, Script, TaskSpec, TaskStatus
from tests.contract.test_store_contract import any_store  # noqa: F401 - the fixture


def _new(store: Any, name: str = "t", **spec: Any) -> uuid.UUID:
    task_id: uuid.UUID = store.tasks.create(TaskSpec(project="p", name=name, **spec)).id
    return task_id


def test_a_clone_is_a_draft_with_the_code_parameters_and_limits(any_store: Any) -> None:  # noqa: F811
    source = _new(
        any_store,
        "base",
        script=Script(source="print(1)", entry_point="run.py"),
        env=EnvSpec(requirements=("six",)),
        parameters={"General/lr": "0.1"},
        tags=("x",),
        comment="c",
        max_retries=2,
        max_run_seconds=30.0,
        environment={"A": "1"},
        nodes=2,
    )
    any_store.queues.create("q")
    any_store.queues.enqueue(source, "q")
    clone = any_store.tasks.clone(source)
    assert clone.id != source
    assert (clone.status, clone.name, clone.parent_id) == (
        TaskStatus.CREATED,
        "base (clone)",
        source,
    )
    assert clone.script.source == "print(1)"
    assert clone.env.requirements == ("six",)
    assert clone.parameters == {"General/lr": "0.1"}
    assert (clone.tags, clone.comment, clone.max_retries) == (("x",), "c", 2)
    assert (clone.max_run_seconds, clone.environment, clone.nodes) == (30.0, {"A": "1"}, 2)
    other = _new(any_store, "other")
    named = any_store.tasks.clone(source, name="trial 1", parent=other)
    assert (named.name, named.parent_id) == ("trial 1", other)
    with pytest.raises(NotFound):
        any_store.tasks.clone(uuid.uuid4())


def test_skipping_a_draft_skips_the_queued_tasks_waiting_on_it(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    held = _new(any_store, "held")
    parent = _new(any_store, "parent")
    any_store.queues.enqueue(parent, "q")
    child = _new(any_store, "child")
    any_store.queues.enqueue(child, "q", depends_on=[parent, held])
    grandchild = _new(any_store, "grandchild")
    any_store.queues.enqueue(grandchild, "q", depends_on=[child])
    tolerant = _new(any_store, "tolerant")
    any_store.queues.enqueue(tolerant, "q", depends_on=[held], continue_on_failure=True)
    assert set(any_store.admin.skip(held, "its callback said no")) == {child, grandchild}
    task = any_store.tasks.get(held)
    assert (task.status, task.status_reason) == (
        TaskStatus.SKIPPED,
        "skipped: its callback said no",
    )
    assert task.finished_at is not None
    assert any_store.tasks.get(child).status is TaskStatus.SKIPPED
    assert "'held'" in any_store.tasks.get(child).status_reason
    assert any_store.tasks.get(grandchild).status is TaskStatus.SKIPPED
    assert any_store.tasks.get(tolerant).status is TaskStatus.QUEUED
    claimed = any_store.claimer("w", ["q"]).claim(5)
    assert {c.task_id for c in claimed} == {parent, tolerant}
    with pytest.raises(IllegalTransition):
        any_store.admin.skip(parent, "running already")
    with pytest.raises(NotFound):
        any_store.admin.skip(uuid.uuid4(), "nobody")


def test_annotate_changes_labels_in_any_status_and_refuses_empty_names(any_store: Any) -> None:  # noqa: F811
    task_id = _new(any_store, "t", tags=("a",))
    done = any_store.admin.annotate(
        task_id, name="renamed", tags=["b", "b", "c"], comment="why", project="elsewhere"
    )
    assert (done.name, done.tags, done.comment, done.project) == (
        "renamed",
        ("b", "c"),
        "why",
        "elsewhere",
    )
    assert any_store.admin.annotate(task_id).name == "renamed"
    with pytest.raises(InvalidInput, match="name"):
        any_store.admin.annotate(task_id, name=" ")
    with pytest.raises(InvalidInput, match="project"):
        any_store.admin.annotate(task_id, project="")
    with pytest.raises(NotFound):
        any_store.admin.annotate(uuid.uuid4(), name="x")


def test_enqueue_records_the_nodes_asked_for(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    task_id = _new(any_store)
    with pytest.raises(InvalidInput, match="at least one node"):
        any_store.queues.enqueue(task_id, "q", nodes=0)
    assert any_store.queues.enqueue(task_id, "q", nodes=3).nodes == 3


def test_claiming_a_named_task_runs_it_or_says_why_not(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q", max_running=1)
    blocker = _new(any_store, "blocker")
    any_store.queues.enqueue(blocker, "q")
    assert [c.task_id for c in any_store.claimer("w", ["q"]).claim()] == [blocker]
    draft = _new(any_store, "draft")
    with pytest.raises(InvalidInput, match="not queued: enqueue it first"):
        any_store.claim_task("me", draft)
    with pytest.raises(NotFound):
        any_store.claim_task("me", uuid.uuid4())
    parent = _new(any_store, "parent")
    any_store.queues.enqueue(parent, "q")
    child = _new(any_store, "child")
    any_store.queues.enqueue(child, "q", depends_on=[parent])
    with pytest.raises(InvalidInput, match=f"waits for task {parent}"):
        any_store.claim_task("me", child)
    gang = _new(any_store, "gang")
    any_store.queues.enqueue(gang, "q", nodes=2)
    with pytest.raises(InvalidInput, match="2 nodes at once"):
        any_store.claim_task("me", gang)
    claim = any_store.claim_task("me", parent)  # a queue's cap does not hold it back
    assert (claim.task_id, claim.attempt, claim.worker, claim.queue) == (parent, 1, "me", "q")
    task = any_store.tasks.get(parent)
    assert (task.status, task.worker, task.attempt) == (TaskStatus.RUNNING, "me", 1)
    assert task.lease_expires_at is not None
    with pytest.raises(InvalidInput, match="already running on me"):
        any_store.claim_task("other", parent)
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    assert any_store.claim_task("me", child).task_id == child
