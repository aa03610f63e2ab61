"""Eviction: least recently used entries go past a count and a size limit, unless in use.

An entry is taken only when both its build lock (no one is building or looking it up)
and its use lock, exclusively (no one is using it), can be had without waiting; it is
renamed into the trash before it is deleted, so no one ever finds half of one.
"""

from __future__ import annotations

from filelock import FileLock, Timeout

from clearq.envs.inuse import UseLock
from clearq.envs.layout import CacheLayout

__all__ = ["evict", "remove_stale_builds"]


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


def remove_stale_builds(layout: CacheLayout, *, key: str | None = None) -> None:
    """Delete temporary build folders no running build owns (only ``key``'s, if given).

    The caller holds ``key``'s build lock when it gives ``key``; other keys' folders are
    removed only when their build lock is free.
    """
    for path in layout.tmp.iterdir() if layout.tmp.is_dir() else ():
        owner = path.name.rsplit(".", 2)[0]  # <key>.<pid>.<random>
        if key is not None:
            if owner == key:
                layout.discard(path)
            continue
        lock = FileLock(layout.build_lock(owner))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
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
