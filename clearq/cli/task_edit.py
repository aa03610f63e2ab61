"""``clearq task clone | create | set-params``: the no-code workflow from a terminal.

    clearq task clone ID --name "lr 0.1" --set Args/lr=0.1 --queue gpu
    clearq task create --project mnist --name train --repo https://... --script train.py
    clearq task set-params ID General/epochs=20 Args/lr=0.01

Values are stored as text, as every parameter is (``Section/name`` = text); the task's
code casts them back to the types of its own defaults when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.ids import resolve_task_id
from clearq.cli.output import JsonFlag, dump, print_json, say
from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.models import Task

IdArg = Annotated[
    str,
    typer.Argument(
        metavar="ID", help="The task's id, or a unique prefix of it.", show_default=False
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", metavar="SECTION/NAME=VALUE", help="A parameter to set (repeatable)."),
]
QueueOption = Annotated[
    str | None, typer.Option("--queue", "-q", help="Enqueue it there too.", show_default=False)
]


def parameters(assignments: list[str] | None) -> dict[str, str]:
    """``Section/name=value`` texts as parameters; InvalidInput naming a malformed one."""
    found: dict[str, str] = {}
    for text in assignments or ():
        key, equals, value = text.partition("=")
        section, slash, name = key.partition("/")
        if not equals or not slash or not section or not name:
            raise InvalidInput(f"{text!r} is not SECTION/NAME=VALUE (e.g. Args/lr=0.1)")
        found[key] = value
    return found


def clone_command(
    ctx: typer.Context,
    task_id: IdArg,
    name: Annotated[
        str | None, typer.Option("--name", help="The clone's name (default: '<name> (clone)').")
    ] = None,
    assignments: SetOption = None,
    queue: QueueOption = None,
    priority: Annotated[int, typer.Option("--priority", "-p", help="Its queue priority.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Clone a task as a draft, set parameters on the clone, optionally enqueue it."""
    values = parameters(assignments)
    with cli_context(ctx).store() as store:
        source = resolve_task_id(store, task_id)
        made = store.tasks.clone(source, name=name)
        if values:
            made = store.tasks.update_parameters(made.id, values)
        if queue is not None:
            made = store.queues.enqueue(made.id, queue, priority=priority)
    _report(made, f"task {made.id} cloned from {source}", as_json)


def create_command(
    ctx: typer.Context,
    project: Annotated[str, typer.Option("--project", help="The task's project.")],
    name: Annotated[str, typer.Option("--name", help="The task's name.")],
    script: Annotated[
        str,
        typer.Option(
            "--script", help="The entry point in --repo, or a local script file without it."
        ),
    ],
    repo: Annotated[
        str | None, typer.Option("--repo", help="The git repository (credentials are dropped).")
    ] = None,
    branch: Annotated[str | None, typer.Option("--branch", help="The branch to run.")] = None,
    commit: Annotated[str | None, typer.Option("--commit", help="The commit to run.")] = None,
    cwd: Annotated[str, typer.Option("--cwd", help="Working folder inside the repository.")] = ".",
    requirements: Annotated[
        Path | None, typer.Option("--requirements", help="A requirements.txt to install.")
    ] = None,
    packages: Annotated[
        list[str] | None, typer.Option("--packages", help="A requirement (repeatable).")
    ] = None,
    args: Annotated[
        list[str] | None,
        typer.Option("--args", metavar="NAME=VALUE", help="A script argument (repeatable)."),
    ] = None,
    task_type: Annotated[str, typer.Option("--task-type", help="The task's type.")] = "training",
    queue: QueueOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft from a repository and entry point, or from a local script."""
    from clearq.sdk.init import spec_for_create
    from clearq.sdk.task_types import task_type_value

    arguments = [_argument(a) for a in args or ()]
    spec = spec_for_create(
        project,
        name,
        script=script,
        repo=repo,
        branch=branch,
        commit=commit,
        working_directory=cwd,
        packages=packages,
        requirements_file=requirements,
        argparse_args=arguments,
        task_type=task_type_value(task_type),
    )
    with cli_context(ctx).store() as store:
        made = store.tasks.create(spec)
        if queue is not None:
            made = store.queues.enqueue(made.id, queue)
    _report(made, f"task {made.id} created", as_json)


def set_params_command(
    ctx: typer.Context,
    task_id: IdArg,
    assignments: Annotated[
        list[str],
        typer.Argument(metavar="SECTION/NAME=VALUE...", help="Parameters to set on the draft."),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Set parameters of a draft task (clone or reset an ended one first)."""
    values = parameters(assignments)
    with cli_context(ctx).store() as store:
        task = store.tasks.update_parameters(resolve_task_id(store, task_id), values)
    if as_json:
        print_json(dump(task))
        return
    for key in sorted(values):
        say(f"{key} = {task.parameters[key]}")


def _argument(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise InvalidInput(f"--args {text!r} is not NAME=VALUE")
    return name.lstrip("-"), value


def _report(task: Task, what: str, as_json: bool) -> None:
    if as_json:
        print_json(dump(task))
        return
    where = f", queued in {task.queue}" if task.queue else " (a draft)"
    say(f"{what}{where}")


__all__ = ["clone_command", "create_command", "parameters", "set_params_command"]
