"""Models, with ClearML's names: ``OutputModel`` a run stores, ``InputModel`` it loads.

An output model is a row of the task's (``store.registry``) and its weights: a file (or a
zip of several, ``update_weights_package``) copied under the task's output location,
``<output>/<task id>/models/<model id>/<file>``, where the artifacts are. Its rows are
written through the run's fence. An input model is found by id, or the newest by name;
``connect`` records it on the task as the parameter ``Models/<name>``, so a clone can be
pointed at another model as any parameter is overridden.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from clearq.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from clearq.models import ModelRecord
    from clearq.sdk.task import Task

log = logging.getLogger(__name__)

MODELS_FOLDER = "models"
MODELS_SECTION = "Models"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")


class OutputModel:
    """A model this run produces: ``OutputModel(task, name=..., framework=...)``, then
    ``update_weights("model.pt")``."""

    def __init__(
        self,
        task: Task | None = None,
        config_text: str | None = None,
        config_dict: Mapping[str, Any] | None = None,
        label_enumeration: Mapping[str, int] | None = None,
        name: str | None = None,
        tags: Sequence[str] | None = None,
        comment: str | None = None,
        framework: str | None = None,
    ) -> None:
        from clearq.models import ModelRecord
        from clearq.sdk.task import Task as TaskClass

        found = task if task is not None else TaskClass.current_task()
        if found is None:
            raise InvalidInput("an OutputModel belongs to the task this process runs (Task.init)")
        self._task = found
        self._run = found._role.model_run(found)
        config: dict[str, Any] = dict(config_dict or {})
        if config_text is not None:
            config = {"text": str(config_text)}
        self._record: ModelRecord = ModelRecord(
            id=uuid.uuid4(),
            task_id=uuid.UUID(found.id),
            name=name or found.name,
            framework=framework or "",
            labels={str(k): int(v) for k, v in (label_enumeration or {}).items()},
            config=config,
            tags=tuple(tags or ()),
            comment=comment or "",
        )
        self._save()

    # ---- what it is -------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The model's id (as text, like ClearML's)."""
        return str(self._record.id)

    @property
    def name(self) -> str:
        """The model's name."""
        return self._record.name

    @property
    def framework(self) -> str:
        """The framework that made it (``PyTorch``, ``scikit-learn``, ...)."""
        return self._record.framework

    @property
    def labels(self) -> dict[str, int]:
        """The label enumeration: class name to index."""
        return dict(self._record.labels)

    @property
    def config_dict(self) -> dict[str, Any]:
        """The configuration it was trained with."""
        return dict(self._record.config)

    @property
    def url(self) -> str | None:
        """Where its weights are (None until ``update_weights``)."""
        return self._record.uri

    @property
    def task(self) -> str:
        """The id of the task that made it."""
        return str(self._record.task_id)

    # ---- changing it ------------------------------------------------------------------

    def update_labels(self, labels: Mapping[str, int]) -> None:
        """Replace the label enumeration."""
        self._change(labels={str(k): int(v) for k, v in labels.items()})

    def update_design(
        self, config_text: str | None = None, config_dict: Mapping[str, Any] | None = None
    ) -> None:
        """Replace the configuration (a dict, or a text kept as ``{"text": ...}``)."""
        config = {"text": str(config_text)} if config_text is not None else dict(config_dict or {})
        self._change(config=config)

    def update_weights(
        self,
        weights_filename: str | Path | None = None,
        upload_uri: str | None = None,
        target_filename: str | None = None,
        auto_delete_file: bool = False,
        iteration: int | None = None,
    ) -> str:
        """Store a weights file as this model's (copied under the output location, or
        under ``upload_uri``); returns where it is now."""
        if weights_filename is None:
            raise InvalidInput("update_weights needs weights_filename: the file to store")
        source = Path(weights_filename)
        if not source.is_file():
            raise InvalidInput(f"update_weights: {source} is not a file")
        uri, size, digest = self._put(source, target_filename or source.name, upload_uri)
        if auto_delete_file:
            source.unlink()
        self._change(uri=uri, size=size, sha256=digest, iteration=iteration)
        return uri

    def update_weights_package(
        self,
        weights_filenames: Sequence[str | Path] | None = None,
        weights_path: str | Path | None = None,
        upload_uri: str | None = None,
        target_filename: str | None = None,
        auto_delete_file: bool = False,
        iteration: int | None = None,
    ) -> str:
        """Store several files (or a folder's) as one zip package; returns where it is."""
        files = _package_files(weights_filenames, weights_path)
        with tempfile.TemporaryDirectory() as tmp:
            package = Path(tmp) / (target_filename or "model_package.zip")
            with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
                for path, name in files:
                    archive.write(path, name)
            uri = self.update_weights(package, upload_uri=upload_uri, iteration=iteration)
        if auto_delete_file:
            for path, _ in files:
                path.unlink()
        return uri

    def _put(self, source: Path, filename: str, upload_uri: str | None) -> tuple[str, int, str]:
        from clearq.sdk import artifacts as files

        if "/" in filename or filename in ("", ".", ".."):
            raise InvalidInput(f"target_filename {filename!r} must be a plain file name")
        root = upload_uri or self._run.output_root or self._task._records.artifacts_root()
        relative = f"{self._task.id}/{MODELS_FOLDER}/{self.id}/{filename}"
        digest = _sha256(source)
        if files.is_local(root):
            target = files.local_root(root) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            return target.resolve().as_uri(), source.stat().st_size, digest
        fs, base = files.remote_filesystem(root)
        remote = f"{base.rstrip('/')}/{relative}"
        fs.put_file(str(source), remote)
        scheme = root.split("://", 1)[0]
        return f"{scheme}://{remote.lstrip('/')}", source.stat().st_size, digest

    def _change(self, **values: Any) -> None:
        self._record = self._record.model_copy(update=values)
        self._save()

    def _save(self) -> None:
        from clearq.sdk.task_surface import _fence

        self._record = self._task._records.save_model(_fence(self._run), self._record)

    def __repr__(self) -> str:
        return f"<OutputModel {self.id} {self.name!r} {self.framework or '-'}>"


class InputModel:
    """A stored model to load: ``InputModel(model_id)`` or ``InputModel(name="best")``."""

    def __init__(
        self, model_id: str | None = None, name: str | None = None, project: str | None = None
    ) -> None:
        from clearq.sdk.session import default_records

        self._records = default_records()  # under an agent: its channel
        if model_id is not None:
            self._record = self._records.model(_model_uuid(model_id))
        elif name is not None:
            self._record = self._records.find_model(name, project=project)
        else:
            raise InvalidInput("InputModel needs model_id, or name (with project to narrow it)")

    @classmethod
    def _of(cls, record: ModelRecord) -> InputModel:
        model = cls.__new__(cls)
        from clearq.sdk.session import default_records

        model._records = default_records()
        model._record = record
        return model

    @property
    def id(self) -> str:
        """The model's id."""
        return str(self._record.id)

    @property
    def name(self) -> str:
        """The model's name."""
        return self._record.name

    @property
    def framework(self) -> str:
        """The framework that made it."""
        return self._record.framework

    @property
    def labels(self) -> dict[str, int]:
        """The label enumeration: class name to index."""
        return dict(self._record.labels)

    @property
    def config_dict(self) -> dict[str, Any]:
        """The configuration it was trained with."""
        return dict(self._record.config)

    @property
    def url(self) -> str | None:
        """Where its weights are."""
        return self._record.uri

    @property
    def task(self) -> str:
        """The id of the task that made it."""
        return str(self._record.task_id)

    def get_local_copy(self, extract_archive: bool = True) -> str:
        """A local path of the weights (downloaded once into the cache when remote; a .zip
        package extracted into a folder, unless ``extract_archive=False``)."""
        from clearq.sdk import artifacts as files

        uri = self._record.uri
        if not uri:
            raise InvalidInput(f"model {self.id} has no weights yet (update_weights)")
        if files.is_local(uri):
            path = files.local_root(uri)
        else:
            path = self._records.local_folder("cache") / MODELS_FOLDER / self.id / Path(uri).name
            if not path.is_file():
                fs, remote = files.remote_filesystem(uri)
                path.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(path))
        if not path.is_file():
            raise InvalidInput(f"model {self.id}: {path} is missing on this machine")
        # A .zip (update_weights_package's) is a package; torch's own files are zips too.
        if extract_archive and path.suffix == ".zip" and zipfile.is_zipfile(path):
            folder = self._records.local_folder("cache") / MODELS_FOLDER / f"{self.id}.d"
            return str(files.extracted(path, folder))
        return str(path)

    def get_weights(self) -> str:
        """The weights' local path (ClearML's older name of ``get_local_copy``)."""
        return self.get_local_copy(extract_archive=False)

    def connect(self, task: Task, name: str | None = None) -> InputModel:
        """Record this model as the task's input ``name``; under an agent a clone's
        override of ``Models/<name>`` picks another model, which this one becomes."""
        key = name or self.name
        picked = str(task.connect({key: self.id}, name=MODELS_SECTION)[key])
        if picked != self.id:
            self._record = self._records.model(_model_uuid(picked))
        return self

    def __repr__(self) -> str:
        return f"<InputModel {self.id} {self.name!r} {self.framework or '-'}>"


class ModelList(list[Any]):
    """A task's models, in order; a model may also be picked by its name."""

    @overload  # type: ignore[override]
    def __getitem__(self, key: int) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> list[Any]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...

    def __getitem__(self, key: Any) -> Any:
        """By position, or the newest with that name."""
        if isinstance(key, str):
            named = [m for m in self if m.name == key]
            if not named:
                raise KeyError(key)
            return named[-1]
        return super().__getitem__(key)


def task_models(task: Task) -> dict[str, ModelList]:
    """``task.models``: ``{"input": [...], "output": [...]}``."""
    records = task._records
    output = ModelList(InputModel._of(r) for r in records.models(uuid.UUID(task.id)))
    inputs = ModelList()
    for key, value in task.get_parameters().items():
        if not key.startswith(f"{MODELS_SECTION}/") or not _UUID.match(value):
            continue  # a parameter of the script's own that happens to be called Models/...
        try:
            inputs.append(InputModel._of(records.model(uuid.UUID(value))))
        except NotFound:
            log.warning("task %s: input model %s (%s) is no longer stored", task.id, value, key)
    return {"input": inputs, "output": output}


def _package_files(
    names: Sequence[str | Path] | None, folder: str | Path | None
) -> list[tuple[Path, str]]:
    if (names is None) == (folder is None):
        raise InvalidInput("update_weights_package takes weights_filenames or weights_path")
    if folder is not None:
        root = Path(folder)
        if not root.is_dir():
            raise InvalidInput(f"weights_path {root} is not a folder")
        return [(p, p.relative_to(root).as_posix()) for p in sorted(root.rglob("*")) if p.is_file()]
    found = [(Path(n), Path(n).name) for n in names or ()]
    missing = [str(p) for p, _ in found if not p.is_file()]
    if missing:
        raise InvalidInput(f"update_weights_package: not files: {', '.join(missing)}")
    return found


def _model_uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{value!r} is not a model id") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
