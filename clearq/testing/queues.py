"""The in-memory store's queues (``ports.QueueAdmin``): create, edit, enqueue, reorder."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

from clearq.errors import AlreadyExists, InvalidInput, NotFound
from clearq.models import DEFAULT_FAIR_HALF_LIFE, FairShare, QueueInfo, Task, TaskStatus
from clearq.scheduler.queues import check_half_life, queue_tags
from clearq.testing.state import Entry, State


class MemoryQueues:
    """Named queues of tasks waiting for a worker, in memory."""

    def __init__(self, state: State) -> None:
        self._s = state

    def create(
        self,
        name: str,
        *,
        gpus: int = 0,
        max_running: int | None = None,
        description: str = "",
        tags: Sequence[str] = (),
        fair_share: FairShare | None = None,
        half_life_seconds: float = DEFAULT_FAIR_HALF_LIFE,
    ) -> QueueInfo:
        """Create a queue whose tasks each need ``gpus`` GPUs (``QueueOps.create``)."""
        check_half_life(half_life_seconds)
        if not name or name != name.strip():
            raise InvalidInput(f"queue name {name!r} is empty or has surrounding spaces")
        if gpus < 0:
            raise InvalidInput(f"a queue's tasks cannot need a negative number of GPUs ({gpus})")
        if max_running is not None and max_running < 1:
            raise InvalidInput(
                f"a queue's cap on running tasks must be at least 1, not {max_running}"
            )
        with self._s.lock:
            if name in self._s.queues:
                raise AlreadyExists(f"queue {name!r} already exists")
            queue_id = len(self._s.queues) + 1
            info = QueueInfo(
                id=queue_id,
                name=name,
                gpus=gpus,
                created_at=self._s.now(),
                max_running=max_running,
                description=description,
                tags=tuple(queue_tags(tags)),
                fair_share=None if fair_share is None else FairShare(fair_share),
                fair_half_life=None if fair_share is None else half_life_seconds,
            )
            self._s.queues[name] = info
            return info

    def set_fair_share(
        self,
        name: str,
        fair_share: FairShare | None,
        *,
        half_life_seconds: float = DEFAULT_FAIR_HALF_LIFE,
    ) -> QueueInfo:
        """Share a queue's turns by user or project (None: FIFO); its usage is forgotten."""
        check_half_life(half_life_seconds)
        by = None if fair_share is None else FairShare(fair_share)
        with self._s.lock:
            queue = self._queue(name)
            self._s.queues[name] = queue.model_copy(
                update={
                    "fair_share": by,
                    "fair_half_life": None if by is None else half_life_seconds,
                }
            )
            for key in [k for k in self._s.fair_usage if k[0] == queue.id]:
                del self._s.fair_usage[key]
        return self.get(name)

    def edit(
        self, name: str, *, description: str | None = None, tags: Sequence[str] | None = None
    ) -> QueueInfo:
        """Set a queue's description (``""``: none) and/or its tags (``[]``: none)."""
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = description
        if tags is not None:
            changes["tags"] = tuple(queue_tags(tags))
        with self._s.lock:
            info = self._queue(name)
            self._s.queues[name] = info.model_copy(update=changes)
        return self.get(name)

    def get(self, name: str) -> QueueInfo:
        """One queue with its length and oldest wait."""
        with self._s.lock:
            return self._info(self._queue(name))

    def _queue(self, name: str) -> QueueInfo:
        info = self._s.queues.get(name)
        if info is None:
            raise NotFound(f"no queue named {name!r}: create it with `clearq queue create {name}`")
        return info

    def move_to_front(self, task_id: uuid.UUID) -> None:
        """Make a queued task the next one its queue hands out."""
        with self._s.lock:
            entry = self._entry(task_id)
            del self._s.entries[task_id]
            self._s.add_entry(task_id, entry.queue_id, entry.priority, front=True)

    def move_to_back(self, task_id: uuid.UUID) -> None:
        """Make a queued task the last one its queue hands out (it takes the lowest priority)."""
        with self._s.lock:
            entry = self._entry(task_id)
            del self._s.entries[task_id]
            others = [e.priority for e in self._s.entries.values() if e.queue_id == entry.queue_id]
            self._s.add_entry(task_id, entry.queue_id, min([entry.priority, *others]))

    def move_to_queue(self, task_id: uuid.UUID, queue: str) -> Task:
        """Move a queued task to the back of another queue (its priority kept)."""
        with self._s.lock:
            target = self._queue(queue)
            entry = self._entry(task_id)
            del self._s.entries[task_id]
            self._s.put(self._s.task(task_id), queue=queue)
            self._s.add_entry(task_id, target.id, entry.priority)
            return self._s.task(task_id)

    def _entry(self, task_id: uuid.UUID) -> Entry:
        entry = self._s.entries.get(task_id)
        if entry is None:
            task = self._s.tasks.get(task_id)
            what = "does not exist" if task is None else f"is {task.status}, not queued"
            raise InvalidInput(f"task {task_id} {what}: only a queued task can be moved")
        return entry

    def list(self) -> builtins.list[QueueInfo]:
        """Every queue, by name, with its length and oldest wait."""
        with self._s.lock:
            return [self._info(q) for _, q in sorted(self._s.queues.items())]

    def _info(self, queue: QueueInfo) -> QueueInfo:
        waiting = [e.enqueued_at for e in self._s.entries.values() if e.queue_id == queue.id]
        return queue.model_copy(
            update={"length": len(waiting), "oldest_enqueued_at": min(waiting, default=None)}
        )

    def enqueue(
        self,
        task_id: uuid.UUID,
        queue: str,
        *,
        priority: int = 0,
        depends_on: Sequence[uuid.UUID] = (),
        continue_on_failure: bool = False,
        nodes: int | None = None,
    ) -> Task:
        """Put a draft in a queue; with ``depends_on`` it waits for those tasks (``nodes``:
        the ranks it asks for; the twin runs no gangs, it only records them)."""
        if nodes is not None and nodes < 1:
            raise InvalidInput(f"a task runs on at least one node, not {nodes}")
        s = self._s
        with s.lock:
            info = s.queues.get(queue)
            if info is None:
                raise NotFound(
                    f"no queue named {queue!r}: create it with `clearq queue create {queue}`"
                )
            if depends_on:
                self._add_parents(task_id, depends_on, continue_on_failure)
            task = s.transition(
                task_id,
                TaskStatus.QUEUED,
                expect=frozenset({TaskStatus.CREATED}),
                queue=queue,
                queued_at=s.now(),
                status_reason="",
                **({} if nodes is None else {"nodes": nodes}),
            )
            s.add_entry(task_id, info.id, priority)
            if depends_on:
                s.skip_blocked()
            return s.task(task.id)

    def _add_parents(self, child: uuid.UUID, parents: Sequence[uuid.UUID], go_on: bool) -> None:
        s = self._s
        wanted = set(parents)
        if child in wanted:
            raise InvalidInput(f"task {child} cannot depend on itself")
        missing = wanted - set(s.tasks)
        if missing:
            raise NotFound(f"no task with id {', '.join(map(str, sorted(missing)))} to depend on")
        seen, frontier = set(wanted), set(wanted)
        while frontier:
            frontier = {p for c in frontier for p in s.parents.get(c, {})} - seen
            seen |= frontier
        if child in seen:
            raise InvalidInput(f"task {child} is an ancestor of its own parents: that is a cycle")
        edges = s.parents.setdefault(child, {})
        for parent in wanted - set(edges):
            edges[parent] = go_on

    def dequeue(self, task_id: uuid.UUID) -> Task:
        """Take a queued task out of its queue; it becomes a draft again."""
        with self._s.lock:
            task = self._s.transition(
                task_id,
                TaskStatus.CREATED,
                expect=frozenset({TaskStatus.QUEUED}),
                queued_at=None,
                status_reason="",
            )
            self._s.entries.pop(task_id, None)
            return task
