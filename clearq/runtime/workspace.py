"""Rebuild a task's code on an agent: the inverse of ``clearq.sdk.capture.git``.

``build_workspace(script, dest)`` clones the task's repository into ``dest`` (through a
bare mirror per repository URL kept under ``mirror_cache``, cloned once and fetched
after), checks out the captured commit detached, applies the captured diff with
``git apply --binary`` and writes the untracked files, then checks out its submodules
recursively, each from a mirror of its own with its own changes
(``clearq.runtime.submodules``). A Script without a repository
writes its source to ``dest/entry_point``. It returns the folder to run in.

Nothing a Script says may write outside ``dest``: every path in it (untracked files,
entry point, working folder) is checked before anything is written: not absolute, no
``..``, nothing in ``.git``; each folder on the way is checked not to be a symbolic
link as it is reached, and files are opened without following links. ``git apply``
runs inside ``dest`` without ``--unsafe-paths``, so it refuses ``..`` paths, ``.git``
and writes beyond a symbolic link itself.

git itself runs with a configuration no task can change (``clearq.runtime.gitsafe``,
``clearq.runtime.workspace_git``): transports allow-listed, hooks off, no system or
global config, and each mirror's config rewritten by the agent before it is used. A
local repository (a path or ``file://``) is refused unless the operator allows local
repositories (``allow_local``); a submodule's URL is checked the same way.

Every failure is a WorkspaceError naming its step and keeping git's message::

    ClearqError
    └── WorkspaceError    step: paths, clone, fetch, checkout, diff, untracked, source
"""

from __future__ import annotations

from pathlib import Path

from clearq.errors import ConfigError
from clearq.models import Script
from clearq.runtime.gitcreds import preferred_url
from clearq.runtime.submodules import check_submodules, checkout_submodules
from clearq.runtime.workspace_git import apply_diff, check_repository, clone_at, git
from clearq.runtime.workspace_paths import (
    WorkspaceError,
    WorkspaceStep,
    check_commit,
    checked_path,
    ensure_folder,
    write_file,
)

__all__ = ["WorkspaceError", "WorkspaceStep", "build_workspace", "checked_path"]


def build_workspace(
    script: Script, dest: Path, *, mirror_cache: Path | None = None, allow_local: bool = False
) -> Path:
    """Rebuild ``script``'s working tree in ``dest`` and return the folder to run in.

    ``dest`` must be missing or empty. With ``mirror_cache`` the repository is fetched
    into a bare mirror there (one per URL, shared by later tasks) and cloned from it.
    A repository on this machine (a path, ``file://``) is used only with ``allow_local``.
    Raises WorkspaceError naming the step that failed.
    """
    _check_paths(script)
    if script.repository is not None:
        try:
            url = preferred_url(script.repository)
        except ConfigError as error:
            raise WorkspaceError(WorkspaceStep.CLONE, str(error)) from error
        script = script.model_copy(update={"repository": url})
        check_repository(url, allow_local=allow_local)
        check_submodules(script.submodules, url, allow_local=allow_local)
    elif script.submodules:
        raise WorkspaceError(WorkspaceStep.CLONE, "the task names submodules but no repository")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise WorkspaceError(WorkspaceStep.PATHS, f"{dest} is not empty")
    if script.repository is not None:
        clone_at(
            script.repository,
            dest,
            commit=script.commit,
            branch=script.branch,
            mirror_cache=mirror_cache,
            allow_local=allow_local,
        )
    elif script.commit is not None:
        raise WorkspaceError(
            WorkspaceStep.CLONE,
            f"the task names commit {script.commit} but no repository to fetch it from",
        )
    elif script.source is not None:
        _write_source(script, dest)
    elif script.diff or script.untracked:
        git(WorkspaceStep.CLONE, dest, "init", "--quiet")
    else:
        raise WorkspaceError(WorkspaceStep.SOURCE, "the task has no code: no repository, no source")
    if script.diff:
        apply_diff(dest, script.diff)
    for file in script.untracked:
        path = checked_path(file.path, what="untracked file")
        write_file(dest, path, file.data, executable=file.executable, step=WorkspaceStep.UNTRACKED)
    if script.repository is not None:
        checkout_submodules(
            script.submodules,
            dest,
            script.repository,
            mirror_cache=mirror_cache,
            allow_local=allow_local,
        )
    return _run_folder(script, dest)


def _check_paths(script: Script) -> None:
    """Refuse a Script with any unsafe path before a single byte is written."""
    if script.entry_point is not None:
        checked_path(script.entry_point, what="entry point")
    checked_path(script.working_dir, what="working folder", allow_root=True)
    for file in script.untracked:
        checked_path(file.path, what="untracked file")
    if script.commit is not None:
        check_commit(script.commit)


def _write_source(script: Script, dest: Path) -> None:
    if script.entry_point is None:
        raise WorkspaceError(WorkspaceStep.SOURCE, "the task has a source but no entry point")
    assert script.source is not None
    entry = checked_path(script.entry_point, what="entry point")
    write_file(dest, entry, script.source.encode(), executable=False, step=WorkspaceStep.SOURCE)


def _run_folder(script: Script, dest: Path) -> Path:
    folder = dest
    for part in checked_path(script.working_dir, what="working folder", allow_root=True).parts:
        folder = folder / part
        # An ignored folder the script ran in exists only on the user's machine.
        ensure_folder(folder, dest, step=WorkspaceStep.PATHS)
    entry = script.entry_point
    if entry is not None and script.module is None and not (dest / entry).is_file():
        raise WorkspaceError(
            WorkspaceStep.CHECKOUT, f"the entry point {entry} is not in the rebuilt working tree"
        )
    return folder
