"""``clearq task delete|archive|unarchive``: tasks by id, or every task a filter picks.

Tasks named by id are changed at once. Tasks picked by a filter (``--project``,
``--status``, ``--tag``, ``--user``, ``--older-than``) are listed first, and changed only
with ``--yes``: a filter typed wrong should not empty a database. Either way the store
works through them in batched statements (``clearq.scheduler.cleanup``).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.durations import parse_duration
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import age, err, out, say, status_text, table
from clearq.enums import TaskStatus
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.models import TaskFilter
    from clearq.scheduler.store import Store

PREVIEW_ROWS = 20
"""How many of the tasks a filter picks are shown before ``--yes``."""

IdsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="[ID]...",
        help="Task ids (or unique prefixes); or pick tasks with the filters instead.",
        show_default=False,
    ),
]
ProjectOpt = Annotated[str | None, typer.Option(help="Pick this project's tasks.")]
StatusOpt = Annotated[
    list[TaskStatus] | None, typer.Option(help="Pick tasks in this status (repeatable).")
]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Pick tasks with this tag.")]
UserOpt = Annotated[str | None, typer.Option(help="Pick tasks this user made.")]
OlderThanOpt = Annotated[
    str | None,
    typer.Option(
        "--older-than",
        metavar="DURATION",
        help="Pick tasks that ended (or, never run, were made) longer ago: 30d, 12h, 2w.",
    ),
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Act on what the filters pick (else: list it).")
]


def _filter(
    *,
    project: str | None,
    status: list[TaskStatus] | None,
    tag: list[str] | None,
    user: str | None,
    older_than: str | None,
    archived: bool | None,
) -> TaskFilter:
    from clearq.models import TaskFilter

    return TaskFilter(
        project=project,
        statuses=tuple(status or ()),
        tags=tuple(tag or ()),
        user=user,
        ended_before_seconds=parse_duration(older_than) if older_than else None,
        archived=archived,
    )


def _pick(
    store: Store, ids: list[str] | None, where: TaskFilter, narrowed: bool
) -> list[uuid.UUID]:
    if ids and narrowed:
        raise InvalidInput("give task ids or filters (--project, --status, ...), not both")
    if ids:
        return [resolve_task_id(store, text) for text in ids]
    if not narrowed:
        raise InvalidInput(
            "name the tasks by id, or pick them with --project, --status, --tag, --user "
            "or --older-than"
        )
    return store.cleanup.select(where)


def _go_ahead(
    store: Store, picked: list[uuid.UUID], verb: str, *, by_filter: bool, yes: bool
) -> bool:
    """True to act; else (a filter without ``--yes``) print what would be acted on."""
    if not picked:
        say(f"no tasks match: nothing to {verb}")
        return False
    if not by_filter or yes:
        return True
    grid = table("ID", "PROJECT", "NAME", "STATUS", "UPDATED")
    for task_id in picked[:PREVIEW_ROWS]:
        t = store.tasks.get(task_id)
        grid.add_row(str(t.id), t.project, t.name, status_text(t.status), age(t.updated_at))
    say(f"would {verb} {len(picked)} task(s):")
    out().print(grid)
    if len(picked) > PREVIEW_ROWS:
        say(f"... and {len(picked) - PREVIEW_ROWS} more")
    say(f"nothing changed: add --yes to {verb} them")
    return False


def delete_command(
    ctx: typer.Context,
    ids: IdsArg = None,
    project: ProjectOpt = None,
    status: StatusOpt = None,
    tag: TagOpt = None,
    user: UserOpt = None,
    older_than: OlderThanOpt = None,
    archived: Annotated[bool, typer.Option("--archived", help="Pick archived tasks only.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Delete running tasks too: they are stopped first.")
    ] = False,
    keep_files: Annotated[
        bool, typer.Option("--keep-files", help="Leave the tasks' artifact and sample files.")
    ] = False,
    yes: YesOpt = False,
) -> None:
    """Delete tasks with their logs, scalars, plots, samples, models, history and files."""
    from clearq.sdk.task_files import delete_task_files

    where = _filter(
        project=project,
        status=status,
        tag=tag,
        user=user,
        older_than=older_than,
        archived=True if archived else None,
    )
    with cli_context(ctx).store() as store:
        picked = _pick(store, ids, where, not where.is_empty)
        if not _go_ahead(store, picked, "delete", by_filter=not ids, yes=yes):
            return
        report = store.cleanup.delete(picked, force=force)
    failed = [] if keep_files else delete_task_files(report.files, report.deleted)
    files = 0 if keep_files else len(report.files) - len(failed)
    say(f"deleted {len(report.deleted)} task(s) and {files} file(s)")
    if report.skipped:
        listed = ", ".join(str(t) for t in report.skipped)
        say(f"left {len(report.skipped)} task(s) that started running meanwhile: {listed}")
    if failed:
        for uri in failed:
            err().print(f"could not delete {uri}", markup=False, soft_wrap=True)
        raise InvalidInput(f"{len(failed)} file(s) of the deleted tasks could not be deleted")


def archive_command(
    ctx: typer.Context,
    ids: IdsArg = None,
    project: ProjectOpt = None,
    status: StatusOpt = None,
    tag: TagOpt = None,
    user: UserOpt = None,
    older_than: OlderThanOpt = None,
    yes: YesOpt = False,
) -> None:
    """Archive tasks: readable by id, left out of lists unless `task list --archived`."""
    _set_archived(ctx, ids, project, status, tag, user, older_than, yes=yes, archive=True)


def unarchive_command(
    ctx: typer.Context,
    ids: IdsArg = None,
    project: ProjectOpt = None,
    status: StatusOpt = None,
    tag: TagOpt = None,
    user: UserOpt = None,
    older_than: OlderThanOpt = None,
    yes: YesOpt = False,
) -> None:
    """Bring archived tasks back into the lists."""
    _set_archived(ctx, ids, project, status, tag, user, older_than, yes=yes, archive=False)


def _set_archived(
    ctx: typer.Context,
    ids: list[str] | None,
    project: str | None,
    status: list[TaskStatus] | None,
    tag: list[str] | None,
    user: str | None,
    older_than: str | None,
    *,
    yes: bool,
    archive: bool,
) -> None:
    verb = "archive" if archive else "unarchive"
    where = _filter(
        project=project, status=status, tag=tag, user=user, older_than=older_than, archived=None
    )
    narrowed = not where.is_empty
    # A filter picks only what would change: the not-archived to archive, and back.
    where = where.model_copy(update={"archived": not archive})
    with cli_context(ctx).store() as store:
        picked = _pick(store, ids, where, narrowed)
        if not _go_ahead(store, picked, verb, by_filter=not ids, yes=yes):
            return
        changed = store.cleanup.archive(picked) if archive else store.cleanup.unarchive(picked)
    unchanged = len(picked) - changed
    note = (
        f" ({unchanged} already {'archived' if archive else 'not archived'})" if unchanged else ""
    )
    say(f"{verb}d {changed} task(s){note}")
