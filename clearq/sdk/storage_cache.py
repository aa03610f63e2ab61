"""The local cache of downloaded files, under ``CLEARQ_HOME/cache/storage``.

Each remote URL has an entry folder named by a hash of the URL (and the cache
context): the downloaded file, and the archive extracted beside it when asked. Entries
are filled under a file lock, downloaded to a partial name and renamed, so concurrent
processes never read half a file. Past ``max_files`` entries or ``max_bytes`` bytes the
least recently used entries go; the one being returned is never evicted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from clearq.config import DEFAULT_STORAGE_CACHE_MAX_BYTES as DEFAULT_CACHE_MAX_BYTES
from clearq.sdk.extract import extract_archive

DEFAULT_CACHE_MAX_FILES = 100
"""Entries kept per cache context (ClearML's default file limit)."""
EXTRACTED = "extracted"
_LOCK_TIMEOUT_SECONDS = 600


@dataclass
class StorageCache:
    """One cache context's folder of downloaded files."""

    root: Path
    max_files: int = DEFAULT_CACHE_MAX_FILES
    max_bytes: int = DEFAULT_CACHE_MAX_BYTES

    def entry(self, url: str) -> Path:
        """The entry folder of ``url`` (not created)."""
        return self.root / hashlib.sha256(url.encode()).hexdigest()[:32]

    def file(self, url: str, name: str | None = None) -> Path:
        """Where ``url``'s downloaded copy is kept."""
        base = name or url.rstrip("/").rsplit("/", 1)[-1] or "file"
        return self.entry(url) / base

    def get(
        self,
        url: str,
        download: Callable[[Path], None],
        *,
        name: str | None = None,
        force: bool = False,
    ) -> Path:
        """The cached copy of ``url``, downloaded with ``download(partial_path)`` if needed."""
        target = self.file(url, name)
        with self._lock(url):
            if force or not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.part")
                try:
                    download(partial)
                    partial.replace(target)
                finally:
                    partial.unlink(missing_ok=True)
                shutil.rmtree(target.parent / EXTRACTED, ignore_errors=True)
            _touch(target.parent)
        self.evict(keep=target.parent)
        return target

    def extracted(self, url: str, archive: Path) -> Path:
        """``archive`` (the cached copy of ``url``) extracted beside it, once."""
        folder = self.entry(url) / EXTRACTED
        with self._lock(url):
            if not folder.is_dir():
                extract_archive(archive, folder)
            _touch(folder.parent)
        return folder

    def evict(self, *, keep: Path | None = None) -> list[Path]:
        """Remove least recently used entries until both limits hold; return them."""
        if not self.root.is_dir():
            return []
        entries = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        sizes = {p: _size(p) for p in entries}
        count, total = len(entries), sum(sizes.values())
        removed: list[Path] = []
        for path in entries:
            if count <= self.max_files and total <= self.max_bytes:
                break
            if path == keep:
                continue
            with self._lock_path(path):
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            count -= 1
            total -= sizes[path]
        return removed

    def _lock(self, url: str) -> FileLock:
        return self._lock_path(self.entry(url))

    def _lock_path(self, entry: Path) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f".{entry.name}.lock"), timeout=_LOCK_TIMEOUT_SECONDS)


def _touch(path: Path) -> None:
    now = time.time()
    os.utime(path, (now, now))


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


__all__ = ["DEFAULT_CACHE_MAX_BYTES", "DEFAULT_CACHE_MAX_FILES", "StorageCache"]
