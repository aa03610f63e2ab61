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
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_LENGTH = 255


def check_name(name: str) -> str:
    """An artifact name: any printable text (spaces too), up to 255 characters."""
    if not name or not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(
            f"artifact name {name!r} is not allowed: give printable text of 1 to "
            f"{MAX_NAME_LENGTH} characters (no newlines or control characters)"
        )
    return name


def file_stem(name: str) -> str:
    """The one path component an artifact's files are stored under.

    A safe name is used as it is; any other name becomes its safe characters plus a
    short hash of the whole name, so two names never share a folder and no name can
    climb out of the task's folder.
    """
    if _SAFE_NAME.match(check_name(name)) and ".." not in name:
        return name
    slug = _UNSAFE_CHARS.sub("_", name).strip("._")[:64] or "artifact"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:10]}"


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
    staged = stage_artifact(
        output_uri, task_id, name, obj, staging=staging, allow_pickle=allow_pickle
    )
    return send_artifact(output_uri, task_id, staged)


def stage_artifact(
    output_uri: str,
    task_id: uuid.UUID,
    name: str,
    obj: Any,
    *,
    staging: Path,
    allow_pickle: bool = False,
) -> Artifact:
    """Write ``obj``'s file now: in its place for a local output URI, else under ``staging``.

    The object is read here, so it may change afterwards; :func:`send_artifact` uploads
    the staged file (possibly later, from another thread).
    """
    root = local_root(output_uri) if is_local(output_uri) else staging
    return store_artifact(root, task_id, name, obj, allow_pickle=allow_pickle)


def send_artifact(output_uri: str, task_id: uuid.UUID, staged: Artifact) -> Artifact:
    """Upload a staged artifact to a remote output URI (a local one is in place already)."""
    if is_local(output_uri):
        return staged
    fs, root = remote_filesystem(output_uri)
    source = local_path(staged)
    remote = f"{root.rstrip('/')}/{task_id}/{file_stem(staged.name)}/{source.name}"
    fs.put_file(str(source), remote)
    shutil.rmtree(source.parent)
    scheme = output_uri.split("://", 1)[0]
    return staged.model_copy(update={"uri": f"{scheme}://{remote.lstrip('/')}"})


def fetch_artifact(artifact: Artifact, *, cache: Path, force: bool = False) -> Artifact:
    """The artifact with a local file: a remote one is downloaded into ``cache`` once."""
    if is_local(artifact.uri):
        return artifact
    fs, remote = remote_filesystem(artifact.uri)
    key = artifact.sha256 or hashlib.sha256(artifact.uri.encode()).hexdigest()
    target = cache / key / Path(remote).name
    if force or not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        fs.get_file(remote, str(partial))
        partial.replace(target)
    return artifact.model_copy(update={"uri": target.resolve().as_uri()})


def extracted(archive: Path, cache: Path) -> Path:
    """A folder artifact's zip extracted (safely) under ``cache``, once per content."""
    from clearq.sdk.extract import extract_archive

    target = cache / "extracted" / _sha256(archive)
    if not target.is_dir():
        extract_archive(archive, target)
    return target


def store_artifact(
    root: Path, task_id: uuid.UUID, name: str, obj: Any, *, allow_pickle: bool = False
) -> Artifact:
    """Write ``obj`` under ``root/<task id>/<name>/`` and describe it."""
    folder = root / str(task_id) / file_stem(name)
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
    stem = file_stem(name)
    if isinstance(obj, Path | str) and Path(obj).is_dir():
        from clearq.sdk.extract import make_zip

        return make_zip(Path(obj), folder / f"{stem}.zip"), "folder"
    if isinstance(obj, Path) or (isinstance(obj, str) and Path(obj).is_file()):
        source = Path(obj)
        if not source.is_file():
            raise InvalidInput(f"artifact {name!r}: {source} is not a file")
        target = folder / source.name
        shutil.copyfile(source, target)
        return target, "file"
    if isinstance(obj, bytes):
        return _put(folder / f"{stem}.bin", obj), "bytes"
    if isinstance(obj, str):
        return _put(folder / f"{stem}.txt", obj.encode()), "text"
    if isinstance(obj, dict | list | int | float | bool) or obj is None:
        return _put(folder / f"{stem}.json", json.dumps(obj).encode()), "json"
    module = type(obj).__module__.split(".")[0]
    if module == "numpy" and type(obj).__name__ == "ndarray":
        import numpy as np

        target = folder / f"{stem}.npy"
        np.save(target, obj, allow_pickle=False)
        return target, "numpy"
    if module == "pandas" and type(obj).__name__ == "DataFrame":
        target = folder / f"{stem}.csv"
        obj.to_csv(target, index=False)
        return target, "pandas"
    if module == "PIL" and hasattr(obj, "save"):
        target = folder / f"{stem}.png"
        obj.save(target, format="PNG")
        return target, "image"
    if not allow_pickle:
        raise InvalidInput(
            f"artifact {name!r}: a {type(obj).__name__} can only be stored by pickling; "
            "pass allow_pickle=True if readers may unpickle it, or store a file"
        )
    return _put(folder / f"{stem}.pkl", pickle.dumps(obj)), "pickle"


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
    if artifact.kind == "image":
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            return image.copy()
    if artifact.kind == "pickle":
        if not allow_pickle:
            raise InvalidInput(
                f"artifact {artifact.name!r} is a pickle: loading it runs code its writer "
                "chose. Pass allow_pickle=True only if you trust the task that stored it"
            )
        with path.open("rb") as f:
            return pickle.load(f)  # noqa: S301 - the caller asked for it explicitly
    raise InvalidInput(f"artifact {artifact.name!r} has unknown kind {artifact.kind!r}")
