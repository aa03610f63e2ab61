"""Every plot kind and debug sample a run reports round-trips through the store.

The run is the one ``Task.init`` makes (a RunLink, its Reporter, a Run), on SQLite and on
PostgreSQL; reads go through the SDK (``get_reported_plots``, ``get_debug_samples``).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import matplotlib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from PIL import Image

from clearq import Task
from clearq.errors import InvalidInput, LeaseLost
from clearq.models import Fence, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.runlink_results import PlotRow
from clearq.sdk.task import use_store
from tests.runs import start_run

matplotlib.use("Agg")
import matplotlib.pyplot as plt


@pytest.fixture
def task(store: Store, store_url: str, tmp_path: Path) -> Iterator[Task]:
    """The task of a run started here, reporting into ``store``, files under tmp_path/out."""
    use_store(store)
    made = start_run(store_url, tmp_path / "out")
    yield made
    made.close()
    use_store(None)
    plt.close("all")


def _figures(task: Task) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for p in task.get_reported_plots():
        found[(p["metric"], p["variant"])] = {**json.loads(p["plot_str"]), "kind": p["kind"]}
    return found


def _file(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file"
    return Path(parsed.path)


def test_every_plot_kind_round_trips(task: Task) -> None:
    log = task.get_logger()
    log.report_plotly("plotly", "fig", go.Figure(go.Scatter(x=[1, 2], y=[3.0, float("nan")])), 1)
    log.report_plotly("plotly", "dict", {"data": [{"type": "bar", "y": np.arange(3)}]}, 2)
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]}, index=pd.Index(["x", "y"], name="k"))
    log.report_table("table", "frame", iteration=3, table_plot=frame)
    log.report_table("table", "rows", table_plot=[["h1", "h2"], [1, "two"]])
    log.report_histogram("hist", "h", [[1, 2], [3, 4]], labels=["a", "b"], mode="stack")
    log.report_vector("vector", "v", [5, 6, 7], xlabels=["x", "y", "z"])
    log.report_confusion_matrix("cm", "c", np.eye(2), xlabels=["p", "q"], yaxis_reversed=True)
    log.report_matrix("matrix", "m", [[1, 2], [3, 4]])
    log.report_scatter2d("s2", "s", [(0, 1), (1, 3)], mode="markers", labels=["a", "b"])
    log.report_scatter3d("s3", "s", np.ones((4, 3)), zaxis="depth", fill=True)
    log.report_surface("surface", "s", np.zeros((3, 3)), camera=(1, 2, 3), comment="flat")
    log.report_line_plot(
        "line", [log.SeriesInfo(name="up", data=[[0, 0], [1, 1]])], xaxis="x", yaxis="y"
    )
    figs = _figures(task)

    assert figs[("plotly", "fig")]["data"][0]["y"] == [3.0, None]  # NaN: null in JSON
    assert figs[("plotly", "dict")]["data"][0]["y"] == [0, 1, 2]
    table = figs[("table", "frame")]["data"][0]
    assert table["header"]["values"] == ["k", "a", "b"]
    assert table["cells"]["values"] == [["x", "y"], [1, 2], [0.5, "NaN"]]
    assert figs[("table", "rows")]["data"][0]["cells"]["values"] == [[1], ["two"]]
    hist = figs[("hist", "h")]
    assert [t["y"] for t in hist["data"]] == [[1, 2], [3, 4]]
    assert hist["layout"]["barmode"] == "stack"
    assert figs[("vector", "v")]["data"][0]["x"] == ["x", "y", "z"]
    cm = figs[("cm", "c")]
    assert cm["data"][0]["z"] == [[1, 0], [0, 1]]
    assert cm["layout"]["yaxis"]["autorange"] == "reversed"
    assert figs[("matrix", "m")]["kind"] == "confusion_matrix"
    s2 = figs[("s2", "s")]["data"][0]
    assert (s2["x"], s2["y"], s2["mode"], s2["text"]) == ([0, 1], [1, 3], "markers", ["a", "b"])
    s3 = figs[("s3", "s")]
    assert s3["data"][0]["type"] == "scatter3d"
    assert s3["layout"]["scene"]["zaxis"]["title"]["text"] == "depth"
    surface = figs[("surface", "s")]
    assert surface["layout"]["scene"]["camera"]["eye"] == {"x": 1, "y": 2, "z": 3}
    assert surface["layout"]["title"]["subtitle"]["text"] == "flat"
    assert figs[("line", "up")]["data"][0]["x"] == [0, 1]
    iterations = {(p["metric"], p["iter"]) for p in task.get_reported_plots()}
    assert {("plotly", 1), ("plotly", 2), ("table", 3), ("table", 0)} <= iterations


def test_matplotlib_figures_become_plots_or_pictures(task: Task) -> None:
    log = task.get_logger()
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 4, 9], label="squares")
    ax.set_xlabel("n")
    ax.legend()
    log.report_matplotlib_figure("mpl", "lines", fig, iteration=1)
    bars, bar_ax = plt.subplots()
    bar_ax.bar([1, 2], [3, 4])
    log.report_matplotlib_figure("mpl", "bars", bars)
    log.report_matplotlib_figure("mpl", "image", fig, report_image=True)
    figs = _figures(task)

    lines = figs[("mpl", "lines")]
    assert lines["data"][0]["y"] == [1, 4, 9]
    assert lines["data"][0]["name"] == "squares"
    assert lines["layout"]["xaxis"]["title"]["text"] == "n"
    picture = figs[("mpl", "bars")]
    assert picture["data"] == []
    assert picture["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert ("mpl", "image") not in figs
    [sample] = task.get_debug_samples("mpl", "image")
    assert _file(sample["url"]).read_bytes().startswith(b"\x89PNG")


def test_images_from_arrays_pil_files_and_urls(task: Task, tmp_path: Path) -> None:
    log = task.get_logger()
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[:, :, 0] = 255
    log.report_image("img", "array", iteration=1, image=array)
    array[:] = 0  # the report took its copy
    log.report_image("img", "floats", image=np.full((2, 2), 0.5))
    log.report_image("img", "pil", image=Image.new("RGB", (3, 3), "blue"))
    path = tmp_path / "given.jpg"
    Image.new("RGB", (5, 5), "green").save(path)
    log.report_image("img", "file", local_path=path, delete_after_upload=True)
    log.report_image("img", "url", url="https://user:secret@example.com/x.png?token=t")

    [red] = task.get_debug_samples("img", "array")
    assert (red["iter"], red["kind"], red["content_type"]) == (1, "image", "image/png")
    assert np.asarray(Image.open(_file(red["url"])))[0, 0].tolist() == [255, 0, 0]
    [grey] = task.get_debug_samples("img", "floats")
    assert np.asarray(Image.open(_file(grey["url"])))[0, 0] == 127
    [blue] = task.get_debug_samples("img", "pil")
    assert np.asarray(Image.open(_file(blue["url"])))[0, 0].tolist() == [0, 0, 255]
    [copied] = task.get_debug_samples("img", "file")
    assert copied["content_type"] == "image/jpeg"
    assert _file(copied["url"]).suffix == ".jpg"
    assert not path.exists()  # delete_after_upload
    [linked] = task.get_debug_samples("img", "url")
    assert linked["url"] == "https://example.com/x.png"  # credentials never stored


def test_media_from_files_and_streams(task: Task, tmp_path: Path) -> None:
    log = task.get_logger()
    audio = tmp_path / "tone.wav"
    audio.write_bytes(b"RIFF....WAVE")
    log.report_media("media", "audio", iteration=2, local_path=audio)
    log.report_media("media", "page", stream=io.StringIO("<b>hi</b>"), file_extension="html")
    log.report_media("media", "clip", stream=io.BytesIO(b"\x00mp4"), file_extension=".mp4")
    log.report_media("media", "blob", stream=b"\x01\x02", file_extension="bin")

    kinds = {
        series: task.get_debug_samples("media", series)[0]
        for series in ("audio", "page", "clip", "blob")
    }
    assert {s: (k["kind"], k["content_type"]) for s, k in kinds.items()} == {
        "audio": ("audio", "audio/wav"),
        "page": ("html", "text/html"),
        "clip": ("video", "video/mp4"),
        "blob": ("file", "application/octet-stream"),
    }
    assert _file(kinds["page"]["url"]).read_text() == "<b>hi</b>"
    assert _file(kinds["audio"]["url"]).read_bytes() == b"RIFF....WAVE"
    with pytest.raises(InvalidInput, match="file_extension"):
        log.report_media("media", "x", stream=io.BytesIO(b"?"))
    with pytest.raises(InvalidInput, match="exactly one"):
        log.report_media("media", "x", local_path=audio, url="https://example.com/a.wav")


def test_image_history_keeps_the_last_files(task: Task) -> None:
    log = task.get_logger()
    for i in range(5):
        log.report_image(
            "hist", "s", iteration=i, image=np.full((2, 2), i, dtype=np.uint8), max_image_history=3
        )
        if i == 1:
            task.flush()  # slots are rewritten across batches as well as within one
    kept = task.get_debug_samples("hist", "s")
    assert [s["iter"] for s in kept] == [4, 3, 2]
    for s in kept:
        assert np.asarray(Image.open(_file(s["url"])))[0, 0] == s["iter"]
    assert len({s["url"] for s in kept}) == 3
    assert [s["iter"] for s in task.get_debug_samples("hist", "s", n_last_iterations=1)] == [4]


def test_plots_and_samples_are_fenced_and_reset(task: Task, store: Store) -> None:
    log = task.get_logger()
    log.report_histogram("h", "s", [1, 2])
    log.report_image("i", "s", image=np.zeros((2, 2), dtype=np.uint8))
    task.flush()
    run = task._role.run
    assert run is not None
    row = PlotRow(title="late", series="s", iteration=0, kind="histogram", figure="{}")
    fence = Fence(task_id=run.fence.task_id, attempt=run.fence.attempt, worker=None)
    store.leases.finish(fence, TaskStatus.FAILED, reason="ended elsewhere")  # the run lost it
    with pytest.raises(LeaseLost):
        run.link.append(run.fence, [], [], plots=[row])
    assert [p["metric"] for p in task.get_reported_plots()] == ["h"]
    store.tasks.reset(run.fence.task_id)
    assert task.get_reported_plots() == []
    assert task.get_debug_samples("i", "s") == []


def test_the_page_index_names_the_newest_plot_of_each_series(task: Task, store: Store) -> None:
    log = task.get_logger()
    for iteration in (0, 2, 1):
        log.report_histogram("h", "a", [iteration], iteration=iteration)
    log.report_histogram("h", "b", [9], iteration=0)
    task.flush()
    index = store.reported.plot_index(uuid.UUID(task.id))
    assert [(p["series"], p["iteration"]) for p in index] == [("a", 2), ("b", 0)]
    newest = store.reported.plot(uuid.UUID(task.id), index[0]["id"])
    assert newest.figure["data"][0]["y"] == [2]
