"""Dependencies between tasks: a child waits in its queue until its parents are done.

The claim itself decides what is ready (``claim.py``: an entry whose parents have not
all completed is passed over in the same SKIP LOCKED statement), so no controller
process polls for it. What the claim cannot do is give up: a child whose parent failed
or was stopped (on an edge that does not continue on failure) would wait forever, so
:func:`skip_blocked` marks such waiting children ``skipped`` with the reason, and their
own children after them. It runs after every failed or stopped finish and in every
reaper pass, so whichever path ended the parent, its children learn it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput, NotFound
from clearq.scheduler import fenced
from clearq.scheduler.schema import task_dependencies, tasks
from clearq.scheduler.sqla_exec import on


def add_parents(
    conn: Connection,
    child: uuid.UUID,
    parents: Sequence[uuid.UUID],
    *,
    continue_on_failure: bool = False,
) -> None:
    """Make ``child`` wait for ``parents``; refuses unknown parents and cycles."""
    wanted = set(parents)
    if child in wanted:
        raise InvalidInput(f"task {child} cannot depend on itself")
    found = set(conn.execute(sa.select(tasks.c.id).where(tasks.c.id.in_(wanted))).scalars())
    missing = wanted - found
    if missing:
        raise NotFound(f"no task with id {', '.join(map(str, sorted(missing)))} to depend on")
    if child in ancestors(conn, wanted):
        raise InvalidInput(f"task {child} is an ancestor of its own parents: that is a cycle")
    have = set(
        conn.execute(
            sa.select(task_dependencies.c.parent_id).where(task_dependencies.c.child_id == child)
        ).scalars()
    )
    rows = [
        {"child_id": child, "parent_id": p, "continue_on_failure": continue_on_failure}
        for p in sorted(wanted - have)
    ]
    if rows:
        conn.execute(task_dependencies.insert(), rows)
        conn.execute(tasks.update().where(tasks.c.id.in_(wanted)).values(has_children=True))


def ancestors(conn: Connection, start: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Every task ``start`` depends on, directly or not (``start`` included)."""
    seen = set(start)
    frontier = set(seen)
    while frontier:
        frontier = (
            set(
                conn.execute(
                    sa.select(task_dependencies.c.parent_id).where(
                        task_dependencies.c.child_id.in_(frontier)
                    )
                ).scalars()
            )
            - seen
        )
        seen |= frontier
    return seen


def parents_of(conn: Connection, child: uuid.UUID) -> list[tuple[uuid.UUID, bool]]:
    """``child``'s parents with whether each edge continues on failure."""
    rows = conn.execute(
        sa.select(task_dependencies.c.parent_id, task_dependencies.c.continue_on_failure)
        .where(task_dependencies.c.child_id == child)
        .order_by(task_dependencies.c.parent_id)
    ).all()
    return [(r.parent_id, r.continue_on_failure) for r in rows]


def skip_blocked(conn: Connection) -> list[uuid.UUID]:
    """Mark every queued task blocked by a parent that gave up ``skipped``; their ids."""
    return fenced.skip_blocked(on(conn))
