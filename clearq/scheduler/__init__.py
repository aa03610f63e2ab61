"""The store: schema and migrations, tasks, queues, the claim, leases and the reaper.

Only this package touches SQL. Everything above it talks to a :class:`Store`.
"""

from clearq.scheduler.claim import Claimer
from clearq.scheduler.engine import Database
from clearq.scheduler.lifecycle import TRANSITIONS, can_transition, check_transition
from clearq.scheduler.migrate import current_revision, ensure_schema, head_revision, upgrade
from clearq.scheduler.notify import ENQUEUE_CHANNEL, STOP_CHANNEL, Listener, Notice
from clearq.scheduler.store import Store

__all__ = [
    "ENQUEUE_CHANNEL",
    "STOP_CHANNEL",
    "TRANSITIONS",
    "Claimer",
    "Database",
    "Listener",
    "Notice",
    "Store",
    "can_transition",
    "check_transition",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "upgrade",
]
