"""Debug samples: the files behind ``report_image`` and ``report_media``.

A sample's bytes are taken when it is reported (the caller may change its array or
overwrite its file the next moment) and written by the reporter's thread, under the
task's output location::

    <output>/<task id>/samples/<title>.<series>.<hash>/<slot>.<extension>

A (title, series) keeps its last ``max_history`` files (ClearML's ``max_image_history``):
the slot is the report's count modulo the history, so a newer iteration overwrites the
oldest file and its row replaces the old one. The kind and content type come from the
extension, from a fixed table: the page serves each kind as what it is, and never lets a
task choose a type that would run in its origin.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearq.errors import InvalidInput
from clearq.scheduler.runlink_results import SampleRow, kind_of

DEFAULT_HISTORY = 100
"""Files kept per (title, series) when the report does not say (ClearML's default)."""
SAMPLES_FOLDER = "samples"

_SLUG = re.compile(r"[^A-Za-z0-9_-]+")
_EXTENSION = re.compile(r"^[A-Za-z0-9]{1,16}$")


def extension_of(name: str, given: str | None = None) -> str:
    """The extension a sample is stored with: ``given`` (``file_extension``) or the name's."""
    ext = (given or Path(name).suffix).lstrip(".").lower()
    if not ext:
        raise InvalidInput(
            f"cannot tell what {name or 'the stream'} is: give file_extension (e.g. '.wav')"
        )
    if not _EXTENSION.match(ext):
        raise InvalidInput(f"file_extension {ext!r} must be letters and digits (e.g. 'mp4')")
    return ext


def folder_of(title: str, series: str) -> str:
    """A (title, series)'s folder: readable, one path component, and distinct."""
    digest = hashlib.sha256(f"{title}\0{series}".encode()).hexdigest()[:10]
    readable = ".".join(_SLUG.sub("_", s).strip("_")[:40] or "_" for s in (title, series))
    return f"{readable}.{digest}"


def image_bytes(image: Any) -> Callable[[], bytes]:
    """A PNG encoder of a numpy array or a PIL image, over a copy taken now."""
    if callable(getattr(image, "save", None)) and callable(getattr(image, "copy", None)):
        copy = image.copy()
        return lambda: png(_image_array(_pil_array(copy)))
    array = _image_array(image)
    return lambda: png(array)


def _pil_array(image: Any) -> Any:
    import numpy as np

    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    return np.asarray(image)


def _image_array(image: Any) -> Any:
    import numpy as np

    if not isinstance(image, np.ndarray):
        raise InvalidInput(
            f"image must be a numpy array or a PIL image, not a {type(image).__name__}"
        )
    array = np.array(image)  # a copy: the caller may reuse its buffer
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise InvalidInput(
            f"an image array is H x W (grey), H x W x 3 (RGB) or H x W x 4 (RGBA), "
            f"not {array.shape}"
        )
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        scaled = array.astype(np.float64)
        if scaled.size and np.nanmax(scaled) <= 1.0:
            scaled = scaled * 255.0  # floats in [0, 1], as matplotlib and torch keep them
        return np.clip(np.nan_to_num(scaled), 0, 255).astype(np.uint8)
    return array


_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # grey, grey+alpha, RGB, RGBA


def png(array: Any) -> bytes:
    """An 8-bit H x W (x C) array as PNG: unfiltered rows, zlib level 1.

    Written here rather than through Pillow: zlib releases the GIL while it compresses,
    so the training loop keeps running while the reporter's thread encodes, and it is
    about three times faster than Pillow's PNG encoder on a 256x256 image.
    """
    import numpy as np

    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    rows = np.zeros((height, width * channels + 1), dtype=np.uint8)  # filter byte 0: none
    rows[:, 1:] = array.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@dataclass(frozen=True)
class Sample:
    """A reported sample, before its file is written."""

    title: str
    series: str
    iteration: int
    extension: str
    data: Callable[[], bytes]
    history: int


class SampleFiles:
    """Where one run's samples go, and which slot each (title, series) writes next."""

    def __init__(self, output_root: str, task_id: uuid.UUID) -> None:
        self._root = output_root
        self._task_id = task_id
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def job(self, sample: Sample) -> Callable[[], SampleRow]:
        """Take the sample's slot now; the returned job writes the file and describes it."""
        key = (sample.title, sample.series)
        with self._lock:
            count = self._counts.get(key, 0)
            self._counts[key] = count + 1
        slot = count % sample.history if sample.history > 0 else count
        relative = f"{folder_of(*key)}/{slot:06d}.{sample.extension}"
        return lambda: self._write(sample, relative)

    def _write(self, sample: Sample, relative: str) -> SampleRow:
        data = sample.data()
        uri = self._put(relative, data)
        kind, content_type = kind_of(sample.extension)
        return SampleRow(
            title=sample.title,
            series=sample.series,
            iteration=sample.iteration,
            kind=kind,
            uri=uri,
            content_type=content_type,
            size=len(data),
        )

    def _put(self, relative: str, data: bytes) -> str:
        from clearq.sdk.artifacts import is_local, local_root, remote_filesystem

        if is_local(self._root):
            path = local_root(self._root) / str(self._task_id) / SAMPLES_FOLDER / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(data)
            partial.replace(path)  # a reader never sees half a file
            return path.resolve().as_uri()
        fs, root = remote_filesystem(self._root)
        remote = f"{root.rstrip('/')}/{self._task_id}/{SAMPLES_FOLDER}/{relative}"
        fs.pipe_file(remote, data)
        scheme = self._root.split("://", 1)[0]
        return f"{scheme}://{remote.lstrip('/')}"


def url_row(title: str, series: str, iteration: int, url: str) -> SampleRow:
    """A sample already stored elsewhere (``url=``): recorded, not copied."""
    from clearq.sdk.capture.git import strip_credentials

    clean = strip_credentials(url)
    kind, content_type = kind_of(Path(clean.split("?", 1)[0]).suffix.lstrip("."))
    return SampleRow(
        title=title,
        series=series,
        iteration=iteration,
        kind=kind,
        uri=clean,
        content_type=content_type,
        size=None,
    )
