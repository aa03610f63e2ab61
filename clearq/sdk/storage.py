"""``StorageManager``: ClearML's file transfer helper, over fsspec.

    from clearq import StorageManager

    local = StorageManager.get_local_copy("s3://bucket/data.zip")   # extracted folder
    StorageManager.upload_file("model.pt", "s3://bucket/models/model.pt")

Every URL fsspec can open works: local paths, ``file://``, and whatever protocol
packages are installed (``s3fs`` for ``s3://``, ``gcsfs`` for ``gs://``, ``adlfs`` for
``az://``, ``http(s)://`` with ``aiohttp``). Downloads go through a cache under
``CLEARQ_HOME/cache/storage`` that is bounded in files and in bytes
(:mod:`clearq.sdk.storage_cache`); archives are extracted safely (:mod:`clearq.sdk.extract`).
A local file is returned where it is, without a copy, as ClearML does.
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlparse

from clearq.config import load_settings
from clearq.errors import ClearqError, InvalidInput
from clearq.sdk.extract import is_archive
from clearq.sdk.storage_cache import DEFAULT_CACHE_MAX_FILES, StorageCache

log = logging.getLogger(__name__)

DEFAULT_CACHE_CONTEXT = "global"


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` and the path within it; InvalidInput if none fits."""
    try:
        import fsspec
    except ImportError as e:  # pragma: no cover - fsspec is a dependency
        raise InvalidInput("StorageManager needs fsspec: pip install fsspec") from e
    try:
        fs, path = fsspec.core.url_to_fs(url)  # type: ignore[no-untyped-call]
    except (ImportError, ValueError) as e:
        raise InvalidInput(
            f"cannot open {url!r}: {e} (install the fsspec package for its scheme, "
            "e.g. s3fs, gcsfs or adlfs)"
        ) from e
    return fs, str(path)


def is_local_url(url: str) -> bool:
    """True for a plain path or a ``file://`` URL."""
    scheme = urlparse(url).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and url[1:3] in (":\\", ":/"))


def local_file_path(url: str) -> Path:
    """The path a local URL names."""
    parsed = urlparse(url)
    return Path(parsed.path if parsed.scheme == "file" else url).expanduser()


class StorageManager:
    """Download, upload and list files anywhere fsspec reaches (ClearML's names)."""

    _file_limits: ClassVar[dict[str, int]] = {}

    # ---- the cache ------------------------------------------------------------------

    @classmethod
    def _cache(cls, context: str | None) -> StorageCache:
        name = context or DEFAULT_CACHE_CONTEXT
        if not name.replace("-", "").replace("_", "").isalnum():
            raise InvalidInput(f"cache_context {name!r}: use letters, digits, - and _")
        settings = load_settings()
        return StorageCache(
            settings.home_dir / "cache" / "storage" / name,
            max_files=cls._file_limits.get(name, DEFAULT_CACHE_MAX_FILES),
            max_bytes=settings.storage_cache_max_bytes,
        )

    @classmethod
    def set_cache_file_limit(cls, cache_file_limit: int, cache_context: str | None = None) -> int:
        """Keep at most ``cache_file_limit`` downloaded files in a cache context."""
        if cache_file_limit < 1:
            raise InvalidInput(f"cache_file_limit must be at least 1, not {cache_file_limit}")
        name = cache_context or DEFAULT_CACHE_CONTEXT
        cls._file_limits[name] = cache_file_limit
        cls._cache(name).evict()
        return cache_file_limit

    @classmethod
    def get_cache_folder(cls, cache_context: str | None = None) -> str:
        """The folder a cache context keeps its files in."""
        return str(cls._cache(cache_context).root)

    # ---- downloads ------------------------------------------------------------------

    @classmethod
    def get_local_copy(
        cls,
        remote_url: str,
        cache_context: str | None = None,
        extract_archive: bool = True,
        name: str | None = None,
        force_download: bool = False,
    ) -> str | None:
        """A local path for ``remote_url``: cached once; an archive extracted if asked.

        Returns None (and logs why) when the file cannot be fetched, as ClearML does.
        """
        try:
            path = cls._local_copy(remote_url, cache_context, name, force_download)
            if extract_archive and is_archive(path):
                cache = cls._cache(cache_context)
                return str(cache.extracted(remote_url, path))
            return str(path)
        except (ClearqError, OSError) as e:
            log.warning("could not get a local copy of %s: %s", remote_url, e)
            return None

    @classmethod
    def _local_copy(cls, url: str, context: str | None, name: str | None, force: bool) -> Path:
        if is_local_url(url):
            path = local_file_path(url)
            if not path.is_file():
                raise InvalidInput(f"{url} is not a file")
            return path
        fs, path_in_fs = filesystem(url)
        if not fs.isfile(path_in_fs):
            raise InvalidInput(f"{url} is not a file")
        return cls._cache(context).get(
            url, lambda partial: fs.get_file(path_in_fs, str(partial)), name=name, force=force
        )

    @classmethod
    def download_file(
        cls,
        remote_url: str,
        local_folder: str | None = None,
        overwrite: bool = False,
        skip_zero_size_check: bool = False,
        silence_errors: bool = False,
    ) -> str | None:
        """Download one file under ``local_folder`` keeping its remote sub-folders.

        ``s3://bucket/sub/file.ext`` into ``~/folder`` becomes ``~/folder/sub/file.ext``.
        Without ``local_folder`` it is the cached copy. None (logged) on failure when
        ``silence_errors``; otherwise the error is raised.
        """
        try:
            if local_folder is None:
                return str(cls._local_copy(remote_url, None, None, overwrite))
            fs, path = filesystem(remote_url)
            target = _under(Path(local_folder).expanduser(), _relative_key(remote_url, path))
            if target.is_file() and not overwrite:
                return str(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            fs.get_file(path, str(partial))
            if not skip_zero_size_check and partial.stat().st_size == 0:
                partial.unlink()
                raise InvalidInput(f"{remote_url} downloaded as an empty file")
            partial.replace(target)
            return str(target)
        except (ClearqError, OSError) as e:
            if not silence_errors:
                raise
            log.warning("could not download %s: %s", remote_url, e)
            return None

    @classmethod
    def download_folder(
        cls,
        remote_url: str,
        local_folder: str | None = None,
        match_wildcard: str | None = None,
        overwrite: bool = False,
        skip_zero_size_check: bool = False,
        silence_errors: bool = False,
    ) -> str | None:
        """Download every file under ``remote_url`` into ``local_folder``, keeping the tree.

        Without ``local_folder`` the files go to a folder of the cache.
        """
        try:
            fs, root = filesystem(remote_url)
            if local_folder is None:
                local_folder = str(cls._cache(None).entry(remote_url.rstrip("/") + "/"))
            folder = Path(local_folder).expanduser()
            for relative in _files_under(fs, root, match_wildcard):
                target = _under(folder, relative)
                if target.is_file() and not overwrite:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root.rstrip('/')}/{relative}", str(target))
                if not skip_zero_size_check and target.stat().st_size == 0:
                    log.warning("%s/%s is empty", remote_url.rstrip("/"), relative)
            return str(folder)
        except (ClearqError, OSError) as e:
            if not silence_errors:
                raise
            log.warning("could not download %s: %s", remote_url, e)
            return None

    # ---- uploads --------------------------------------------------------------------

    @classmethod
    def upload_file(
        cls,
        local_file: str,
        remote_url: str,
        wait_for_upload: bool = True,
        retries: int | None = None,
    ) -> str:
        """Upload ``local_file`` to ``remote_url`` (a folder URL ending in ``/`` keeps its name).

        Returns the URL of the uploaded file. Uploads always complete before returning
        (``wait_for_upload=False`` is accepted and waits too). ``retries`` more tries
        are made after a failed one.
        """
        source = Path(local_file).expanduser()
        if not source.is_file():
            raise InvalidInput(f"upload_file: {local_file} is not a file")
        url = remote_url + source.name if remote_url.endswith("/") else remote_url
        fs, path = filesystem(url)
        for attempt in range((retries or 0) + 1):
            try:
                parent = path.rsplit("/", 1)[0] if "/" in path else ""
                if parent:
                    fs.makedirs(parent, exist_ok=True)
                fs.put_file(str(source), path)
                break
            except OSError as e:
                if attempt == (retries or 0):
                    raise
                log.warning("upload of %s to %s failed (%s); trying again", source, url, e)
        return url

    @classmethod
    def upload_folder(
        cls,
        local_folder: str,
        remote_url: str,
        match_wildcard: str | None = None,
        retries: int | None = None,
    ) -> str:
        """Upload every file under ``local_folder`` to ``remote_url``, keeping the tree.

        ``~/folder/sub/file.ext`` to ``s3://bucket/`` becomes ``s3://bucket/sub/file.ext``.
        """
        folder = Path(local_folder).expanduser()
        if not folder.is_dir():
            raise InvalidInput(f"upload_folder: {local_folder} is not a folder")
        base = remote_url.rstrip("/")
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).as_posix()
            if path.is_file() and _matches(relative, match_wildcard):
                cls.upload_file(str(path), f"{base}/{relative}", retries=retries)
        return base

    # ---- looking ----------------------------------------------------------------------

    @classmethod
    def list(
        cls, remote_url: str, return_full_path: bool = False, with_metadata: bool = False
    ) -> list[Any]:
        """The files under ``remote_url`` (recursively), relative to it unless asked."""
        fs, root = filesystem(remote_url)
        if not fs.exists(root):
            return []
        base = remote_url.rstrip("/")
        found: list[Any] = []
        for relative in _files_under(fs, root, None):
            shown = f"{base}/{relative}" if return_full_path else relative
            if with_metadata:
                info = fs.info(f"{root.rstrip('/')}/{relative}")
                found.append({"name": shown, "size": info.get("size")})
            else:
                found.append(shown)
        return found

    @classmethod
    def exists_file(cls, remote_url: str) -> bool:
        """True when ``remote_url`` is a file (a folder is not)."""
        fs, path = filesystem(remote_url)
        return bool(fs.isfile(path))

    @classmethod
    def get_file_size_bytes(cls, remote_url: str, silence_errors: bool = False) -> int | None:
        """The size of the file at ``remote_url``; None (logged) if silenced and missing."""
        try:
            fs, path = filesystem(remote_url)
            if not fs.isfile(path):
                raise InvalidInput(f"{remote_url} is not a file")
            return int(fs.size(path))
        except (ClearqError, OSError) as e:
            if not silence_errors:
                raise
            log.warning("could not read the size of %s: %s", remote_url, e)
            return None

    @classmethod
    def get_metadata(cls, remote_url: str) -> dict[str, Any]:
        """What fsspec knows of the object at ``remote_url`` (name, size, type, ...)."""
        fs, path = filesystem(remote_url)
        return dict(fs.info(path))


def _files_under(fs: Any, root: str, wildcard: str | None) -> list[str]:
    prefix = root.rstrip("/") + "/"
    found: list[str] = []
    for path in sorted(fs.find(root)):
        relative = path[len(prefix) :] if path.startswith(prefix) else PurePosixPath(path).name
        if _matches(relative, wildcard):
            found.append(relative)
    return found


def _matches(relative: str, wildcard: str | None) -> bool:
    if wildcard is None:
        return True
    name = relative.rsplit("/")[-1]
    return fnmatch.fnmatch(relative, wildcard) or fnmatch.fnmatch(name, wildcard)


def _relative_key(url: str, path: str) -> str:
    """The object's path below its bucket (remote) or its root (local)."""
    if is_local_url(url):
        return path.lstrip("/")
    netloc = urlparse(url).netloc
    trimmed = path.lstrip("/")
    return trimmed.removeprefix(netloc).lstrip("/") if netloc else trimmed


def _under(folder: Path, relative: str) -> Path:
    """``folder/relative``, refusing a path that would leave ``folder``."""
    parts = PurePosixPath(relative).parts
    if not parts or ".." in parts or PurePosixPath(relative).is_absolute():
        raise InvalidInput(f"refused to write {relative!r}: it would leave {folder}")
    return folder.joinpath(*parts)


__all__ = ["StorageManager", "filesystem", "is_local_url", "local_file_path"]
