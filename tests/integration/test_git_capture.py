"""Capturing a script's code from real git repositories, and rebuilding it as an agent.

Each test works on repositories in its own tmp_path: a bare ``origin`` and a clone of
it, under a git configuration of its own, so nothing depends on the machine's.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from clearq.models import Script, UntrackedFile
from clearq.runtime.workspace import WorkspaceError, WorkspaceStep, build_workspace
from clearq.sdk.capture.git import ScriptCapture, capture_script, strip_credentials

BINARY = bytes(range(256)) * 4
TRAIN = "import sys\nprint('train', sys.argv[1:])\n"


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its output; fail the test when git fails."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def write(path: Path, data: str | bytes, *, executable: bool = False) -> Path:
    """Write a file, making its folders; set or clear its executable bit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o755 if executable else 0o644)
    return path


@pytest.fixture(autouse=True)
def git_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A git configuration of the test's own: identity, branch name, local protocols."""
    home = tmp_path_factory.mktemp("home")
    config = write(
        home / ".gitconfig",
        "[user]\n\tname = clearq test\n\temail = test@clearq.invalid\n"
        '[init]\n\tdefaultBranch = main\n[protocol "file"]\n\tallow = always\n',
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class Repo:
    """A working clone and the bare repository it pushes to."""

    origin: Path
    work: Path

    @property
    def entry(self) -> Path:
        """The training script."""
        return self.work / "train.py"

    def head(self) -> str:
        """The commit checked out."""
        return git(self.work, "rev-parse", "HEAD")

    def commit(self, message: str) -> str:
        """Commit everything staged; return the commit."""
        git(self.work, "commit", "--quiet", "-m", message)
        return self.head()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    """A clone with a few files of each kind, all pushed to its origin."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", str(origin))
    git(tmp_path, "clone", "--quiet", str(origin), str(work))
    write(work / "train.py", TRAIN)
    write(work / "lib" / "util.py", "def helper():\n    return 1\n")
    write(work / "data.bin", BINARY)
    write(work / "run.sh", "#!/bin/sh\necho run\n", executable=True)
    write(work / "old.txt", "to be deleted\n")
    write(work / "latin.txt", b"caf\xe9\n")
    write(work / "spaced name.txt", "one\n")
    write(work / ".gitignore", "*.log\nout/\n")
    (work / "link").symlink_to("lib/util.py")
    git(work, "add", "--all")
    made = Repo(origin=origin, work=work)
    made.commit("initial")
    git(work, "push", "--quiet", "-u", "origin", "main")
    return made


def capture(repo: Repo, **kwargs: object) -> ScriptCapture:
    """Capture ``train.py`` as if run as ``train.py --lr 0.1`` from the clone's top."""
    options: dict[str, object] = {"argv": [str(repo.entry), "--lr", "0.1"], "cwd": repo.work}
    return capture_script(repo.entry, **{**options, **kwargs})  # type: ignore[arg-type]


def ignored(root: Path, paths: list[str]) -> set[str]:
    """The paths git ignores in the repository at ``root``."""
    done = subprocess.run(
        ["git", "check-ignore", "--stdin", "-z"],
        cwd=root,
        input="\0".join(paths).encode(),
        capture_output=True,
        check=False,
    )
    return {name for name in done.stdout.decode().split("\0") if name}


def snapshot(root: Path) -> dict[str, tuple[str, bytes, bool]]:
    """Every file under ``root`` git does not ignore, outside .git: kind, bytes, exec bit."""
    found: dict[str, tuple[str, bytes, bool]] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(folder, d)))]:
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path).encode(), False)
            else:
                executable = bool(path.stat().st_mode & stat.S_IXUSR)
                found[relative] = ("file", path.read_bytes(), executable)
    for name in ignored(root, list(found)):
        del found[name]
    return found


# -- strip_credentials -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@host/x.git", "https://host/x.git"),
        ("https://ghp_secret@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://host/x.git?token=abc#frag", "https://host/x.git"),
        ("http://u:p@host:8080/x", "http://host:8080/x"),
        ("ssh://git@host/x.git", "ssh://git@host/x.git"),
        ("ssh://git:secret@host/x.git", "ssh://host/x.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/repos/x.git", "/srv/repos/x.git"),
        ("file:///srv/x.git", "file:///srv/x.git"),
    ],
)
def test_strip_credentials(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


# -- capture -----------------------------------------------------------------------------


def test_clean_tree_names_the_pushed_head(repo: Repo) -> None:
    captured = capture(repo, module=None)
    script = captured.script
    assert script.repository == str(repo.origin)
    assert script.branch == "main"
    assert script.commit == repo.head()
    assert script.entry_point == "train.py"
    assert script.working_dir == "."
    assert script.arguments == ("--lr", "0.1")
    assert script.python_version
    assert script.diff == ""
    assert script.untracked == ()
    assert captured.repo_root == repo.work.resolve()
    assert captured.warnings == ()
    assert not captured.truncated


def test_staged_and_unstaged_edits_are_in_the_diff(repo: Repo) -> None:
    write(repo.work / "lib" / "util.py", "def helper():\n    return 2\n")
    git(repo.work, "add", "lib/util.py")
    write(repo.work / "train.py", TRAIN + "print('unstaged')\n")
    diff = capture(repo).script.diff
    assert "+    return 2" in diff
    assert "+print('unstaged')" in diff


def test_untracked_files_travel_as_bytes_and_ignored_ones_stay(repo: Repo) -> None:
    write(repo.work / "blob.dat", BINARY[::-1])
    write(repo.work / "tools" / "go.sh", "#!/bin/sh\n", executable=True)
    write(repo.work / "debug.log", "ignored\n")
    write(repo.work / "out" / "model.pt", b"\0ignored")
    untracked = {f.path: f for f in capture(repo).script.untracked}
    assert set(untracked) == {"blob.dat", "tools/go.sh"}
    assert untracked["blob.dat"] == UntrackedFile(path="blob.dat", data=BINARY[::-1])
    assert untracked["tools/go.sh"].executable


def test_unpushed_commits_fold_into_the_diff(repo: Repo) -> None:
    pushed = repo.head()
    write(repo.work / "train.py", TRAIN + "print('first')\n")
    git(repo.work, "commit", "--quiet", "-am", "first")
    write(repo.work / "train.py", TRAIN + "print('first')\nprint('second')\n")
    git(repo.work, "commit", "--quiet", "-am", "second")
    captured = capture(repo)
    assert captured.script.commit == pushed
    assert captured.unpushed_commits == 2
    assert "+print('second')" in captured.script.diff
    assert any("2 commit(s) not on remote 'origin'" in w for w in captured.warnings)


def test_a_branch_behind_its_upstream_names_its_own_head(repo: Repo) -> None:
    """Every commit of HEAD is on the upstream (status says so): HEAD is the base."""
    older = repo.head()
    write(repo.work / "train.py", TRAIN + "print('newer')\n")
    git(repo.work, "add", "train.py")
    repo.commit("newer")
    git(repo.work, "push", "--quiet", "origin", "HEAD")
    git(repo.work, "reset", "--quiet", "--hard", older)
    write(repo.work / "train.py", TRAIN + "print('edited')\n")
    captured = capture(repo)
    assert captured.script.commit == older
    assert captured.unpushed_commits == 0
    assert "+print('edited')" in captured.script.diff
    assert "newer" not in captured.script.diff
    assert captured.warnings == ()


def test_a_branch_level_with_a_local_upstream_still_folds_what_the_remote_lacks(
    repo: Repo,
) -> None:
    """Level with its upstream is no proof of a push when the upstream is a local branch."""
    pushed = repo.head()
    write(repo.work / "train.py", TRAIN + "print('local')\n")
    git(repo.work, "commit", "--quiet", "-am", "local")
    git(repo.work, "branch", "--quiet", "base")
    git(repo.work, "branch", "--quiet", "--set-upstream-to=base")
    captured = capture(repo)
    assert captured.script.repository == str(repo.origin)
    assert captured.script.commit == pushed
    assert captured.unpushed_commits == 1
    assert "+print('local')" in captured.script.diff


def test_a_commit_pushed_to_another_branch_needs_no_diff(repo: Repo) -> None:
    write(repo.work / "train.py", TRAIN + "print('feature')\n")
    git(repo.work, "add", "train.py")
    head = repo.commit("feature")
    git(repo.work, "push", "--quiet", "origin", "HEAD:refs/heads/feature")
    captured = capture(repo)
    assert captured.script.commit == head
    assert captured.script.diff == ""
    assert captured.unpushed_commits == 0


def test_detached_head_has_no_branch(repo: Repo) -> None:
    git(repo.work, "checkout", "--quiet", "--detach", "HEAD")
    captured = capture(repo)
    assert captured.script.branch is None
    assert captured.script.commit == repo.head()


def test_credentials_in_the_remote_url_are_stripped(repo: Repo) -> None:
    url = "https://user:token@git.example.com/team/x.git?token=abc"
    git(repo.work, "remote", "set-url", "origin", url)
    assert capture(repo).script.repository == "https://git.example.com/team/x.git"


def test_the_upstream_remote_is_preferred_over_origin(repo: Repo) -> None:
    git(repo.work, "remote", "rename", "origin", "upstream")
    git(repo.work, "remote", "add", "origin", "https://example.com/other.git")
    assert capture(repo).script.repository == str(repo.origin)


def test_without_origin_or_upstream_the_first_remote_by_name_is_used(repo: Repo) -> None:
    git(repo.work, "branch", "--unset-upstream")
    git(repo.work, "remote", "rename", "origin", "b-remote")
    git(repo.work, "remote", "add", "z-remote", "https://example.com/z.git")
    captured = capture(repo)
    assert captured.script.repository == str(repo.origin)
    assert captured.script.commit == repo.head()
    assert not captured.warnings


def test_the_url_is_the_one_git_fetches_after_insteadof(repo: Repo) -> None:
    git(repo.work, "remote", "set-url", "origin", "mirror:origin.git")
    git(repo.work, "config", f"url.{repo.origin.parent.as_posix()}/.insteadOf", "mirror:")
    captured = capture(repo)
    assert captured.script.repository == repo.origin.as_posix()
    assert captured.script.commit == repo.head()


def test_no_remote_names_the_local_clone(repo: Repo, tmp_path: Path) -> None:
    git(repo.work, "remote", "remove", "origin")
    write(repo.work / "train.py", TRAIN + "print('local')\n")
    captured = capture(repo)
    assert captured.script.repository == repo.work.resolve().as_posix()
    assert captured.script.commit == repo.head()
    assert any("no remote" in w and "other machines" in w for w in captured.warnings)
    run_in = build_workspace(captured.script, tmp_path / "ws", allow_local=True)
    assert (run_in / "train.py").read_text() == TRAIN + "print('local')\n"


def test_no_repository_captures_the_script_text(tmp_path: Path) -> None:
    entry = write(tmp_path / "alone" / "job.py", TRAIN)
    captured = capture_script(entry, argv=["job.py", "-v"], cwd=tmp_path)
    script = captured.script
    assert (script.source, script.entry_point, script.working_dir) == (TRAIN, "job.py", ".")
    assert script.repository is None
    assert script.arguments == ("-v",)
    assert captured.repo_root is None
    run_in = build_workspace(script, tmp_path / "ws", allow_local=True)
    assert (run_in / "job.py").read_text() == TRAIN


def test_a_repository_without_commits_stores_the_whole_tree(tmp_path: Path) -> None:
    work = tmp_path / "fresh"
    git(tmp_path, "init", "--quiet", str(work))
    entry = write(work / "train.py", TRAIN)
    write(work / "staged.txt", "staged\n")
    git(work, "add", "staged.txt")
    captured = capture_script(entry, argv=["train.py"], cwd=work)
    assert (captured.script.repository, captured.script.commit) == (None, None)
    assert any("no commit yet" in w for w in captured.warnings)
    run_in = build_workspace(captured.script, tmp_path / "ws", allow_local=True)
    assert snapshot(run_in) == snapshot(work)


def test_python_dash_m_and_a_working_folder_are_recorded(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo.work / "lib")
    captured = capture_script(repo.entry, argv=["train.py"], module="train")
    assert captured.script.module == "train"
    assert captured.script.working_dir == "lib"


def test_an_ignored_entry_point_is_captured_anyway(repo: Repo) -> None:
    entry = write(repo.work / "out" / "scratch.py", TRAIN)
    captured = capture_script(entry, argv=["scratch.py"], cwd=repo.work)
    assert [f.path for f in captured.script.untracked] == ["out/scratch.py"]
    assert any("ignored by git" in w for w in captured.warnings)


def test_a_tracked_entry_point_an_ignore_pattern_matches_is_not_carried(repo: Repo) -> None:
    entry = write(repo.work / "job.log", TRAIN)  # *.log is ignored, but this one is tracked
    git(repo.work, "add", "--force", "job.log")
    repo.commit("a tracked job")
    git(repo.work, "push", "--quiet")
    captured = capture_script(entry, argv=["job.log"], cwd=repo.work)
    assert captured.script.commit == repo.head()
    assert not captured.script.untracked
    assert not any("ignored by git" in w for w in captured.warnings)


def test_untracked_symlinks_are_skipped_with_a_warning(repo: Repo, tmp_path: Path) -> None:
    (repo.work / "inside").symlink_to("train.py")
    (repo.work / "outside").symlink_to(tmp_path)
    captured = capture(repo)
    assert captured.script.untracked == ()
    assert sum("symbolic link" in w for w in captured.warnings) == 2


# -- the size limit ----------------------------------------------------------------------


def test_over_the_limit_drops_the_largest_untracked_files_first(repo: Repo) -> None:
    write(repo.work / "big.bin", b"b" * 3000)
    write(repo.work / "medium.bin", b"m" * 1500)
    write(repo.work / "small.txt", "s" * 100)
    captured = capture(repo, max_diff_bytes=2000)
    assert captured.dropped == ("big.bin",)
    assert captured.truncated
    assert captured.over_limit
    assert {f.path for f in captured.script.untracked} == {"medium.bin", "small.txt"}
    assert captured.size == 1600
    [warning] = [w for w in captured.warnings if "over the limit" in w]
    for said in ("4600 bytes", "2000 bytes", "big.bin (3000 bytes)"):
        assert said in warning


def test_a_diff_over_the_limit_is_kept_whole(repo: Repo) -> None:
    write(repo.work / "train.py", TRAIN + "x = 1\n" * 500)
    write(repo.work / "notes.txt", "n")
    captured = capture(repo, max_diff_bytes=1000)
    assert captured.script.diff.count("+x = 1") == 500
    assert captured.dropped == ("notes.txt",)
    assert any("diff alone" in w and "kept whole" in w for w in captured.warnings)


# -- the round trip ----------------------------------------------------------------------


def change_everything(repo: Repo) -> None:
    """An unpushed commit, then edits of every kind on top of it."""
    write(repo.work / "train.py", TRAIN + "print('unpushed')\n")
    git(repo.work, "commit", "--quiet", "-am", "unpushed")
    write(repo.work / "lib" / "util.py", "def helper():\n    return 2\n")
    git(repo.work, "add", "lib/util.py")
    write(repo.work / "lib" / "util.py", "def helper():\n    return 3\n", executable=True)
    write(repo.work / "data.bin", BINARY[:500] + b"\0changed" + BINARY[500:])
    write(repo.work / "latin.txt", b"caf\xe9 cr\xe8me\n")
    write(repo.work / "spaced name.txt", "two\n")
    (repo.work / "old.txt").unlink()
    git(repo.work, "mv", "run.sh", "scripts-run.sh")
    (repo.work / "newlink").symlink_to("train.py")
    git(repo.work, "add", "newlink")
    write(repo.work / "intent.txt", "intent to add\n")
    git(repo.work, "add", "--intent-to-add", "intent.txt")
    write(repo.work / "données" / "é à.txt", "unicode\n")
    write(repo.work / "blob.dat", BINARY[::-1])
    write(repo.work / "tools" / "go.sh", "#!/bin/sh\n", executable=True)
    write(repo.work / "debug.log", "ignored\n")
    write(repo.work / "out" / "model.pt", b"\0ignored")


def test_the_workspace_reproduces_the_working_tree_byte_for_byte(
    repo: Repo, tmp_path: Path
) -> None:
    change_everything(repo)
    captured = capture(repo, cwd=repo.work / "lib")
    assert captured.script.commit == git(repo.origin, "rev-parse", "main")
    assert any("latin.txt is not UTF-8" in w for w in captured.warnings)
    run_in = build_workspace(
        captured.script, tmp_path / "ws", mirror_cache=tmp_path / "mirrors", allow_local=True
    )
    assert run_in == tmp_path / "ws" / "lib"
    expected = snapshot(repo.work)
    assert "blob.dat" in expected
    assert "debug.log" not in expected
    assert snapshot(tmp_path / "ws") == expected


def test_the_mirror_is_reused_and_fetched_for_new_commits(repo: Repo, tmp_path: Path) -> None:
    mirrors = tmp_path / "mirrors"
    build_workspace(capture(repo).script, tmp_path / "one", mirror_cache=mirrors, allow_local=True)
    write(repo.work / "train.py", TRAIN + "print('pushed later')\n")
    git(repo.work, "commit", "--quiet", "-am", "later")
    git(repo.work, "push", "--quiet")
    script = capture(repo).script
    assert script.diff == ""
    run_in = build_workspace(script, tmp_path / "two", mirror_cache=mirrors, allow_local=True)
    assert "pushed later" in (run_in / "train.py").read_text()
    assert len(list(mirrors.glob("*.git"))) == 1


def test_a_branch_without_a_commit_checks_out_its_tip(repo: Repo, tmp_path: Path) -> None:
    script = Script(repository=str(repo.origin), branch="main", entry_point="train.py")
    run_in = build_workspace(script, tmp_path / "ws", allow_local=True)
    assert git(run_in, "rev-parse", "HEAD") == repo.head()


# -- failures ----------------------------------------------------------------------------


def test_a_diff_that_does_not_apply_names_the_step(repo: Repo, tmp_path: Path) -> None:
    diff = "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-not there\n+x\n"
    script = Script(repository=str(repo.origin), commit=repo.head(), diff=diff)
    with pytest.raises(WorkspaceError, match="diff failed") as caught:
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert caught.value.step is WorkspaceStep.DIFF
    assert "train.py" in caught.value.git_output


def test_a_commit_the_remote_lacks_names_the_step(repo: Repo, tmp_path: Path) -> None:
    script = Script(repository=str(repo.origin), commit="ab" * 20)
    with pytest.raises(WorkspaceError, match="was it pushed") as caught:
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert caught.value.step is WorkspaceStep.FETCH


def test_an_unreachable_repository_names_the_step(tmp_path: Path) -> None:
    script = Script(repository=str(tmp_path / "missing.git"), commit="ab" * 20)
    with pytest.raises(WorkspaceError, match="clone failed") as caught:
        build_workspace(
            script, tmp_path / "ws", mirror_cache=tmp_path / "mirrors", allow_local=True
        )
    assert caught.value.step is WorkspaceStep.CLONE
    assert caught.value.git_output


# -- nothing is written outside the workspace --------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder no workspace may touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "a/../../escape.txt", "/tmp/escape.txt", ".git/hooks/post-checkout", ""],
)
def test_unsafe_untracked_paths_are_refused_before_any_write(
    repo: Repo, tmp_path: Path, path: str
) -> None:
    bad = UntrackedFile(path=path, data=b"#!/bin/sh\n", executable=True)
    script = Script(repository=str(repo.origin), commit=repo.head(), untracked=(bad,))
    with pytest.raises(WorkspaceError, match="refused") as caught:
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert caught.value.step is WorkspaceStep.PATHS
    assert not (tmp_path / "ws").exists()
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize(
    "script",
    [
        Script(source="print(1)", entry_point="../escape.py"),
        Script(source="print(1)", entry_point="/tmp/escape.py"),
        Script(source="print(1)", entry_point="job.py", working_dir="../.."),
    ],
)
def test_unsafe_entry_points_and_folders_are_refused(tmp_path: Path, script: Script) -> None:
    with pytest.raises(WorkspaceError, match="refused"):
        build_workspace(script, tmp_path / "a" / "ws", allow_local=True)
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_written_through_a_checked_out_symlink(
    repo: Repo, tmp_path: Path, outside: Path
) -> None:
    (repo.work / "escape").symlink_to(outside)
    (repo.work / "up").symlink_to("..")
    git(repo.work, "add", "escape", "up")
    git(repo.work, "commit", "--quiet", "-m", "links")
    git(repo.work, "push", "--quiet")
    for path in ("escape/pwned.txt", "up/pwned.txt", "escape"):
        script = Script(
            repository=str(repo.origin),
            commit=repo.head(),
            untracked=(UntrackedFile(path=path, data=b"pwned"),),
        )
        dest = tmp_path / f"ws-{path.replace('/', '-')}"
        with pytest.raises(WorkspaceError, match=r"symbolic link|refused") as caught:
            build_workspace(script, dest, allow_local=True)
        assert caught.value.step is WorkspaceStep.UNTRACKED
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "pwned.txt").exists()


def test_nothing_is_written_through_a_symlink_the_diff_makes(
    repo: Repo, tmp_path: Path, outside: Path
) -> None:
    (repo.work / "made").symlink_to(outside)
    git(repo.work, "add", "made")
    diff = git(repo.work, "diff", "--cached", "--binary") + "\n"
    script = Script(
        repository=str(repo.origin),
        commit=repo.head(),
        diff=diff,
        untracked=(UntrackedFile(path="made/pwned.txt", data=b"pwned"),),
    )
    with pytest.raises(WorkspaceError, match="symbolic link"):
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    "target", ["../escape.txt", ".git/hooks/post-checkout"], ids=["dotdot", "dotgit"]
)
def test_a_diff_outside_the_tree_is_refused_by_git_apply(
    repo: Repo, tmp_path: Path, target: str
) -> None:
    diff = (
        f"diff --git a/{target} b/{target}\nnew file mode 100755\n--- /dev/null\n"
        f"+++ b/{target}\n@@ -0,0 +1 @@\n+pwned\n"
    )
    script = Script(repository=str(repo.origin), commit=repo.head(), diff=diff)
    with pytest.raises(WorkspaceError) as caught:
        build_workspace(script, tmp_path / "ws", allow_local=True)
    assert caught.value.step is WorkspaceStep.DIFF
    assert not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "ws" / ".git" / "hooks" / "post-checkout").exists()
