"""A task's plots and debug samples on the page, and the sample files themselves.

Plots are plotly figures the page draws with plotly.js. Samples are files a task wrote
under its output location, and a task controls what its rows say, so a file is served
only when:

- it is a local file under ``<output>/<task id>/samples/`` of the task's output URI or of
  the UI's artifacts folder, after symbolic links are resolved (nothing else on the
  machine can be named by a row);
- its type comes from its extension by the fixed table in ``runlink_results``, never from
  the row: images, audio and video as themselves, text as plain text, anything else as a
  download;
- every response says ``nosniff`` and carries a CSP with ``sandbox``: opened directly, a
  sample runs in an opaque origin with no script (SVG included), and only the page may
  frame it (text samples show in a frame). An HTML sample gets scripts, still sandboxed,
  shown in an ``<iframe sandbox="allow-scripts">``; it can reach nothing over the network.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from clearq.errors import NotFound
from clearq.models import DebugSample, Task
from clearq.scheduler import Store
from clearq.scheduler.runlink_results import kind_of
from clearq.ui.web import store_of, task_id_of

SAMPLES_FOLDER = "samples"
_SANDBOX_CSP = (
    "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'"
)
_HTML_CSP = (
    "sandbox allow-scripts; default-src 'none'; img-src data:; media-src data:; "
    "style-src 'unsafe-inline'; script-src 'unsafe-inline'; frame-ancestors 'self'"
)


def plots(request: Request) -> Response:
    """GET /api/tasks/ID/plots: the newest plot of each (title, series)."""
    return JSONResponse(store_of(request).reported.plot_index(task_id_of(request)))


def plot(request: Request) -> Response:
    """GET /api/tasks/ID/plots/N: one plot's figure."""
    found = store_of(request).reported.plot(task_id_of(request), request.path_params["plot_id"])
    return JSONResponse(found.figure)


def sample_groups(task_id: uuid.UUID, samples: list[DebugSample]) -> list[dict[str, Any]]:
    """Samples by (title, series), each group in iteration order, with where to get each."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault((s.title, s.series), []).append(_sample_json(task_id, s))
    return [
        {"title": title, "series": series, "samples": items}
        for (title, series), items in groups.items()
    ]


def _sample_json(task_id: uuid.UUID, s: DebugSample) -> dict[str, Any]:
    scheme = urlparse(s.uri).scheme
    local = scheme == "file"
    kind = kind_of(Path(urlparse(s.uri).path).suffix)[0] if local else s.kind
    return {
        "id": s.id,
        "iteration": s.iteration,
        "kind": kind,
        "size": s.size,
        "src": f"/tasks/{task_id}/samples/{s.id}" if local else None,
        # Elsewhere (a bucket, another site): a link to open, never loaded into the page.
        "link": s.uri if scheme in ("http", "https") else None,
        "uri": s.uri,
    }


def samples(request: Request) -> Response:
    """GET /api/tasks/ID/samples: debug samples by title and series."""
    task_id = task_id_of(request)
    found = store_of(request).reported.samples(task_id)
    return JSONResponse(sample_groups(task_id, found))


def sample_file(request: Request) -> Response:
    """GET /tasks/ID/samples/N: the sample's file, served as its extension says, sandboxed."""
    store = store_of(request)
    task = store.tasks.get(task_id_of(request))
    sample = store.reported.sample(task.id, request.path_params["sample_id"])
    path = allowed_path(store, task, sample.uri)
    kind, content_type = kind_of(path.suffix)
    headers = {
        "Content-Security-Policy": _HTML_CSP if kind == "html" else _SANDBOX_CSP,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "SAMEORIGIN",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if kind == "text":
        content_type = "text/plain; charset=utf-8"
    elif kind == "file":
        headers["Content-Disposition"] = f'attachment; filename="sample-{sample.id}{path.suffix}"'
    return FileResponse(path, media_type=content_type, headers=headers)


def allowed_path(store: Store, task: Task, uri: str) -> Path:
    """The local file a sample names, if it lies under the task's own samples folder."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise NotFound(f"sample {uri} is not a local file: open it where it is stored")
    named = unquote(parsed.path)
    path = Path(os.path.realpath(named))  # links and '..' resolved before the check
    for root in _roots(store, task):
        folder = Path(os.path.realpath(root / str(task.id) / SAMPLES_FOLDER))
        if path.is_relative_to(folder) and path.is_file():
            return path
    raise NotFound(f"sample file {named} is not among task {task.id}'s samples on this machine")


def _roots(store: Store, task: Task) -> list[Path]:
    roots = [store.settings.artifacts_dir.expanduser()]
    if task.output_uri:
        parsed = urlparse(task.output_uri)
        if parsed.scheme in ("", "file"):
            roots.insert(0, Path(parsed.path if parsed.scheme else task.output_uri).expanduser())
    return roots
