"""``clearq slurm``: run the tasks of some queues as Slurm jobs (``clearq task run ID``)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import say
from clearq.runtime.slurm import (
    DEFAULT_MAX_JOBS,
    DEFAULT_POLL_SECONDS,
    GlueOptions,
    SlurmGlue,
    check_command,
)
from clearq.runtime.slurmcli import Slurm


def slurm_command(
    ctx: typer.Context,
    queue: Annotated[
        list[str],
        typer.Option("--queue", "-q", help="A queue whose tasks to run (repeatable; in order)."),
    ],
    partition: Annotated[
        str | None, typer.Option(help="The Slurm partition (sbatch --partition).")
    ] = None,
    max_jobs: Annotated[
        int, typer.Option(min=1, help="At most this many clearq jobs in Slurm at once.")
    ] = DEFAULT_MAX_JOBS,
    sbatch_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--sbatch-arg", help="An option for sbatch, as one word: --sbatch-arg=--time=1:00:00."
        ),
    ] = None,
    run_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--run-arg", help="An option for `clearq task run` in the job: --run-arg=--skip-env."
        ),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            help="Where the job script and the jobs' output go (the compute nodes must see "
            "it); default: CLEARQ_HOME/slurm.",
            show_default=False,
        ),
    ] = None,
    clearq: Annotated[
        Path | None,
        typer.Option(
            "--clearq",
            help="The clearq command the jobs run; default: the one running now.",
            show_default=False,
        ),
    ] = None,
    poll: Annotated[
        float, typer.Option(min=0.1, help="Seconds between two looks at Slurm and the queues.")
    ] = DEFAULT_POLL_SECONDS,
) -> None:
    """Submit queued tasks as Slurm jobs; requeue those Slurm preempts or kills."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    context = cli_context(ctx)
    settings = context.settings()
    command = check_command([str(clearq or Path(sys.executable).with_name("clearq"))])
    env = {**os.environ, "CLEARQ_DATABASE_URL": settings.resolved_database_url}
    options = GlueOptions(
        queues=tuple(queue),
        command=command,
        folder=(folder or settings.home_dir / "slurm").resolve(),
        partition=partition,
        max_jobs=max_jobs,
        sbatch_args=tuple(sbatch_arg or ()),
        run_args=tuple(run_arg or ()),
        poll_seconds=poll,
        job_env=tuple(sorted(env.items())),
    )
    with context.store() as store:
        glue = SlurmGlue(store, Slurm(), options)
        _stop_on_signals(glue)
        say(f"clearq slurm: submitting {', '.join(queue)} (at most {max_jobs} jobs)")
        glue.run()


def _stop_on_signals(glue: SlurmGlue) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        glue.request_stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
