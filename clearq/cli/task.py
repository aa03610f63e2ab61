"""``clearq task``: list and show tasks; enqueue, dequeue, reset, abort; read their logs;
archive and delete them (``task_cleanup``)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

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
    warn,
)
from clearq.cli.task_cleanup import archive_command, delete_command, unarchive_command
from clearq.cli.task_edit import clone_command, create_command, set_params_command
from clearq.cli.task_run import run_command
from clearq.enums import FINAL_STATUSES, TaskStatus
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from clearq.models import Task

DEFAULT_LIST_LIMIT = 50

app = typer.Typer(
    help="Tasks: list, show, create, clone, set-params, enqueue, dequeue, reset, abort, logs, "
    "run, archive, unarchive, delete.",
    no_args_is_help=True,
)

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
    user: Annotated[str | None, typer.Option(help="Only tasks this user made.")] = None,
    archived: Annotated[
        bool, typer.Option("--archived", help="Only archived tasks (left out otherwise).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List tasks, newest first (archived ones only with --archived)."""
    with cli_context(ctx).store() as store:
        tasks = store.tasks.list(
            project=project,
            status=status or None,
            queue=queue,
            limit=limit,
            user=user,
            archived=archived,
        )
    if as_json:
        print_json(dump_all(tasks))
    elif not tasks:
        say("no tasks match")
    else:
        out().print(_tasks_table(tasks))


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
        from clearq.cli.task_view import task_view  # rich's layout, for people only

        out().print(task_view(task))


@app.command("enqueue")
def enqueue_command(
    ctx: typer.Context,
    task_id: IdArg,
    queue: Annotated[str, typer.Option("--queue", "-q", help="The queue to put it in.")],
    priority: Annotated[
        int, typer.Option("--priority", "-p", help="Higher is taken first; then FIFO.")
    ] = 0,
) -> None:
    """Put a draft task in a queue (warns on stderr when no live worker serves it)."""
    from clearq.scheduler.serving import unserved_warning

    with cli_context(ctx).store() as store:
        task = store.queues.enqueue(resolve_task_id(store, task_id), queue, priority=priority)
        unserved = unserved_warning(store.workers, queue)
    say(f"task {task.id} queued in {task.queue} at priority {priority}")
    if unserved:
        warn(unserved)


@app.command("env")
def env_command(
    ctx: typer.Context,
    task_id: IdArg,
    assignments: Annotated[
        list[str] | None,
        typer.Argument(metavar="[NAME=VALUE]...", help="Variables to set.", show_default=False),
    ] = None,
    unset: Annotated[
        list[str] | None,
        typer.Option("--unset", metavar="NAME", help="A variable to remove (repeatable)."),
    ] = None,
) -> None:
    """Show, or set on a draft, the variables the task's process gets (its environment)."""
    with cli_context(ctx).store() as store:
        found = resolve_task_id(store, task_id)
        task = store.tasks.get(found)
        if assignments or unset:
            environment = dict(task.environment)
            for name in unset or ():
                environment.pop(name, None)
            environment.update(_assignment(a) for a in assignments or ())
            task = store.tasks.edit(found, environment=environment)
    for name in sorted(task.environment):
        typer.echo(f"{name}={task.environment[name]}")


def _assignment(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise InvalidInput(f"{text!r} is not NAME=VALUE")
    return name, value


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


FOLLOW_POLL_SECONDS = 0.5


@app.command("logs")
def logs_command(
    ctx: typer.Context,
    task_id: IdArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the task ends.")
    ] = False,
    attempt: Annotated[int | None, typer.Option(help="Only this attempt's output.")] = None,
) -> None:
    """Print a task's console output (and the agent's lines about it), oldest first."""
    with cli_context(ctx).store() as store:
        found = resolve_task_id(store, task_id)
        after = 0
        while True:
            lines = store.outputs.logs(found, after=after, attempt=attempt)
            for line in lines:
                sys.stdout.write(line.text)
            sys.stdout.flush()
            if lines:
                after = lines[-1].seq
                continue
            if not follow or store.tasks.get(found).status in FINAL_STATUSES:
                # One more read: lines written just before the end are not lost.
                rest = store.outputs.logs(found, after=after, attempt=attempt)
                sys.stdout.write("".join(line.text for line in rest))
                return
            time.sleep(FOLLOW_POLL_SECONDS)


@app.command("abort")
def abort_command(ctx: typer.Context, task_id: IdArg) -> None:
    """Stop a running task (its agent stops it), or take a queued one out of its queue."""
    with cli_context(ctx).store() as store:
        found = resolve_task_id(store, task_id)
        task = store.tasks.get(found)
        if task.status is TaskStatus.QUEUED:
            store.queues.dequeue(found)
            say(f"task {found} was queued: taken out of {task.queue}, it is a draft again")
        elif task.status is TaskStatus.RUNNING:
            store.leases.request_stop(found)
            say(f"task {found}: stop requested; {task.worker or 'its run'} stops it")
        else:
            raise InvalidInput(f"task {found} is {task.status}: there is nothing to abort")


app.command("run")(run_command)
app.command("clone")(clone_command)
app.command("create")(create_command)
app.command("set-params")(set_params_command)
app.command("delete")(delete_command)
app.command("archive")(archive_command)
app.command("unarchive")(unarchive_command)
