"""What an operator does to queues through the real ``clearq`` command: describe and tag
them, move their tasks, and hear when a task is put where no live worker will take it.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import logging
import socket
import uuid

import pytest

from clearq.models import TaskSpec
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli


def _queued(store: Store, queue: str, name: str, priority: int = 0) -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="ops", name=name)).id
    store.queues.enqueue(task_id, queue, priority=priority)
    return task_id


def _order(cli: Cli, queue: str) -> list[str]:
    return [e["task_id"] for e in cli.json("queue", "show", queue)["entries"]]


def test_a_queue_has_a_description_and_tags_shown_by_list_and_show(cli: Cli) -> None:
    cli.run("queue", "create", "gpu", "--description", "A100 boxes", "--tag", "a100", "--tag", "x")
    [listed] = cli.json("queue", "list")
    assert (listed["description"], listed["tags"]) == ("A100 boxes", ["a100", "x"])
    table = cli.run("queue", "list").stdout
    assert "TAGS" in table
    assert "a100, x" in table
    assert "A100 boxes" in table
    shown = cli.run("queue", "show", "gpu").stdout
    assert "description: A100 boxes\ntags: a100, x\n" in shown
    edited = cli.run("queue", "edit", "gpu", "--description", "H100 now", "--tag", "h100").stdout
    assert edited == "queue gpu: H100 now #h100\n"
    assert cli.run("queue", "edit", "gpu", "--clear-tags", "--description", "").stdout == (
        "queue gpu: no description, no tags\n"
    )
    assert cli.json("queue", "show", "gpu")["tags"] == []
    nothing = cli.run("queue", "edit", "gpu", check=False)
    assert nothing.returncode == 2
    assert "nothing to change" in nothing.stderr
    assert "no queue named 'nope'" in cli.fails("queue", "edit", "nope", "--tag", "t")


def test_queue_move_puts_a_task_at_the_front_the_back_or_in_another_queue(
    cli: Cli, store: Store
) -> None:
    store.queues.create("q")
    store.queues.create("other")
    a = _queued(store, "q", "a", priority=2)
    b = _queued(store, "q", "b")
    c = _queued(store, "q", "c")
    assert _order(cli, "q") == [str(a), str(b), str(c)]
    front = cli.run("queue", "move", str(c), "--front").stdout
    assert front == f"task {c} moved to the front of q, number 1 of 3\n"
    back = cli.run("queue", "move", a.hex[:8], "--back").stdout
    assert back == f"task {a} moved to the back of q, number 3 of 3\n"
    assert _order(cli, "q") == [str(c), str(b), str(a)]
    waiting = _queued(store, "other", "waiting")
    moved = cli.run("queue", "move", str(b), "--to", "other").stdout
    assert moved == f"task {b} moved to queue other, number 2 of 2\n"
    assert _order(cli, "other") == [str(waiting), str(b)]
    assert cli.json("task", "show", str(b))["queue"] == "other"
    claimer = store.claimer("w", ["q"])
    assert [claimer.claim()[0].task_id for _ in range(2)] == [c, a]


def test_queue_move_refuses_what_it_cannot_do(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    task_id = _queued(store, "q", "t")
    for flags in ([], ["--front", "--back"], ["--back", "--to", "q"]):
        refused = cli.run("queue", "move", str(task_id), *flags, check=False)
        assert refused.returncode == 2
        assert "give exactly one of --front, --back or --to QUEUE" in refused.stderr
    assert "no queue named 'nowhere'" in cli.fails("queue", "move", str(task_id), "--to", "nowhere")
    draft = store.tasks.create(TaskSpec(project="ops", name="draft")).id
    assert cli.fails("queue", "move", str(draft), "--front") == (
        f"error: task {draft} is created, not queued: only a queued task can be moved"
    )


def test_enqueue_warns_when_no_live_worker_serves_the_queue(
    cli: Cli, store: Store, agents: Agents
) -> None:
    store.queues.create("q")
    lonely = store.tasks.create(TaskSpec(project="ops", name="lonely")).id
    warned = cli.run("task", "enqueue", str(lonely), "-q", "q", check=False)
    assert warned.returncode == 0
    assert warned.stdout == f"task {lonely} queued in q at priority 0\n"
    assert " ".join(warned.stderr.split()) == (
        "warning: no live worker serves queue 'q': the task waits until one does "
        "(`clearq agent -q q`)"
    )
    store.queues.dequeue(lonely)
    agents.start("-q", "q", "--name", "live")
    agents.wait_for_output(0, "serving q")
    served = store.tasks.create(TaskSpec(project="ops", name="served")).id
    cli.run("task", "enqueue", str(served), "-q", "q")  # nothing on stderr
    worker_id = f"{socket.gethostname()}:live"
    cli.run("workers", "pause", "live")
    held = store.tasks.create(TaskSpec(project="ops", name="held")).id
    paused = cli.run("task", "enqueue", str(held), "-q", "q", check=False)
    assert paused.returncode == 0
    assert " ".join(paused.stderr.split()) == (
        f"warning: no live worker serves queue 'q' ({worker_id} is paused): the task waits "
        "until one does (`clearq agent -q q`, `clearq workers resume NAME`)"
    )


def test_enqueue_counts_a_worker_only_inside_its_claim_window(
    cli: Cli, store: Store, agents: Agents, caplog: pytest.LogCaptureFixture
) -> None:
    from datetime import UTC, datetime, timedelta

    from clearq import Task
    from clearq.sdk.task import use_store

    store.queues.create("q")
    # All of the day after tomorrow (UTC): outside it now, whatever the hour.
    opens = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    day = opens.strftime("%a").lower()
    agents.start("-q", "q", "--name", "later", "--uptime", f"{day} UTC")
    agents.wait_for_output(0, "serving q")
    worker_id = f"{socket.gethostname()}:later"
    waiting = store.tasks.create(TaskSpec(project="ops", name="waiting")).id
    warned = cli.run("task", "enqueue", str(waiting), "-q", "q", check=False)
    assert warned.returncode == 0
    until = opens.astimezone().strftime("%a %H:%M")
    assert " ".join(warned.stderr.split()) == (
        f"warning: no live worker serves queue 'q' ({worker_id} is outside its claim "
        f"windows until {until}): the task waits until one does (`clearq agent -q q`)"
    )
    # The SDK says the same through logging, and the page shows it on the task.
    use_store(store)
    try:
        made = store.tasks.create(TaskSpec(project="ops", name="sdk")).id
        draft = Task.get_task(task_id=str(made))
        with caplog.at_level(logging.WARNING, logger="clearq.sdk.records"):
            Task.enqueue(draft, queue_name="q")
    finally:
        use_store(None)
    [record] = [r for r in caplog.records if "no live worker" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert f"{worker_id} is outside its claim windows until {until}" in record.getMessage()
    # An agent with no window serves it at once: no warning.
    agents.start("-q", "q", "--name", "always")
    agents.wait_for_output(1, "serving q")
    served = store.tasks.create(TaskSpec(project="ops", name="served")).id
    cli.run("task", "enqueue", str(served), "-q", "q")  # nothing on stderr
