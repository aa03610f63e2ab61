"""Submodules captured with their own commits and changes, and rebuilt by an agent's
workspace from mirrors of their own: real git, real repositories, nested submodules."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest

from clearq.models import Script, Submodule, UntrackedFile
from clearq.runtime.workspace import WorkspaceError, WorkspaceStep, build_workspace
from clearq.sdk.capture.git import capture_script
from tests.integration.test_git_capture import git, git_config, write

__all__ = ["git_config"]  # the autouse fixture: this module's git config of its own

COMMIT = "ab" * 20


@dataclass
class Tree:
    """A superproject with ``lib`` (relative URL) holding ``lib/vendor`` (nested)."""

    root: Path
    work: Path
    lib: Path
    vendor: Path

    def origin(self, name: str) -> Path:
        return self.root / f"{name}.git"


def _bare(root: Path, name: str, files: dict[str, str]) -> Path:
    origin, work = root / f"{name}.git", root / f"{name}-seed"
    git(root, "init", "--quiet", "--bare", str(origin))
    git(root, "clone", "--quiet", str(origin), str(work))
    for path, text in files.items():
        write(work / path, text)
    git(work, "add", "--all")
    git(work, "commit", "--quiet", "-m", name)
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return origin


def _add_submodule(work: Path, url: str, path: str) -> None:
    git(work, "submodule", "--quiet", "add", "--", url, path)
    git(work, "commit", "--quiet", "-m", f"add {path}")
    git(work, "push", "--quiet", "origin", "HEAD:main")


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    root = tmp_path / "repos"
    root.mkdir()
    _bare(root, "vendor", {"vendor.py": "VALUE = 'vendor'\n"})
    _bare(root, "lib", {"core.py": "VALUE = 'lib'\n", "data.bin": "x\n"})
    _bare(root, "app", {"train.py": "print('train')\n"})
    # lib holds vendor (an absolute URL); app holds lib (a relative one, as .gitmodules has it)
    lib_seed = root / "lib-seed"
    _add_submodule(lib_seed, str(root / "vendor.git"), "vendor")
    work = tmp_path / "work"
    git(tmp_path, "clone", "--quiet", str(root / "app.git"), str(work))
    _add_submodule(work, "../lib.git", "deps/lib")
    git(work, "submodule", "--quiet", "update", "--init", "--recursive")
    lib = work / "deps" / "lib"
    return Tree(root=root, work=work, lib=lib, vendor=lib / "vendor")


def _capture(tree: Tree) -> Script:
    entry = tree.work / "train.py"
    return capture_script(entry, argv=[str(entry)], cwd=tree.work).script


def _files(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under ``root`` but git's own (``.git`` folders and gitfiles)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            if name == ".git":
                continue
            path = Path(folder, name)
            executable = bool(path.stat().st_mode & stat.S_IXUSR)
            found[path.relative_to(root).as_posix()] = (path.read_bytes(), executable)
    return found


def test_submodules_are_captured_with_their_commits_and_changes(tree: Tree) -> None:
    write(tree.lib / "core.py", "VALUE = 'edited'\n")  # unstaged, in the submodule
    write(tree.lib / "notes.txt", "untracked in lib\n")
    write(tree.vendor / "vendor.py", "VALUE = 'committed, not pushed'\n")
    git(tree.vendor, "commit", "--quiet", "-am", "local")
    script = _capture(tree)
    assert script.diff == ""  # the superproject's own tree is clean
    [lib] = script.submodules
    assert lib.path == "deps/lib"
    assert lib.repository == "../lib.git"  # relative, as .gitmodules writes it
    assert lib.commit == git(tree.origin("lib"), "rev-parse", "main")
    assert "+VALUE = 'edited'" in lib.diff
    assert [f.path for f in lib.untracked] == ["notes.txt"]
    [vendor] = lib.submodules
    assert vendor.repository == str(tree.origin("vendor"))
    assert vendor.commit == git(tree.origin("vendor"), "rev-parse", "main")  # the pushed base
    assert "committed, not pushed" in vendor.diff  # the unpushed commit folds into the diff


def test_the_workspace_rebuilds_every_submodule_from_a_mirror_of_its_own(
    tree: Tree, tmp_path: Path
) -> None:
    write(tree.lib / "core.py", "VALUE = 'edited'\n")
    write(tree.lib / "tool.sh", "#!/bin/sh\n", executable=True)
    write(tree.vendor / "vendor.py", "VALUE = 'vendor edited'\n")
    write(tree.work / "train.py", "print('train edited')\n")
    script = _capture(tree)
    mirrors = tmp_path / "mirrors"
    dest = tmp_path / "ws"
    assert build_workspace(script, dest, mirror_cache=mirrors, allow_local=True) == dest
    assert _files(dest) == _files(tree.work)
    assert (dest / "deps/lib/vendor/vendor.py").read_text() == "VALUE = 'vendor edited'\n"
    assert len(list(mirrors.glob("*.git"))) == 3  # app, lib and vendor, each its own
    # A second task reuses the mirrors.
    again = build_workspace(script, tmp_path / "ws2", mirror_cache=mirrors, allow_local=True)
    assert _files(again) == _files(tree.work)
    assert len(list(mirrors.glob("*.git"))) == 3


def test_a_submodule_not_checked_out_is_recorded_at_the_index_commit(tree: Tree) -> None:
    git(tree.work, "submodule", "--quiet", "deinit", "--force", "--", "deps/lib")
    entry = tree.work / "train.py"
    captured = capture_script(entry, argv=[str(entry)], cwd=tree.work)
    [lib] = captured.script.submodules
    assert lib.commit == git(tree.origin("lib"), "rev-parse", "main")
    assert lib.diff == ""
    assert lib.submodules == ()
    assert any("deps/lib is not checked out here" in w for w in captured.warnings)


def test_a_submodule_commit_its_remote_lacks_names_the_submodule(
    tree: Tree, tmp_path: Path
) -> None:
    script = _capture(tree)
    [lib] = script.submodules
    bad = script.model_copy(update={"submodules": (lib.model_copy(update={"commit": COMMIT}),)})
    with pytest.raises(WorkspaceError, match=r"submodule deps/lib: .*was it pushed") as caught:
        build_workspace(bad, tmp_path / "ws", allow_local=True)
    assert caught.value.step is WorkspaceStep.FETCH


def _with(submodule: Submodule, repository: str = "https://git.example.invalid/app.git") -> Script:
    return Script(repository=repository, commit=COMMIT, submodules=(submodule,))


@pytest.mark.parametrize(
    ("submodule", "reason"),
    [
        (Submodule(path="../out", repository="../lib.git", commit=COMMIT), "'..' component"),
        (Submodule(path=".git/hooks", repository="../lib.git", commit=COMMIT), "inside .git"),
        (Submodule(path="lib", repository="../lib.git", commit="main"), "not a hash"),
        (Submodule(path="lib", repository="/srv/lib.git", commit=COMMIT), "local repositories"),
        (Submodule(path="lib", repository="file:///srv/x", commit=COMMIT), "local repositories"),
        (Submodule(path="lib", repository="ext::sh -c id", commit=COMMIT), "local repositories"),
        (Submodule(path="lib", repository="../../../x.git", commit=COMMIT), "climbs above"),
        (Submodule(path="lib", repository="./a/../../b", commit=COMMIT), "'..' segment"),
        (
            Submodule(
                path="lib",
                repository="../lib.git",
                commit=COMMIT,
                untracked=(UntrackedFile(path="../x", data=b"x"),),
            ),
            "'..' component",
        ),
        (
            Submodule(
                path="lib",
                repository="../lib.git",
                commit=COMMIT,
                submodules=(Submodule(path="v", repository="-uhelp", commit=COMMIT),),
            ),
            "submodule lib/v",
        ),
    ],
)
def test_unsafe_submodules_are_refused_before_anything_is_fetched(
    tmp_path: Path, submodule: Submodule, reason: str
) -> None:
    dest = tmp_path / "ws"
    with pytest.raises(WorkspaceError, match=reason):
        build_workspace(_with(submodule), dest, mirror_cache=tmp_path / "mirrors")
    assert not dest.exists() or not any(dest.iterdir())
    assert not (tmp_path / "mirrors").exists()


def test_nothing_is_cloned_through_a_symlink_on_a_submodules_path(
    tree: Tree, tmp_path: Path
) -> None:
    script = _capture(tree)
    outside = tmp_path / "outside"
    outside.mkdir()
    [lib] = script.submodules
    moved = lib.model_copy(update={"path": "deps-link/lib"})
    # The main tree's diff makes deps-link a symbolic link to a folder outside.
    diff = (
        "diff --git a/deps-link b/deps-link\nnew file mode 120000\n--- /dev/null\n"
        f"+++ b/deps-link\n@@ -0,0 +1 @@\n+{outside}\n\\ No newline at end of file\n"
    )
    script = script.model_copy(update={"submodules": (moved,), "diff": diff})
    with pytest.raises(WorkspaceError, match="symbolic link"):
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert list(outside.iterdir()) == []
