"""Agents apply the store's retention themselves (``CLEARQ_RETENTION_*``), taking turns:
real ``clearq agent`` processes on SQLite and PostgreSQL (``runtime.housekeeping``)."""

from __future__ import annotations

import time
import uuid

import sqlalchemy as sa

from clearq.models import ScalarPoint, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import chores
from tests.acceptance.conftest import AGENT_WAIT_SECONDS, Agents

SHORT = {
    # About 1 s: everything written before the agents start is old by then.
    "CLEARQ_RETENTION_LOGS_DAYS": "0.00001",
    "CLEARQ_RETENTION_METRICS_DAYS": "0.00001",
    "CLEARQ_RETENTION_ARCHIVED_DAYS": "0.00001",
    "CLEARQ_RETENTION_EVERY_SECONDS": "3600",
}


def _ended(store: Store, name: str) -> uuid.UUID:
    """A completed task with two log lines and a scalar point, run through queue ``q``."""
    task_id = store.tasks.create(TaskSpec(project="p", name=name)).id
    store.queues.enqueue(task_id, "q")
    [claim] = store.claimer("someone", ["q"]).claim(among=["q"])
    store.outputs.append_logs(claim.fence, [("stdout", "one\n"), ("stdout", "two\n")])
    point = ScalarPoint(title="loss", series="train", iteration=1, value=0.5)
    store.outputs.append_scalars(claim.fence, [point])
    store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    return task_id


def _said(agents: Agents, index: int) -> str:
    return next((ln for ln in agents.output(index).splitlines() if "retention:" in ln), "")


def test_an_agent_applies_the_retention_settings_itself(store: Store, agents: Agents) -> None:
    store.queues.create("q")
    store.queues.create("idle")
    ended = _ended(store, "ended")
    archived = _ended(store, "archived")
    store.cleanup.archive([archived])
    running = store.tasks.create(TaskSpec(project="p", name="running")).id
    store.queues.enqueue(running, "q")
    [claim] = store.claimer("someone", ["q"]).claim(among=["q"])
    store.outputs.append_logs(claim.fence, [("stdout", "still running\n")])
    time.sleep(1.5)  # past the retention of about 1 s

    agents.start("--queue", "idle", env=SHORT)
    out = agents.wait_for_output(0, "retention: removed")
    # Both ended tasks' lines and points (the archived one's go first), then that task.
    assert "removed 4 log line(s), 2 scalar point(s)" in out, out
    assert "1 long-archived task(s)" in out, out
    assert store.outputs.logs(ended) == []
    assert store.outputs.scalars(ended) == []
    assert [s.last for s in store.outputs.summary(ended)] == [0.5]
    assert store.cleanup.existing([ended, archived, running]) == {ended, running}
    # A running task's lines stay, whatever their age.
    assert [line.text for line in store.outputs.logs(running)] == ["still running\n"]


def test_two_agents_do_not_both_apply_it(store: Store, agents: Agents) -> None:
    store.queues.create("q")
    store.queues.create("idle")
    ended = _ended(store, "ended")
    time.sleep(1.5)

    for _ in range(2):
        agents.start("--queue", "idle", env=SHORT)
    deadline = time.monotonic() + AGENT_WAIT_SECONDS
    while not (_said(agents, 0) and _said(agents, 1)):
        assert time.monotonic() < deadline, (agents.output(0), agents.output(1))
        time.sleep(0.2)
    said = sorted([_said(agents, 0), _said(agents, 1)], key=lambda line: "another" in line)
    assert "retention: removed 2 log line(s)" in said[0], said
    assert "another agent's turn" in said[1], said
    assert store.outputs.logs(ended) == []
    with store.db.read() as conn:
        [row] = conn.execute(sa.select(chores)).all()
    assert row.name == "retention"
    assert row.holder is not None
