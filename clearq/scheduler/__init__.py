"""The store: schema and migrations, tasks, queues, the claim, leases and the reaper.

Only this package touches SQL. Everything above it talks to a :class:`Store`, except a
training script's own run, which talks to a :class:`RunLink` (``clearq.scheduler.runlink``:
the few fenced writes of one run on the bare driver, without SQLAlchemy).

The names below are imported on first use, so that importing ``runlink`` does not pull
in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearq.scheduler.claim import Claimer
    from clearq.scheduler.engine import Database
    from clearq.scheduler.lifecycle import TRANSITIONS, can_transition, check_transition
    from clearq.scheduler.migrate import current_revision, ensure_schema, head_revision, upgrade
    from clearq.scheduler.notify import (
        ENQUEUE_CHANNEL,
        STOP_CHANNEL,
        WORKER_CHANNEL,
        Listener,
        Notice,
    )
    from clearq.scheduler.runlink import RunFence, RunLink, open_run_link
    from clearq.scheduler.store import Store

_HOMES = {
    "Claimer": "claim",
    "Database": "engine",
    "TRANSITIONS": "lifecycle",
    "can_transition": "lifecycle",
    "check_transition": "lifecycle",
    "current_revision": "migrate",
    "ensure_schema": "migrate",
    "head_revision": "migrate",
    "upgrade": "migrate",
    "ENQUEUE_CHANNEL": "notify",
    "STOP_CHANNEL": "notify",
    "WORKER_CHANNEL": "notify",
    "Listener": "notify",
    "Notice": "notify",
    "RunFence": "runlink",
    "RunLink": "runlink",
    "open_run_link": "runlink",
    "Store": "store",
}

__all__ = [
    "ENQUEUE_CHANNEL",
    "STOP_CHANNEL",
    "TRANSITIONS",
    "WORKER_CHANNEL",
    "Claimer",
    "Database",
    "Listener",
    "Notice",
    "RunFence",
    "RunLink",
    "Store",
    "can_transition",
    "check_transition",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "open_run_link",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'clearq.scheduler' has no attribute {name!r}")
    return getattr(importlib.import_module(f"clearq.scheduler.{home}"), name)
