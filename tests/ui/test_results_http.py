"""Debug samples over real HTTP: each served as its extension says, sandboxed, and only
from the task's own samples folder, whatever a (hostile) task wrote into its rows."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clearq import Task
from clearq.config import Settings
from clearq.scheduler import Store
from clearq.scheduler.runlink_results import SampleRow
from clearq.ui.security import PLOT_PAGE_CSP, SECURITY_HEADERS
from tests.runs import start_run
from tests.ui.helpers import InProcessUi


@pytest.fixture
def store(sqlite_url: str, settings: Settings) -> Iterator[Store]:
    """These rules do not depend on the database: SQLite alone."""
    with Store(sqlite_url, settings=settings) as s:
        yield s


@pytest.fixture
def task(store: Store, sqlite_url: str, tmp_path: Path) -> Iterator[Task]:
    made = start_run(sqlite_url, tmp_path / "out")
    yield made
    made.close()


@pytest.fixture
def ui(store: Store) -> Iterator[InProcessUi]:
    with InProcessUi(store) as served:
        yield served


def _get(ui: InProcessUi, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = HTTPConnection(ui.url.removeprefix("http://"), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    finally:
        conn.close()


def _groups(ui: InProcessUi, task: Task) -> dict[str, dict[str, Any]]:
    status, _, body = _get(ui, f"/api/tasks/{task.id}/samples")
    assert status == 200
    return {g["series"]: g["samples"][-1] for g in json.loads(body)}


def _forge(
    task: Task, series: str, uri: str, *, kind: str = "image", ctype: str = "image/png"
) -> None:
    """Write a sample row as a hostile task could, naming any file and any type."""
    run = task._run
    assert run is not None
    row = SampleRow(
        title="t", series=series, iteration=0, kind=kind, uri=uri, content_type=ctype, size=1
    )
    run.link.append(run.fence, [], [], samples=[row])


def test_samples_are_served_as_their_extension_says_and_sandboxed(
    task: Task, ui: InProcessUi
) -> None:
    log = task.get_logger()
    log.report_image("t", "png", image=np.zeros((2, 2), np.uint8))
    log.report_media("t", "html", stream=io.StringIO("<script>1</script>"), file_extension="html")
    log.report_media(
        "t", "svg", stream=b"<svg xmlns='http://www.w3.org/2000/svg'/>", file_extension="svg"
    )
    log.report_media("t", "text", stream=io.StringIO("<b>x</b>"), file_extension="txt")
    log.report_media("t", "bin", stream=b"\x00", file_extension="exe")
    task.flush()
    samples = _groups(ui, task)
    served = {series: _get(ui, s["src"]) for series, s in samples.items()}
    assert {k: v[0] for k, v in served.items()} == dict.fromkeys(samples, 200)
    types = {k: v[1]["content-type"] for k, v in served.items()}
    assert types == {
        "png": "image/png",
        "html": "text/html; charset=utf-8",
        "svg": "image/svg+xml",
        "text": "text/plain; charset=utf-8",
        "bin": "application/octet-stream",
    }
    for series, (_, headers, _) in served.items():
        assert headers["x-content-type-options"] == "nosniff"
        csp = headers["content-security-policy"]
        assert csp.startswith("sandbox")
        assert "default-src 'none'" in csp
        assert ("allow-scripts" in csp) == (series == "html"), series
        assert "connect-src" not in csp  # nothing over the network, scripts or not
    assert served["bin"][1]["content-disposition"].startswith("attachment")
    assert served["png"][2].startswith(b"\x89PNG")


def test_rows_cannot_name_files_outside_the_tasks_samples(
    task: Task, ui: InProcessUi, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"TOP-SECRET-CONTENT")
    task.get_logger().report_image("t", "real", image=np.zeros((2, 2), np.uint8))
    task.flush()
    folder = next((tmp_path / "out" / task.id / "samples").iterdir())
    link = folder / "link.png"
    link.symlink_to(secret)
    _forge(task, "outside", secret.as_uri())
    _forge(task, "dotdot", f"{folder.as_uri()}/../../../../secret.png")
    _forge(task, "symlink", link.as_uri())
    _forge(task, "remote", "https://example.com/x.png")
    _forge(task, "script", "javascript:alert(1)")
    samples = _groups(ui, task)
    for series in ("outside", "dotdot", "symlink"):
        status, _, body = _get(ui, samples[series]["src"])
        assert status == 404, series
        assert b"TOP-SECRET" not in body
    assert samples["remote"]["src"] is None
    assert samples["remote"]["link"] == "https://example.com/x.png"
    assert samples["script"]["src"] is None
    assert samples["script"]["link"] is None  # shown as text, never as a link


def test_a_rows_own_type_is_never_trusted(task: Task, ui: InProcessUi, store: Store) -> None:
    task.get_logger().report_media(
        "t", "page", stream=io.StringIO("<b>x</b>"), file_extension="html"
    )
    task.get_logger().report_image("t", "png", image=np.zeros((2, 2), np.uint8))
    task.flush()
    real = {s.series: s.uri for s in store.reported.samples(uuid.UUID(task.id))}
    _forge(task, "html-as-image", real["page"], kind="image", ctype="image/png")
    _forge(task, "png-as-html", real["png"], kind="html", ctype="text/html")
    samples = _groups(ui, task)
    assert samples["html-as-image"]["kind"] == "html"  # the page frames it, sandboxed
    status, headers, _ = _get(ui, samples["html-as-image"]["src"])
    assert headers["content-security-policy"].startswith("sandbox allow-scripts")
    assert samples["png-as-html"]["kind"] == "image"
    status, headers, _ = _get(ui, samples["png-as-html"]["src"])
    assert (status, headers["content-type"]) == (200, "image/png")


def test_only_the_plot_pages_allow_style_attributes(task: Task, ui: InProcessUi) -> None:
    _, page, _ = _get(ui, f"/tasks/{task.id}")
    assert page["content-security-policy"] == PLOT_PAGE_CSP
    assert "script-src 'self';" in PLOT_PAGE_CSP
    _, tasks, _ = _get(ui, "/tasks")
    assert tasks["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
