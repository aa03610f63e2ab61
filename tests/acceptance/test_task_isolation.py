"""A task never holds the database: under an agent its only door is its attempt's channel.

A hostile task's script tries what issue 13 found open: reading and rewriting another
task's row (its ``General/api_key``), with the SDK and with the channel's raw protocol. It
has no database URL, and the channel refuses everything outside its own attempt. A
controller (a script that clones and enqueues) works only on an agent started with
``--allow-controllers``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents
from tests.acceptance.test_agent import logs_of

ATTACK = """
import json, os, socket
from clearq import Task
from clearq.errors import ChannelRefused
from clearq.sdk.channel import reachable
from pathlib import Path

task = Task.init()
victim = task.connect({"victim": ""})["victim"]
print("env:", json.dumps({k: os.environ.get(k) for k in ("CLEARQ_DATABASE_URL", "CLEARQ_HOME")}))
try:
    Task.get_task(task_id=victim).set_parameters({"General/api_key": "stolen"})
    print("ATTACK WORKED: get_task")
except ChannelRefused as e:
    print("refused get_task:", e)

def ask(token, task_id, op, **args):
    request = {"token": token, "op": op, "task_id": task_id, "attempt": 1, "args": args}
    with socket.socket(socket.AF_UNIX) as s:
        with reachable(Path(os.environ["CLEARQ_CHANNEL"])) as name:
            s.connect(name)
        s.sendall(json.dumps(request).encode() + b"\\n")
        return json.loads(s.makefile("rb").readline())

token = os.environ["CLEARQ_CHANNEL_TOKEN"]
stolen = {"values": {"General/api_key": "stolen"}}
for who, key, op in [(victim, token, "read"), (victim, token, "update_parameters"),
                     (os.environ["CLEARQ_TASK_ID"], "guessed", "update_parameters")]:
    answer = ask(key, who, op, **stolen)
    print("raw", op, "ok" if answer["ok"] else "refused:", answer.get("message"))
task.get_logger().report_scalar("loss", "train", 0.5, 1)
"""

CONTROLLER = """
from clearq import Task

task = Task.init()
source = task.connect({"source": ""})["source"]
child = Task.clone(source_task=source, name="made by a controller")
child.enqueue("later")
print("controller made", child.id)
"""


def _script_task(store: Store, name: str, source: str, parameters: dict[str, str]) -> uuid.UUID:
    spec = TaskSpec(
        project="isolation",
        name=name,
        script=Script(source=source, entry_point=f"{name}.py"),
        parameters=parameters,
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "q")
    return task_id


def test_a_task_cannot_read_or_update_another_tasks_row(store: Store, agents: Agents) -> None:
    store.queues.create("q")
    victim = store.tasks.create(
        TaskSpec(project="isolation", name="victim", parameters={"General/api_key": "secret"})
    ).id
    attacker = _script_task(store, "attack", ATTACK, {"General/victim": str(victim)})
    agents.run("-q", "q", "--idle-exit", "1")
    log = logs_of(store, attacker)
    assert store.tasks.get(attacker).status is TaskStatus.COMPLETED, log
    assert 'env: {"CLEARQ_DATABASE_URL": null, "CLEARQ_HOME": null}' in log
    assert f"refused get_task: task {victim} is neither this task nor a step of its" in log
    assert "raw read refused: this channel serves task" in log
    assert "raw update_parameters refused: this channel serves task" in log
    assert "raw update_parameters refused: wrong or missing channel token" in log
    assert "ATTACK WORKED" not in log
    assert "secret" not in log
    assert store.tasks.get(victim).parameters == {"General/api_key": "secret"}
    # through the channel (title given: a run past 30 s also reports :monitor:machine)
    assert [p.value for p in store.outputs.scalars(attacker, title="loss")] == [0.5]


def test_a_controller_clones_and_enqueues_only_on_an_agent_that_allows_controllers(
    store: Store, agents: Agents
) -> None:
    for queue in ("q", "later"):
        store.queues.create(queue)
    source = store.tasks.create(TaskSpec(project="isolation", name="base")).id
    refused = _script_task(store, "controller", CONTROLLER, {"General/source": str(source)})
    agents.run("-q", "q", "--idle-exit", "1")
    ended = store.tasks.get(refused)
    assert ended.status is TaskStatus.FAILED
    assert "--allow-controllers" in logs_of(store, refused)
    assert store.queues.entries("later") == []

    allowed = _script_task(store, "controller", CONTROLLER, {"General/source": str(source)})
    agents.run("-q", "q", "--idle-exit", "1", "--allow-controllers")
    assert store.tasks.get(allowed).status is TaskStatus.COMPLETED, logs_of(store, allowed)
    [entry] = store.queues.entries("later")
    assert store.tasks.get(entry.task_id).name == "made by a controller"


PLAIN = """
import sys
from clearq import Task

task = Task.init()
task.connect({"lr": 0.1})
task.get_logger().report_scalar("loss", "train", 0.5, 1)
task.flush()
print("heavy:", sorted(m for m in ("sqlalchemy", "pydantic") if m in sys.modules))
from pathlib import Path
from clearq import InputModel, OutputModel

Path("weights.bin").write_bytes(b"w")
model = OutputModel(task=task, name="tiny", framework="none")
model.update_weights("weights.bin")
print("input model:", InputModel(model_id=model.id).name)
"""


def test_a_run_through_its_channel_imports_no_driver_and_leaves_no_socket(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    task_id = _script_task(store, "plain", PLAIN, {})
    agents.run("-q", "q", "--idle-exit", "1", "--keep-workspaces")
    log = logs_of(store, task_id)
    assert "heavy: []" in log
    assert "input model: tiny" in log, log
    assert [m.name for m in store.registry.of_task(task_id)] == ["tiny"]
    runs = tmp_path / "home" / "runs"
    assert list(runs.iterdir())  # the run folder is kept, for debugging
    assert list(runs.glob("*/channel.sock")) == []
