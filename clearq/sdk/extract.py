"""Safe extraction of downloaded archives: nothing lands outside the target folder.

Tar archives are extracted with PEP 706's ``data`` filter (no absolute paths, no ``..``,
no links pointing out, no device files, no set-uid bits). Zip archives are checked
member by member: an absolute name, a ``..`` component, a drive letter or a symbolic
link is refused before anything is written. Extraction goes to a temporary sibling
folder that is renamed into place, so a reader never sees half an archive.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from clearq.errors import InvalidInput

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def is_archive(path: Path) -> bool:
    """True for a zip or tar file (by its content, not only its name)."""
    if not path.is_file():
        return False
    return zipfile.is_zipfile(path) or tarfile.is_tarfile(path)


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract ``archive`` into ``target`` (created; replaced if it exists); return it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging)
        else:
            raise InvalidInput(f"{archive} is neither a zip nor a tar archive")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(target, filter="data")
        except tarfile.FilterError as e:
            raise InvalidInput(f"{archive}: refused to extract {e}") from e


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for member in members:
            _check_zip_member(archive, member)
        zf.extractall(target, members)  # noqa: S202 - every member was checked above


def _check_zip_member(archive: Path, member: zipfile.ZipInfo) -> None:
    name = member.filename.replace("\\", "/")
    path = PurePosixPath(name)
    mode = member.external_attr >> 16
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InvalidInput(f"{archive}: refused to extract {member.filename!r}: outside the target")
    if stat.S_ISLNK(mode):
        raise InvalidInput(f"{archive}: refused to extract {member.filename!r}: a symbolic link")


def make_zip(folder: Path, archive: Path) -> Path:
    """Zip ``folder``'s files (relative names; links are stored as the files they name)."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


__all__ = ["ARCHIVE_SUFFIXES", "extract_archive", "is_archive", "make_zip"]
