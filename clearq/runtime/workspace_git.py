"""The agent's git for a workspace: clones through cached bare mirrors, checks out, applies.

git runs with a configuration no task can change (``clearq.runtime.gitsafe``):
transports allow-listed, hooks off, no system or global config, and each mirror's config
rewritten by the agent before it is used. A local repository (a path or ``file://``) is
refused unless the operator allows local repositories (``allow_local``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clearq.deathsig import die_with_parent
from clearq.errors import ConfigError
from clearq.runtime.gitsafe import git_argv, git_environment, reset_mirror_config
from clearq.runtime.workspace_paths import WorkspaceError, WorkspaceStep

__all__ = ["apply_diff", "check_repository", "clone_at", "git"]

_REMOTE_URL = re.compile(
    r"(?:https|ssh|git)://|(?:[A-Za-z0-9._-]+@[A-Za-z0-9.-]+|[A-Za-z0-9-]+\.[A-Za-z0-9.-]+):(?!:)"
)
"""A URL the remote transports take (``user@host:path`` is ssh); anything else is local,
or a transport the agent's git refuses."""

_SLUG = re.compile(r"[^A-Za-z0-9._-]+")
MIRROR_LOCK_TIMEOUT_SECONDS = 900.0
"""How long a clone waits for another process on this machine to finish with a mirror: a
first clone of a large repository takes minutes, but an agent frozen while it holds the
lock (SIGSTOP, a hung fetch) must not block this host's other agents for ever."""
_LOCK_POLL_SECONDS = 0.2


def check_repository(url: str, *, allow_local: bool) -> None:
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


def git(
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
            git_argv(*args),
            cwd=cwd,
            input=stdin,
            capture_output=True,
            check=False,
            env=env,
            preexec_fn=die_with_parent(),  # a SIGKILLed agent's clone ends with it
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
        preexec_fn=die_with_parent(),
    )
    return done.returncode == 0


def clone_at(
    url: str,
    dest: Path,
    *,
    commit: str | None,
    branch: str | None = None,
    mirror_cache: Path | None,
    allow_local: bool,
) -> None:
    """Clone ``url`` into ``dest`` (missing or empty) and check out ``commit`` detached
    (else ``branch``'s tip, else the default branch's), through a mirror in ``mirror_cache``.
    """
    source, local = url, allow_local
    if mirror_cache is not None:
        source = str(_mirror(url, mirror_cache, commit, allow_local))
        local = True  # the agent's own mirror
    clone = ("clone", "--quiet", "--no-checkout", "--", source, str(dest))
    git(WorkspaceStep.CLONE, None, *clone, allow_local=local)
    if commit is not None:
        _fetch_commit(dest, commit, url, allow_local=local)
        revision = commit
    else:
        # A full ref name cannot be read as an option, whatever the branch is called.
        ref = f"refs/remotes/origin/{branch}" if branch else "HEAD"
        revision = git(WorkspaceStep.CHECKOUT, dest, "rev-parse", "--verify", f"{ref}^{{commit}}")
    git(
        WorkspaceStep.CHECKOUT,
        dest,
        *("-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", revision),
    )


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
            git(WorkspaceStep.CLONE, None, *clone, allow_local=allow_local)
            partial.rename(mirror)
        reset_mirror_config(mirror, url)
        if commit is None or not _has_commit(mirror, commit):
            fetch = ("fetch", "--quiet", "--prune", "origin")
            git(WorkspaceStep.FETCH, mirror, *fetch, allow_local=allow_local)
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
        git(WorkspaceStep.FETCH, repo, *fetch, allow_local=allow_local)
    except WorkspaceError as error:
        said = error.git_output
    if not _has_commit(repo, commit):
        raise WorkspaceError(
            WorkspaceStep.FETCH, f"commit {commit} is not in {url}: was it pushed?", git_output=said
        )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``: agents on one machine share the mirrors.

    Waits at most ``MIRROR_LOCK_TIMEOUT_SECONDS`` for the process holding it, then fails as
    the machine's fault (``infra``): the task can run elsewhere while this host's holder is
    stuck.
    """
    wait = MIRROR_LOCK_TIMEOUT_SECONDS
    deadline = time.monotonic() + wait
    with open(path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WorkspaceError(
                        WorkspaceStep.CLONE,
                        f"another process on this machine has held {path} for more than "
                        f"{wait:g} s (a frozen or stuck agent?); the task will run again",
                        infra=True,
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def apply_diff(dest: Path, diff: str) -> None:
    try:
        git(
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
