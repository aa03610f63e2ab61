"""Task ids as people type them: a full UUID, or a unique prefix of its hex digits."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING

from clearq.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from clearq.scheduler.store import Store

MIN_PREFIX = 6
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
    matches = store.tasks.ids_starting_with(digits, limit=10)
    if not matches:
        raise NotFound(f"no task id starts with {text!r}: check the id with `clearq task list`")
    if len(matches) > 1:
        listed = ", ".join(str(m) for m in matches)
        raise InvalidInput(
            f"task id prefix {text!r} is ambiguous: it matches {listed}"
            f"{' and more' if len(matches) == 10 else ''}; give more digits"
        )
    return matches[0]
