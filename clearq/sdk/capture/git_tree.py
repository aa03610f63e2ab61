"""One git working tree captured: the pushed commit it grows from, the diff to it, its files.

The main repository and each of its submodules are captured the same way
(``capture_tree``); only what the diff is taken against is found differently
(``repository_base`` for the main one, ``submodule_base`` for a submodule, whose
URL comes from ``.gitmodules`` instead).
"""

from __future__ import annotations

import os
from pathlib import Path

from clearq.sdk.capture.git_files import File, Status, candidate, fit, read_file, untracked
from clearq.sdk.capture.gitcmd import (
    CaptureError,
    Started,
    git_done,
    git_out,
    git_output,
    git_run,
    git_said,
    git_start,
    git_text,
    strip_credentials,
)
from clearq.valueclass import value_class

__all__ = [
    "REMOTES",
    "Base",
    "Tree",
    "capture_tree",
    "repository_base",
    "start_diff",
    "submodule_base",
]

REMOTES = ("config", "-z", "--get-regexp", r"^(remote|branch|url)\.")
"""The remotes, the branches' upstreams and the URL rewrites, in one ``git config``."""

_DIFF = (
    # Pin every setting that changes the patch's shape, whatever the user's config says.
    *("-c", "diff.noprefix=false", "-c", "diff.relative=false", "-c", "core.quotePath=true"),
    *("diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-renames"),
    # Submodules are captured on their own (their commit, diff and files), not here.
    *("--ignore-submodules=all", "--src-prefix=a/", "--dst-prefix=b/"),
)


@value_class
class Base:
    """What a tree's diff is taken against, and where the agent fetches it from."""

    repository: str | None
    commit: str | None
    tree: str
    """The commit, or the empty tree before a first one."""
    unpushed: int = 0


@value_class
class Tree:
    """A working tree captured against its base."""

    base: Base
    diff: str
    files: tuple[File, ...]
    """Untracked files kept, and files carried whole instead of in the diff."""
    size: int
    """Bytes of diff plus files kept."""
    dropped: tuple[str, ...]
    """Untracked files left out to stay under the limit, largest first."""
    over_limit: bool


def capture_tree(
    root: Path,
    base: Base,
    *,
    entry_point: str | None,
    limit: int,
    warnings: list[str],
    tree: Status | None = None,
    diff_started: Started | None = None,
) -> Tree:
    """The diff from ``base`` to ``root``'s working tree and its untracked files, fitted
    under ``limit`` bytes (the largest untracked files dropped first, with a warning).
    ``tree``: the working tree's status, if already read; ``diff_started``: the diff
    against ``base.tree``, if already started (:func:`start_diff`)."""
    diff, whole = _diff(root, base.tree, warnings, diff_started)
    candidates = untracked(root, entry_point, warnings, tree)
    diff_size = len(diff.encode()) + sum(len(f.data) for f in whole)
    kept, dropped = fit(diff_size, candidates, limit, warnings)
    files = [f for c in kept if (f := read_file(c, warnings)) is not None]
    return Tree(
        base=base,
        diff=diff,
        files=(*whole, *files),
        size=diff_size + sum(len(f.data) for f in files),
        dropped=tuple(c.path for c in dropped),
        over_limit=diff_size + sum(c.size for c in candidates) > limit,
    )


def submodule_base(root: Path, warnings: list[str]) -> Base | None:
    """A checked-out submodule's base: the newest ancestor of its HEAD its remote has.

    None (with a warning) when it has no commit. Its URL is ``.gitmodules``'s, so the
    Base names none.
    """
    head = _head(root)
    if head is None:
        warnings.append("has no commit: not captured")
        return None
    remote = _remote(root, None)
    if remote is None:
        warnings.append(
            f"has no remote: the task names {head[:12]}, which agents fetch from the URL in "
            ".gitmodules, so it must be pushed there"
        )
        return Base(repository=None, commit=head, tree=head)
    commit, unpushed = _pushed_base(root, head, remote, warnings)
    return Base(repository=None, commit=commit, tree=commit, unpushed=unpushed)


def _head(root: Path) -> str | None:
    done = git_run(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return done.stdout.decode().strip() if done.returncode == 0 else None


def _remote(root: Path, branch: str | None) -> str | None:
    """The branch's upstream remote, else ``origin``, else the first; None without one."""
    names = git_text(root, "remote").split()
    if branch is not None:
        done = git_run(root, "config", "--get", f"branch.{branch}.remote")
        upstream = done.stdout.decode().strip()
        if done.returncode == 0 and upstream in names:
            return upstream
    if "origin" in names:
        return "origin"
    return names[0] if names else None


# -- what the diff is taken against ------------------------------------------------------


def repository_base(
    root: Path,
    tree: Status,
    remote_refs: list[str],
    warnings: list[str],
    *,
    remotes: Started | None = None,
) -> Base:
    """The main repository's base: its remote's URL and the newest pushed ancestor of HEAD.

    ``tree`` is the repository's status (HEAD, branch), ``remote_refs`` its remote-tracking
    refs (``refs/remotes/<remote>/<branch>``), both read with other things already;
    ``remotes``: the :data:`REMOTES` command, if already started."""
    head = tree.head
    if head is None:
        if remotes is not None:
            git_done(remotes)  # no commit: no remote has any of it
        warnings.append(
            "the repository has no commit yet: the whole working tree is stored with the task"
        )
        empty_tree = git_text(root, "hash-object", "-t", "tree", "--stdin")
        return Base(repository=None, commit=None, tree=empty_tree)
    remote, url = _remote_and_url(root, tree.branch, remotes)
    if remote is None:
        warnings.append(
            f"the repository has no remote: the task names the local clone {root}, so agents "
            f"on other machines cannot fetch commit {head[:12]} (add a remote and push)"
        )
        return Base(repository=root.as_posix(), commit=head, tree=head)
    if url is None:  # rewritten by url.<base>.insteadOf, or none: as git itself says it
        url = git_text(root, "remote", "get-url", remote)
    tracked = any(ref.startswith(f"refs/remotes/{remote}/") for ref in remote_refs)
    if _on_upstream(tree, remote):
        commit, unpushed = head, 0  # what rev-list would say, without running it
    else:
        commit, unpushed = _pushed_base(root, head, remote, warnings, tracked=tracked)
    return Base(repository=strip_credentials(url), commit=commit, tree=commit, unpushed=unpushed)


def _remote_and_url(
    root: Path, branch: str | None, started: Started | None
) -> tuple[str | None, str | None]:
    """The remote ``_remote`` would choose and its fetch URL, from one ``git config`` read
    (``git remote``, ``config branch.<b>.remote`` and ``remote get-url`` in one); the URL
    is None where git would rewrite it (``url.<base>.insteadOf``) or none is set."""
    done = git_run(root, *REMOTES) if started is None else git_done(started)
    if done.returncode not in (0, 1):  # 1: no such key at all
        raise CaptureError(f"git config failed in {root}: {git_said(done)}")
    names: set[str] = set()
    urls: dict[str, str] = {}
    upstream: str | None = None
    rewritten = False
    for item in filter(None, done.stdout.split(b"\0")):
        key, _, value = os.fsdecode(item).partition("\n")
        section, _, rest = key.partition(".")
        sub, _, name = rest.rpartition(".")
        if section == "remote" and sub:
            names.add(sub)
            if name == "url":
                urls.setdefault(sub, value)  # git uses the first URL
        elif section == "branch" and branch is not None and sub == branch and name == "remote":
            upstream = value  # the last one, as git config --get
        elif section == "url" and name == "insteadof":
            rewritten = True
    if upstream is not None and upstream in names:
        remote: str | None = upstream
    elif "origin" in names:
        remote = "origin"
    else:
        remote = min(names) if names else None  # git remote lists them sorted
    if remote is None:
        return None, None
    return remote, None if rewritten else urls.get(remote)


def _on_upstream(tree: Status, remote: str) -> bool:
    """Whether status says every commit of HEAD is on the branch's upstream, a tracking
    branch of ``remote`` (the common case: a branch pushed, perhaps behind its remote)."""
    upstream = tree.upstream
    return upstream is not None and upstream.startswith(f"{remote}/") and tree.ahead == 0


def _pushed_base(
    root: Path, head: str, remote: str, warnings: list[str], *, tracked: bool | None = None
) -> tuple[str, int]:
    """The newest ancestor of HEAD the remote has, and how many commits lie past it.

    The remote's tracking branches (the upstream ``@{u}`` among them) stand for what it
    has: ``rev-list --boundary`` lists the commits of HEAD on none of them, and the
    pushed commits they grow from. ``tracked``: whether the remote has a tracking branch
    here, if known already.
    """
    if tracked is None:
        tracked = bool(git_text(root, "for-each-ref", "--count=1", f"refs/remotes/{remote}/"))
    if not tracked:
        warnings.append(
            f"remote '{remote}' has no tracking branch here (git fetch {remote}): the task "
            f"names {head[:12]}, which agents can fetch only if the remote has it"
        )
        return head, 0
    lines = git_text(root, "rev-list", "--boundary", head, "--not", f"--remotes={remote}").split()
    if not lines:
        return head, 0
    boundaries = [line[1:] for line in lines if line.startswith("-")]
    if not boundaries:
        warnings.append(
            f"no commit of HEAD is on remote '{remote}' (push the branch): the task names "
            f"{head[:12]}, which agents cannot fetch until it is pushed"
        )
        return head, 0
    counts = {b: int(git_text(root, "rev-list", "--count", f"{b}..{head}")) for b in boundaries}
    base = min(boundaries, key=counts.__getitem__)
    warnings.append(
        f"{counts[base]} commit(s) not on remote '{remote}' are folded into the diff against "
        f"{base[:12]} (push them to keep the task small)"
    )
    return base, counts[base]


# -- the diff ----------------------------------------------------------------------------


def start_diff(root: Path, tree: str) -> Started:
    """Start ``git diff --binary`` from ``tree`` to the working tree (for capture_tree)."""
    return git_start(root, *_DIFF, tree)


def _diff(
    root: Path, tree: str, warnings: list[str], started: Started | None
) -> tuple[str, list[File]]:
    """``git diff --binary`` from ``tree`` to the working tree, as text.

    A Script's diff is text, so a text file that is not UTF-8 cannot travel in it: such
    files are left out of the diff and carried whole, as untracked files that overwrite
    the checkout.
    """
    raw = git_out(root, *_DIFF, tree) if started is None else git_output(started, root)
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError:
        return _diff_by_file(root, tree, warnings)


def _diff_by_file(root: Path, tree: str, warnings: list[str]) -> tuple[str, list[File]]:
    listed = ("diff", "--name-only", "--no-renames", "--ignore-submodules=all", "-z", tree)
    names = git_out(root, *listed).split(b"\0")
    patches: list[str] = []
    whole: list[File] = []
    for name in filter(None, names):
        path = os.fsdecode(name)
        patch = git_out(root, *_DIFF, tree, "--", f":(literal){path}")
        try:
            patches.append(patch.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        if not os.path.lexists(root / path):
            warnings.append(f"{path} is not UTF-8 text: its deletion cannot be captured")
            continue
        carried = read_file(candidate(root, name, warnings), warnings)
        if carried is not None:
            whole.append(carried)
            warnings.append(f"{path} is not UTF-8 text: carried whole instead of as a diff")
        else:
            warnings.append(f"{path} is not UTF-8 text and its change cannot be captured")
    return "".join(patches), whole
