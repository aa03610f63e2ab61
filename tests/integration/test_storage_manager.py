"""StorageManager over fsspec: local paths, file:// and an installed protocol (memory://),
a cache bounded in files and bytes, and archives extracted without leaving the target."""

from __future__ import annotations

import io
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from clearq import StorageManager
from clearq.errors import InvalidInput
from clearq.sdk.extract import extract_archive
from clearq.sdk.storage_cache import StorageCache


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLEARQ_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh folder on fsspec's in-memory filesystem (a protocol, like s3://)."""
    root = f"memory://bucket-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def _tree(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.csv").write_text("b,c\n")
    return folder


def test_upload_list_download_round_trip_on_a_protocol(bucket: str, tmp_path: Path) -> None:
    source = _tree(tmp_path / "data")
    assert StorageManager.upload_folder(str(source), f"{bucket}/ds/") == f"{bucket}/ds"
    assert StorageManager.list(f"{bucket}/ds") == ["a.txt", "sub/b.csv"]
    assert StorageManager.list(f"{bucket}/ds", return_full_path=True)[1] == f"{bucket}/ds/sub/b.csv"
    assert StorageManager.upload_folder(str(source), f"{bucket}/csv", match_wildcard="*.csv")
    assert StorageManager.list(f"{bucket}/csv") == ["sub/b.csv"]
    assert StorageManager.exists_file(f"{bucket}/ds/a.txt")
    assert not StorageManager.exists_file(f"{bucket}/ds/sub")  # a folder is not a file
    assert not StorageManager.exists_file(f"{bucket}/ds/missing")
    assert StorageManager.get_file_size_bytes(f"{bucket}/ds/sub/b.csv") == 4
    assert StorageManager.get_file_size_bytes(f"{bucket}/nope", silence_errors=True) is None
    out = StorageManager.download_folder(f"{bucket}/ds", str(tmp_path / "copy"))
    assert (Path(str(out)) / "sub" / "b.csv").read_text() == "b,c\n"
    one = StorageManager.download_file(f"{bucket}/ds/sub/b.csv", str(tmp_path / "one"))
    assert Path(str(one)).read_text() == "b,c\n"
    assert Path(str(one)).is_relative_to(tmp_path / "one")
    url = StorageManager.upload_file(str(source / "a.txt"), f"{bucket}/single/")
    assert url == f"{bucket}/single/a.txt"


def test_get_local_copy_caches_and_extracts(bucket: str, tmp_path: Path, home: Path) -> None:
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner/x.txt", "x")
    StorageManager.upload_file(str(archive), f"{bucket}/data.zip")
    folder = StorageManager.get_local_copy(f"{bucket}/data.zip")
    assert folder is not None
    assert (Path(folder) / "inner" / "x.txt").read_text() == "x"
    assert Path(folder).is_relative_to(home / "cache" / "storage")
    raw = StorageManager.get_local_copy(f"{bucket}/data.zip", extract_archive=False)
    assert raw is not None
    assert zipfile.is_zipfile(raw)
    assert StorageManager.get_local_copy(f"{bucket}/missing.zip") is None
    local = tmp_path / "plain.txt"
    local.write_text("here")
    assert StorageManager.get_local_copy(str(local)) == str(local)  # a local file, as is
    assert StorageManager.get_local_copy(local.as_uri()) == str(local)


def test_the_cache_stays_within_its_file_and_byte_limits(bucket: str, tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    for i in range(4):
        fs.pipe(f"{bucket}/f{i}.bin", bytes(1000))
    StorageManager.set_cache_file_limit(2, cache_context="small")
    copies = [
        StorageManager.get_local_copy(f"{bucket}/f{i}.bin", cache_context="small") for i in range(4)
    ]
    assert all(copies)
    kept = [c for c in copies if c and Path(c).exists()]
    assert kept == copies[2:]  # the least recently used went
    cache = StorageCache(tmp_path / "bytes", max_files=100, max_bytes=2500)
    for i in range(4):
        cache.get(f"{bucket}/f{i}.bin", lambda p, i=i: fs.get_file(f"{bucket}/f{i}.bin", str(p)))
    assert sum(f.stat().st_size for f in (tmp_path / "bytes").rglob("*.bin")) <= 2500


def test_download_refuses_to_leave_its_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot open"):
        StorageManager.exists_file("nosuchproto://x/y")
    with pytest.raises(InvalidInput, match="not a file"):
        StorageManager.upload_file(str(tmp_path / "none"), "memory://x/none")


def _tar(path: Path, name: str, *, link_to: str | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        if link_to is not None:
            info.type = tarfile.SYMTYPE
            info.linkname = link_to
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return path


@pytest.mark.parametrize(
    ("name", "link"),
    [("../escape.txt", None), ("link", "/etc/passwd"), ("l2", "../../x")],
)
def test_a_tar_cannot_write_outside_the_target(tmp_path: Path, name: str, link: str | None) -> None:
    archive = _tar(tmp_path / "evil.tar", name, link_to=link)
    target = tmp_path / "deep" / "out"
    with pytest.raises(InvalidInput, match="refused"):
        extract_archive(archive, target)
    assert not target.exists()
    assert not (tmp_path / "deep" / "escape.txt").exists()
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == []


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "C:/win.txt", "a/../../b.txt"])
def test_a_zip_cannot_write_outside_the_target(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), "x")
    target = tmp_path / "deep" / "out"
    with pytest.raises(InvalidInput, match="outside the target"):
        extract_archive(archive, target)
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == []


def test_a_zip_with_a_symbolic_link_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InvalidInput, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")


def test_good_archives_extract_whole(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "ok.tar", "dir/file.txt")
    out = extract_archive(archive, tmp_path / "out")
    assert (out / "dir" / "file.txt").read_bytes() == b"x"
    # PEP 706's data filter turns an absolute name into one inside the target.
    absolute = extract_archive(_tar(tmp_path / "abs.tar", "/abs.txt"), tmp_path / "abs")
    assert (absolute / "abs.txt").read_bytes() == b"x"
