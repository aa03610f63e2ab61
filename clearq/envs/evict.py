"""Eviction: least recently used entries go past a count and a size limit, unless in use.

An entry is taken only when both its build lock (no one is building or looking it up)
and its use lock, exclusively (no one is using it), can be had without waiting; it is
renamed into the trash before it is deleted, so no one ever finds half of one.
"""

from __future__ import annotations

import time
from pathlib import Path

from filelock import FileLock, Timeout

from clearq.envs.inuse import UseLock
from clearq.envs.layout import CacheEntry, CacheLayout

__all__ = ["evict", "evict_unused_for", "remove_stale_builds"]


def evict(
    layout: CacheLayout, max_entries: int, max_bytes: int, *, keep: tuple[str, ...] = ()
) -> list[str]:
    """Remove least recently used entries until the limits hold; return their keys."""
    entries = layout.entries()
    count = len(entries)
    size = sum(e.size_bytes for e in entries)
    removed: list[str] = []
    for entry in entries:
        if count <= max_entries and size <= max_bytes:
            break
        if entry.key in keep or not _remove_if_unused(layout, entry.key):
            continue
        removed.append(entry.key)
        count -= 1
        size -= entry.size_bytes
    layout.empty_trash()
    return removed


def evict_unused_for(
    layout: CacheLayout, seconds: float, *, dry_run: bool = False
) -> list[CacheEntry]:
    """Remove the entries no one used for ``seconds`` (``clearq gc``); return them.

    An entry in use or being built stays, whatever its age. With ``dry_run`` nothing is
    removed: the entries that would go are returned.
    """
    cutoff = time.time() - seconds
    old = [e for e in layout.entries() if e.last_used < cutoff]
    if dry_run:
        return old
    removed = [e for e in old if _remove_if_unused(layout, e.key)]
    layout.empty_trash()
    return removed


def remove_stale_builds(layout: CacheLayout, *, key: str | None = None) -> None:
    """Delete what builds that died left: temporary folders, unfinished in-place entries.

    With ``key`` (whose build lock the caller holds) only that key's temporary folders;
    without, every key's whose build lock is free.
    """
    for path in layout.tmp.iterdir() if layout.tmp.is_dir() else ():
        owner = path.name.rsplit(".", 2)[0]  # <key>.<pid>.<random>
        if key is None:
            _discard_unless_building(layout, owner, path)
        elif owner == key:
            layout.discard(path)
    if key is None and layout.root.is_dir():
        # In-place builds (conda) that never finished: an entry folder without a record.
        for path in layout.root.iterdir():
            if not path.name.startswith(".") and layout.record(path.name) is None:
                _discard_unless_building(layout, path.name, path)


def _discard_unless_building(layout: CacheLayout, key: str, path: Path) -> None:
    lock = FileLock(layout.build_lock(key))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return
    try:
        if path.parent == layout.tmp or layout.record(key) is None:
            layout.discard(path)
    finally:
        lock.release()


def _remove_if_unused(layout: CacheLayout, key: str) -> bool:
    lock = FileLock(layout.build_lock(key))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    try:
        use = UseLock.try_acquire(layout.use_file(key), exclusive=True)
        if use is None:
            return False
        try:
            layout.discard(layout.entry(key))
        finally:
            use.release()
        return True
    finally:
        lock.release()
