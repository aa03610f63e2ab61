"""``task.artifacts[name]``: a stored artifact, with ClearML's ``get`` and ``get_local_copy``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearq.models import Artifact


class TaskArtifact:
    """One artifact of a task: what it is, its object back, or a local copy of its file."""

    def __init__(self, artifact: Artifact, *, cache: Path) -> None:
        self._artifact = artifact
        self._cache = cache

    @property
    def name(self) -> str:
        """The artifact's name, as given to ``upload_artifact``."""
        return self._artifact.name

    @property
    def uri(self) -> str:
        """Where the artifact's file is stored (a ``file://`` URL or a remote one)."""
        return self._artifact.uri

    @property
    def url(self) -> str:
        """ClearML's name for :attr:`uri`."""
        return self._artifact.uri

    @property
    def kind(self) -> str:
        """How the object was stored: file, folder, json, text, bytes, numpy, pandas, ..."""
        return self._artifact.kind

    @property
    def type(self) -> str:
        """ClearML's name for :attr:`kind`."""
        return self._artifact.kind

    @property
    def size(self) -> int | None:
        """The stored file's size in bytes."""
        return self._artifact.size

    @property
    def hash(self) -> str | None:
        """The stored file's SHA-256."""
        return self._artifact.sha256

    @property
    def metadata(self) -> dict[str, Any]:
        """The metadata given to ``upload_artifact``."""
        return dict(self._artifact.metadata)

    @property
    def record(self) -> Artifact:
        """The stored record."""
        return self._artifact

    def get(self, *, allow_pickle: bool = False, force_download: bool = False) -> Any:
        """The object back, by its kind; a pickle only with ``allow_pickle=True``.

        A folder comes back as the local path of its extracted copy; a file as its path.
        """
        from clearq.sdk import artifacts as artifact_files

        local = self._fetched(force_download)
        if local.kind == "folder":
            return artifact_files.extracted(artifact_files.local_path(local), self._cache)
        return artifact_files.load_artifact(local, allow_pickle=allow_pickle)

    def get_local_copy(
        self,
        extract_archive: bool = True,
        raise_on_error: bool = True,
        force_download: bool = False,
    ) -> str | None:
        """A local path to the artifact's file (a folder artifact extracted, by default)."""
        from clearq.errors import ClearqError
        from clearq.sdk import artifacts as artifact_files

        try:
            local = artifact_files.local_path(self._fetched(force_download))
            if extract_archive and self.kind == "folder":
                return str(artifact_files.extracted(local, self._cache))
            return str(local)
        except (ClearqError, OSError):
            if raise_on_error:
                raise
            return None

    def _fetched(self, force: bool) -> Artifact:
        from clearq.sdk import artifacts as artifact_files

        return artifact_files.fetch_artifact(self._artifact, cache=self._cache, force=force)

    def __repr__(self) -> str:
        return f"<artifact {self.name!r} {self.kind} {self.uri}>"


__all__ = ["TaskArtifact"]
