"""The quick start's flow end to end, in real environments built from the package index.

A script with an uncommitted edit, an untracked module and a third-party requirement
runs by hand (``Task.init`` captures it), is cloned with overridden parameters and
enqueued; ``clearq agent`` rebuilds its code and a fresh venv and runs it; the second
clone reuses that venv from the cache.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path

import pytest

from clearq.models import EnvSpec, Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Cli
from tests.conftest import on_one_database
from tests.gitrepo import published

TRAIN = """
import argparse
import yaml
from clearq import Task
from helper import describe

task = Task.init(project_name="quick", task_name="train")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
config = task.connect({"epochs": 2})
print(describe(args.lr, config["epochs"]), "yaml from", yaml.__file__)
for epoch in range(config["epochs"]):
    task.get_logger().report_scalar("loss", "train", args.lr / (epoch + 1), epoch)
"""
CLONE = """
import sys
from clearq import Task

base = Task.get_task(project_name="quick", task_name="train")
child = Task.clone(base, name=sys.argv[1])
child.set_parameters({"Args/lr": 0.7, "General/epochs": 3})
Task.enqueue(child, "default")
print(child.id)
"""
AGENT_TIMEOUT = 600
EDIT = "# edited after the commit"
HELPER = "def describe(lr, epochs):\n    return f'lr={lr} epochs={epochs}'\n"
YAML = f"PyYAML=={metadata.version('PyYAML')}"
"""A third-party requirement the test's own interpreter has, to run the script by hand."""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {"requirements.txt": f"{YAML}\n", "train.py": TRAIN}
    work = published(tmp_path, files, message="train").work
    # An uncommitted edit and an untracked module the script imports.
    (work / "train.py").write_text(
        TRAIN.replace("config = ", "# edited after the commit\nconfig = ")
    )
    (work / "helper.py").write_text(
        "def describe(lr, epochs):\n    return f'lr={lr} epochs={epochs}'\n"
    )
    return work


def _python(cli: Cli, work: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=work,
        env=dict(cli.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _agent(cli: Cli, *args: str) -> str:
    done = forkserver.run([str(CLEARQ), "agent", *args], env=cli.env, timeout=AGENT_TIMEOUT)
    assert done.returncode == 0, done.stderr
    return done.stderr


@on_one_database("sqlite")
def test_quick_start_flow_runs_a_clone_in_a_cached_venv(
    cli: Cli, store: Store, project: Path
) -> None:
    store.queues.create("default")
    _python(cli, project, "train.py", "--lr", "0.2")
    [captured] = store.tasks.list()
    assert captured.status is TaskStatus.COMPLETED
    assert "edited after the commit" in captured.script.diff
    assert [f.path for f in captured.script.untracked] == ["helper.py"]
    assert captured.env.requirements == (YAML,)

    first = uuid.UUID(_python(cli, project, "-c", CLONE, "first").strip())
    out = _agent(cli, "-q", "default", "--once")
    assert f"task {first} completed" in out
    task = store.tasks.get(first)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    log = "".join(line.text for line in store.outputs.logs(first))
    assert "lr=0.7 epochs=3" in log  # the overrides, argparse and connect() alike
    env_folder = str(Path(cli.env["CLEARQ_HOME"]) / "envs")
    assert f"yaml from {env_folder}" in log  # from the task's own venv, not the agent's
    assert [p.value for p in store.outputs.scalars(first, title="loss")] == pytest.approx(
        [0.7, 0.35, 0.7 / 3]
    )
    assert task.runtime["env"]["hit"] is False
    assert task.runtime["env"]["build_seconds"] > 0

    second = uuid.UUID(_python(cli, project, "-c", CLONE, "second").strip())
    _agent(cli, "-q", "default", "--once")
    again = store.tasks.get(second)
    assert again.status is TaskStatus.COMPLETED, again.status_reason
    assert again.runtime["env"]["hit"] is True
    assert again.runtime["env"]["key"] == task.runtime["env"]["key"]


@on_one_database("sqlite")
def test_a_package_that_does_not_exist_fails_the_task_and_the_agent_goes_on(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    store.queues.create("default")
    script = tmp_path / "job.py"
    script.write_text("print('ran')\n")
    code = Script(source=script.read_text(), entry_point="job.py")
    bad = store.tasks.create(
        TaskSpec(
            project="p",
            name="bad",
            script=code,
            env=EnvSpec(requirements=("clearq-no-such-package-zz==1.0",)),
        )
    ).id
    good = store.tasks.create(TaskSpec(project="p", name="good", script=code)).id
    store.queues.enqueue(bad, "default")
    store.queues.enqueue(good, "default")
    _agent(cli, "-q", "default", "--idle-exit", "1")
    failed = store.tasks.get(bad)
    assert failed.status is TaskStatus.FAILED
    assert failed.status_reason.startswith("environment failed:")
    assert "clearq-no-such-package-zz" in failed.status_reason
    assert store.tasks.get(good).status is TaskStatus.COMPLETED
    assert "ran\n" in "".join(line.text for line in store.outputs.logs(good))


@on_one_database("postgres")
def test_the_readme_quickstart_demo(cli: Cli, store: Store) -> None:
    """The README's first command, after its install step: ``python examples/quickstart.py``."""
    demo = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
    for attempt in ("first", "second"):
        done = subprocess.run(
            [sys.executable, str(demo)],
            env=dict(cli.env),
            capture_output=True,
            text=True,
            timeout=AGENT_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "status: completed" in done.stdout, attempt
        assert "lr=0.2 epochs=40" in done.stdout
        assert ("reused from the cache" in done.stdout) is (attempt == "second")
    clones = store.tasks.list(project="quickstart", name="lr=0.2")
    assert [t.status for t in clones] == [TaskStatus.COMPLETED] * 2
    assert clones[0].parameters["Args/lr"] == "0.2"


LOCAL_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "team-lib"
version = "0.1.0"

[tool.setuptools.packages.find]
where = ["src"]
"""
LOCAL_TRAIN = """
import team_lib
print("team_lib", team_lib.VALUE, "from", team_lib.__file__, flush=True)
"""


@on_one_database("postgres")
def test_a_task_whose_requirements_install_its_own_repository(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    files = {
        "pyproject.toml": LOCAL_PYPROJECT,
        "src/team_lib/__init__.py": "VALUE = 'pushed'\n",
        "tools/train.py": LOCAL_TRAIN,
    }
    repository = published(tmp_path, files)
    # The uncommitted edit reaches the installed package: it is the workspace's own code.
    diff = (
        "--- a/src/team_lib/__init__.py\n+++ b/src/team_lib/__init__.py\n"
        "@@ -1 +1 @@\n-VALUE = 'pushed'\n+VALUE = 'edited'\n"
    )
    script = Script(
        repository=str(repository.origin),
        commit=repository.commit,
        entry_point="tools/train.py",
        working_dir="tools",  # the package is not importable from here but for -e .
        diff=diff,
    )
    outside = tmp_path / "elsewhere"
    bad_script = script.model_copy(update={"diff": ""})
    good = store.tasks.create(
        TaskSpec(project="p", name="own", script=script, env=EnvSpec(requirements=("-e .",)))
    ).id
    bad = store.tasks.create(
        TaskSpec(
            project="p",
            name="outside",
            script=bad_script,
            env=EnvSpec(requirements=(f"-e ../{outside.name}",)),
        )
    ).id
    store.queues.create("default")
    store.queues.enqueue(good, "default")
    store.queues.enqueue(bad, "default")
    _agent(cli, "-q", "default", "--idle-exit", "1")
    task = store.tasks.get(good)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    log = "".join(line.text for line in store.outputs.logs(good))
    assert "team_lib edited from" in log
    assert "code/src/team_lib/__init__.py" in log  # the editable install points at the code
    assert task.runtime["env"]["installed_from_workspace"] == ["-e ."]
    refused = store.tasks.get(bad)
    assert refused.status is TaskStatus.FAILED
    assert "outside the task's repository" in refused.status_reason


UV_PROJECT = f"""\
[project]
name = "uv-team"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["{YAML}"]
"""
UV_TRAIN = """
import yaml
from clearq import Task

task = Task.init(project_name="uvlock", task_name="locked")
task.execute_remotely(queue_name="default")
print("yaml", yaml.__version__, "from", yaml.__file__, flush=True)
"""


@on_one_database("sqlite")
def test_a_uv_project_runs_on_an_agent_from_its_lock(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    from uv import find_uv_bin

    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(UV_PROJECT)
    subprocess.run([find_uv_bin(), "lock", "--quiet"], cwd=folder, check=True, timeout=300)
    files = {
        "pyproject.toml": UV_PROJECT,
        "uv.lock": (folder / "uv.lock").read_text(),
        "train.py": UV_TRAIN,
    }
    (tmp_path / "repo").mkdir()
    work = published(tmp_path / "repo", files).work
    store.queues.create("default")
    _python(cli, work, "train.py")  # by hand: Task.init captures, execute_remotely queues
    [task] = store.tasks.list()
    assert task.env.lock_kind == "uv.lock"
    assert task.env.project_file == UV_PROJECT
    out = _agent(cli, "-q", "default", "--once")
    assert f"task {task.id} completed" in out
    done = store.tasks.get(task.id)
    assert done.status is TaskStatus.COMPLETED, done.status_reason
    log = "".join(line.text for line in store.outputs.logs(task.id))
    version = YAML.split("==")[1]
    assert f"yaml {version} from {Path(cli.env['CLEARQ_HOME']) / 'envs'}" in log
    assert "uv sync --locked" in log  # the build's stage, in the task's log


BUILD_NEEDS_SIX = """\
import six  # importable at build time only without isolation, after six is installed
from setuptools import setup

setup(name="needs-six-to-build", version="0.1", py_modules=["needs_six"])
"""


@on_one_database("postgres")
def test_an_agent_installs_a_tasks_steps_in_order(cli: Cli, store: Store, tmp_path: Path) -> None:
    package = tmp_path / "needs-six"
    package.mkdir()
    (package / "setup.py").write_text(BUILD_NEEDS_SIX)
    (package / "needs_six.py").write_text("VALUE = 'built against six'\n")
    code = Script(
        source="import needs_six\nprint(needs_six.VALUE, flush=True)\n", entry_point="job.py"
    )
    env = EnvSpec(
        install_first=("six==1.16.0", "setuptools"),
        no_build_isolation=(f"needs-six-to-build @ {package.as_uri()}",),
    )
    task_id = store.tasks.create(TaskSpec(project="p", name="steps", script=code, env=env)).id
    store.queues.create("default")
    store.queues.enqueue(task_id, "default")
    _agent(cli, "-q", "default", "--once")
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.COMPLETED, task.status_reason
    log = "".join(line.text for line in store.outputs.logs(task_id))
    assert "built against six" in log
    assert log.index("installing 2 requirements") < log.index("without build isolation")
