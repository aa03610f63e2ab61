"""``task.launch_multi_node(N)``: a rank's place in a gang, or the request for one.

An agent that runs one rank of a gang task gives its process the rank's facts in its
environment (``clearq.runtime.gangs.rank_environment``): the call reads them back. Run by
hand, the call sends the task to a queue asking for N ranks (``nodes=N``) and this
process exits, as ``execute_remotely`` does; agents then run N ranks of it together.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from clearq.errors import InvalidInput

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from clearq.sdk.task import Task

DEFAULT_QUEUE = "default"


def rank_facts(environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """This process's rank in a gang, from the agent's variables; None outside one."""
    env = os.environ if environ is None else environ
    if "CLEARQ_NUM_NODES" not in env:
        return None
    return {
        "node_rank": int(env["CLEARQ_NODE_RANK"]),
        "total_num_nodes": int(env["CLEARQ_NUM_NODES"]),
        "master_addr": env["MASTER_ADDR"],
        "master_port": int(env["MASTER_PORT"]),
    }


def launch_multi_node(task: Task, total_num_nodes: int, queue: str | None) -> dict[str, Any]:
    """See ``Task.launch_multi_node``."""
    from clearq.sdk.roles import AgentRun, LocalRun

    if total_num_nodes < 1:
        raise InvalidInput(f"a task runs on at least one node, not {total_num_nodes}")
    facts = rank_facts()
    role = task._role
    if facts is not None:
        if facts["total_num_nodes"] != total_num_nodes:
            raise InvalidInput(
                f"launch_multi_node({total_num_nodes}) in a gang of "
                f"{facts['total_num_nodes']} ranks: enqueue the task with "
                f"nodes={total_num_nodes}, or ask for {facts['total_num_nodes']}"
            )
        return facts
    if isinstance(role, AgentRun):
        if total_num_nodes == 1:
            return {"node_rank": 0, "total_num_nodes": 1, "master_addr": "", "master_port": 0}
        raise InvalidInput(
            f"this task runs on one agent, not as a gang of {total_num_nodes}: enqueue it "
            f"with nodes={total_num_nodes} (Task.enqueue(task, queue_name=..., nodes=N))"
        )
    if not isinstance(role, LocalRun):
        raise InvalidInput("launch_multi_node is for the task this process runs (Task.init)")
    target = queue or DEFAULT_QUEUE
    task.flush(wait_for_uploads=True)
    task._remember(task._records.enqueue_run(role.fence(task), target, nodes=total_num_nodes))
    log.info(
        "clearq: task %s sent to queue %r to run on %s nodes", task.id, target, total_num_nodes
    )
    role.run.end(record=False)
    raise SystemExit(0)
