"""``Task``: what a training script, a notebook or an HPO loop touches.

Names follow ClearML's where the concept is the same, so a script moves over with its
import changed: ``Task.init``, ``connect``, ``get_logger``, ``Task.clone``,
``Task.enqueue``, ``execute_remotely`` and the rest.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from clearq.enums import FINAL_STATUSES, TaskStatus
from clearq.errors import InvalidInput, TaskEnded, WaitTimeout
from clearq.sdk import parameters as params
from clearq.sdk.logger import Logger
from clearq.sdk.multinode import launch_multi_node
from clearq.sdk.preemption import CHECKPOINT_ARTIFACT, DEFAULT_CALLBACK_TIMEOUT_SECONDS
from clearq.sdk.records import StoreRecords
from clearq.sdk.roles import Role, Stored
from clearq.sdk.session import SESSION, default_records, default_store, use_store
from clearq.sdk.task_surface import TaskSurface
from clearq.sdk.task_types import TaskTypes

if TYPE_CHECKING:
    from clearq.models import EnvSpec, Script
    from clearq.models import Task as TaskRecord
    from clearq.scheduler import Store
    from clearq.sdk.run import Run
    from clearq.sdk.task_artifacts import RunArtifacts

# A training script imports this module on its way to Task.init: the Store (SQLAlchemy)
# and the models (pydantic) are imported only when a method needs them.

T = TypeVar("T")
R = TypeVar("R")


class _ClassOrInstance(Generic[R]):
    """Lets ``Task.enqueue(task, ...)`` and ``task.enqueue(...)`` both work, as in ClearML."""

    def __init__(self, func: Callable[..., R]) -> None:
        self._func = func
        self.__doc__ = func.__doc__

    def __get__(self, obj: Task | None, owner: type[Task]) -> Callable[..., R]:
        if obj is None:
            return lambda task, *a, **kw: self._func(task, *a, **kw)
        return lambda *a, **kw: self._func(obj, *a, **kw)


class Task(TaskSurface):
    """A task in the store, and, for the current run, the way to report into it.

    Two parts, each with one job, both chosen once when the Task is made: ``_records``
    reads and changes the stored task (:class:`~clearq.sdk.records.StoreRecords`, or
    under an agent that gives its tasks no database, their channel's), and ``_role``
    says what the task is to this process (:mod:`clearq.sdk.roles`: stored only, run by
    hand, run by an agent).
    """

    def __init__(
        self,
        records: StoreRecords,
        *,
        task_id: uuid.UUID,
        project: str,
        name: str,
        record: TaskRecord | None = None,
        role: Role | None = None,
    ) -> None:
        self._records = records
        self._id = task_id
        self._project = project
        self._name = name
        self._loaded = record
        self._role: Role = role if role is not None else Stored()
        self._logger: Logger | None = None
        self._run_artifacts: RunArtifacts | None = None

    @classmethod
    def _of(cls, records: StoreRecords, record: TaskRecord) -> Task:
        """The Task of a stored record, run elsewhere or not at all."""
        return cls(
            records, task_id=record.id, project=record.project, name=record.name, record=record
        )

    @property
    def _store(self) -> Store:
        """The store behind ``_records`` (refused under an agent that gives no database)."""
        return self._records.store

    @property
    def _run(self) -> Run | None:
        """This process's run of the task, if it has one (its role's)."""
        return self._role.run

    @property
    def _record(self) -> TaskRecord:
        if self._loaded is None:
            self._role.settle_code(raise_error=False)  # the record as captured
            self._loaded = self._records.get(self._id)
        return self._loaded

    @_record.setter
    def _record(self, record: TaskRecord) -> None:
        self._loaded = record

    def _remember(self, record: TaskRecord) -> None:
        """Keep ``record`` as the task's record, as last read."""
        self._loaded = record

    def _forget(self) -> None:
        """Read the record again when it is next asked for."""
        self._loaded = None

    # ---- creating and finding tasks -------------------------------------------------

    @classmethod
    def init(
        cls,
        project_name: str | None = None,
        task_name: str | None = None,
        task_type: TaskTypes | str = TaskTypes.training,
        tags: Sequence[str] | None = None,
        reuse_last_task_id: bool | str = True,
        continue_last_task: bool | str | int = False,
        output_uri: str | bool | None = None,
        auto_connect_arg_parser: bool | dict[str, bool] = True,
        auto_connect_frameworks: bool | dict[str, Any] = True,
        auto_resource_monitoring: bool = True,
        *,
        capture_console: bool = True,
        packages: str = "imports",
    ) -> Task:
        """Start reporting this script as a task (or attach to the one an agent runs).

        Captures the code, its changes, its packages and its arguments, marks the task
        running, tees the console into its log and records how the script ends.
        ``packages="freeze"`` stores the whole environment instead of the imports. The
        capture runs in a thread beside the script (``clearq.sdk.code_capture``); the
        run's end and anything that needs the code wait for it.

        As in ClearML: ``reuse_last_task_id`` (default True) makes a script run again
        by hand take over the task its last run on this machine made, when that task
        stored no artifacts (a task id: that task); ``continue_last_task`` goes on with
        the last task (or the one whose id is given) keeping its outputs, new scalars
        continuing after its last iteration (an int: start at that iteration instead);
        ``output_uri=True`` stores artifacts in the default folder, a string names
        where. ``auto_connect_arg_parser=False`` leaves argparse alone (a dict names the
        arguments to leave out with False). ``auto_connect_frameworks`` (default True)
        captures matplotlib figures, TensorBoard writers' scalars, images and histograms,
        and models saved with torch.save / joblib.dump / pickle.dump of an estimator; a
        dict turns single ones off (``clearq.sdk.frameworks``). ``auto_resource_monitoring``
        reports the machine's CPU and memory as scalars (``:monitor:machine``).
        """
        from clearq.sdk import frameworks
        from clearq.sdk.init import attach_or_capture
        from clearq.sdk.init_options import InitOptions

        if SESSION.current is not None:
            return SESSION.current
        options = InitOptions.build(
            task_type=task_type,
            reuse_last_task_id=reuse_last_task_id,
            continue_last_task=continue_last_task,
            output_uri=output_uri,
            auto_connect_arg_parser=auto_connect_arg_parser,
        )
        frameworks.chosen(auto_connect_frameworks)  # a bad option fails before any write
        task = attach_or_capture(
            cls,
            project_name=project_name,
            task_name=task_name,
            tags=tags,
            options=options,
            capture_console=capture_console,
            packages=packages,
        )
        SESSION.current = task
        frameworks.connect_frameworks(task, auto_connect_frameworks)
        if auto_resource_monitoring:
            task._role.monitor_resources()
        return task

    @classmethod
    def current_task(cls) -> Task | None:
        """The task this process reports into, if ``Task.init`` was called."""
        return SESSION.current

    @classmethod
    def add_requirements(
        cls,
        package_name: str,
        package_version: str | None = None,
        *,
        first: bool = False,
        no_build_isolation: bool = False,
    ) -> None:
        """Add a requirement to what ``Task.init`` captures (call before it).

        ``first``: installed in a step of its own before the others (``torch``, which a
        later package builds against). ``no_build_isolation``: installed last, built
        against the env as it stands (``flash-attn``). A captured line of the same name
        moves to that step.
        """
        if first and no_build_isolation:
            raise InvalidInput(
                f"{package_name}: first and no_build_isolation are two install steps; pick one"
            )
        line = package_name if not package_version else f"{package_name}=={package_version}"
        if first:
            SESSION.first_requirements.append(line)
        elif no_build_isolation:
            SESSION.unisolated_requirements.append(line)
        else:
            SESSION.extra_requirements.append(line)

    @classmethod
    def ignore_requirements(cls, package_names: str | Iterable[str]) -> None:
        """Leave packages out of what ``Task.init`` captures (call before it)."""
        names = [package_names] if isinstance(package_names, str) else list(package_names)
        SESSION.ignored_requirements.extend(names)

    @classmethod
    def get_task(
        cls,
        task_id: str | uuid.UUID | None = None,
        project_name: str | None = None,
        task_name: str | None = None,
        tags: Sequence[str] | None = None,
        allow_archived: bool = True,
        task_filter: dict[str, Any] | None = None,
    ) -> Task:
        """A task by id, or the newest matching the project, exact name, tags and filter."""
        from clearq.sdk.task_query import find_tasks

        records = default_records()
        if task_id is not None:
            return cls._of(records, records.get(_as_uuid(task_id)))
        if task_name is None and project_name is None and not tags and not task_filter:
            raise InvalidInput("get_task needs task_id, or task_name (with project_name)")
        found = find_tasks(
            records.store,
            project_name=project_name,
            task_name=task_name,
            name_is_pattern=False,
            tags=tags,
            allow_archived=allow_archived,
            task_filter=task_filter,
            limit=1,
        )
        if not found:
            raise InvalidInput(f"no task named {task_name!r} in project {project_name!r}")
        return cls._of(records, found[0])

    @classmethod
    def get_tasks(
        cls,
        task_ids: Sequence[str | uuid.UUID] | None = None,
        project_name: str | Sequence[str] | None = None,
        task_name: str | None = None,
        tags: Sequence[str] | None = None,
        allow_archived: bool = True,
        task_filter: dict[str, Any] | None = None,
        *,
        status: TaskStatus | Sequence[TaskStatus] | None = None,
        limit: int = 500,
        user: str | None = None,
    ) -> list[Task]:
        """Tasks matching every filter given, newest first (``task_name``: part of the name;
        ``user``: who made them, as ``task.data.user`` says). Archived tasks are listed
        unless ``allow_archived=False``, as in ClearML (code written for ClearML, such as
        an optimizer's ``save_top_k_tasks_only`` followed by a listing of its trials, relies
        on it); ``clearq task list`` and the page leave them out unless asked.

        See :mod:`clearq.sdk.task_query` for the filters, as ClearML means them.
        """
        from clearq.sdk.task_query import find_tasks

        records = default_records()
        found = find_tasks(
            records.store,
            task_ids=task_ids,
            project_name=project_name,
            task_name=task_name,
            name_is_pattern=True,
            tags=tags,
            allow_archived=allow_archived,
            task_filter=task_filter,
            status=status,
            limit=limit,
            user=user,
        )
        return [cls._of(records, r) for r in found]

    @classmethod
    def create(
        cls,
        project_name: str,
        task_name: str,
        *,
        script: str | None = None,
        repo: str | None = None,
        branch: str | None = None,
        commit: str | None = None,
        working_directory: str = ".",
        packages: Sequence[str] | None = None,
        requirements_file: str | Path | None = None,
        argparse_args: Sequence[tuple[str, str]] | None = None,
        task_type: str = "training",
    ) -> Task:
        """Create a draft from a repository and entry point, or from a local script file."""
        from clearq.sdk.init import spec_for_create

        spec = spec_for_create(
            project_name,
            task_name,
            script=script,
            repo=repo,
            branch=branch,
            commit=commit,
            working_directory=working_directory,
            packages=packages,
            requirements_file=requirements_file,
            argparse_args=argparse_args,
            task_type=task_type,
        )
        records = default_records()
        return cls._of(records, records.create(spec))

    @classmethod
    def clone(
        cls, source_task: Task | str | uuid.UUID, name: str | None = None, parent: str | None = None
    ) -> Task:
        """A new draft with the same code, environment and parameters; ``parent`` is the source."""
        source = source_task if isinstance(source_task, Task) else cls.get_task(source_task)
        running = SESSION.current
        if running is not None and running._id == source._id:
            running._role.settle_code()  # a clone of this run has its whole code
        records = source._records
        made = records.clone(source._id, name=name, parent=_as_uuid(parent) if parent else None)
        return cls._of(records, made)

    @_ClassOrInstance
    def enqueue(
        self,
        queue_name: str = "default",
        priority: int = 0,
        depends_on: Sequence[Task | str | uuid.UUID] = (),
        continue_on_failure: bool = False,
        nodes: int | None = None,
    ) -> Task:
        """Put this draft in a queue: ``Task.enqueue(task, "q")`` or ``task.enqueue("q")``.

        ``depends_on``: tasks that must complete first; the task waits in its queue
        until then (the claim checks it), and is skipped if one fails or is stopped,
        unless ``continue_on_failure``. ``nodes``: run it on that many agents at once,
        one rank each, all started together (``launch_multi_node`` inside tells a rank
        its place).
        """
        parents = [p._id if isinstance(p, Task) else _as_uuid(p) for p in depends_on]
        self._remember(
            self._records.enqueue(
                self._id,
                queue_name,
                priority=priority,
                depends_on=parents,
                continue_on_failure=continue_on_failure,
                nodes=nodes,
            )
        )
        return self

    @_ClassOrInstance
    def dequeue(self) -> Task:
        """Take this task out of its queue; it is a draft again."""
        self._remember(self._records.dequeue(self._id))
        return self

    # ---- the task's record ----------------------------------------------------------

    @property
    def id(self) -> str:
        """The task's id (as text, like ClearML's)."""
        return str(self._id)

    @property
    def name(self) -> str:
        """The task's name."""
        return self._name

    @property
    def project(self) -> str:
        """The task's project."""
        return self._project

    @property
    def status(self) -> TaskStatus:
        """The task's status, read from the store now."""
        return self.reload()._record.status

    @property
    def data(self) -> TaskRecord:
        """The whole stored record, as last read."""
        return self._record

    @property
    def script(self) -> Script:
        """The captured code: repository, commit, entry point, diff, untracked files."""
        return self._record.script

    @property
    def env(self) -> EnvSpec:
        """The captured environment: requirements or lock file, Python version."""
        return self._record.env

    def reload(self) -> Task:
        """Read the record from the store again."""
        self._role.settle_code(raise_error=False)  # this run's capture written first
        self._remember(self._records.get(self._id))
        return self

    # ---- parameters -----------------------------------------------------------------

    def get_parameters(self) -> dict[str, str]:
        """All parameters as ``{"Section/name": "value"}``."""
        return dict(self.reload()._record.parameters)

    def get_parameter(self, name: str, default: Any = None) -> Any:
        """One parameter by its ``Section/name`` (cast like ``default`` when given)."""
        stored = self.get_parameters().get(name)
        if stored is None:
            return default
        return stored if default is None else params.cast_like(stored, default, name=name)

    def set_parameters(self, values: dict[str, Any]) -> None:
        """Set parameters by ``Section/name`` (a draft, or the task this process runs)."""
        flat = {k: params.to_text(v) for k, v in values.items()}
        self._write_parameters(flat)

    def _write_parameters(self, flat: dict[str, str]) -> None:
        self._role.write_parameters(self, flat)

    @overload
    def connect(
        self, mutable: MutableMapping[str, T], name: str | None = None
    ) -> MutableMapping[str, T]: ...
    @overload
    def connect(self, mutable: T, name: str | None = None) -> T: ...

    def connect(self, mutable: Any, name: str | None = None) -> Any:
        """Connect a dict (nested ok) or an object's attributes as section ``name``.

        Run by hand: the values are recorded. Run by an agent: the stored values,
        overrides included, are written into ``mutable`` (cast to the types of its own
        values) and it is returned.
        """
        section = name or params.DEFAULT_SECTION
        if isinstance(mutable, MutableMapping):
            self._role.connect(self, mutable, section)
            return mutable
        fields = params.object_fields(mutable)
        self._role.connect(self, fields, section)
        for key, value in fields.items():
            setattr(mutable, key, value)
        return mutable

    def connect_configuration(
        self, configuration: MutableMapping[str, Any] | str | Path, name: str | None = None
    ) -> Any:
        """Connect a configuration dict (like ``connect``) or a file's text (returned as is)."""
        section = name or "Configuration"
        if isinstance(configuration, MutableMapping):
            return self.connect(configuration, name=section)
        path = Path(configuration)
        key = f"{section}{params.SEPARATOR}{path.name}"
        stored = self._role.configuration(key)
        if stored is not None:
            return stored
        self._write_parameters({key: path.read_text()})
        return path

    # ---- results --------------------------------------------------------------------

    def get_logger(self) -> Logger:
        """The logger that reports into this task."""
        if self._logger is None:
            self._logger = Logger(self)
        return self._logger

    def flush(self, wait_for_uploads: bool = True) -> None:
        """Write everything reported so far (and finish pending artifact uploads)."""
        self._role.flush()
        if wait_for_uploads and self._run_artifacts is not None:
            self._run_artifacts.wait()

    def get_last_scalar_metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{title: {series: {"last", "min", "max"}}}`` of the latest attempt."""
        self.flush()
        out: dict[str, dict[str, dict[str, float]]] = {}
        for s in self._records.summary(self._id):
            out.setdefault(s.title, {})[s.series] = {"last": s.last, "min": s.min, "max": s.max}
        return out

    def get_reported_scalars(self) -> dict[str, dict[str, dict[str, list[float]]]]:
        """``{title: {series: {"x": iterations, "y": values}}}`` of the latest attempt."""
        self.flush()
        out: dict[str, dict[str, dict[str, list[float]]]] = {}
        for p in self._records.scalars(self._id):
            series = out.setdefault(p.title, {}).setdefault(p.series, {"x": [], "y": []})
            series["x"].append(p.iteration)
            series["y"].append(p.value)
        return out

    def get_reported_plots(self, max_iterations: int | None = None) -> list[dict[str, Any]]:
        """The plots of the latest attempt, oldest first, in ClearML's form: ``metric``
        (title), ``variant`` (series), ``iter``, ``plot_str`` (the plotly figure as JSON),
        ``kind`` and ``timestamp`` (ms). ``max_iterations``: only each plot's last ones."""
        import json

        self.flush()
        found = self._records.plots(self._id, max_iterations=max_iterations)
        return [
            {
                "metric": p.title,
                "variant": p.series,
                "iter": p.iteration,
                "plot_str": json.dumps(p.figure),
                "kind": p.kind,
                "timestamp": int(p.at.timestamp() * 1000),
            }
            for p in found
        ]

    def get_debug_samples(
        self, title: str, series: str, n_last_iterations: int | None = None
    ) -> list[dict[str, Any]]:
        """A (title, series)'s debug samples, newest iteration first: ``metric``,
        ``variant``, ``iter``, ``url`` (where the file is), ``kind`` and ``content_type``."""
        self.flush()
        found = self._records.samples(self._id, title=title, series=series)
        newest = sorted(found, key=lambda s: (s.iteration, s.id), reverse=True)
        if n_last_iterations is not None:
            keep = sorted({s.iteration for s in newest}, reverse=True)[:n_last_iterations]
            newest = [s for s in newest if s.iteration in keep]
        return [
            {
                "metric": s.title,
                "variant": s.series,
                "iter": s.iteration,
                "url": s.uri,
                "kind": s.kind,
                "content_type": s.content_type,
                "timestamp": int(s.at.timestamp() * 1000),
            }
            for s in newest
        ]

    def get_reported_console_output(self, number_of_reports: int = 1_000_000) -> list[str]:
        """The console output, oldest first, as the pieces it was written in."""
        self.flush()
        lines = self._records.logs(self._id, limit=number_of_reports)
        return [line.text for line in lines]

    def upload_artifact(
        self,
        name: str,
        artifact_object: Any,
        metadata: dict[str, Any] | None = None,
        delete_after_upload: bool = False,
        auto_pickle: bool | None = None,
        preview: Any = None,
        wait_on_upload: bool = False,
        *,
        allow_pickle: bool = False,
    ) -> bool:
        """Store a file, a folder (zipped) or an object as artifact ``name`` and record it.

        ``name`` is any printable text. Without ``wait_on_upload`` the object is read
        now and uploaded in the background (``flush()`` and the run's end wait for it).
        A pickle is written only with ``allow_pickle=True`` (``auto_pickle`` is
        ClearML's name for it); ``delete_after_upload`` removes a local file given.
        """
        uploads = self._artifact_uploads()
        uploads.upload(
            name,
            artifact_object,
            metadata=metadata,
            allow_pickle=allow_pickle or bool(auto_pickle),
            wait=wait_on_upload,
        )
        if delete_after_upload and isinstance(artifact_object, str | Path):
            path = Path(artifact_object)
            if path.is_file():
                path.unlink()
        return True

    def load_artifact(self, name: str, *, allow_pickle: bool = False) -> Any:
        """An artifact's content; a pickle only with ``allow_pickle=True``."""
        found = self.artifacts.get(name)
        if found is None:
            raise InvalidInput(f"task {self.id} has no artifact {name!r}")
        return found.get(allow_pickle=allow_pickle)

    # ---- preemption: abort callbacks and checkpoints ---------------------------------

    def register_abort_callback(
        self,
        callback_function: Callable[[], object] | None,
        callback_execution_timeout: float = DEFAULT_CALLBACK_TIMEOUT_SECONDS,
    ) -> None:
        """Call ``callback_function`` when this run is stopped from outside (SIGTERM).

        An abort, a preemption (its agent draining, Slurm, a spot notice) all send
        SIGTERM first and SIGKILL after the grace period: the callback runs in between,
        for at most ``callback_execution_timeout`` seconds, typically to
        ``save_checkpoint``; then the process exits. None removes the callback.
        """
        self._role.register_abort(callback_function, callback_execution_timeout)

    def save_checkpoint(self, checkpoint: Any, *, allow_pickle: bool = False) -> None:
        """Keep ``checkpoint`` (a file path or an object) as the artifact ``checkpoint``.

        Each save replaces the last; the next attempt of this task (after a preemption, a
        lost machine or a retry) reads it with :meth:`get_checkpoint`.
        """
        self.upload_artifact(CHECKPOINT_ARTIFACT, checkpoint, allow_pickle=allow_pickle)

    def get_checkpoint(self, *, allow_pickle: bool = False) -> Any:
        """The last checkpoint saved by this task's attempts (a Path for a file), else None."""
        if CHECKPOINT_ARTIFACT not in self.artifacts:
            return None
        return self.load_artifact(CHECKPOINT_ARTIFACT, allow_pickle=allow_pickle)

    # ---- control --------------------------------------------------------------------

    def launch_multi_node(
        self,
        total_num_nodes: int,
        port: int | None = 29500,
        queue: str | None = None,
        wait: bool = False,
        addr: str | None = None,
    ) -> dict[str, Any]:
        """This rank's place in a multi-node run (ClearML's name and return value).

        Run by an agent as one rank of a gang: ``{"node_rank", "total_num_nodes",
        "master_addr", "master_port"}`` (the same facts are in ``MASTER_ADDR``, ``RANK``,
        ... for torch.distributed). Run by hand: the task goes to ``queue`` (default
        ``"default"``) asking for ``total_num_nodes`` ranks, and this process exits.
        ``port``, ``wait`` and ``addr`` are accepted for ClearML's signature; rank 0's
        agent picks a free port and its own address.
        """
        return launch_multi_node(self, total_num_nodes, queue)

    def execute_remotely(
        self, queue_name: str | None = None, clone: bool = False, exit_process: bool = True
    ) -> Task | None:
        """Stop running here and let an agent run the task; under an agent, do nothing.

        As in ClearML: with ``queue_name`` the task is enqueued there; without it the
        task is left as a draft (to edit, clone or enqueue later). ``clone=True`` sends
        a clone instead (returned) and, with ``exit_process=False``, this run goes on;
        ``exit_process=False`` needs ``clone=True``.
        """
        return self._role.execute_remotely(self, queue_name, clone, exit_process)

    def wait_for_status(
        self,
        status: Sequence[TaskStatus] = tuple(FINAL_STATUSES),
        raise_on_status: Sequence[TaskStatus] = (TaskStatus.FAILED, TaskStatus.STOPPED),
        check_interval_sec: float = 1.0,
        timeout: float | None = None,
    ) -> TaskStatus:
        """Wait until the task reaches one of ``status``; raise on ``raise_on_status``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.status
            if current in raise_on_status:
                raise TaskEnded(
                    f"task {self.id} ended {current}: {self._record.status_reason or 'no reason'}"
                )
            if current in status:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"task {self.id} is still {current} after {timeout} s")
            time.sleep(check_interval_sec)

    def mark_stopped(self, force: bool = False, status_message: str | None = None) -> None:
        """Ask the run of this task to stop (an agent's, or a script's started by hand).

        ``status_message`` is what the stopped task says (``stop requested: ...``).
        ``force`` marks it stopped now, without waiting for its run to stop: the run's
        later writes are refused, and its agent stops it on its next heartbeat.
        """
        found = self._records.request_stop(self._id, reason=status_message or "", force=force)
        self._remember(found)

    def reset(self) -> Task:
        """Turn an ended task back into a draft."""
        self._remember(self._records.reset(self._id))
        return self

    def close(self) -> None:
        """End this process's run now (as completed), as if the script exited."""
        self._role.end()
        if SESSION.current is self:
            SESSION.current = None

    def __repr__(self) -> str:
        status = self._loaded.status if self._loaded is not None else "running here"
        return f"<Task {self.id} {self.project}/{self.name} {status}>"


def _as_uuid(value: str | uuid.UUID) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(value)
    except ValueError as e:
        raise InvalidInput(f"{value!r} is not a task id") from e


__all__ = ["Task", "default_store", "use_store"]
