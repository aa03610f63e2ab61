"""Artifacts: files and objects a task stores, by reference, under its output URI.

Objects are written in plain formats (JSON, text, bytes, ``.npy`` without pickle,
CSV). Pickle is used only when the caller says ``allow_pickle=True`` when storing, and
a pickled artifact is loaded only when the reader says so too: loading a pickle runs
code chosen by whoever wrote it (ClearML's CVE-2024-24590).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from clearq.errors import InvalidInput
from clearq.models import Artifact

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str) -> str:
    """An artifact name is one safe path component."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise InvalidInput(
            f"artifact name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(at most 128, no path separators)"
        )
    return name


def is_local(uri: str) -> bool:
    """True for a plain path or a file:// URL."""
    return urlparse(uri).scheme in ("", "file")


def local_root(output_uri: str) -> Path:
    """The local folder an output URI names (a path or a file:// URL)."""
    parsed = urlparse(output_uri)
    return Path(parsed.path if parsed.scheme else output_uri).expanduser()


def remote_filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path in it."""
    try:
        import fsspec
    except ImportError as e:
        raise InvalidInput(
            f"{uri!r} is not a local folder: install fsspec (and the package for its "
            "scheme, e.g. s3fs or gcsfs) to use it, or give a local output_uri"
        ) from e
    try:
        fs, path = fsspec.core.url_to_fs(uri)  # type: ignore[no-untyped-call]
    except (ImportError, ValueError) as e:
        raise InvalidInput(f"cannot open {uri!r} with fsspec: {e}") from e
    return fs, str(path)


def upload_artifact(
    output_uri: str,
    task_id: uuid.UUID,
    name: str,
    obj: Any,
    *,
    staging: Path,
    allow_pickle: bool = False,
) -> Artifact:
    """Store ``obj`` under ``<output_uri>/<task id>/<name>/``: a local folder, or any URL
    fsspec can write (written locally under ``staging`` first, then uploaded)."""
    if is_local(output_uri):
        return store_artifact(local_root(output_uri), task_id, name, obj, allow_pickle=allow_pickle)
    fs, root = remote_filesystem(output_uri)
    staged = store_artifact(staging, task_id, name, obj, allow_pickle=allow_pickle)
    source = local_path(staged)
    remote = f"{root.rstrip('/')}/{task_id}/{name}/{source.name}"
    fs.put_file(str(source), remote)
    shutil.rmtree(source.parent)
    scheme = output_uri.split("://", 1)[0]
    return staged.model_copy(update={"uri": f"{scheme}://{remote.lstrip('/')}"})


def fetch_artifact(artifact: Artifact, *, cache: Path) -> Artifact:
    """The artifact with a local file: a remote one is downloaded into ``cache`` once."""
    if is_local(artifact.uri):
        return artifact
    fs, remote = remote_filesystem(artifact.uri)
    key = artifact.sha256 or hashlib.sha256(artifact.uri.encode()).hexdigest()
    target = cache / key / Path(remote).name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        fs.get_file(remote, str(partial))
        partial.replace(target)
    return artifact.model_copy(update={"uri": target.resolve().as_uri()})


def store_artifact(
    root: Path, task_id: uuid.UUID, name: str, obj: Any, *, allow_pickle: bool = False
) -> Artifact:
    """Write ``obj`` under ``root/<task id>/<name>/`` and describe it."""
    folder = root / str(task_id) / check_name(name)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path, kind = _write(folder, name, obj, allow_pickle=allow_pickle)
    return Artifact(
        name=name,
        uri=path.resolve().as_uri(),
        kind=kind,
        size=path.stat().st_size,
        sha256=_sha256(path),
    )


def _write(folder: Path, name: str, obj: Any, *, allow_pickle: bool) -> tuple[Path, str]:
    if isinstance(obj, Path) or (isinstance(obj, str) and Path(obj).is_file()):
        source = Path(obj)
        if not source.is_file():
            raise InvalidInput(f"artifact {name!r}: {source} is not a file")
        target = folder / source.name
        shutil.copyfile(source, target)
        return target, "file"
    if isinstance(obj, bytes):
        return _put(folder / f"{name}.bin", obj), "bytes"
    if isinstance(obj, str):
        return _put(folder / f"{name}.txt", obj.encode()), "text"
    if isinstance(obj, dict | list | int | float | bool) or obj is None:
        return _put(folder / f"{name}.json", json.dumps(obj).encode()), "json"
    module = type(obj).__module__.split(".")[0]
    if module == "numpy" and type(obj).__name__ == "ndarray":
        import numpy as np

        target = folder / f"{name}.npy"
        np.save(target, obj, allow_pickle=False)
        return target, "numpy"
    if module == "pandas" and type(obj).__name__ == "DataFrame":
        target = folder / f"{name}.csv"
        obj.to_csv(target, index=False)
        return target, "pandas"
    if not allow_pickle:
        raise InvalidInput(
            f"artifact {name!r}: a {type(obj).__name__} can only be stored by pickling; "
            "pass allow_pickle=True if readers may unpickle it, or store a file"
        )
    return _put(folder / f"{name}.pkl", pickle.dumps(obj)), "pickle"


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_path(artifact: Artifact) -> Path:
    """Where a stored artifact's file is on this machine."""
    parsed = urlparse(artifact.uri)
    if parsed.scheme != "file":
        raise InvalidInput(f"artifact {artifact.name!r} is at {artifact.uri}: not a local file")
    path = Path(parsed.path)
    if not path.is_file():
        raise InvalidInput(f"artifact {artifact.name!r}: {path} is missing on this machine")
    return path


def load_artifact(artifact: Artifact, *, allow_pickle: bool = False) -> Any:
    """Read an artifact back into an object; a pickle only with ``allow_pickle=True``."""
    path = local_path(artifact)
    loaders: dict[str, Callable[[], Any]] = {
        "json": lambda: json.loads(path.read_text()),
        "text": path.read_text,
        "bytes": path.read_bytes,
        "file": lambda: path,
    }
    if artifact.kind in loaders:
        return loaders[artifact.kind]()
    if artifact.kind == "numpy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if artifact.kind == "pandas":
        import pandas as pd

        return pd.read_csv(path)
    if artifact.kind == "pickle":
        if not allow_pickle:
            raise InvalidInput(
                f"artifact {artifact.name!r} is a pickle: loading it runs code its writer "
                "chose. Pass allow_pickle=True only if you trust the task that stored it"
            )
        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - the caller asked for it explicitly
    raise InvalidInput(f"artifact {artifact.name!r} has unknown kind {artifact.kind!r}")
