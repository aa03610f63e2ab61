"""Removing the files of deleted tasks: artifacts, debug samples, models' weights.

The store deletes a task's rows and hands back the URIs they named
(``DeletedTasks.files``); this removes the files, local or remote (fsspec). A task's
local files live under ``<root>/<task id>/...``: folders left empty up to the task's own
are removed with them, so nothing of a deleted task stays behind.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from clearq.errors import ClearqError
from clearq.sdk.storage import filesystem, is_local_url, local_file_path

log = logging.getLogger(__name__)

FileCallback = Callable[[str, str], bool]
"""Asked ``(kind, uri)`` before a file is removed; False keeps it (ClearML's callback)."""


def delete_task_files(
    uris: Iterable[str],
    task_ids: Iterable[uuid.UUID],
    *,
    callback: FileCallback | None = None,
    raise_on_error: bool = False,
) -> list[str]:
    """Remove the files ``uris`` name; return those that could not be removed.

    A file already gone counts as removed. With ``raise_on_error`` the first failure
    raises (``OSError`` or ``ClearqError``) instead of being logged and returned.
    """
    owners = {str(t) for t in task_ids}
    failed: list[str] = []
    for uri in dict.fromkeys(uris):
        if callback is not None and not callback("artifact", uri):
            continue
        try:
            _remove(uri, owners)
        except (ClearqError, OSError) as e:
            if raise_on_error:
                raise
            log.warning("could not delete file %s of a deleted task: %s", uri, e)
            failed.append(uri)
    return failed


def _remove(uri: str, owners: set[str]) -> None:
    if not is_local_url(uri):
        fs, remote = filesystem(uri)
        if fs.exists(remote):
            fs.rm(remote, recursive=fs.isdir(remote))
        return
    path = local_file_path(uri)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    _prune_empty_parents(path, owners)


def _prune_empty_parents(path: Path, owners: set[str]) -> None:
    """Remove empty folders above ``path`` up to the one named after its task (if any)."""
    parents = list(path.parents)
    top = next((i for i, p in enumerate(parents) if p.name in owners), None)
    if top is None:
        return
    for folder in parents[: top + 1]:
        try:
            folder.rmdir()  # only an empty folder goes
        except OSError:
            return
