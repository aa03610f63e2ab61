"""How ``Task.init`` starts a run, and how ``Task.create`` builds a draft.

Run by hand, ``Task.init`` captures the code and packages, creates the task, starts it
and installs the console tee, the argparse hook and the exit hooks. Run by an agent
(``CLEARQ_TASK_ID`` set), it attaches to the stored task, whose parameters (with any
overrides) are handed to ``connect()`` and argparse; nothing is captured again.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearq.config import Settings
from clearq.errors import InvalidInput, StoreUnavailable
from clearq.scheduler.runlink import RunFence, RunLink, RunTask, open_run_link
from clearq.sdk import argparse_hook
from clearq.sdk.code_capture import Code, CodeCapture
from clearq.sdk.console import ConsoleCapture
from clearq.sdk.parameters import ARGS_SECTION, SEPARATOR
from clearq.sdk.records import StoreRecords
from clearq.sdk.reporter import Reporter, RunWriter
from clearq.sdk.roles import AgentRun, LocalRun
from clearq.sdk.run import Run
from clearq.sdk.session import SESSION, settings_in_use

log = logging.getLogger(__name__)

ATTACH_RETRY_SECONDS = 0.5
"""Pause between two tries of reaching the store when a run under an agent starts."""

if TYPE_CHECKING:
    import uuid

    from clearq.models import TaskSpec
    from clearq.sdk.init_options import InitOptions
    from clearq.sdk.task import Task


def attach_or_capture(
    cls: type[Task],
    *,
    project_name: str | None,
    task_name: str | None,
    tags: Sequence[str] | None,
    options: InitOptions,
    capture_console: bool,
    packages: str,
) -> Task:
    """The Task this process reports into, attached or freshly captured.

    Nothing here imports SQLAlchemy or pydantic on a first run: a run by hand writes
    through a RunLink, a run under an agent through its attempt's channel
    (``clearq.sdk.channel``), and the Task reads its full record only when asked. A run
    that takes over an earlier task (``reuse_last_task_id``, ``continue_last_task``)
    goes through the Store for that step.
    """
    settings = settings_in_use()
    if settings.task_id is not None:
        link, stored = _reach_attached_task(settings)
        try:
            return _attach(cls, link, stored, settings, options)
        except BaseException:
            link.close()
            raise
    if not project_name or not task_name:
        raise InvalidInput("Task.init needs project_name and task_name")
    entry, module = _entry()
    capture = _start_capture(settings, packages, entry, module)
    try:
        link = open_run_link(
            settings.resolved_database_url,
            lease_seconds=settings.lease_seconds,
            pgbouncer=settings.database_pgbouncer,
        )
    except BaseException:
        capture.abandon()
        raise
    offset = 0
    try:
        output_uri = options.output_uri
        if options.output_uri_default:
            output_uri = str(settings.artifacts_dir)
        taken = _take_over(link, settings, options, project_name, task_name, tags)
        if taken is not None:
            fence, offset = taken
        else:
            fence = link.create_running(
                project=project_name,
                name=task_name,
                task_type=options.task_type,
                tags=tuple(tags or ()),
                output_uri=output_uri,
                max_attempts=settings.max_attempts,
                script=_pending_script(entry, module),
                env={},
            )
        capture.record_into(link, fence)
        _remember(settings, project_name, task_name, fence.task_id)
    except BaseException:
        capture.abandon()
        link.close()
        raise
    run = Run(
        link,
        fence,
        Reporter(link, fence, renew_lease=True),
        under_agent=False,
        output_root=output_uri or str(settings.artifacts_dir),
        code=capture,
    )
    run.reporter.iteration_offset = offset
    if capture_console:
        run.console = ConsoleCapture(run.reporter)
        run.console.start()
    run.install_exit_hooks()
    role = LocalRun(run)
    task = cls(
        StoreRecords(), task_id=fence.task_id, project=project_name, name=task_name, role=role
    )
    if options.connect_args:
        hook = argparse_hook.ArgparseHook(
            overrides=None, record=task._write_parameters, skip=options.skip_args
        )
        argparse_hook.install(hook)
    return task


def _take_over(
    link: RunLink,
    settings: Settings,
    options: InitOptions,
    project: str,
    name: str,
    tags: Sequence[str] | None,
) -> tuple[RunFence, int] | None:
    """Start the earlier task this run takes over, if any: its fence and iteration offset.

    Through the run's own link, so a script run again pays no Store import. The task keeps
    its earlier code until this run's capture is written over it.
    """
    from clearq.sdk.init_options import last_task

    remembered = last_task(settings.home_dir, settings.resolved_database_url, project, name)
    keep = options.continue_last
    wanted = options.continue_id if keep else options.reuse_id
    candidate = wanted or remembered
    if candidate is None or not (keep or options.reuse):
        return None
    found = link.takeover_candidate(candidate)
    if found is None or not found.free:
        if wanted is not None:
            now = "missing" if found is None else found.status
            raise InvalidInput(
                f"task {candidate} is {now}: only a draft or an ended task can be taken over"
            )
        return None
    if not keep and wanted is None and found.artifacts:
        return None  # as ClearML: a task with results is kept, a new one is made
    fence, next_iteration = link.take_over(
        candidate,
        keep_outputs=keep,
        name=name,
        script=None,
        env=None,
        add_tags=tuple(tags or ()),
    )
    offset = 0
    if keep:
        offset = next_iteration if options.initial_iteration is None else options.initial_iteration
    log.info("clearq: %s task %s", "continuing" if keep else "reusing", candidate)
    return fence, offset


def _remember(settings: Settings, project: str, name: str, task_id: uuid.UUID) -> None:
    from clearq.sdk.init_options import remember_task

    try:
        remember_task(settings.home_dir, settings.resolved_database_url, project, name, task_id)
    except OSError as e:
        log.warning("clearq: cannot remember this task for reuse: %s", e)


def _agent_link(settings: Settings) -> RunWriter:
    """The run's path to the task an agent runs: its channel, or (no channel) the database."""
    if settings.channel is not None:
        token = settings.channel_token or ""
        from clearq.sdk.channel import ChannelLink  # under an agent only: socket and all

        return ChannelLink(settings.channel, token, lease_seconds=settings.lease_seconds)
    return open_run_link(
        settings.resolved_database_url,
        lease_seconds=settings.lease_seconds,
        pgbouncer=settings.database_pgbouncer,
    )


def _agent_records(settings: Settings, link: RunWriter, fence: RunFence) -> StoreRecords:
    """The database when the agent gave its URL (a controllers' agent), else the channel."""
    from clearq.sdk.channel import ChannelLink
    from clearq.sdk.channel_records import ChannelRecords

    if isinstance(link, ChannelLink) and not settings.database_url:
        SESSION.records = ChannelRecords(link, fence)
        return SESSION.records
    return StoreRecords()


def _reach_attached_task(settings: Settings) -> tuple[RunWriter, RunTask]:
    """Under an agent: a link to the task (its channel), and the task, through an outage.

    The database may be restarting as the run starts: that is no fault of the task's
    code, so the link is tried again for up to a lease length (past it, the agent has
    given the attempt up and stops this process anyway).
    """
    assert settings.task_id is not None
    deadline = time.monotonic() + settings.lease_seconds
    while True:
        link: RunWriter | None = None
        try:
            link = _agent_link(settings)
            return link, link.read(settings.task_id)
        except StoreUnavailable:
            if link is not None:
                link.close()
            if time.monotonic() >= deadline:
                raise
            time.sleep(ATTACH_RETRY_SECONDS)
        except BaseException:
            if link is not None:
                link.close()
            raise


def _attach(
    cls: type[Task], link: RunWriter, stored: RunTask, settings: Settings, options: InitOptions
) -> Task:
    fence = RunFence(
        task_id=stored.id,
        attempt=settings.attempt if settings.attempt is not None else stored.attempt,
        worker=settings.worker,
    )
    # The agent renews the lease and streams the console; this run reports results.
    run = Run(
        link,
        fence,
        Reporter(link, fence, renew_lease=False),
        under_agent=True,
        output_root=stored.output_uri or str(settings.artifacts_dir),
    )
    run.install_exit_hooks()
    if options.connect_args:
        hook = argparse_hook.ArgparseHook(
            overrides=stored.parameters, record=lambda _: None, skip=options.skip_args
        )
        argparse_hook.install(hook)
    role = AgentRun(run, stored.parameters)
    records = _agent_records(settings, link, fence)
    return cls(records, task_id=stored.id, project=stored.project, name=stored.name, role=role)


def _entry() -> tuple[Path, str | None]:
    """The running script's file and the module ``python -m`` was given, if any."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    module = spec.name.removesuffix(".__main__") if spec is not None else None
    file = getattr(main, "__file__", None)
    if not file:
        raise InvalidInput(
            "Task.init found no script file (an interactive session?): run it from a .py file"
        )
    return Path(file).resolve(), module


def _pending_script(entry: Path, module: str | None) -> dict[str, Any]:
    """What the task's row says of its code until the capture is written over it."""
    return {"entry_point": entry.name, "module": module, "arguments": sys.argv[1:]}


def _start_capture(
    settings: Settings, packages: str, entry: Path, module: str | None
) -> CodeCapture:
    """The capture of the running script's code and environment, started in its thread.

    What the script may change as it goes on (its arguments, folder, requirement
    lists) is read now, and the requirement lists it gave are checked now.
    """
    from clearq.sdk.capture.packages_requirements import check_requested

    argv, cwd, wanted = list(sys.argv), Path.cwd(), SESSION.requirements()
    check_requested(**wanted)  # the script's own mistakes: raised by Task.init itself

    def capture() -> Code:
        from clearq.sdk.capture.git import capture_script
        from clearq.sdk.capture.packages import capture_packages

        code = capture_script(
            entry, argv=argv, module=module, max_diff_bytes=settings.max_diff_bytes, cwd=cwd
        )
        env = capture_packages(
            entry,
            repo_root=code.repo_root,
            mode="freeze" if packages == "freeze" else "imports",
            add=wanted["add"],
            ignore=wanted["ignore"],
            first=wanted["first"],
            no_build_isolation=wanted["no_build_isolation"],
        )
        for warning in [*code.warnings, *env.warnings]:
            log.warning("clearq: %s", warning)
        return code.fields, env.fields

    return CodeCapture(capture)


def spec_for_create(
    project_name: str,
    task_name: str,
    *,
    script: str | None,
    repo: str | None,
    branch: str | None,
    commit: str | None,
    working_directory: str,
    packages: Sequence[str] | None,
    requirements_file: str | Path | None,
    argparse_args: Sequence[tuple[str, str]] | None,
    task_type: str,
) -> TaskSpec:
    """A draft's spec from a repository and entry point, or from a local script file."""
    from clearq.models import EnvSpec, Script, TaskSpec
    from clearq.sdk.capture.git import strip_credentials
    from clearq.sdk.capture.packages import parse_requirements

    if script is None:
        raise InvalidInput("Task.create needs script: an entry point in repo, or a local file")
    if repo:
        code = Script(
            repository=strip_credentials(repo),
            branch=branch,
            commit=commit,
            entry_point=script,
            working_dir=working_directory,
        )
    else:
        path = Path(script)
        if not path.is_file():
            raise InvalidInput(f"script {script!r} is not a file (give repo= for a repository)")
        code = Script(source=path.read_text(), entry_point=path.name)
    lines = list(packages or ())
    if requirements_file is not None:
        lines += Path(requirements_file).read_text().splitlines()
    arguments = {f"{ARGS_SECTION}{SEPARATOR}{k}": str(v) for k, v in argparse_args or ()}
    return TaskSpec(
        project=project_name,
        name=task_name,
        type=task_type,
        script=code,
        env=EnvSpec(requirements=tuple(parse_requirements(lines))),
        parameters=arguments,
    )
