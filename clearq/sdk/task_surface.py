"""ClearML's everyday ``Task`` methods beyond running and connecting (a mixin of ``Task``).

Labels (name, tags, comment, archived), user properties, status, deletion, artifacts
by name with ``get()`` / ``get_local_copy()``, watched DataFrames, the initial
iteration and ``create_function_task``. User properties are stored as parameters in
section ``properties`` (as ClearML keeps them beside the hyperparameters), so they
travel with clones and are visible in ``get_parameters()``. An archived task stays
readable by id; ``get_tasks(allow_archived=False)`` leaves it out (the store's
``archived_at``, ``clearq task archive``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clearq.errors import ClearqError, InvalidInput
from clearq.sdk import parameters as params
from clearq.sdk.task_types import TaskTypes

if TYPE_CHECKING:
    import uuid

    from clearq.enums import TaskStatus
    from clearq.models import Task as TaskRecord
    from clearq.scheduler import Store
    from clearq.sdk.artifact_view import TaskArtifact
    from clearq.sdk.logger import Logger
    from clearq.sdk.records import StoreRecords
    from clearq.sdk.roles import Role
    from clearq.sdk.run import Run
    from clearq.sdk.task import Task
    from clearq.sdk.task_artifacts import RunArtifacts

log = logging.getLogger(__name__)

PROPERTIES_SECTION = "properties"


class TaskSurface:
    """The ClearML names ``Task`` gains from this module."""

    TaskTypes = TaskTypes

    if TYPE_CHECKING:
        _id: uuid.UUID
        _name: str
        _project: str
        _run_artifacts: RunArtifacts | None
        _records: StoreRecords

        _role: Role

        @property
        def _store(self) -> Store: ...
        @property
        def _record(self) -> TaskRecord: ...
        @_record.setter
        def _record(self, record: TaskRecord) -> None: ...
        @property
        def id(self) -> str: ...
        def reload(self) -> Task: ...
        def get_parameters(self) -> dict[str, str]: ...
        def _write_parameters(self, flat: dict[str, str]) -> None: ...
        def get_logger(self) -> Logger: ...

    # ---- ClearML's small accessors --------------------------------------------------

    @property
    def logger(self) -> Logger:
        """The task's logger (``task.get_logger()``)."""
        return self.get_logger()

    @staticmethod
    def running_locally() -> bool:
        """True unless this process is a task run by an agent."""
        return not os.environ.get("CLEARQ_TASK_ID")

    def get_project_name(self) -> str:
        """The task's project."""
        return self._project

    def get_status(self) -> TaskStatus:
        """The task's status now (clearq's names: ``running`` is ClearML's ``in_progress``)."""
        return self.reload()._record.status

    # ---- labels -----------------------------------------------------------------------

    def set_name(self, name: str) -> None:
        """Rename the task (in any status)."""
        self._record = self._records.annotate(self._id, name=name)
        self._name = self._record.name

    def move_to_project(self, new_project_name: str) -> None:
        """Move the task to another project (ClearML's ``move_to_project``)."""
        self._record = self._store.admin.annotate(self._id, project=new_project_name)
        self._project = self._record.project

    def set_comment(self, comment: str) -> None:
        """Set the task's description."""
        self._record = self._records.annotate(self._id, comment=comment)

    @property
    def comment(self) -> str:
        """The task's description."""
        return self.reload()._record.comment

    def add_tags(self, tags: str | Sequence[str]) -> None:
        """Add tags to the task (in any status); tags it has already stay once."""
        added = [tags] if isinstance(tags, str) else list(tags)
        current = list(self.reload()._record.tags)
        self._record = self._records.annotate(self._id, tags=[*current, *added])

    def set_tags(self, tags: Sequence[str]) -> None:
        """Replace the task's tags."""
        self._record = self._records.annotate(self._id, tags=list(tags))

    def get_tags(self) -> list[str]:
        """The task's tags."""
        return list(self.reload()._record.tags)

    def set_archived(self, archive: bool) -> None:
        """Archive the task (hidden from ``clearq task list``, the page and
        ``get_tasks(allow_archived=False)``) or not."""
        if archive:
            self._store.cleanup.archive([self._id])
        else:
            self._store.cleanup.unarchive([self._id])
        self.reload()

    def get_archived(self) -> bool:
        """True when the task is archived."""
        return self.reload()._record.archived

    # ---- environment variables ------------------------------------------------------

    def set_environment(self, variables: Mapping[str, str]) -> None:
        """Set the variables the task's process gets when an agent runs it (a draft).

        They replace the task's own variables whole; the agent adds its allow-listed
        ones (PATH, HOME, locale, CUDA, proxies) and its operator's, which win.
        """
        environment = {str(k): str(v) for k, v in variables.items()}
        self._record = self._store.tasks.edit(self._id, environment=environment)

    def get_environment(self) -> dict[str, str]:
        """The task's own environment variables."""
        return dict(self.reload()._record.environment)

    # ---- parameters, ClearML's other forms ----------------------------------------------

    def set_parameter(
        self, name: str, value: Any, description: str | None = None, value_type: Any = None
    ) -> None:
        """Set one parameter by its ``Section/name`` (a draft, or the task this process runs)."""
        self._write_parameters({name: params.to_text(value)})

    def get_parameters_as_dict(self, cast: bool = False) -> dict[str, Any]:
        """The parameters nested by section: ``{"General": {"lr": "0.1"}, "Args": {...}}``.

        With ``cast`` each text is read back as the value it spells (number, bool, list).
        """
        nested: dict[str, Any] = {}
        for key, text in self.get_parameters().items():
            section, _, name = key.partition(params.SEPARATOR)
            nested.setdefault(section, {})[name] = params.literal(text) if cast else text
        return nested

    def set_parameters_as_dict(self, dictionary: Mapping[str, Mapping[str, Any]]) -> None:
        """Set parameters from ``{section: {name: value}}`` (merged into the stored ones)."""
        flat = {
            f"{section}{params.SEPARATOR}{name}": params.to_text(value)
            for section, values in dictionary.items()
            for name, value in values.items()
        }
        self._write_parameters(flat)

    # ---- user properties --------------------------------------------------------------

    def set_user_properties(self, *iterables: Any, **properties: Any) -> bool:
        """Set user properties, in ClearML's forms::

        task.set_user_properties(backbone="great", stable=True)
        task.set_user_properties(("backbone", "great"), ("stable", True))
        task.set_user_properties({"name": "backbone", "value": "great"})
        task.set_user_properties(backbone={"value": "great", "description": "net"})
        """
        values: dict[str, Any] = {}
        for item in iterables:
            values.update(_properties_from(item))
        for name, value in properties.items():
            values[name] = value.get("value") if isinstance(value, Mapping) else value
        flat = {
            f"{PROPERTIES_SECTION}{params.SEPARATOR}{name}": params.to_text(value)
            for name, value in values.items()
        }
        if flat:
            self._write_parameters(flat)
        return True

    def get_user_properties(self, value_only: bool = False) -> dict[str, Any]:
        """User properties: ``{name: value}`` with ``value_only``, else ClearML's entries."""
        found = params.section_of(self.get_parameters(), PROPERTIES_SECTION)
        if value_only:
            return found
        return {
            name: {"section": PROPERTIES_SECTION, "name": name, "value": value}
            for name, value in found.items()
        }

    def delete_user_properties(self, *keys: str) -> bool:
        """Remove user properties by name (a draft's, or the task this process runs)."""
        current = self.get_parameters()
        drop = {f"{PROPERTIES_SECTION}{params.SEPARATOR}{k}" for k in keys}
        kept = {k: v for k, v in current.items() if k not in drop}
        self._role.replace_parameters(self, kept)  # type: ignore[arg-type]
        return True

    # ---- iteration offset -------------------------------------------------------------

    def set_initial_iteration(self, offset: int = 0) -> int:
        """Add ``offset`` to every iteration reported from now on (resumed training)."""
        self._role.set_iteration_offset(int(offset))
        return int(offset)

    def get_initial_iteration(self) -> int:
        """The offset added to reported iterations (0 unless set or continued)."""
        return self._role.iteration_offset

    def get_last_iteration(self) -> int:
        """The highest iteration the task has reported a scalar at (0 if none)."""
        summary = self._records.summary(self._id)
        return max((s.last_iteration for s in summary if s.last_iteration is not None), default=0)

    # ---- models -----------------------------------------------------------------------

    @property
    def models(self) -> dict[str, Any]:
        """``{"input": [...], "output": [...]}``: the models the task loaded (connected
        InputModels) and stored (OutputModels); pick one by position or by name."""
        from clearq.sdk.model import task_models

        return task_models(self)  # type: ignore[arg-type]

    # ---- artifacts --------------------------------------------------------------------

    @property
    def artifacts(self) -> dict[str, TaskArtifact]:
        """The task's artifacts by name: ``task.artifacts["data"].get()``."""
        from clearq.sdk.artifact_view import TaskArtifact

        cache = self._records.local_folder("cache/artifacts")
        return {a.name: TaskArtifact(a, cache=cache) for a in self._records.artifacts(self._id)}

    def register_artifact(
        self,
        name: str,
        artifact: Any,
        metadata: dict[str, Any] | None = None,
        uniqueness_columns: bool | Sequence[str] = True,
    ) -> None:
        """Watch a DataFrame: uploaded as artifact ``name`` now and again when it changes."""
        self._artifact_uploads().register(name, artifact, metadata)

    def unregister_artifact(self, name: str) -> None:
        """Stop watching a registered DataFrame."""
        self._artifact_uploads().unregister(name)

    def get_registered_artifacts(self) -> dict[str, Any]:
        """The DataFrames this run watches, by name."""
        if self._run_artifacts is None:
            return {}
        return self._run_artifacts.registered()

    def _artifact_uploads(self) -> RunArtifacts:
        from clearq.sdk.task_artifacts import Destination, RunArtifacts

        run = self._role.uploading_run(self)  # type: ignore[arg-type]
        if self._run_artifacts is None:
            records, record = self._records, self._record

            def store_one(artifact: Any) -> None:
                records.add_artifact(_fence(run), artifact)

            self._run_artifacts = RunArtifacts(
                Destination(
                    output_uri=record.output_uri or records.artifacts_root(),
                    task_id=self._id,
                    staging=records.local_folder("staging"),
                    record=store_one,
                )
            )
            run.before_end.insert(0, self._run_artifacts.close)
        return self._run_artifacts

    # ---- deleting ---------------------------------------------------------------------

    def delete(
        self,
        delete_artifacts_and_models: bool = True,
        skip_models_used_by_other_tasks: bool = True,
        raise_on_error: bool = False,
        callback: Callable[[str, str], bool] | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Delete the task, its outputs and (by default) its artifacts' files.

        Its logs, scalars, plots, samples, models, history and queue entry go with it. A
        running task is refused unless ``force``, which stops it first.
        ``callback(kind, uri)`` is asked before each file is deleted; it returns False to
        keep it. Returns False (or raises, with ``raise_on_error``) when something could
        not be deleted.
        """
        from clearq.sdk.task_files import delete_task_files

        try:
            deleted = self._store.cleanup.delete([self._id], force=force)
        except ClearqError:
            if raise_on_error:
                raise
            log.warning("task %s was not deleted", self._id, exc_info=True)
            return False
        ok = True
        if delete_artifacts_and_models:
            failed = delete_task_files(
                deleted.files, deleted.deleted, callback=callback, raise_on_error=raise_on_error
            )
            ok = not failed
        from clearq.sdk.session import SESSION

        if SESSION.current is self:
            SESSION.current = None
        return ok

    # ---- a function as a task of its own ---------------------------------------------

    def create_function_task(
        self,
        func: Callable[..., Any],
        func_name: str | None = None,
        task_name: str | None = None,
        **kwargs: Any,
    ) -> Task:
        """A draft that calls ``func(**kwargs)`` when an agent runs it (enqueue it to run).

        ``func`` must stand alone (top level, importing what it uses inside its body);
        the new task keeps this task's project and requirements, and its keyword
        arguments are parameters ``kwargs/<name>`` (JSON) that a clone may override.
        """
        from clearq.sdk.function_task import function_task_spec

        record = self.reload()._record
        spec = function_task_spec(
            func,
            project=record.project,
            name=task_name or f"{record.name}.{func_name or func.__name__}",
            env=record.env,
            kwargs=kwargs,
            parent_id=record.id,
        )
        from clearq.sdk.task import Task

        return Task._of(self._records, self._records.create(spec))

    @classmethod
    def create_function(
        cls,
        func: Callable[..., Any],
        *,
        project_name: str,
        task_name: str,
        kwargs: Mapping[str, Any] | None = None,
        return_names: Sequence[str] = ("return",),
        packages: Sequence[str] = (),
        parent: Task | None = None,
        tags: Sequence[str] = (),
        task_type: str = "custom",
    ) -> Task:
        """A draft that calls ``func(**kwargs)`` when run, its results as artifacts.

        Each name in ``return_names`` names an artifact (one name: the whole result);
        a value of ``kwargs`` made by ``Task.artifact_input(task, name)`` receives that
        task's artifact as the object. ``packages`` are the function's requirements.
        """
        from clearq.models import EnvSpec
        from clearq.sdk.function_task import function_task_spec
        from clearq.sdk.records import StoreRecords
        from clearq.sdk.task import Task

        spec = function_task_spec(
            func,
            project=project_name,
            name=task_name,
            env=EnvSpec(requirements=tuple(packages)),
            kwargs=dict(kwargs or {}),
            parent_id=parent._id if parent is not None else None,
            return_names=tuple(return_names),
            tags=tuple(tags),
            task_type=str(task_type),
        )
        records = StoreRecords()
        return Task._of(records, records.create(spec))

    @staticmethod
    def artifact_input(task: Task | str, name: str) -> dict[str, list[str]]:
        """A function task's keyword argument receiving ``task``'s artifact ``name``."""
        from clearq.sdk.function_task import artifact_input

        return artifact_input(task if isinstance(task, str) else task.id, name)


def _properties_from(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        if "name" in item:
            return {str(item["name"]): item.get("value")}
        return {str(k): (v.get("value") if isinstance(v, Mapping) else v) for k, v in item.items()}
    if isinstance(item, tuple) and len(item) >= 2:
        return {str(item[0]): item[1]}
    if isinstance(item, Iterable) and not isinstance(item, str | bytes):
        found: dict[str, Any] = {}
        for inner in item:
            found.update(_properties_from(inner))
        return found
    raise InvalidInput(f"cannot read user properties from {item!r}: give name=value pairs")


def _fence(run: Run) -> Any:
    from clearq.models import Fence

    f = run.fence
    return Fence(task_id=f.task_id, attempt=f.attempt, worker=f.worker)


__all__ = ["PROPERTIES_SECTION", "TaskSurface"]
