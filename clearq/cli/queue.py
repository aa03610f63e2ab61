"""``clearq queue``: create, list, show and delete queues."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, age, dump, dump_all, out, print_json, say, table
from clearq.models import QueueEntry, QueueInfo

app = typer.Typer(help="Named queues of tasks waiting for a worker.", no_args_is_help=True)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The queue's name.", show_default=False)
]


@app.command("create")
def create_command(
    ctx: typer.Context,
    name: NameArg,
    gpus: Annotated[int, typer.Option(help="GPUs each task of this queue needs.")] = 0,
    max_running: Annotated[
        int | None, typer.Option(min=1, help="At most this many of its tasks run at once.")
    ] = None,
) -> None:
    """Create a queue."""
    with cli_context(ctx).store() as store:
        queue = store.queues.create(name, gpus=gpus, max_running=max_running)
    cap = "" if queue.max_running is None else f", at most {queue.max_running} running"
    say(f"created queue {queue.name} ({queue.gpus} GPU(s) per task{cap})")


@app.command("cap")
def cap_command(
    ctx: typer.Context,
    name: NameArg,
    max_running: Annotated[
        int | None,
        typer.Argument(min=1, help="At most this many running at once; omit to lift the cap."),
    ] = None,
) -> None:
    """Cap (or uncap) how many of a queue's tasks run at once."""
    with cli_context(ctx).store() as store:
        queue = store.queues.set_max_running(name, max_running)
    if queue.max_running is None:
        say(f"queue {queue.name} has no cap on running tasks")
    else:
        say(f"queue {queue.name}: at most {queue.max_running} tasks run at once")


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the queues with their length and how long their oldest task has waited."""
    with cli_context(ctx).store() as store:
        queues = store.queues.list()
    if as_json:
        print_json(dump_all(queues))
    elif not queues:
        say("no queues: create one with `clearq queue create NAME`")
    else:
        out.print(_queues_table(queues))


def _queues_table(queues: list[QueueInfo]) -> Table:
    grid = table("NAME", "GPUS", "LENGTH", "OLDEST WAIT")
    for q in queues:
        waited = age(q.oldest_enqueued_at).removesuffix(" ago")
        grid.add_row(q.name, str(q.gpus), str(q.length), waited)
    return grid


@app.command("show")
def show_command(ctx: typer.Context, name: NameArg, as_json: JsonFlag = False) -> None:
    """Show a queue and its waiting tasks, in the order workers will take them."""
    with cli_context(ctx).store() as store:
        queue = store.queues.get(name)
        entries = store.queues.entries(name)
    if as_json:
        print_json({**dump(queue), "entries": dump_all(entries)})
        return
    say(f"queue {queue.name}: {queue.length} task(s), {queue.gpus} GPU(s) per task")
    if entries:
        out.print(_entries_table(entries))


def _entries_table(entries: list[QueueEntry]) -> Table:
    grid = table("#", "ID", "NAME", "PRIORITY", "WAITING")
    for position, e in enumerate(entries, start=1):
        waited = age(e.enqueued_at).removesuffix(" ago")
        grid.add_row(str(position), str(e.task_id), e.task_name, str(e.priority), waited)
    return grid


@app.command("delete")
def delete_command(
    ctx: typer.Context,
    name: NameArg,
    force: Annotated[
        bool, typer.Option("--force", help="Delete even if tasks wait: they become drafts.")
    ] = False,
) -> None:
    """Delete a queue; refused while tasks wait in it, unless --force."""
    with cli_context(ctx).store() as store:
        returned = store.queues.delete(name, force=force)
    say(f"deleted queue {name}")
    if returned:
        say(f"{len(returned)} task(s) went back to drafts (created):")
        for task_id in returned:
            say(f"  {task_id}")
