"""Training scripts run as a user runs them, reporting into a real store.

Each script is a real file in a real git repository (a local bare repo as origin) and
runs in its own Python process; the test reads the store afterwards.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import run_script
from tests.gitrepo import git, published

TRAIN = """
import argparse
from clearq import Task

task = Task.init(project_name="demo", task_name="train")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()
config = task.connect({"batch": 32, "model": {"layers": 2, "act": "relu"}})
print(f"lr={args.lr!r} epochs={args.epochs!r} config={config!r}")
logger = task.get_logger()
for i in range(args.epochs):
    logger.report_scalar("loss", "train", 1.0 / (i + 1), i)
logger.report_single_value("accuracy", 0.9)
task.upload_artifact("summary", {"best": 1.0 / args.epochs})
MODE = "ok"
if MODE == "raise":
    raise ValueError("bad batch")
if MODE == "exit":
    raise SystemExit(3)
if MODE == "exit-call":
    import sys
    sys.exit(4)
if MODE == "exit-message":
    raise SystemExit("the data set is missing")
if MODE == "exit-none":
    raise SystemExit(None)
if MODE == "exit-zero-call":
    import sys
    sys.exit(0)
if MODE == "exit-caught":
    try:
        parser.parse_args(["--no-such-flag"])  # argparse exits 2 ...
    except BaseException as e:
        print(f"... and the script goes on after {type(e).__name__}")
if MODE == "exit-elsewhere":
    exec("raise SystemExit(3)", {})  # as a library's own raise: out of the SDK's sight
if MODE == "exit-in-function":
    def leave():
        raise SystemExit(6)
    leave()
if MODE == "interrupt":
    raise KeyboardInterrupt
if MODE == "remote":
    task.execute_remotely(queue_name="gpu")
    print("must not be printed locally")
if MODE == "wait-stop":
    import time
    for _ in range(600):
        time.sleep(0.05)
print("finished")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git clone whose origin is a local bare repository, holding train.py."""
    files = {"train.py": TRAIN, ".gitignore": "outputs/\n"}
    return published(tmp_path, files, message="train").work


@pytest.fixture
def script_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=store_url, CLEARQ_HOME=str(tmp_path / "home"))
    return env


@pytest.fixture
def db(store_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store(store_url, settings=Settings(home=tmp_path / "home")) as store:
        yield store


def python(
    argv: tuple[str, ...], *, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGV`` in ``cwd`` as a user would, its output captured."""
    return subprocess.run(
        [sys.executable, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(
    project: Path, env: dict[str, str], *args: str, mode: str = "ok"
) -> subprocess.CompletedProcess[str]:
    """Run train.py in MODE (an uncommitted edit of the file)."""
    script = project / "train.py"
    script.write_text(TRAIN.replace('MODE = "ok"', f'MODE = "{mode}"'))
    return python(("train.py", *args), cwd=project, env=env, timeout=120)


def only_task(db: Store) -> uuid.UUID:
    tasks = db.tasks.list()
    assert len(tasks) == 1
    return tasks[0].id


def test_a_local_run_captures_code_parameters_results_and_completes(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    done = run(project, script_env, "--lr", "0.5")
    assert done.returncode == 0, done.stderr
    assert "lr=0.5 epochs=3" in done.stdout  # the console still shows everything
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.COMPLETED
    assert task.exit_code == 0
    assert task.script.entry_point == "train.py"
    assert task.script.arguments == ("--lr", "0.5")
    assert task.script.repository == str(project.parent / "origin.git")
    assert 'MODE = "ok"' in task.script.diff or task.script.diff == ""
    assert task.parameters["Args/lr"] == "0.5"
    assert task.parameters["Args/epochs"] == "3"
    assert task.parameters["General/batch"] == "32"
    assert task.parameters["General/model/act"] == "relu"
    summary = {(s.title, s.series): s for s in db.outputs.summary(task.id)}
    assert summary[("loss", "train")].min == pytest.approx(1 / 3)
    assert summary[("loss", "train")].max == 1.0
    assert summary[("Summary", "accuracy")].last == 0.9
    log = "".join(line.text for line in db.outputs.logs(task.id))
    assert "lr=0.5 epochs=3" in log
    assert "finished" in log
    [artifact] = db.outputs.artifacts(task.id)
    assert artifact.kind == "json"
    assert Path(artifact.uri.removeprefix("file://")).read_text() == '{"best": 0.3333333333333333}'


@pytest.mark.parametrize(
    ("mode", "status", "code", "reason"),
    [
        ("raise", TaskStatus.FAILED, 1, "ValueError: bad batch"),
        ("exit", TaskStatus.FAILED, 3, "exited with 3"),
        ("exit-call", TaskStatus.FAILED, 4, "exited with 4"),
        ("exit-message", TaskStatus.FAILED, 1, "the data set is missing"),
        ("exit-in-function", TaskStatus.FAILED, 6, "exited with 6"),
        ("exit-elsewhere", TaskStatus.FAILED, None, "exit status is not known"),
        ("exit-none", TaskStatus.COMPLETED, 0, ""),
        ("exit-zero-call", TaskStatus.COMPLETED, 0, ""),
        ("exit-caught", TaskStatus.COMPLETED, 0, ""),
        ("interrupt", TaskStatus.STOPPED, None, "interrupted"),
    ],
)
def test_how_a_local_run_ends_is_recorded(
    project: Path,
    script_env: dict[str, str],
    db: Store,
    mode: str,
    status: TaskStatus,
    code: int | None,
    reason: str,
) -> None:
    done = run(project, script_env, mode=mode)
    task = db.tasks.get(only_task(db))
    assert task.status is status, task.status_reason
    assert task.exit_code == code
    assert reason in task.status_reason
    if code is not None:  # the end recorded is the exit status Python gave the process
        assert done.returncode == code, done.stderr
    if mode == "exit-message":
        assert task.status_reason == "the data set is missing"
    if mode == "raise":
        log = "".join(line.text for line in db.outputs.logs(task.id))
        assert "Traceback (most recent call last)" in log
        assert "ValueError: bad batch" in log


def test_execute_remotely_stops_here_and_queues_the_task(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    db.queues.create("gpu")
    done = run(project, script_env, mode="remote")
    assert done.returncode == 0, done.stderr
    assert "must not be printed" not in done.stdout
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.QUEUED
    assert task.queue == "gpu"
    assert [e.task_id for e in db.queues.entries("gpu")] == [task.id]


@pytest.mark.parametrize("sigint", ["handled", "ignored"])
def test_a_stop_request_stops_a_local_run(
    project: Path, script_env: dict[str, str], db: Store, sigint: str
) -> None:
    # "ignored": started as `python train.py &` from a script is (SIGINT ignored, so
    # Python installs no Ctrl-C handler of its own); the stop must still reach it.
    env = {**script_env, "CLEARQ_LEASE_SECONDS": "1.5"}
    script = project / "train.py"
    script.write_text(TRAIN.replace('MODE = "ok"', 'MODE = "wait-stop"'))
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint == "ignored" else None
    with subprocess.Popen(
        [sys.executable, "train.py"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=ignore,
    ) as proc:
        deadline = time.monotonic() + 30
        while not db.tasks.list(status=TaskStatus.RUNNING) and time.monotonic() < deadline:
            time.sleep(0.1)
        db.leases.request_stop(only_task(db))
        output, _ = proc.communicate(timeout=30)
    assert "finished" not in output
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.STOPPED
    assert task.status_reason == "stop requested"


def test_under_an_agent_the_script_gets_overridden_values(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    assert run(project, script_env, "--lr", "0.5").returncode == 0
    base = only_task(db)
    child = db.tasks.create(_clone_spec(db, base))
    db.tasks.update_parameters(
        child.id, {"Args/lr": "0.125", "Args/epochs": "2", "General/model/layers": "8"}
    )
    db.queues.create("q")
    db.queues.enqueue(child.id, "q")
    [claim] = db.claimer("h:agent", ["q"]).claim()
    env = {
        **script_env,
        "CLEARQ_TASK_ID": str(claim.task_id),
        "CLEARQ_ATTEMPT": str(claim.attempt),
        "CLEARQ_WORKER": claim.worker,
    }
    done = run(project, env)  # no --lr: the stored, overridden value wins
    assert done.returncode == 0, done.stderr
    assert "lr=0.125 epochs=2" in done.stdout
    assert "'layers': 8" in done.stdout
    assert len(db.tasks.list()) == 2, "attached: no new task was captured"
    task = db.tasks.get(child.id)
    assert task.status is TaskStatus.RUNNING, "the agent, not the script, records the end"
    loss = {(s.title, s.series): s for s in db.outputs.summary(child.id)}[("loss", "train")]
    assert loss.last_iteration == 1
    assert [a.name for a in db.outputs.artifacts(child.id)] == ["summary"]


def _clone_spec(db: Store, task_id: uuid.UUID) -> TaskSpec:
    source = db.tasks.get(task_id)
    return TaskSpec(
        project=source.project,
        name="child",
        script=source.script,
        env=source.env,
        parameters=source.parameters,
        parent_id=source.id,
    )


def test_a_script_outside_any_repository_stores_its_own_text(
    tmp_path: Path, script_env: dict[str, str], db: Store
) -> None:
    folder = tmp_path / "loose"
    folder.mkdir()
    (folder / "solo.py").write_text(
        textwrap.dedent(
            """
            from clearq import Task
            Task.init(project_name="p", task_name="solo")
            print("alone")
            """
        )
    )
    done = python(("solo.py",), cwd=folder, env=script_env)
    assert done.returncode == 0, done.stderr
    task = db.tasks.get(only_task(db))
    assert task.script.repository is None
    assert task.script.source == (folder / "solo.py").read_text()
    assert task.status is TaskStatus.COMPLETED


AT_ONCE = """
from clearq import Task

task = Task.init(project_name="demo", task_name="at once")
if MODE == "clone":
    print("clone", Task.clone(task, name="copy").id)
"""


def _slow_git(root: Path) -> Path:
    """A folder whose ``git`` is the real one, but takes two seconds longer to diff."""
    folder = root / "slow-git"
    folder.mkdir()
    wrapper = folder / "git"
    real = shutil.which("git")
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *" diff "*) sleep 2;; esac\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    return folder


def _code_is_whole(script: Any) -> None:
    """The uncommitted edit, the untracked file and the commit the remote has."""
    assert script.entry_point == "now.py"
    assert "+MODE = " in script.diff  # now.py's edit, not yet committed
    assert [u.path for u in script.untracked] == ["notes.txt"]
    assert script.commit is not None


@pytest.mark.parametrize("mode", ["exit", "clone"])
def test_a_script_that_ends_or_clones_itself_at_once_has_its_whole_code(
    project: Path, script_env: dict[str, str], db: Store, mode: str
) -> None:
    """The capture runs beside the script: its end, and a clone, wait for it."""
    published_text = AT_ONCE.replace("if MODE", "MODE = None\nif MODE")
    (project / "now.py").write_text(published_text)
    git(project, "add", "now.py")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "now")
    git(project, "push", "-q", "origin", "HEAD")
    (project / "notes.txt").write_text("untracked\n")
    if mode == "clone":  # a capture slower than the clone, which must wait for it
        script_env = {**script_env, "PATH": f"{_slow_git(project.parent)}:{script_env['PATH']}"}
    out = run_script(
        project, "now.py", AT_ONCE.replace("if MODE", f"MODE = {mode!r}\nif MODE"), script_env
    )
    [task] = [t for t in db.tasks.list() if t.name == "at once"]
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    _code_is_whole(task.script)
    assert task.env.python is not None  # the packages' capture too
    if mode == "clone":
        clone = db.tasks.get(uuid.UUID(out.split("clone ")[1].split()[0]))
        _code_is_whole(clone.script)


def test_a_run_whose_code_cannot_be_captured_runs_and_fails_saying_why(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    """Git failing on the repository (a corrupt index): the script still runs, and the run
    is recorded as failed with git's own words (no task claims code it does not have)."""
    (project / ".git" / "index").write_bytes(b"not an index")
    done = run(project, script_env)
    assert "finished" in done.stdout
    assert "could not be captured" in done.stderr
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.FAILED
    assert task.status_reason.startswith("capturing the code failed: git status")
    assert "index" in task.status_reason


def test_a_requirement_the_script_gave_wrong_stops_task_init_before_any_task(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    """The script's own mistake is raised by Task.init, as before the capture thread."""
    (project / "bad.py").write_text(
        textwrap.dedent(
            """
            from clearq import Task
            Task.add_requirements("-r other.txt")
            Task.init(project_name="p", task_name="bad")
            print("must not run")
            """
        )
    )
    done = python(("bad.py",), cwd=project, env=script_env)
    assert done.returncode == 1
    assert "must not run" not in done.stdout
    assert "InvalidInput: add_requirements" in done.stderr
    assert "pip option" in done.stderr
    assert db.tasks.list() == []


def test_the_train_example_runs_and_is_listed(
    tmp_path: Path, script_env: dict[str, str], db: Store
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "train.py"
    done = python((str(example), "--epochs", "5"), cwd=tmp_path, env=script_env)
    assert done.returncode == 0, done.stderr
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.COMPLETED
    assert task.parameters["Args/epochs"] == "5"
    losses = [p.value for p in db.outputs.scalars(task.id, title="loss")]
    assert len(losses) == 5
    assert losses[-1] < losses[0]
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("clearq")), "task", "list"],
        env=script_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "linear-regression" in listed.stdout


LIGHT = """
import sys
from clearq import Task

task = Task.init(project_name="light", task_name="imports")
config = task.connect({"lr": 0.1})
print("value", config["lr"])
task.get_logger().report_scalar("loss", "train", 0.5, 0)
heavy = sorted(m for m in ("sqlalchemy", "pydantic", "alembic", "typer") if m in sys.modules)
print("heavy", heavy)
"""


def test_a_run_reports_without_importing_sqlalchemy_or_pydantic(
    project: Path, script_env: dict[str, str], db: Store
) -> None:
    """The run's own path stays on the bare driver (what keeps Task.init cheap)."""
    (project / "light.py").write_text(LIGHT)
    done = python(("light.py",), cwd=project, env=script_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heavy []" in done.stdout
    task = db.tasks.get(only_task(db))
    assert task.status is TaskStatus.COMPLETED
    assert task.parameters == {"General/lr": "0.1"}
    assert task.script.entry_point == "light.py"
    assert [u.path for u in task.script.untracked] == ["light.py"]
    assert [(s.title, s.last) for s in db.outputs.summary(task.id)] == [("loss", 0.5)]
    assert "value 0.1" in "".join(line.text for line in db.outputs.logs(task.id))


DEFERRED = """
import sys
from clearq import Task

task = Task.init(project_name="light", task_name="deferred")
task.get_logger().report_scalar("loss", "train", 0.5, 0)
print("deferred", sorted(m for m in {modules!r} if m in sys.modules))
"""
DEFERRED_MODULES = (
    *("packaging", "importlib.metadata", "importlib.abc", "psutil", "socket"),
    *("argparse", "tempfile"),
)
"""Imports a run by hand puts off until it needs them (benchmarks/task_init_phases.py)."""


def test_a_short_run_of_a_script_without_outside_imports_defers_the_heavy_modules(
    project: Path, sqlite_url: str, tmp_path: Path
) -> None:
    """No distribution to look up, no pin to parse, no monitor sample yet, no channel."""
    (project / "deferred.py").write_text(DEFERRED.format(modules=DEFERRED_MODULES))
    Store(sqlite_url, settings=Settings(home=tmp_path / "home")).close()  # the schema, made once
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=sqlite_url, CLEARQ_HOME=str(tmp_path / "home"))
    done = python(("deferred.py",), cwd=project, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "deferred []" in done.stdout
    with Store(sqlite_url, settings=Settings(home=tmp_path / "home")) as db:
        task = db.tasks.get(only_task(db))
        assert task.status is TaskStatus.COMPLETED
        assert task.script.entry_point == "deferred.py"


LATE_ARGPARSE = """
from clearq import Task

task = Task.init(project_name="light", task_name="late")
import argparse  # after Task.init: wrapped as it is imported

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
print("lr", parser.parse_args(["--lr", "0.5"]).lr)
"""


def test_argparse_imported_after_task_init_is_connected(
    project: Path, sqlite_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=sqlite_url, CLEARQ_HOME=str(tmp_path / "home"))
    assert "lr 0.5" in run_script(project, "late.py", LATE_ARGPARSE, env)
    with Store(sqlite_url, settings=Settings(home=tmp_path / "home")) as db:
        task = db.tasks.get(only_task(db))
        assert task.parameters == {"Args/lr": "0.5"}
