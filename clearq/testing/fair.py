"""The in-memory store's fair share: each owner's decayed usage and the claim's order.

The same rule as ``clearq.scheduler.fair``: among entries of equal priority, the owner with
the fewest running tasks of the queue, then the least decayed usage (none first), then
first in, first out; a run's charge is its seconds times its queue's GPUs (at least 1).
"""

from __future__ import annotations

import math

from clearq.models import FairShare, QueueInfo, Task, TaskStatus
from clearq.testing.state import Entry, State


def owner(queue: QueueInfo, task: Task) -> str | None:
    """Whose turn ``task`` is in ``queue`` (None: the queue does not share fairly)."""
    if queue.fair_share is None:
        return None
    return (task.user or "") if queue.fair_share is FairShare.USER else task.project


def fair_order(state: State, queue: QueueInfo, entries: list[Entry]) -> list[Entry]:
    """``entries`` of ``queue`` in the order a fair-share claim takes them."""
    running: dict[str | None, int] = {}
    for task in state.tasks.values():
        if task.status is TaskStatus.RUNNING and task.queue == queue.name:
            who = owner(queue, task)
            running[who] = running.get(who, 0) + 1

    def turn(e: Entry) -> tuple[int, int, bool, float, int]:
        who = owner(queue, state.tasks[e.task_id])
        score = state.fair_usage.get((queue.id, who or ""))
        return (-e.priority, running.get(who, 0), score is not None, score or 0.0, e.id)

    return sorted(entries, key=turn)


def charge(state: State, task: Task) -> None:
    """Add ``task``'s run that ends now to its owner's usage of its fair-share queue."""
    queue = state.queues.get(task.queue) if task.queue is not None else None
    if queue is None or queue.fair_share is None or task.started_at is None:
        return
    now = state.now()
    seconds = max((now - task.started_at).total_seconds(), 0.001)
    half_life = queue.fair_half_life or 1.0
    added = math.log(max(queue.gpus, 1) * seconds) + now.timestamp() * math.log(2) / half_life
    key = (queue.id, owner(queue, task) or "")
    old = state.fair_usage.get(key)
    state.fair_usage[key] = (
        added if old is None else max(old, added) + math.log(1 + math.exp(-abs(old - added)))
    )
