"""Capture a repository's submodules, recursively, as the main tree is captured.

Each submodule the index records (a gitlink) and ``.gitmodules`` names travels as a
``clearq.models.Submodule``: its path, its URL as ``.gitmodules`` writes it (credentials
stripped; a relative ``./`` or ``../`` URL stays relative and the agent resolves it
against the repository that holds it, as ``git submodule`` does), and, when it is
checked out here, the newest commit of its HEAD its own remote has, the diff from there
to its working tree and its untracked files, then its own submodules. One that is not
checked out here is recorded at the commit the index holds for it, with nothing on top,
as ``git submodule update`` would check it out.

A gitlink that ``.gitmodules`` does not name cannot be fetched by anyone: it is left
out, with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clearq.sdk.capture.git_tree import capture_tree, submodule_base
from clearq.sdk.capture.gitcmd import git_out, git_run, strip_credentials
from clearq.valueclass import value_class

__all__ = ["Submodules", "capture_submodules"]

_GITLINK = b"160000"
_RELATIVE = ("./", "../")


@value_class
class Submodules:
    """The submodules of one repository, in their stored form, and what they weigh."""

    fields: list[dict[str, Any]]
    size: int = 0
    dropped: tuple[str, ...] = ()
    """Untracked files left out, by their path from the top repository."""
    over_limit: bool = False
    unpushed: int = 0


def capture_submodules(
    root: Path, *, limit: int, warnings: list[str], where: str = ""
) -> Submodules:
    """The submodules of the repository at ``root``, within ``limit`` bytes of changes.

    ``where`` is ``root``'s path from the top repository (``lib/``), for warnings.
    """
    if not (root / ".gitmodules").is_file():
        return Submodules(fields=[])
    urls = _urls(root)
    records: list[dict[str, Any]] = []
    size, unpushed, over = 0, 0, False
    dropped: list[str] = []
    for path, recorded in _gitlinks(root):
        label = f"{where}{path}"
        url = urls.get(path)
        if url is None:
            warnings.append(f"submodule {label} is not in .gitmodules: not captured")
            continue
        url = url if url.startswith(_RELATIVE) else strip_credentials(url)
        if not (root / path / ".git").exists():
            warnings.append(
                f"submodule {label} is not checked out here: the agent checks out "
                f"{recorded[:12]}, the commit the index records for it"
            )
            records.append(_record(path, url, recorded))
            continue
        captured = _checked_out(root / path, path, url, limit - size, warnings, label)
        if captured is None:
            continue
        record, inner = captured
        records.append(record)
        size += inner.size
        unpushed += inner.unpushed
        over = over or inner.over_limit
        dropped += inner.dropped
    return Submodules(records, size, tuple(dropped), over, unpushed)


def _checked_out(
    sub: Path, path: str, url: str, limit: int, warnings: list[str], label: str
) -> tuple[dict[str, Any], Submodules] | None:
    own: list[str] = []
    base = submodule_base(sub, own)
    if base is not None:
        tree = capture_tree(sub, base, entry_point=None, limit=limit, warnings=own)
    warnings.extend(f"submodule {label}: {warning}" for warning in own)
    if base is None:
        return None
    assert base.commit is not None
    nested = capture_submodules(sub, limit=limit - tree.size, warnings=warnings, where=f"{label}/")
    record = _record(path, url, base.commit)
    record.update(
        diff=tree.diff,
        untracked=[f.fields() for f in tree.files],
        submodules=nested.fields,
    )
    weight = Submodules(
        fields=[],
        size=tree.size + nested.size,
        dropped=(*(f"{label}/{name}" for name in tree.dropped), *nested.dropped),
        over_limit=tree.over_limit or nested.over_limit,
        unpushed=base.unpushed + nested.unpushed,
    )
    return record, weight


def _record(path: str, url: str, commit: str) -> dict[str, Any]:
    """A ``models.Submodule``'s stored form."""
    return {
        "path": path,
        "repository": url,
        "commit": commit,
        "diff": "",
        "untracked": [],
        "submodules": [],
    }


def _gitlinks(root: Path) -> list[tuple[str, str]]:
    """(path, commit) of every submodule the index records, in index order."""
    found = []
    for entry in git_out(root, "ls-files", "--stage", "-z").split(b"\0"):
        info, _, name = entry.partition(b"\t")
        mode, commit, *_ = [*info.split(b" "), b""]
        if mode == _GITLINK:
            found.append((os.fsdecode(name), commit.decode()))
    return found


def _urls(root: Path) -> dict[str, str]:
    """Submodule path -> URL, as the working tree's ``.gitmodules`` says."""
    keys = r"^submodule\..*\.(path|url)$"
    done = git_run(root, "config", "-z", "--file", ".gitmodules", "--get-regexp", keys)
    if done.returncode != 0:
        return {}  # 1: no submodule entries at all
    paths: dict[str, str] = {}
    urls: dict[str, str] = {}
    for item in filter(None, done.stdout.split(b"\0")):
        key, _, value = os.fsdecode(item).partition("\n")
        name, _, field = key.removeprefix("submodule.").rpartition(".")
        (paths if field == "path" else urls)[name] = value
    return {path: urls[name] for name, path in paths.items() if name in urls}
