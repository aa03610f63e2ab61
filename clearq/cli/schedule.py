"""``clearq schedule``: clones of a task enqueued at times, or when other tasks end.

    clearq schedule add --task ID --queue nightly --cron '0 3 * * *' --timezone Europe/Berlin
    clearq schedule add --task ID --queue default --every 6h
    clearq schedule trigger --task ID --queue eval --on-status completed --project train
    clearq schedule trigger --task ID --queue deploy --on-tag release
    clearq schedule list [--json]
    clearq schedule remove SCHEDULE_ID

No process runs them: each schedule keeps one waiting clone in its queue, and the agent
that claims it fires the schedule (``clearq.scheduler.schedules``). ``add`` and
``trigger`` print the new schedule's id, and nothing else, on stdout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import (
    JsonFlag,
    age,
    dump,
    dump_all,
    human_duration,
    out,
    print_json,
    say,
    table,
)
from clearq.enums import ScheduleKind, TaskStatus
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from clearq.models import ScheduleInfo

app = typer.Typer(
    help="Clones of a task enqueued at set times (--every, --cron) or when tasks end (trigger).",
    no_args_is_help=True,
)

TaskOption = Annotated[
    str,
    typer.Option(
        "--task", help="The task cloned each time (its id or a unique prefix).", show_default=False
    ),
]
QueueOption = Annotated[
    str, typer.Option("--queue", help="The queue each clone is put in.", show_default=False)
]
NameOption = Annotated[
    str | None, typer.Option("--name", help="Each clone's name (default: the task's).")
]
PriorityOption = Annotated[int, typer.Option("--priority", "-p", help="Each clone's priority.")]
IdArg = Annotated[
    int, typer.Argument(metavar="SCHEDULE_ID", help="The schedule's id.", show_default=False)
]


@app.command("add")
def add_command(
    ctx: typer.Context,
    task: TaskOption,
    queue: QueueOption,
    every: Annotated[
        str | None, typer.Option("--every", help="An interval: 90s, 15m, 6h, 1d, 1h30m.")
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron", help="A cron line: minute hour day month weekday, e.g. '0 3 * * *'."
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="The cron line's time zone (IANA name; default UTC)."),
    ] = None,
    name: NameOption = None,
    priority: PriorityOption = 0,
) -> None:
    """Enqueue a clone of a task at each time of an interval or a cron line; print its id.

    A time missed while no agent serves the queue runs once when one is back.
    """
    if (every is None) == (cron is None):
        raise InvalidInput("give either --every INTERVAL or --cron LINE (one of them)")
    from clearq.scheduler.cadence import parse_every  # cronsim, for this command only

    seconds = None if every is None else parse_every(every)
    with cli_context(ctx).store() as store:
        info = store.schedules.add(
            resolve_task_id(store, task),
            queue,
            every_seconds=seconds,
            cron=cron,
            timezone=timezone,
            name=name,
            priority=priority,
        )
    _created(info)


@app.command("trigger")
def trigger_command(
    ctx: typer.Context,
    task: TaskOption,
    queue: QueueOption,
    on_status: Annotated[
        TaskStatus | None,
        typer.Option(
            "--on-status", help="Fire when a task reaches this status.", show_default=False
        ),
    ] = None,
    on_tag: Annotated[
        str | None,
        typer.Option("--on-tag", help="Fire when a task gains this tag.", show_default=False),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", help="Only tasks of this project fire it (default: any)."),
    ] = None,
    name: NameOption = None,
    priority: PriorityOption = 0,
) -> None:
    """Enqueue a clone of a task each time a task (of a project) reaches a status or gains
    a tag; print its id.

    In the clone's parameters ${trigger.task.id} (.name, .project, .status) names the
    task that fired it. A trigger never fires on its own task or its clones.
    """
    with cli_context(ctx).store() as store:
        info = store.schedules.add_trigger(
            resolve_task_id(store, task),
            queue,
            on_status=on_status,
            on_project=project,
            on_tag=on_tag,
            name=name,
            priority=priority,
        )
    _created(info)


def _created(info: ScheduleInfo) -> None:
    # The id alone, so that ID=$(clearq schedule add ...) works.
    say(str(info.id))


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the schedules and triggers with their next run."""
    with cli_context(ctx).store() as store:
        found = store.schedules.list()
    if as_json:
        print_json(dump_all(found))
    elif not found:
        say("no schedules: add one with `clearq schedule add --task ID --queue Q --every 6h`")
    else:
        out().print(_table(found))


@app.command("show")
def show_command(ctx: typer.Context, schedule_id: IdArg, as_json: JsonFlag = False) -> None:
    """Show one schedule."""
    with cli_context(ctx).store() as store:
        info = store.schedules.get(schedule_id)
    if as_json:
        print_json(dump(info))
        return
    say(f"schedule {info.id}: {describe(info)}")
    say(f"  clones task {info.task_id} as {info.name!r} into queue {info.queue}")
    say(f"  fired {info.fired} time(s), last {age(info.last_fired_at)}")
    say(f"  next: {_next(info)}")


@app.command("remove")
def remove_command(ctx: typer.Context, schedule_id: IdArg) -> None:
    """Remove a schedule; its waiting clone (which never ran) is deleted with it."""
    with cli_context(ctx).store() as store:
        info = store.schedules.remove(schedule_id)
    say(f"removed schedule {info.id} ({describe(info)})")


def describe(info: ScheduleInfo) -> str:
    """What makes the schedule fire, as a person says it."""
    if info.kind is ScheduleKind.EVERY:
        assert info.every_seconds is not None
        return f"every {human_duration(info.every_seconds)}"
    if info.kind is ScheduleKind.CRON:
        return f"cron '{info.cron}' ({info.timezone or 'UTC'})"
    where = f" of project {info.on_project!r}" if info.on_project else ""
    if info.on_tag is not None:
        return f"when a task{where} gains tag {info.on_tag!r}"
    return f"when a task{where} becomes {info.on_status}"


def _next(info: ScheduleInfo) -> str:
    if info.next_task_id is None:
        return "none: its waiting clone was dequeued (remove and add it again)"
    if info.kind is ScheduleKind.TRIGGER:
        if info.pending_events:
            return f"{info.pending_events} event(s) waiting for an agent"
        return "on the next matching task"
    if info.next_at is not None and info.next_at <= datetime.now(UTC):
        return f"due since {age(info.next_at).removesuffix(' ago')}: waits for an agent"
    return age(info.next_at)


def _table(found: list[ScheduleInfo]) -> Table:
    grid = table("ID", "NAME", "QUEUE", "WHEN", "FIRED", "LAST", "NEXT")
    for s in found:
        grid.add_row(
            str(s.id), s.name, s.queue, describe(s), str(s.fired), age(s.last_fired_at), _next(s)
        )
    return grid
