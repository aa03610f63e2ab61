"""The root of the ``clearq`` command and its error handling."""

from __future__ import annotations

from typing import Annotated

import typer

from clearq.cli import db, queue, quota, schedule, task, workers
from clearq.cli.agent import agent_command
from clearq.cli.context import CliContext
from clearq.cli.gc import gc_command
from clearq.cli.output import error, say
from clearq.cli.reap import reap_command
from clearq.cli.slurm import slurm_command
from clearq.cli.ui import ui_command
from clearq.errors import ClearqError

app = typer.Typer(
    name="clearq",
    help="Run ML experiments anywhere: queues and agents on a SQL database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(db.app, name="db")
app.add_typer(queue.app, name="queue")
app.add_typer(quota.app, name="quota")
app.add_typer(task.app, name="task")
app.add_typer(schedule.app, name="schedule")
app.command("reap")(reap_command)
app.command("agent")(agent_command)
app.add_typer(workers.app, name="workers")
app.command("ui")(ui_command)
app.command("slurm")(slurm_command)
app.command("gc")(gc_command)


def _print_version(value: bool) -> None:
    if value:
        from clearq import __version__  # the package's metadata, read only when asked

        say(f"clearq {__version__}")
        raise typer.Exit


@app.callback()
def root(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The store's URL; default: CLEARQ_DATABASE_URL, else the SQLite file "
            "under CLEARQ_HOME.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """Run ML experiments anywhere: queues and agents on a SQL database."""
    ctx.obj = CliContext(database_url=database_url)


def main() -> None:
    """Run the ``clearq`` command; a ClearqError prints ``error: ...`` and exits with 1."""
    try:
        app()
    except ClearqError as e:
        error(str(e))
        raise SystemExit(1) from None
