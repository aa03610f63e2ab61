"""``clearq queue``: create, describe, list, show and delete queues; move their tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import JsonFlag, age, dump, dump_all, out, print_json, say, table
from clearq.enums import DEFAULT_FAIR_HALF_LIFE, FairShare
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from clearq.models import QueueEntry, QueueInfo

app = typer.Typer(help="Named queues of tasks waiting for a worker.", no_args_is_help=True)

NameArg = Annotated[
    str, typer.Argument(metavar="NAME", help="The queue's name.", show_default=False)
]
DescriptionOption = Annotated[
    str | None,
    typer.Option("--description", help="What the queue is for, for people.", show_default=False),
]
TagOption = Annotated[
    list[str],
    typer.Option("--tag", metavar="TAG", help="A tag of the queue (repeatable)."),
]


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}

HalfLifeOption = Annotated[
    str,
    typer.Option(
        "--half-life",
        help="After this long a run's usage counts half: 90s, 30m, 12h, 7d, 2w.",
    ),
]


def half_life_seconds(text: str) -> float:
    """Seconds in a duration such as ``7d`` or ``12h`` (a bare number: seconds)."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise InvalidInput(
            f"--half-life {text!r} is not a duration: write it as 90s, 30m, 12h, 7d or 2w"
        ) from None
    return seconds


def _sharing(queue: QueueInfo) -> str:
    if queue.fair_share is None:
        return "first in, first out"
    days = (queue.fair_half_life or DEFAULT_FAIR_HALF_LIFE) / 86400
    return f"fair share by {queue.fair_share}, usage half-life {days:g} day(s)"


@app.command("create")
def create_command(
    ctx: typer.Context,
    name: NameArg,
    gpus: Annotated[int, typer.Option(help="GPUs each task of this queue needs.")] = 0,
    max_running: Annotated[
        int | None, typer.Option(min=1, help="At most this many of its tasks run at once.")
    ] = None,
    description: DescriptionOption = None,
    tag: TagOption = [],  # noqa: B006 (typer reads the default; it is never mutated)
    fair_share: Annotated[
        FairShare | None,
        typer.Option(
            "--fair-share",
            help="Among tasks of equal priority, the user's (or project's) with least "
            "recent usage goes first.",
        ),
    ] = None,
    half_life: HalfLifeOption = "7d",
) -> None:
    """Create a queue."""
    seconds = half_life_seconds(half_life)
    with cli_context(ctx).store() as store:
        queue = store.queues.create(
            name,
            gpus=gpus,
            max_running=max_running,
            description=description or "",
            tags=tag,
            fair_share=fair_share,
            half_life_seconds=seconds,
        )
    cap = "" if queue.max_running is None else f", at most {queue.max_running} running"
    fair = "" if queue.fair_share is None else f", {_sharing(queue)}"
    say(f"created queue {queue.name} ({queue.gpus} GPU(s) per task{cap}{fair})")


@app.command("fair-share")
def fair_share_command(
    ctx: typer.Context,
    name: NameArg,
    by: Annotated[
        str,
        typer.Argument(
            metavar="user|project|off",
            help="Share turns by user or by project; off: first in, first out.",
            show_default=False,
        ),
    ],
    half_life: HalfLifeOption = "7d",
) -> None:
    """Share a queue's turns by user or project, or stop (the usage so far is forgotten)."""
    if by not in ("user", "project", "off"):
        raise InvalidInput(f"share a queue by user or project, or turn it off, not {by!r}")
    seconds = half_life_seconds(half_life)
    fair_share = None if by == "off" else FairShare(by)
    with cli_context(ctx).store() as store:
        queue = store.queues.set_fair_share(name, fair_share, half_life_seconds=seconds)
    say(f"queue {queue.name}: {_sharing(queue)}")


@app.command("edit")
def edit_command(
    ctx: typer.Context,
    name: NameArg,
    description: DescriptionOption = None,
    tag: Annotated[
        list[str],
        typer.Option("--tag", metavar="TAG", help="Replace the tags with these (repeatable)."),
    ] = [],  # noqa: B006
    clear_tags: Annotated[bool, typer.Option("--clear-tags", help="Remove every tag.")] = False,
) -> None:
    """Change a queue's description (--description '' removes it) or its tags."""
    if clear_tags and tag:
        raise typer.BadParameter("give --tag or --clear-tags, not both")
    if description is None and not tag and not clear_tags:
        raise typer.BadParameter("nothing to change: give --description, --tag or --clear-tags")
    tags = [] if clear_tags else tag or None
    with cli_context(ctx).store() as store:
        queue = store.queues.edit(name, description=description, tags=tags)
    say(f"queue {queue.name}: {_labels(queue) or 'no description, no tags'}")


def _labels(queue: QueueInfo) -> str:
    tags = " ".join(f"#{t}" for t in queue.tags)
    return " ".join(part for part in (queue.description, tags) if part)


@app.command("move")
def move_command(
    ctx: typer.Context,
    task_id: Annotated[
        str,
        typer.Argument(
            metavar="TASK_ID", help="A queued task (full id or prefix).", show_default=False
        ),
    ],
    front: Annotated[
        bool, typer.Option("--front", help="Next to be claimed in its queue.")
    ] = False,
    back: Annotated[bool, typer.Option("--back", help="Last to be claimed in its queue.")] = False,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="QUEUE",
            help="To the back of another queue (its priority kept).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Move a queued task: to the front or back of its queue, or to another queue."""
    if sum((front, back, to is not None)) != 1:
        raise typer.BadParameter("give exactly one of --front, --back or --to QUEUE")
    with cli_context(ctx).store() as store:
        found = resolve_task_id(store, task_id)
        if to is not None:
            task = store.queues.move_to_queue(found, to)
        else:
            (store.queues.move_to_front if front else store.queues.move_to_back)(found)
            task = store.tasks.get(found)
        entries = store.queues.entries(task.queue) if task.queue else []
    where = "front" if front else "back"
    place = next((i for i, e in enumerate(entries, start=1) if e.task_id == found), None)
    at = f", number {place} of {len(entries)}" if place is not None else ""
    moved = f"to queue {task.queue}" if to is not None else f"to the {where} of {task.queue}"
    say(f"task {found} moved {moved}{at}")


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
        out().print(_queues_table(queues))


def _queues_table(queues: list[QueueInfo]) -> Table:
    grid = table("NAME", "GPUS", "LENGTH", "OLDEST WAIT", "TAGS", "DESCRIPTION")
    for q in queues:
        waited = age(q.oldest_enqueued_at).removesuffix(" ago")
        tags = ", ".join(q.tags) or "-"
        grid.add_row(q.name, str(q.gpus), str(q.length), waited, tags, q.description or "-")
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
    say(
        f"queue {queue.name}: {queue.length} task(s), {queue.gpus} GPU(s) per task, "
        + _sharing(queue)
    )
    if queue.description:
        say(f"description: {queue.description}")
    if queue.tags:
        say(f"tags: {', '.join(queue.tags)}")
    if entries:
        out().print(_entries_table(entries))


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
