"""Task ids as people type them: a full UUID, or a unique prefix of its hex digits."""

from __future__ import annotations

import re
import uuid

from clearq.errors import InvalidInput, NotFound
from clearq.scheduler import Store

MIN_PREFIX = 6
# A prefix is matched against the newest tasks only; past this many, ask for the full id
# rather than risk acting on the wrong task.
PREFIX_SCAN_LIMIT = 5000
_PREFIX = re.compile(r"[0-9a-f-]+")


def resolve_task_id(store: Store, text: str) -> uuid.UUID:
    """The task id ``text`` names: a full UUID, or a prefix that matches one task only."""
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    prefix = text.strip().lower()
    digits = prefix.replace("-", "")
    if not _PREFIX.fullmatch(prefix) or len(digits) < MIN_PREFIX:
        raise InvalidInput(
            f"{text!r} is not a task id: give the full UUID or at least its first "
            f"{MIN_PREFIX} hex digits (see `clearq task list`)"
        )
    return _match_prefix(store, text, digits)


def _match_prefix(store: Store, text: str, digits: str) -> uuid.UUID:
    tasks = store.tasks.list(limit=PREFIX_SCAN_LIMIT + 1)
    if len(tasks) > PREFIX_SCAN_LIMIT:
        raise InvalidInput(
            f"the store holds more than {PREFIX_SCAN_LIMIT} tasks: give the full task id "
            f"instead of {text!r}"
        )
    matches = sorted(t.id for t in tasks if t.id.hex.startswith(digits))
    if not matches:
        raise NotFound(f"no task id starts with {text!r}: check the id with `clearq task list`")
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches)
        raise InvalidInput(
            f"task id prefix {text!r} is ambiguous: it matches {len(matches)} tasks "
            f"({listed}); give more digits"
        )
    return matches[0]
