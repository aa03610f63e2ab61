"""Quotas: at most N running tasks and G GPUs at once, per user or per project.

A quota is a row (kind ``user`` with the name a task records as its maker,
``tasks.created_by``, or kind ``project``); the claim reads them. A task counts while it
is running out of a queue (an agent claimed it, or ``clearq task run`` did) and holds its
queue's GPUs per task. An entry whose task's user or project has no room left, for one
more task or for its queue's GPUs, is passed over by the claim as one whose parent has
not completed is: the claim takes the next eligible entry instead, so another user's task
runs while this user waits.

The decision is part of the claim's own statement (:data:`QUOTA_USE` and
:func:`over_quota`, shared by both dialects), never a check before it: on PostgreSQL a
claim that may meet a quota holds :data:`PG_QUOTA_LOCK` for its transaction and counts
running tasks in a statement after taking it, so concurrent claimers cannot both take the
last room (the way a queue's cap is held, ``clearq.scheduler.claim``); SQLite's writer is
alone. A claim of several tasks at once under quotas claims them one statement at a time
in its transaction, each seeing the ones before. A gang task counts once per rank,
each with its queue's GPUs, and starts only when all its ranks fit: the join that would
start it takes the lock too and checks them (:func:`hold_quotas`, :func:`gang_fits`), and
agents do not join a gang that cannot start now (:data:`GANG_FITS`). A person's ``clearq
task run ID`` is not held back by quotas, as it is not by a queue's cap.
"""

from __future__ import annotations

import builtins
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput, NotFound
from clearq.models import Quota, QuotaKind, TaskStatus
from clearq.scheduler.engine import Database
from clearq.scheduler.notify import ENQUEUE_CHANNEL, notify
from clearq.scheduler.schema import queues, quotas, tasks

QUOTA_PAYLOAD = "quota"
"""The hint's payload when a quota changes: it may free work in any queue."""

PG_QUOTA_LOCK = 0x636C7175
"""The first key of the advisory lock a PostgreSQL claim under quotas holds (second: 0)."""

# What each quota's user or project holds now. Running tasks are grouped once (the
# status index finds them); quotas are few. A gang task counts once per rank (``nodes``),
# each rank holding its queue's GPUs.
QUOTA_USE = """SELECT k.kind, k.name, k.max_running, k.max_gpus,
       COALESCE(sum(u.n), 0) AS running, COALESCE(sum(u.g), 0) AS gpus
FROM quotas k LEFT JOIN (
    SELECT rt.created_by, rt.project, sum(rt.nodes) AS n, sum(rq.gpus * rt.nodes) AS g
    FROM tasks rt JOIN queues rq ON rq.id = rt.queue_id
    WHERE rt.status = 'running'
    GROUP BY rt.created_by, rt.project
) u ON (k.kind = 'user' AND u.created_by = k.name) OR (k.kind = 'project' AND u.project = k.name)
GROUP BY k.kind, k.name, k.max_running, k.max_gpus"""


def over_quota(use: str, task_id: str, gpus: str, ranks: str | None = None) -> str:
    """The condition that passes over an entry whose task's user or project is at a quota.

    ``use``: the rows of :data:`QUOTA_USE` (a CTE's name or the query in parentheses);
    ``task_id``, ``gpus``: the entry's task and its queue's GPUs per task; ``ranks``: how
    many ranks start at once (a gang's ``nodes``; None: one). A NULL limit never binds.
    """
    if ranks is None:
        room = f"k.running >= k.max_running OR k.gpus + {gpus} > k.max_gpus"
    else:
        room = f"k.running + {ranks} > k.max_running OR k.gpus + {ranks} * {gpus} > k.max_gpus"
    return f"""NOT EXISTS (
    SELECT 1 FROM tasks qt JOIN {use} k
      ON (k.kind = 'user' AND k.name = qt.created_by)
      OR (k.kind = 'project' AND k.name = qt.project)
    WHERE qt.id = {task_id}
      AND ({room})
)"""


# A gang's entry ``queue_entries`` (queue ``queues``) whose ranks all fit its user's and
# project's quotas now (gangs.py's candidates: no agent waits for a gang that cannot start).
GANG_FITS = over_quota(
    f"({QUOTA_USE})",
    "queue_entries.task_id",
    "queues.gpus",
    ranks="(SELECT gt.nodes FROM tasks gt WHERE gt.id = queue_entries.task_id)",
)


def hold_quotas(conn: Connection, *, postgres: bool) -> bool:
    """Whether any quota exists; on PostgreSQL, when one does, this transaction then holds
    :data:`PG_QUOTA_LOCK` (to its end), as a claim under quotas does, so a gang's start
    and the agents' claims cannot both take a user's last room. SQLite's writer is alone.

    Take it before locking any entry: the claims take it first too.
    """
    if not conn.execute(ANY_QUOTA).scalar():
        return False
    if postgres:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k, 0)"), {"k": PG_QUOTA_LOCK})
    return True


def gang_fits(conn: Connection, task_id: uuid.UUID) -> bool:
    """Whether every rank of gang ``task_id`` fits its user's and project's quotas now
    (each rank one running task with its queue's GPUs); call under :func:`hold_quotas`."""
    fits = over_quota(
        f"({QUOTA_USE})",
        ":task_id",
        "(SELECT fq.gpus FROM tasks ft JOIN queues fq ON fq.id = ft.queue_id"
        " WHERE ft.id = :task_id)",
        ranks="(SELECT ft.nodes FROM tasks ft WHERE ft.id = :task_id)",
    )
    query = sa.text(f"SELECT {fits}").bindparams(sa.bindparam("task_id", type_=sa.Uuid()))
    return bool(conn.execute(query, {"task_id": task_id}).scalar())


# A PostgreSQL claim under the quota lock reads what each quota holds once, in a CTE
# (``quota_use``), and passes over the entries ``e`` (queue ``q``) it would overrun.
PG_QUOTA_USE = f"\nquota_use AS MATERIALIZED (\n{QUOTA_USE}\n),"
PG_OVER_QUOTA = "\n          AND " + over_quota("quota_use", "e.task_id", "q.gpus")


# Claims that do not take the quota lock claim nothing while any quota exists: a claimer
# that has not seen a new quota yet waits for its next look instead of overrunning it.
NO_QUOTAS = "NOT EXISTS (SELECT 1 FROM quotas)"

ANY_QUOTA = sa.select(sa.exists(sa.select(quotas.c.kind)))


def _check_limit(what: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise InvalidInput(f"a quota's {what} cannot be negative ({value})")


def check_quota(name: str, max_running: int | None, max_gpus: int | None) -> None:
    """Refuse a quota without a name or a limit, or with a negative one."""
    if not name or name != name.strip():
        raise InvalidInput(f"a quota's user or project {name!r} is empty or has surrounding spaces")
    if max_running is None and max_gpus is None:
        raise InvalidInput("a quota needs a limit: --running N, --gpus G, or both")
    _check_limit("running tasks", max_running)
    _check_limit("GPUs", max_gpus)


def missing(kind: QuotaKind, name: str) -> NotFound:
    """The error for a quota that is not there, naming how to see the ones that are."""
    return NotFound(f"no quota for {kind} {name!r}: `clearq quota list` shows them")


class Quotas:
    """Per-user and per-project limits on running tasks and GPUs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(
        self,
        kind: QuotaKind,
        name: str,
        *,
        max_running: int | None = None,
        max_gpus: int | None = None,
    ) -> Quota:
        """Limit ``name``'s running tasks and GPUs (replacing its quota, if any)."""
        kind = QuotaKind(kind)
        check_quota(name, max_running, max_gpus)
        key = (quotas.c.kind == kind.value) & (quotas.c.name == name)
        with self._db.write() as conn:
            conn.execute(quotas.delete().where(key))
            conn.execute(
                quotas.insert().values(
                    kind=kind.value, name=name, max_running=max_running, max_gpus=max_gpus
                )
            )
            notify(conn, self._db, ENQUEUE_CHANNEL, QUOTA_PAYLOAD)  # a raised one frees work
        return self.get(kind, name)

    def clear(self, kind: QuotaKind, name: str) -> None:
        """Lift ``name``'s quota; NotFound when it has none."""
        kind = QuotaKind(kind)
        key = (quotas.c.kind == kind.value) & (quotas.c.name == name)
        with self._db.write() as conn:
            if conn.execute(quotas.delete().where(key)).rowcount == 0:
                raise missing(kind, name)
            notify(conn, self._db, ENQUEUE_CHANNEL, QUOTA_PAYLOAD)

    def get(self, kind: QuotaKind, name: str) -> Quota:
        """One quota with what its user or project holds now; NotFound when there is none."""
        kind = QuotaKind(kind)
        found = [q for q in self.list() if q.kind is kind and q.name == name]
        if not found:
            raise missing(kind, name)
        return found[0]

    def list(self) -> builtins.list[Quota]:
        """Every quota, users first then projects, by name, with what each holds now."""
        running = (
            sa.select(
                tasks.c.created_by,
                tasks.c.project,
                sa.func.sum(tasks.c.nodes).label("n"),
                sa.func.sum(queues.c.gpus * tasks.c.nodes).label("g"),
            )
            .select_from(tasks.join(queues, queues.c.id == tasks.c.queue_id))
            .where(tasks.c.status == TaskStatus.RUNNING.value)
            .group_by(tasks.c.created_by, tasks.c.project)
        )
        with self._db.read() as conn:
            limits = conn.execute(sa.select(quotas).order_by(quotas.c.kind, quotas.c.name)).all()
            use = conn.execute(running).all() if limits else []
        out = []
        for row in sorted(limits, key=lambda r: (r.kind != QuotaKind.USER.value, r.name)):
            mine = [
                u for u in use if (u.created_by if row.kind == "user" else u.project) == row.name
            ]
            out.append(
                Quota(
                    kind=QuotaKind(row.kind),
                    name=row.name,
                    max_running=row.max_running,
                    max_gpus=row.max_gpus,
                    running=sum(int(u.n or 0) for u in mine),
                    gpus=sum(int(u.g or 0) for u in mine),
                )
            )
        return out
