"""``clearq task``: list, show, enqueue, dequeue and reset, and what is refused."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import task_events, tasks
from tests.acceptance.conftest import Cli

PARAMETERS = {"Args/lr": "0.1", "General/epochs": "3"}


def _new(store: Store, name: str = "t", *, project: str = "p", **spec: object) -> uuid.UUID:
    return store.tasks.create(TaskSpec(project=project, name=name, **spec)).id


def _ids(listed: list[dict[str, object]]) -> list[str]:
    return [str(t["id"]) for t in listed]


def test_enqueue_list_show_dequeue(cli: Cli, store: Store) -> None:
    store.queues.create("default")
    script = Script(repository="https://example.com/r.git", commit="abc", entry_point="train.py")
    task = _new(store, "baseline", project="mnist", script=script, parameters=PARAMETERS)
    _new(store, "a draft, which --status queued leaves out")

    done = cli.run("task", "enqueue", str(task), "-q", "default", "--priority", "2", check=False)
    assert done.returncode == 0
    assert f"task {task} queued in default at priority 2" in done.stdout
    assert done.stderr.startswith("warning: no live worker serves queue 'default'")  # none here
    shown = cli.json("task", "show", str(task))
    assert shown == store.tasks.get(task).model_dump(mode="json")
    assert (shown["status"], shown["queue"], shown["attempt"]) == ("queued", "default", 0)
    assert shown["parameters"] == PARAMETERS
    assert _ids(cli.json("task", "list", "--status", "queued")) == [str(task)]

    text = cli.run("task", "show", task.hex[:8]).stdout
    for expected in (str(task), "baseline", "queued", "default", "train.py", "Args/lr"):
        assert expected in text
    cli.run("task", "dequeue", str(task))
    assert store.tasks.get(task).status is TaskStatus.CREATED
    assert store.queues.entries("default") == []


def test_list_filters_by_queue_and_limits(cli: Cli, store: Store) -> None:
    for name in ("a", "b"):
        store.queues.create(name)
    in_a, in_b = _new(store, "in-a"), _new(store, "in-b")
    store.queues.enqueue(in_a, "a")
    store.queues.enqueue(in_b, "b")
    draft = _new(store, "draft", project="other")

    assert _ids(cli.json("task", "list", "--queue", "a")) == [str(in_a)]
    assert _ids(cli.json("task", "list", "--project", "p", "--limit", "1")) == [str(in_b)]
    table = cli.run("task", "list", "--status", "created").stdout
    assert str(draft) in table
    assert str(in_a) not in table


def test_priorities_set_the_order_workers_take(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    order = [("low", -1), ("high", 5), ("high-later", 5)]
    ids = {name: _new(store, name) for name, _ in order}
    for name, priority in order:
        cli.run("task", "enqueue", str(ids[name]), "-q", "q", f"--priority={priority}", check=False)

    shown = cli.json("queue", "show", "q")
    expected = [str(ids[n]) for n in ("high", "high-later", "low")]
    assert shown["length"] == 3
    assert [e["task_id"] for e in shown["entries"]] == expected
    claimer = store.claimer("w", ["q"])
    assert [str(claimer.claim()[0].task_id) for _ in expected] == expected


def test_reset_turns_an_ended_task_into_a_draft(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    task = _new(store)
    store.queues.enqueue(task, "q")
    [claim] = store.claimer("w", ["q"]).claim()
    store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=3, reason="boom")

    cli.run("task", "reset", str(task))
    reset = store.tasks.get(task)
    assert reset.status is TaskStatus.CREATED
    assert (reset.exit_code, reset.status_reason, reset.worker) == (None, "", None)
    assert reset.attempt == claim.attempt


def test_illegal_changes_say_why_and_change_nothing(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    draft, queued = _new(store, "draft"), _new(store, "queued")
    store.queues.enqueue(queued, "q")
    before = [store.tasks.get(draft), store.tasks.get(queued)]

    assert f"task {draft} is created" in cli.fails("task", "dequeue", str(draft))
    refused = cli.fails("task", "enqueue", str(queued), "--queue", "q")
    assert "dequeue it first" in refused
    assert "no queue named 'nope'" in cli.fails("task", "enqueue", str(draft), "-q", "nope")
    missing = uuid.uuid4()
    assert f"no task with id {missing}" in cli.fails("task", "show", str(missing))
    assert "'not-an-id' is not a task id" in cli.fails("task", "show", "not-an-id")

    assert [store.tasks.get(draft), store.tasks.get(queued)] == before
    assert [e.task_id for e in store.queues.entries("q")] == [queued]


def test_an_id_prefix_must_name_one_task(cli: Cli, store: Store) -> None:
    first = uuid.UUID("abcdef01-0000-4000-8000-000000000001")
    second = uuid.UUID("abcdef02-0000-4000-8000-000000000002")
    # Ids are random: give two tasks a shared prefix by hand.
    made = [_new(store), _new(store)]
    with store.db.write() as conn:
        for old_id, new_id in zip(made, (first, second), strict=True):
            # The history rows point at the old id: let them go with it.
            conn.execute(task_events.delete().where(task_events.c.task_id == old_id))
            conn.execute(tasks.update().where(tasks.c.id == old_id).values(id=new_id))
    assert store.tasks.get(first).id == first

    ambiguous = cli.fails("task", "show", "abcdef")
    assert "ambiguous" in ambiguous
    assert str(first) in ambiguous
    assert str(second) in ambiguous
    assert cli.json("task", "show", "ABCDEF02")["id"] == str(second)


def test_reap_requeues_expired_leases(
    cli: Cli, store: Store, store_url: str, tmp_path: Path
) -> None:
    store.queues.create("q")
    again, last = _new(store, "again"), _new(store, "last", max_attempts=1)
    for task in (again, last):
        store.queues.enqueue(task, "q")
    store.workers.register("host:w", host="host", pid=None, queues=["q"])
    short = Settings(home=tmp_path / "home", lease_seconds=0.01)
    with Store(store_url, settings=short) as lapsing:
        assert len(lapsing.claimer("host:w", ["q"]).claim(2)) == 2
    time.sleep(0.1)

    # On SQLite `clearq reap` watches the renewals stand still for a lease length first.
    gone_soon = {"CLEARQ_WORKER_GONE_SECONDS": "0.01", "CLEARQ_LEASE_SECONDS": "0.2"}
    report = json.loads(cli.run("reap", "--json", env=gone_soon).stdout)
    assert report == {
        "requeued": [str(again)],
        "failed": [str(last)],
        "workers_gone": ["host:w"],
        "active_workers": 0,  # w was the only one
    }
    requeued = store.tasks.get(again)
    assert (requeued.status, requeued.worker) == (TaskStatus.QUEUED, None)
    assert "stopped renewing its lease" in requeued.status_reason
    assert [e.task_id for e in store.queues.entries("q")] == [again]
    failed = store.tasks.get(last)
    assert failed.status is TaskStatus.FAILED
    assert "attempts are spent" in failed.status_reason

    assert "nothing to reap" in cli.run("reap", env={"CLEARQ_LEASE_SECONDS": "0.2"}).stdout
