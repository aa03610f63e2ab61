"""Rebuild a task's code on an agent: the inverse of ``clearq.sdk.capture.git``.

``build_workspace(script, dest)`` clones the task's repository into ``dest`` (through a
bare mirror per repository URL kept under ``mirror_cache``, cloned once and fetched
after), checks out the captured commit detached, applies the captured diff with
``git apply --binary`` and writes the untracked files. A Script without a repository
writes its source to ``dest/entry_point``. It returns the folder to run in.

Nothing a Script says may write outside ``dest``: every path in it (untracked files,
entry point, working folder) is checked before anything is written: not absolute, no
``..``, nothing in ``.git``; each folder on the way is checked not to be a symbolic
link as it is reached, and files are opened without following links. ``git apply``
runs inside ``dest`` without ``--unsafe-paths``, so it refuses ``..`` paths, ``.git``
and writes beyond a symbolic link itself.

git itself runs with a configuration no task can change (``clearq.runtime.gitsafe``):
transports allow-listed, hooks off, no system or global config, and each mirror's config
rewritten by the agent before it is used. A local repository (a path or ``file://``) is
refused unless the operator allows local repositories (``allow_local``).

Every failure is a WorkspaceError naming its step and keeping git's message::

    ClearqError
    └── WorkspaceError    step: paths, clone, fetch, checkout, diff, untracked, source
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath, PureWindowsPath

from clearq.errors import ClearqError, ConfigError
from clearq.models import Script
from clearq.runtime.gitcreds import preferred_url
from clearq.runtime.gitsafe import git_argv, git_environment, reset_mirror_config

__all__ = ["WorkspaceError", "WorkspaceStep", "build_workspace", "checked_path"]

_REMOTE_URL = re.compile(
    r"(?:https|ssh|git)://|(?:[A-Za-z0-9._-]+@[A-Za-z0-9.-]+|[A-Za-z0-9-]+\.[A-Za-z0-9.-]+):(?!:)"
)
"""A URL the remote transports take (``user@host:path`` is ssh); anything else is local,
or a transport the agent's git refuses."""

_COMMIT = re.compile(r"[0-9a-fA-F]{4,64}")
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


class WorkspaceStep(enum.StrEnum):
    """The step of building a workspace that failed."""

    PATHS = "paths"
    CLONE = "clone"
    FETCH = "fetch"
    CHECKOUT = "checkout"
    DIFF = "diff"
    UNTRACKED = "untracked"
    SOURCE = "source"


class WorkspaceError(ClearqError):
    """A task's code could not be rebuilt; ``step`` says where, ``git_output`` what git said."""

    def __init__(self, step: WorkspaceStep, message: str, *, git_output: str = "") -> None:
        self.step = step
        self.git_output = git_output
        text = f"workspace {step.value} failed: {message}"
        super().__init__(f"{text}\ngit said: {git_output}" if git_output else text)


def checked_path(value: str, *, what: str, allow_root: bool = False) -> PurePosixPath:
    """``value`` as a relative path that stays inside the folder it is joined to.

    Raises WorkspaceError (step ``paths``) for an absolute path, a ``..`` component, a
    ``.git`` component, a backslash or NUL, or (unless ``allow_root``) an empty path.
    """
    reason = _unsafe(value, allow_root=allow_root)
    if reason is not None:
        raise WorkspaceError(WorkspaceStep.PATHS, f"{what} {value!r} {reason}: refused")
    return PurePosixPath(value)


def _unsafe(value: str, *, allow_root: bool) -> str | None:
    if "\0" in value or "\\" in value:
        return "contains a NUL or a backslash"
    path = PurePosixPath(value)
    if path.is_absolute() or PureWindowsPath(value).drive:
        return "is absolute"
    if ".." in path.parts:
        return "has a '..' component"
    if any(part.lower() == ".git" for part in path.parts):
        return "is inside .git"
    if not path.parts and not allow_root:
        return "is empty"
    return None


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
        _check_repository(url, allow_local=allow_local)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise WorkspaceError(WorkspaceStep.PATHS, f"{dest} is not empty")
    if script.repository is not None:
        _clone(script, dest, mirror_cache, allow_local=allow_local)
    elif script.commit is not None:
        raise WorkspaceError(
            WorkspaceStep.CLONE,
            f"the task names commit {script.commit} but no repository to fetch it from",
        )
    elif script.source is not None:
        _write_source(script, dest)
    elif script.diff or script.untracked:
        _git(WorkspaceStep.CLONE, dest, "init", "--quiet")
    else:
        raise WorkspaceError(WorkspaceStep.SOURCE, "the task has no code: no repository, no source")
    if script.diff:
        _apply(dest, script.diff)
    for file in script.untracked:
        path = checked_path(file.path, what="untracked file")
        _write(dest, path, file.data, executable=file.executable, step=WorkspaceStep.UNTRACKED)
    return _run_folder(script, dest)


def _check_paths(script: Script) -> None:
    """Refuse a Script with any unsafe path before a single byte is written."""
    if script.entry_point is not None:
        checked_path(script.entry_point, what="entry point")
    checked_path(script.working_dir, what="working folder", allow_root=True)
    for file in script.untracked:
        checked_path(file.path, what="untracked file")
    if script.commit is not None and not _COMMIT.fullmatch(script.commit):
        raise WorkspaceError(WorkspaceStep.PATHS, f"commit {script.commit!r} is not a hash")


def _check_repository(url: str, *, allow_local: bool) -> None:
    if url.startswith("-") or any(c in url for c in '\0\n\r"\\'):
        raise WorkspaceError(WorkspaceStep.CLONE, f"repository {url!r} is not a URL: refused")
    if allow_local or _REMOTE_URL.match(url):
        return
    raise WorkspaceError(
        WorkspaceStep.CLONE,
        f"repository {url!r} is not an https, ssh or git URL; this agent does not use "
        "local repositories (its operator allows them with clearq agent "
        "--allow-local-repositories or CLEARQ_ALLOW_LOCAL_REPOSITORIES=1)",
    )


def _write_source(script: Script, dest: Path) -> None:
    if script.entry_point is None:
        raise WorkspaceError(WorkspaceStep.SOURCE, "the task has a source but no entry point")
    assert script.source is not None
    entry = checked_path(script.entry_point, what="entry point")
    _write(dest, entry, script.source.encode(), executable=False, step=WorkspaceStep.SOURCE)


def _run_folder(script: Script, dest: Path) -> Path:
    folder = dest
    for part in checked_path(script.working_dir, what="working folder", allow_root=True).parts:
        folder = folder / part
        # An ignored folder the script ran in exists only on the user's machine.
        _ensure_folder(folder, dest, step=WorkspaceStep.PATHS)
    entry = script.entry_point
    if entry is not None and script.module is None and not (dest / entry).is_file():
        raise WorkspaceError(
            WorkspaceStep.CHECKOUT, f"the entry point {entry} is not in the rebuilt working tree"
        )
    return folder


# -- git ---------------------------------------------------------------------------------


def _git(
    step: WorkspaceStep,
    cwd: Path | None,
    *args: str,
    stdin: bytes = b"",
    allow_local: bool = True,
) -> str:
    """Run git; WorkspaceError for ``step``, with git's message, when it fails.

    ``allow_local`` False where git reaches the task's own URL; True where it reaches
    only the agent's folders (the workspace, a mirror).
    """
    try:
        env = git_environment(os.environ, allow_local=allow_local)
    except ConfigError as error:
        raise WorkspaceError(step, str(error)) from error
    try:
        done = subprocess.run(
            git_argv(*args), cwd=cwd, input=stdin, capture_output=True, check=False, env=env
        )
    except OSError as error:
        raise WorkspaceError(step, f"cannot run git ({error}); is git installed?") from error
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()
        raise WorkspaceError(
            step, f"git {' '.join(args)} exited with {done.returncode}", git_output=said
        )
    return done.stdout.decode(errors="replace").strip()


def _has_commit(repo: Path, commit: str) -> bool:
    done = subprocess.run(
        git_argv("cat-file", "-e", f"{commit}^{{commit}}"),
        cwd=repo,
        input=b"",
        capture_output=True,
        check=False,
        env=git_environment(os.environ, allow_local=False, credentials=False),
    )
    return done.returncode == 0


def _clone(script: Script, dest: Path, mirror_cache: Path | None, *, allow_local: bool) -> None:
    assert script.repository is not None
    source, local = script.repository, allow_local
    if mirror_cache is not None:
        source = str(_mirror(script.repository, mirror_cache, script.commit, allow_local))
        local = True  # the agent's own mirror
    clone = ("clone", "--quiet", "--no-checkout", "--", source, str(dest))
    _git(WorkspaceStep.CLONE, None, *clone, allow_local=local)
    revision = _revision(script, dest, allow_local=local)
    _git(
        WorkspaceStep.CHECKOUT,
        dest,
        *("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", revision),
    )


def _revision(script: Script, dest: Path, *, allow_local: bool) -> str:
    """The commit to check out: the captured one, else the branch's tip, else HEAD's."""
    if script.commit is not None:
        _fetch_commit(dest, script.commit, script.repository, allow_local=allow_local)
        return script.commit
    # A full ref name cannot be read as an option, whatever the branch is called.
    ref = f"refs/remotes/origin/{script.branch}" if script.branch else "HEAD"
    return _git(WorkspaceStep.CHECKOUT, dest, "rev-parse", "--verify", f"{ref}^{{commit}}")


def _mirror(url: str, cache: Path, commit: str | None, allow_local: bool) -> Path:
    """The bare mirror of ``url`` in ``cache``, cloned once and fetched when it lacks ``commit``.

    The mirror's config is the agent's: rewritten before every fetch, whatever is there.
    """
    cache.mkdir(parents=True, exist_ok=True)
    tail = _SLUG.sub("-", url.rstrip("/").rsplit("/", 1)[-1])[-40:]
    mirror = cache / f"{tail}-{hashlib.sha256(url.encode()).hexdigest()[:16]}.git"
    with _locked(mirror.with_name(mirror.name + ".lock")):
        if not mirror.is_dir():
            # Clone aside and rename: a clone killed halfway never looks like a mirror.
            partial = mirror.with_name(mirror.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            clone = ("clone", "--quiet", "--mirror", "--", url, str(partial))
            _git(WorkspaceStep.CLONE, None, *clone, allow_local=allow_local)
            partial.rename(mirror)
        reset_mirror_config(mirror, url)
        if commit is None or not _has_commit(mirror, commit):
            fetch = ("fetch", "--quiet", "--prune", "origin")
            _git(WorkspaceStep.FETCH, mirror, *fetch, allow_local=allow_local)
        if commit is not None:
            _fetch_commit(mirror, commit, url, allow_local=allow_local)
    return mirror


def _fetch_commit(repo: Path, commit: str, url: str | None, *, allow_local: bool) -> None:
    """Make sure ``repo`` has ``commit``: fetch it by hash when no branch brought it."""
    if _has_commit(repo, commit):
        return
    said = ""
    try:
        fetch = ("fetch", "--quiet", "origin", commit)
        _git(WorkspaceStep.FETCH, repo, *fetch, allow_local=allow_local)
    except WorkspaceError as error:
        said = error.git_output
    if not _has_commit(repo, commit):
        raise WorkspaceError(
            WorkspaceStep.FETCH, f"commit {commit} is not in {url}: was it pushed?", git_output=said
        )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: agents on one machine share the mirrors."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _apply(dest: Path, diff: str) -> None:
    try:
        _git(
            WorkspaceStep.DIFF,
            dest,
            "apply",
            "--binary",
            "--whitespace=nowarn",
            "-",
            stdin=diff.encode(),
        )
    except WorkspaceError as error:
        raise WorkspaceError(
            WorkspaceStep.DIFF,
            "the captured diff does not apply to the checked-out commit",
            git_output=error.git_output,
        ) from error


# -- files -------------------------------------------------------------------------------


def _write(
    dest: Path, path: PurePosixPath, data: bytes, *, executable: bool, step: WorkspaceStep
) -> None:
    """Write ``dest/path`` without following a symbolic link anywhere on the way."""
    folder = dest
    for part in path.parts[:-1]:
        folder = folder / part
        _ensure_folder(folder, dest, step=step)
    mode = 0o755 if executable else 0o644
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        fd = os.open(folder / path.name, flags, mode)
        with open(fd, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), mode)
    except OSError as error:
        raise WorkspaceError(step, f"cannot write {path} ({error.strerror}): refused") from error


def _ensure_folder(folder: Path, dest: Path, *, step: WorkspaceStep) -> None:
    """Make ``folder`` if missing; refuse one that is a symbolic link or a file."""
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        folder.mkdir()
        return
    where = folder.relative_to(dest).as_posix()
    if stat.S_ISLNK(info.st_mode):
        raise WorkspaceError(step, f"{where} is a symbolic link: nothing is written through it")
    if not stat.S_ISDIR(info.st_mode):
        raise WorkspaceError(step, f"{where} is a file where a folder is needed")
