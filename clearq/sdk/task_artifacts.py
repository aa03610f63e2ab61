"""A run's artifacts: uploads (waited for or in the background) and watched DataFrames.

``upload_artifact(..., wait_on_upload=False)`` reads the object at once (it may change
afterwards) and uploads it from a background thread; ``task.flush()`` and the end of
the run wait for every pending upload. ``register_artifact(name, dataframe)`` watches a
DataFrame: it is uploaded now, and again whenever its content has changed when the run
flushes, every ``WATCH_SECONDS`` in the background, and when the run ends.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import Artifact

log = logging.getLogger(__name__)

WATCH_SECONDS = 30.0
"""How often a watched DataFrame is checked for changes in the background."""


@dataclass
class Destination:
    """Where a run's artifacts go, and how a stored one is recorded."""

    output_uri: str
    task_id: uuid.UUID
    staging: Path
    record: Callable[[Artifact], None]


@dataclass
class _Watched:
    frame: Any
    metadata: dict[str, Any]
    digest: str = ""


class RunArtifacts:
    """The uploads of one run: pending ones, and the DataFrames it watches."""

    def __init__(self, destination: Destination) -> None:
        self._dest = destination
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def upload(
        self,
        name: str,
        obj: Any,
        *,
        metadata: dict[str, Any] | None,
        allow_pickle: bool,
        wait: bool,
    ) -> None:
        """Store ``obj`` as artifact ``name``; wait for it, or leave it to the background."""
        from clearq.sdk import artifacts as files

        d = self._dest
        staged = files.stage_artifact(
            d.output_uri, d.task_id, name, obj, staging=d.staging, allow_pickle=allow_pickle
        )
        if metadata:
            staged = staged.model_copy(update={"metadata": dict(metadata)})
        if wait:
            self._send(staged)
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="clearq-upload")
            self._pending.append(self._pool.submit(self._send, staged))

    def _send(self, staged: Artifact) -> None:
        from clearq.sdk import artifacts as files

        self._dest.record(files.send_artifact(self._dest.output_uri, self._dest.task_id, staged))

    def register(self, name: str, frame: Any, metadata: dict[str, Any] | None) -> None:
        """Watch a DataFrame as artifact ``name``: uploaded now and whenever it changes."""
        if type(frame).__module__.split(".")[0] != "pandas" or not hasattr(frame, "to_csv"):
            raise InvalidInput(
                f"register_artifact({name!r}): only a pandas DataFrame can be watched; "
                "use upload_artifact for other objects"
            )
        with self._lock:
            self._watched[name] = _Watched(frame, dict(metadata or {}))
        self.check_watched()
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="clearq-artifact-watch", daemon=True
            )
            self._watcher.start()

    def unregister(self, name: str) -> None:
        """Stop watching artifact ``name`` (what was uploaded stays)."""
        with self._lock:
            self._watched.pop(name, None)

    def registered(self) -> dict[str, Any]:
        """The watched DataFrames by name."""
        with self._lock:
            return {name: w.frame for name, w in self._watched.items()}

    def check_watched(self) -> None:
        """Upload every watched DataFrame whose content changed since its last upload."""
        with self._lock:
            watched = list(self._watched.items())
        for name, entry in watched:
            digest = _frame_digest(entry.frame)
            if digest != entry.digest:
                self.upload(
                    name, entry.frame, metadata=entry.metadata, allow_pickle=False, wait=True
                )
                entry.digest = digest

    def wait(self) -> None:
        """Upload changed watched DataFrames and wait for every pending upload."""
        self.check_watched()
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Finish every upload and stop the background work."""
        self._stop.set()
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            try:
                self.check_watched()
            except (InvalidInput, OSError) as e:
                log.warning("could not upload a watched artifact: %s", e)


def _frame_digest(frame: Any) -> str:
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(repr((frame.shape, list(frame.columns), list(frame.dtypes))).encode())
    hashed = pd.util.hash_pandas_object(frame, index=True)  # type: ignore[attr-defined]
    digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


__all__ = ["WATCH_SECONDS", "Destination", "RunArtifacts"]
