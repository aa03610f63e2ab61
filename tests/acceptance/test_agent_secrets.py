"""What a task sees of its agent's environment, and what its stored log keeps of secrets.

A real ``clearq agent`` subprocess runs a real task that prints what it can see.
"""

from __future__ import annotations

from pathlib import Path

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli
from tests.acceptance.test_agent import logs_of

PEEK = """
import os
for name in ("AGENT_TOKEN", "FORCED", "PLAIN_SECRET", "FROM_FILE", "FILE_SECRET", "LANG", "OWN"):
    print(name, "=", os.environ.get(name, "<unset>"))
print("clearq vars:", sorted(k for k in os.environ if k.startswith("CLEARQ_")))
"""


def test_a_task_sees_the_allow_list_and_the_operators_variables_and_secrets_are_masked(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    spec = TaskSpec(
        project="p",
        name="peek",
        script=Script(source=PEEK, entry_point="peek.py"),
        environment={"OWN": "mine", "FORCED": "the task's"},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    env_file = tmp_path / "agent.env"
    env_file.write_text("# the operator's file\nFROM_FILE=plain\nsecret FILE_SECRET=f1le-s3cret\n")
    agents.run(
        "-q",
        "q",
        "--once",
        "--env",
        "FORCED=yes",
        "--secret-env",
        "PLAIN_SECRET=op-s3cret-value",
        "--env-file",
        str(env_file),
        env={"AGENT_TOKEN": "agent-only-token", "LANG": "C.UTF-8"},
    )
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    log = logs_of(store, task_id)
    assert "AGENT_TOKEN = <unset>" in log  # the agent's own environment stays its own
    assert "LANG = C.UTF-8" in log  # the allow-list: locale, PATH, HOME, proxies, ...
    assert "FORCED = yes" in log  # the operator's value wins over the task's own
    assert "OWN = mine" in log
    assert "FROM_FILE = plain" in log
    assert "PLAIN_SECRET = ***" in log
    assert "FILE_SECRET = ***" in log
    assert "op-s3cret-value" not in log
    assert "f1le-s3cret" not in log


def test_the_command_line_shows_and_sets_a_drafts_variables(cli: Cli, store: Store) -> None:
    task = store.tasks.create(TaskSpec(project="p", name="vars", environment={"A": "1"}))
    assert cli.run("task", "env", str(task.id)).stdout == "A=1\n"
    shown = cli.run("task", "env", str(task.id), "B=two words", "--unset", "A").stdout
    assert shown == "B=two words\n"
    assert store.tasks.get(task.id).environment == {"B": "two words"}
    refused = cli.fails("task", "env", str(task.id), "CLEARQ_HOME=/x")
    assert "CLEARQ_* variables are set by the agent only" in refused
