"""``clearq quota``: limits on a user's or a project's running tasks and GPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, dump_all, out, print_json, say, table
from clearq.enums import QuotaKind
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from rich.table import Table

    from clearq.models import Quota

app = typer.Typer(
    help="Quotas: at most N running tasks and G GPUs at once, per user or per project.",
    no_args_is_help=True,
)

UserOption = Annotated[
    str | None,
    typer.Option("--user", help="The user (who made the tasks: CLEARQ_USER, else the OS user)."),
]
ProjectOption = Annotated[str | None, typer.Option("--project", help="The project.")]


def _whose(user: str | None, project: str | None) -> tuple[QuotaKind, str]:
    if (user is None) == (project is None):
        raise InvalidInput("name one user (--user NAME) or one project (--project NAME)")
    return (QuotaKind.USER, user) if user is not None else (QuotaKind.PROJECT, str(project))


def _limits(quota: Quota) -> str:
    parts = []
    if quota.max_running is not None:
        parts.append(f"at most {quota.max_running} running task(s)")
    if quota.max_gpus is not None:
        parts.append(f"at most {quota.max_gpus} GPU(s)")
    return " and ".join(parts)


@app.command("set")
def set_command(
    ctx: typer.Context,
    user: UserOption = None,
    project: ProjectOption = None,
    running: Annotated[
        int | None, typer.Option("--running", min=0, help="At most this many running tasks.")
    ] = None,
    gpus: Annotated[
        int | None, typer.Option("--gpus", min=0, help="At most this many GPUs held at once.")
    ] = None,
) -> None:
    """Set (or replace) a user's or a project's quota; agents keep it when they claim."""
    kind, name = _whose(user, project)
    with cli_context(ctx).store() as store:
        quota = store.quotas.set(kind, name, max_running=running, max_gpus=gpus)
    say(f"{quota.kind} {quota.name}: {_limits(quota)} at once")


@app.command("clear")
def clear_command(
    ctx: typer.Context, user: UserOption = None, project: ProjectOption = None
) -> None:
    """Lift a user's or a project's quota."""
    kind, name = _whose(user, project)
    with cli_context(ctx).store() as store:
        store.quotas.clear(kind, name)
    say(f"{kind} {name} has no quota")


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the quotas with what each user or project holds now."""
    with cli_context(ctx).store() as store:
        quotas = store.quotas.list()
    if as_json:
        print_json(dump_all(quotas))
    elif not quotas:
        say("no quotas: set one with `clearq quota set --user NAME --running N --gpus G`")
    else:
        out().print(_quotas_table(quotas))


def _quotas_table(quotas: list[Quota]) -> Table:
    grid = table("KIND", "NAME", "RUNNING", "GPUS")
    for q in quotas:
        running = str(q.running) if q.max_running is None else f"{q.running}/{q.max_running}"
        gpus = str(q.gpus) if q.max_gpus is None else f"{q.gpus}/{q.max_gpus}"
        grid.add_row(q.kind.value, q.name, running, gpus)
    return grid
