"""``clearq task``: list and show tasks; enqueue, dequeue and reset them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clearq.cli.context import cli_context
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import (
    JsonFlag,
    age,
    dump,
    dump_all,
    out,
    print_json,
    say,
    status_text,
    table,
)
from clearq.cli.task_view import task_view
from clearq.models import Task, TaskStatus

DEFAULT_LIST_LIMIT = 50

app = typer.Typer(help="Tasks: list, show, enqueue, dequeue, reset.", no_args_is_help=True)

IdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="The task's id, or a unique prefix of it.", show_default=False
    ),
]


@app.command("list")
def list_command(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option(help="Only this project's tasks.")] = None,
    status: Annotated[
        list[TaskStatus] | None, typer.Option(help="Only tasks in this status (repeatable).")
    ] = None,
    queue: Annotated[str | None, typer.Option(help="Only tasks of this queue.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many tasks.")] = (
        DEFAULT_LIST_LIMIT
    ),
    as_json: JsonFlag = False,
) -> None:
    """List tasks, newest first."""
    with cli_context(ctx).store() as store:
        tasks = store.tasks.list(project=project, status=status or None, queue=queue, limit=limit)
    if as_json:
        print_json(dump_all(tasks))
    elif not tasks:
        say("no tasks match")
    else:
        out.print(_tasks_table(tasks))


def _tasks_table(tasks: list[Task]) -> Table:
    grid = table("ID", "PROJECT", "NAME", "STATUS", "QUEUE", "WORKER", "ATTEMPT", "UPDATED")
    for t in tasks:
        grid.add_row(
            str(t.id),
            t.project,
            t.name,
            status_text(t.status),
            t.queue or "-",
            t.worker or "-",
            str(t.attempt),
            age(t.updated_at),
        )
    return grid


@app.command("show")
def show_command(ctx: typer.Context, task_id: IdArg, as_json: JsonFlag = False) -> None:
    """Show everything about a task: status, code, parameters, queue, lease."""
    with cli_context(ctx).store() as store:
        task = store.tasks.get(resolve_task_id(store, task_id))
    if as_json:
        print_json(dump(task))
    else:
        out.print(task_view(task))


@app.command("enqueue")
def enqueue_command(
    ctx: typer.Context,
    task_id: IdArg,
    queue: Annotated[str, typer.Option("--queue", "-q", help="The queue to put it in.")],
    priority: Annotated[
        int, typer.Option("--priority", "-p", help="Higher is taken first; then FIFO.")
    ] = 0,
) -> None:
    """Put a draft task in a queue."""
    with cli_context(ctx).store() as store:
        task = store.queues.enqueue(resolve_task_id(store, task_id), queue, priority=priority)
    say(f"task {task.id} queued in {task.queue} at priority {priority}")


@app.command("dequeue")
def dequeue_command(ctx: typer.Context, task_id: IdArg) -> None:
    """Take a queued task out of its queue; it becomes a draft again."""
    with cli_context(ctx).store() as store:
        task = store.queues.dequeue(resolve_task_id(store, task_id))
    say(f"task {task.id} dequeued: it is {task.status} again")


@app.command("reset")
def reset_command(ctx: typer.Context, task_id: IdArg) -> None:
    """Turn an ended task back into a draft, clearing the outputs of its runs."""
    with cli_context(ctx).store() as store:
        task = store.tasks.reset(resolve_task_id(store, task_id))
    say(f"task {task.id} reset: it is {task.status} again (attempts so far: {task.attempt})")
