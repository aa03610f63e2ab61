"""``task.launch_multi_node(N)``: a rank's place in a gang, or the request for one.

An agent that runs one rank of a gang task gives its process the rank's facts in its
environment (``clearq.runtime.gangs.rank_environment``): the call reads them back. Run by
hand, the call sends the task to a queue asking for N ranks (``nodes=N``) and this
process exits, as ``execute_remotely`` does; agents then run N ranks of it together.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from clearq.errors import InvalidInput

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
    """See ``Task.launch_multi_node``: inside a gang its facts, else the task's role acts."""
    if total_num_nodes < 1:
        raise InvalidInput(f"a task runs on at least one node, not {total_num_nodes}")
    facts = rank_facts()
    if facts is None:
        return task._role.launch_multi_node(task, total_num_nodes, queue or DEFAULT_QUEUE)
    if facts["total_num_nodes"] != total_num_nodes:
        raise InvalidInput(
            f"launch_multi_node({total_num_nodes}) in a gang of "
            f"{facts['total_num_nodes']} ranks: enqueue the task with "
            f"nodes={total_num_nodes}, or ask for {facts['total_num_nodes']}"
        )
    return facts
