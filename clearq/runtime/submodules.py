"""A task's submodules on the agent: each cloned from a cached mirror of its own, recursively.

A submodule's URL is task data, checked as the main repository's is: a ``./`` or
``../`` URL is resolved against the URL of the repository holding it (after the agent's
``CLEARQ_GIT_PREFER`` rewrite, so a relative submodule follows its parent's transport),
as ``git submodule`` resolves it; a URL that still holds a ``..`` segment, or that climbs
above its parent's host, is refused; then the agent's preferred transport and the
transport allow-list apply (a local path or ``file://`` only where the operator allows
local repositories). Every submodule's path, commit, URL and untracked files are checked
before the main repository is cloned, so a bad one writes nothing.

Each submodule is cloned into its folder (which must be empty: the main checkout leaves
an empty folder where a gitlink is), checked out at its commit, its diff applied inside
it and its untracked files written there; folders on the way are checked not to be
symbolic links. A failure is the WorkspaceError of the step that failed, naming the
submodule (``submodule lib/core: workspace fetch failed ...``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from clearq.errors import ConfigError
from clearq.models import Submodule
from clearq.runtime.gitcreds import preferred_url
from clearq.runtime.workspace_git import apply_diff, check_repository, clone_at
from clearq.runtime.workspace_paths import (
    WorkspaceError,
    WorkspaceStep,
    check_commit,
    checked_path,
    ensure_folder,
    write_file,
)

__all__ = ["check_submodules", "checkout_submodules", "resolve_url"]

_RELATIVE = ("./", "../")
_SCHEME_HOST = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*/?")
_SCP_HOST = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:")


def resolve_url(url: str, parent: str) -> str:
    """``url`` as git resolves a submodule URL: relative ones against ``parent``'s URL.

    ``../lib.git`` of ``https://host/org/app.git`` is ``https://host/org/lib.git``.
    Raises WorkspaceError for a URL that climbs above ``parent``'s host or root, or that
    holds a ``..`` segment after resolution.
    """
    resolved = _relative_to(url, parent) if url.startswith(_RELATIVE) else url
    if ".." in re.split(r"[/:]", resolved):
        raise WorkspaceError(
            WorkspaceStep.CLONE, f"submodule URL {url!r} has a '..' segment left: refused"
        )
    return resolved


def _relative_to(url: str, parent: str) -> str:
    match = _SCHEME_HOST.match(parent) or _SCP_HOST.match(parent)
    root = match.group(0) if match else ("/" if parent.startswith("/") else "")
    if match and not root.endswith(("/", ":")):
        root += "/"
    segments = [s for s in parent[len(root) :].split("/") if s]
    rest = url
    while rest.startswith(_RELATIVE):
        if rest.startswith("../"):
            if not segments:
                raise WorkspaceError(
                    WorkspaceStep.CLONE,
                    f"submodule URL {url!r} climbs above {parent!r}: refused",
                )
            segments.pop()
        rest = rest.split("/", 1)[1]
    return root + "/".join([*segments, rest] if rest else segments)


def submodule_url(submodule: Submodule, parent: str, *, allow_local: bool) -> str:
    """The URL the agent fetches ``submodule`` from, checked like a task's repository."""
    resolved = resolve_url(submodule.repository, parent)
    try:
        url = preferred_url(resolved)
    except ConfigError as error:
        raise WorkspaceError(WorkspaceStep.CLONE, str(error)) from error
    check_repository(url, allow_local=allow_local)
    return url


def check_submodules(
    submodules: Sequence[Submodule], parent: str, *, allow_local: bool, where: str = ""
) -> None:
    """Refuse any unsafe path, commit or URL among ``submodules``, recursively."""
    for submodule in submodules:
        label = f"{where}{submodule.path}"
        with _named(label):
            checked_path(submodule.path, what="submodule path")
            check_commit(submodule.commit)
            for file in submodule.untracked:
                checked_path(file.path, what="untracked file")
            url = submodule_url(submodule, parent, allow_local=allow_local)
        check_submodules(submodule.submodules, url, allow_local=allow_local, where=f"{label}/")


def checkout_submodules(
    submodules: Sequence[Submodule],
    repo: Path,
    parent: str,
    *,
    mirror_cache: Path | None,
    allow_local: bool,
    where: str = "",
) -> None:
    """Clone each of ``submodules`` into ``repo`` (whose URL is ``parent``), recursively."""
    for submodule in submodules:
        label = f"{where}{submodule.path}"
        with _named(label):
            url = submodule_url(submodule, parent, allow_local=allow_local)
            folder = _empty_folder(repo, submodule.path)
            local = allow_local
            _checkout_one(submodule, folder, url, mirror_cache=mirror_cache, allow_local=local)
        checkout_submodules(
            submodule.submodules,
            folder,
            url,
            mirror_cache=mirror_cache,
            allow_local=allow_local,
            where=f"{label}/",
        )


def _checkout_one(
    submodule: Submodule, folder: Path, url: str, *, mirror_cache: Path | None, allow_local: bool
) -> None:
    commit = submodule.commit
    clone_at(url, folder, commit=commit, mirror_cache=mirror_cache, allow_local=allow_local)
    if submodule.diff:
        apply_diff(folder, submodule.diff)
    for file in submodule.untracked:
        path = checked_path(file.path, what="untracked file")
        data, executable = file.data, file.executable
        write_file(folder, path, data, executable=executable, step=WorkspaceStep.UNTRACKED)


def _empty_folder(repo: Path, value: str) -> Path:
    folder = repo
    for part in checked_path(value, what="submodule path").parts:
        folder = folder / part
        ensure_folder(folder, repo, step=WorkspaceStep.PATHS)
    if any(folder.iterdir()):
        raise WorkspaceError(WorkspaceStep.PATHS, f"{value} is not empty in the checkout")
    return folder


@contextmanager
def _named(label: str) -> Iterator[None]:
    """Re-raise a WorkspaceError from inside the block with the submodule's path in front.

    Nested submodules are handled outside their parent's block, so a path is named once.
    """
    try:
        yield
    except WorkspaceError as error:
        raise WorkspaceError(
            error.step, f"submodule {label}: {error.detail}", git_output=error.git_output
        ) from error
