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

Nothing is dropped silently. Past ``max_diff_bytes`` the largest untracked files are
left out first, each one named in a warning and in ``ScriptCapture.dropped``; the diff
itself is always kept whole, with a warning when it alone is over the limit.

``clearq.runtime.workspace.build_workspace`` is the inverse, run by the agent.
"""

from __future__ import annotations

import base64
import os
import platform
import re
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearq.config import DEFAULT_MAX_DIFF_BYTES
from clearq.errors import ClearqError

if TYPE_CHECKING:
    from clearq.models import Script

__all__ = ["CaptureError", "ScriptCapture", "capture_script", "strip_credentials"]

_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"}
"""Capture only reads: take no optional locks the user's own git commands could trip on."""

_DIFF = (
    # Pin every setting that changes the patch's shape, whatever the user's config says.
    *("-c", "diff.noprefix=false", "-c", "diff.relative=false", "-c", "core.quotePath=true"),
    *("diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"),
    *("--submodule=short", "--src-prefix=a/", "--dst-prefix=b/"),
)

_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?:(?P<userinfo>[^/?#]*)@)?(?P<rest>[^?#]*)"
)
_SSH_SCHEMES = frozenset({"ssh", "git+ssh", "ssh+git"})
_MIB = 1024 * 1024


class CaptureError(ClearqError):
    """Git failed while capturing a script's code; the message keeps git's own words."""


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class _Candidate:
    path: str
    full: Path
    size: int
    executable: bool


@dataclass(frozen=True)
class _File:
    """An untracked (or carried whole) file's content."""

    path: str
    data: bytes
    executable: bool

    def fields(self) -> dict[str, Any]:
        """The stored form of ``models.UntrackedFile`` (bytes as URL-safe base64)."""
        data = base64.urlsafe_b64encode(self.data).decode("ascii")
        return {"path": self.path, "data": data, "executable": self.executable}


@dataclass(frozen=True)
class _Base:
    repository: str | None
    commit: str | None
    tree: str
    """What the diff is taken against: the commit, or the empty tree before a first one."""
    unpushed: int = 0


def strip_credentials(url: str) -> str:
    """``url`` without passwords, tokens or query strings.

    ``https://user:token@host/x.git?token=t`` becomes ``https://host/x.git``. A user name
    alone is kept for ssh (``ssh://git@host/x``), where it carries no secret; scp-like
    ``git@host:x.git`` forms and local paths are returned unchanged.
    """
    match = _URL.match(url)
    if match is None:
        return url
    scheme, userinfo, rest = match.group("scheme", "userinfo", "rest")
    keep_user = userinfo and scheme.lower() in _SSH_SCHEMES and ":" not in userinfo
    return f"{scheme}://{userinfo}@{rest}" if keep_user else f"{scheme}://{rest}"


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
    root = _repo_root(entry.parent, warnings)
    if root is None:
        return _standalone(entry, argv, module, warnings)
    where = (cwd or Path.cwd()).resolve()
    return _in_repo(root, entry, argv, module, max_diff_bytes, where, warnings)


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
    entry: Path,
    argv: Sequence[str],
    module: str | None,
    limit: int,
    cwd: Path,
    warnings: list[str],
) -> ScriptCapture:
    branch = _branch(root)
    base = _base(root, branch, warnings)
    diff, whole = _diff(root, base.tree, warnings)
    entry_point = entry.relative_to(root).as_posix()
    candidates = _untracked(root, entry_point, warnings)
    diff_size = len(diff.encode()) + sum(len(f.data) for f in whole)
    kept, dropped = _fit(diff_size, candidates, limit, warnings)
    files = [f for c in kept if (f := _read(c, warnings)) is not None]
    script = _script(
        repository=base.repository,
        branch=branch,
        commit=base.commit,
        entry_point=entry_point,
        module=module,
        working_dir=cwd.relative_to(root).as_posix() if cwd.is_relative_to(root) else ".",
        arguments=list(argv[1:]),
        diff=diff,
        untracked=[f.fields() for f in (*whole, *files)],
    )
    return ScriptCapture(
        fields=script,
        repo_root=root,
        warnings=tuple(warnings),
        unpushed_commits=base.unpushed,
        size=diff_size + sum(len(f.data) for f in files),
        dropped=tuple(c.path for c in dropped),
        over_limit=diff_size + sum(c.size for c in candidates) > limit,
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
        "source": None,
        "python_version": platform.python_version(),
        **given,
    }


# -- git ---------------------------------------------------------------------------------


def _run(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=b"" if stdin is None else stdin,  # never the training script's own stdin
        capture_output=True,
        check=False,
        env={**os.environ, **_GIT_ENV},
    )


def _message(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"


def _out(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """Git's output; CaptureError with git's message when it fails."""
    try:
        done = _run(cwd, *args, stdin=stdin)
    except OSError as error:
        raise CaptureError(f"cannot run git {args[0]}: {error}") from error
    if done.returncode != 0:
        raise CaptureError(f"git {' '.join(args)} failed in {cwd}: {_message(done)}")
    return done.stdout


def _text(cwd: Path, *args: str) -> str:
    return _out(cwd, *args).decode().strip()


def _repo_root(folder: Path, warnings: list[str]) -> Path | None:
    try:
        done = _run(folder, "rev-parse", "--show-toplevel")
    except FileNotFoundError:
        warnings.append("git is not on PATH: captured the script file alone")
        return None
    if done.returncode != 0:
        message = _message(done)
        if "not a git repository" not in message:
            warnings.append(
                f"git cannot read the repository here ({message}): captured the script file alone"
            )
        return None
    return Path(os.fsdecode(done.stdout.rstrip(b"\n"))).resolve()


def _branch(root: Path) -> str | None:
    done = _run(root, "symbolic-ref", "--quiet", "--short", "HEAD")
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip() or None


def _head(root: Path) -> str | None:
    done = _run(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return done.stdout.decode().strip() if done.returncode == 0 else None


def _remote(root: Path, branch: str | None) -> str | None:
    """The branch's upstream remote, else ``origin``, else the first; None without one."""
    names = _text(root, "remote").split()
    if branch is not None:
        done = _run(root, "config", "--get", f"branch.{branch}.remote")
        upstream = done.stdout.decode().strip()
        if done.returncode == 0 and upstream in names:
            return upstream
    if "origin" in names:
        return "origin"
    return names[0] if names else None


# -- what the diff is taken against ------------------------------------------------------


def _base(root: Path, branch: str | None, warnings: list[str]) -> _Base:
    head = _head(root)
    if head is None:
        warnings.append(
            "the repository has no commit yet: the whole working tree is stored with the task"
        )
        empty_tree = _text(root, "hash-object", "-t", "tree", "--stdin")
        return _Base(repository=None, commit=None, tree=empty_tree)
    remote = _remote(root, branch)
    if remote is None:
        warnings.append(
            f"the repository has no remote: the task names the local clone {root}, so agents "
            f"on other machines cannot fetch commit {head[:12]} (add a remote and push)"
        )
        return _Base(repository=root.as_posix(), commit=head, tree=head)
    url = strip_credentials(_text(root, "remote", "get-url", remote))
    commit, unpushed = _pushed_base(root, head, remote, warnings)
    return _Base(repository=url, commit=commit, tree=commit, unpushed=unpushed)


def _pushed_base(root: Path, head: str, remote: str, warnings: list[str]) -> tuple[str, int]:
    """The newest ancestor of HEAD the remote has, and how many commits lie past it.

    The remote's tracking branches (the upstream ``@{u}`` among them) stand for what it
    has: ``rev-list --boundary`` lists the commits of HEAD on none of them, and the
    pushed commits they grow from.
    """
    if not _text(root, "for-each-ref", "--count=1", f"refs/remotes/{remote}/"):
        warnings.append(
            f"remote '{remote}' has no tracking branch here (git fetch {remote}): the task "
            f"names {head[:12]}, which agents can fetch only if the remote has it"
        )
        return head, 0
    lines = _text(root, "rev-list", "--boundary", head, "--not", f"--remotes={remote}").split()
    if not lines:
        return head, 0
    boundaries = [line[1:] for line in lines if line.startswith("-")]
    if not boundaries:
        warnings.append(
            f"no commit of HEAD is on remote '{remote}' (push the branch): the task names "
            f"{head[:12]}, which agents cannot fetch until it is pushed"
        )
        return head, 0
    counts = {b: int(_text(root, "rev-list", "--count", f"{b}..{head}")) for b in boundaries}
    base = min(boundaries, key=counts.__getitem__)
    warnings.append(
        f"{counts[base]} commit(s) not on remote '{remote}' are folded into the diff against "
        f"{base[:12]} (push them to keep the task small)"
    )
    return base, counts[base]


# -- the diff ----------------------------------------------------------------------------


def _diff(root: Path, tree: str, warnings: list[str]) -> tuple[str, list[_File]]:
    """``git diff --binary`` from ``tree`` to the working tree, as text.

    A Script's diff is text, so a text file that is not UTF-8 cannot travel in it: such
    files are left out of the diff and carried whole, as untracked files that overwrite
    the checkout.
    """
    raw = _out(root, *_DIFF, tree)
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        return _diff_by_file(root, tree, warnings)


def _diff_by_file(root: Path, tree: str, warnings: list[str]) -> tuple[str, list[_File]]:
    names = _out(root, "diff", "--name-only", "--no-renames", "-z", tree).split(b"\0")
    patches: list[str] = []
    whole: list[_File] = []
    for name in filter(None, names):
        path = os.fsdecode(name)
        patch = _out(root, *_DIFF, tree, "--", f":(literal){path}")
        try:
            patches.append(patch.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        if not os.path.lexists(root / path):
            warnings.append(f"{path} is not UTF-8 text: its deletion cannot be captured")
            continue
        carried = _read(_candidate(root, name, warnings), warnings)
        if carried is not None:
            whole.append(carried)
            warnings.append(f"{path} is not UTF-8 text: carried whole instead of as a diff")
        else:
            warnings.append(f"{path} is not UTF-8 text and its change cannot be captured")
    return "".join(patches), whole


# -- untracked files ---------------------------------------------------------------------


def _untracked(root: Path, entry_point: str, warnings: list[str]) -> list[_Candidate]:
    names = _out(root, "ls-files", "--others", "--exclude-standard", "-z").split(b"\0")
    names = [name for name in names if name]
    entry_name = os.fsencode(entry_point)
    tracked = _out(root, "ls-files", "--cached", "-z", "--", f":(literal){entry_point}")
    if not tracked and entry_name not in names:
        warnings.append(f"the entry point {entry_point} is ignored by git: captured it anyway")
        names.append(entry_name)
    return [c for name in names if (c := _candidate(root, name, warnings)) is not None]


def _candidate(root: Path, name: bytes, warnings: list[str]) -> _Candidate | None:
    """An untracked file fit to capture, or None with a warning saying why not."""
    try:
        path = name.decode("utf-8")
    except UnicodeDecodeError:
        warnings.append(f"untracked {name!r} has a name that is not UTF-8: not captured")
        return None
    if path.endswith("/"):
        warnings.append(f"untracked {path} is a nested git repository: not captured")
        return None
    full = root / path
    try:
        info = os.lstat(full)
    except OSError as error:
        warnings.append(f"untracked {path} cannot be read ({error}): not captured")
        return None
    reason = _refusal(root, full, info)
    if reason is not None:
        warnings.append(f"untracked {path} {reason}: not captured")
        return None
    return _Candidate(path, full, info.st_size, bool(info.st_mode & stat.S_IXUSR))


def _refusal(root: Path, full: Path, info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if not full.resolve().is_relative_to(root):
        return "resolves outside the repository"
    return None


def _read(candidate: _Candidate | None, warnings: list[str]) -> _File | None:
    if candidate is None:
        return None
    try:
        # O_NOFOLLOW: a file swapped for a link since it was listed is not followed out.
        fd = os.open(candidate.full, os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, "rb") as file:
            data = file.read()
    except OSError as error:
        warnings.append(f"untracked {candidate.path} cannot be read ({error}): not captured")
        return None
    return _File(candidate.path, data, candidate.executable)


def _fit(
    diff_size: int, candidates: list[_Candidate], limit: int, warnings: list[str]
) -> tuple[list[_Candidate], list[_Candidate]]:
    """The untracked files to keep under ``limit``, and those dropped, largest first."""
    total = diff_size + sum(c.size for c in candidates)
    if total <= limit:
        return candidates, []
    by_size = sorted(candidates, key=lambda c: c.size, reverse=True)
    dropped: list[_Candidate] = []
    while by_size and diff_size + sum(c.size for c in by_size) > limit:
        dropped.append(by_size.pop(0))
    warnings.append(_over_limit_warning(total, diff_size, limit, dropped))
    gone = {c.path for c in dropped}
    return [c for c in candidates if c.path not in gone], dropped


def _over_limit_warning(total: int, diff_size: int, limit: int, dropped: list[_Candidate]) -> str:
    text = (
        f"captured code is {_mib(total)}, over the limit of {_mib(limit)} "
        "(max_diff_bytes, CLEARQ_MAX_DIFF_BYTES)"
    )
    if dropped:
        names = ", ".join(f"{c.path} ({_mib(c.size)})" for c in dropped)
        text += (
            f": left out {len(dropped)} untracked file(s), largest first: {names}; the "
            "agent's working tree will lack them (commit them, ignore them, or raise the limit)"
        )
    if diff_size > limit:
        text += (
            f"; the diff alone is {_mib(diff_size)} and is kept whole "
            "(commit and push to shrink it)"
        )
    return text


def _mib(size: int) -> str:
    return f"{size / _MIB:.1f} MiB" if size >= _MIB // 10 else f"{size} bytes"
