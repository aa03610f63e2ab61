"""Capture the code a training script runs, so an agent can rebuild its working tree.

``capture_script(entry, argv=sys.argv)`` returns a ``ScriptCapture``: a
``clearq.models.Script`` and the warnings to show the user.

In a git repository the Script names a commit the remote has (the newest ancestor of
HEAD found among the remote's tracking branches), the remote's URL without credentials,
and ``git diff --binary`` from that commit to the working tree: commits not yet pushed,
staged and unstaged changes alike. Untracked files that git does not ignore travel as
bytes with their executable bit; symbolic links and anything outside the repository
stay behind, with a warning. A repository without a remote is named by its local path,
so only an agent on this machine can fetch it (a warning says so). Outside any
repository the Script holds the script's text and runs on its own.

Submodules are captured the same way, each on its own and recursively
(``clearq.sdk.capture.submodules``): the main diff leaves them out
(``--ignore-submodules=all``), and each carries its URL from ``.gitmodules``, the
commit its remote has, its own diff and untracked files.

Nothing is dropped silently. Past ``max_diff_bytes`` the largest untracked files are
left out first, each one named in a warning and in ``ScriptCapture.dropped``; the diff
itself is always kept whole, with a warning when it alone is over the limit.

``clearq.runtime.workspace.build_workspace`` is the inverse, run by the agent.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearq.config import DEFAULT_MAX_DIFF_BYTES
from clearq.sdk.capture.git_files import STATUS, parse_status
from clearq.sdk.capture.git_tree import REMOTES, capture_tree, repository_base, start_diff
from clearq.sdk.capture.gitcmd import (
    CaptureError,
    Started,
    git_done,
    git_output,
    git_said,
    git_start,
    strip_credentials,
)
from clearq.sdk.capture.submodules import Submodules, capture_submodules
from clearq.valueclass import value_class

if TYPE_CHECKING:
    from clearq.models import Script

__all__ = ["CaptureError", "ScriptCapture", "capture_script", "strip_credentials"]


@value_class
class ScriptCapture:
    """A captured Script and what the user should know about it."""

    fields: dict[str, Any]
    """The Script as stored (its JSON form): built without pydantic, for Task.init's speed."""
    repo_root: Path | None = None
    """The repository's top folder; None for a script outside any repository."""
    warnings: tuple[str, ...] = ()
    unpushed_commits: int = 0
    """Commits not on the remote, folded into the diff."""
    size: int = 0
    """Bytes of diff plus untracked files kept."""
    dropped: tuple[str, ...] = ()
    """Untracked files left out to stay under the size limit, largest first."""
    over_limit: bool = False
    """True when the capture was over ``max_diff_bytes`` (files dropped or diff kept)."""

    @property
    def script(self) -> Script:
        """The captured code as a typed Script."""
        from clearq.models import Script

        return Script.model_validate(self.fields)

    @property
    def truncated(self) -> bool:
        """True when files were left out: the agent's working tree will lack them."""
        return bool(self.dropped)


def capture_script(
    entry: Path,
    *,
    argv: Sequence[str],
    module: str | None = None,
    max_diff_bytes: int = DEFAULT_MAX_DIFF_BYTES,
    cwd: Path | None = None,
) -> ScriptCapture:
    """Capture the code of the running script ``entry`` so an agent can run it again.

    ``argv`` is the script's command line (``sys.argv``; the first item is dropped),
    ``module`` the name given to ``python -m``, ``cwd`` the folder it runs in (the current
    one by default). Raises CaptureError when the entry is not a readable file or git
    fails on a repository it found.
    """
    entry = Path(entry).resolve()
    if not entry.is_file():
        raise CaptureError(f"entry point {entry} is not a file; give the script that runs")
    warnings: list[str] = []
    try:
        # The first three at once: the status and the remotes need only to be in the
        # repository (status names paths from its top wherever it runs).
        first = [git_start(entry.parent, *args) for args in (_TOP, STATUS, REMOTES)]
    except FileNotFoundError:
        warnings.append("git is not on PATH: captured the script file alone")
        return _standalone(entry, argv, module, warnings)
    found = _repo_root(first[0], warnings)
    if found is None:
        for started in first[1:]:
            git_done(started)  # not a repository: their failures say nothing more
        return _standalone(entry, argv, module, warnings)
    where = (cwd or Path.cwd()).resolve()
    return _in_repo(*found, first[1:], entry, argv, module, max_diff_bytes, where, warnings)


def _standalone(
    entry: Path, argv: Sequence[str], module: str | None, warnings: list[str]
) -> ScriptCapture:
    try:
        source = entry.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CaptureError(f"cannot read {entry} as UTF-8 text: {error}") from error
    if module is not None:
        warnings.append(
            f"launched as 'python -m {module}' outside a git repository: only {entry.name} "
            "is captured, and the agent runs it as a script"
        )
    script = _script(
        entry_point=entry.name,
        arguments=list(argv[1:]),
        source=source,
    )
    return ScriptCapture(fields=script, warnings=tuple(warnings), size=len(source.encode()))


def _in_repo(
    root: Path,
    remote_refs: list[str],
    started: list[Started],
    entry: Path,
    argv: Sequence[str],
    module: str | None,
    limit: int,
    cwd: Path,
    warnings: list[str],
) -> ScriptCapture:
    # Five git commands in all for a repository without submodules, in two rounds:
    # rev-parse, status and config (above), then rev-list with the diff against HEAD
    # (the base, unless commits are not pushed yet); the rest is read from their output.
    status_run, remotes = started
    try:
        now = parse_status(git_output(status_run, root))
    except CaptureError:
        git_done(remotes)
        raise
    branch = now.branch
    early = start_diff(root, now.head) if now.head is not None else None
    try:
        base = repository_base(root, now, remote_refs, warnings, remotes=remotes)
    except BaseException:
        if early is not None:
            git_done(early)
        raise
    if early is not None and base.tree != now.head:
        git_done(early)  # commits not pushed: the diff is taken against what the remote has
        early = None
    entry_point = entry.relative_to(root).as_posix()
    tree = capture_tree(
        root,
        base,
        entry_point=entry_point,
        limit=limit,
        warnings=warnings,
        tree=now,
        diff_started=early,
    )
    subs = Submodules(fields=[])
    if base.commit is not None:
        subs = capture_submodules(root, limit=limit - tree.size, warnings=warnings)
    script = _script(
        repository=base.repository,
        branch=branch,
        commit=base.commit,
        entry_point=entry_point,
        module=module,
        working_dir=cwd.relative_to(root).as_posix() if cwd.is_relative_to(root) else ".",
        arguments=list(argv[1:]),
        diff=tree.diff,
        untracked=[f.fields() for f in tree.files],
        submodules=subs.fields,
    )
    return ScriptCapture(
        fields=script,
        repo_root=root,
        warnings=tuple(warnings),
        unpushed_commits=base.unpushed + subs.unpushed,
        size=tree.size + subs.size,
        dropped=(*tree.dropped, *subs.dropped),
        over_limit=tree.over_limit or subs.over_limit,
    )


def _script(**given: Any) -> dict[str, Any]:
    """A Script's stored form: every field, defaults as ``models.Script`` has them."""
    return {
        "repository": None,
        "branch": None,
        "commit": None,
        "entry_point": None,
        "module": None,
        "working_dir": ".",
        "arguments": [],
        "diff": "",
        "untracked": [],
        "submodules": [],
        "source": None,
        "python_version": platform.python_version(),
        **given,
    }


# -- git ---------------------------------------------------------------------------------


_TOP = ("rev-parse", "--show-toplevel", "--symbolic-full-name", "--remotes")


def _repo_root(started: Started, warnings: list[str]) -> tuple[Path, list[str]] | None:
    """The repository's top folder and its remote-tracking refs (one ``rev-parse``, started
    already), or None outside any repository."""
    done = git_done(started)
    if done.returncode != 0:
        message = git_said(done)
        if "not a git repository" not in message:
            warnings.append(
                f"git cannot read the repository here ({message}): captured the script file alone"
            )
        return None
    # The top folder first, then one ref a line; a folder's name may hold a newline.
    text = os.fsdecode(done.stdout.rstrip(b"\n"))
    top, *refs = text.split("\nrefs/remotes/")
    return Path(top).resolve(), [f"refs/remotes/{ref}" for ref in refs]
