"""Plots and debug samples on a task's page, in headless Chromium: one of every plot type
and media kind, reported through a real run, drawn by plotly.js and the page's own script,
each screenshotted into tests/ui/artifacts/."""

from __future__ import annotations

import io
import math
import re
import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import matplotlib
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from clearq import OutputModel, Task
from clearq.scheduler import Store
from tests.conftest import on_one_database
from tests.runs import start_run
from tests.ui.conftest import Page
from tests.ui.helpers import InProcessUi

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLOTS = {
    "plotly": "plotly",
    "matplotlib": "matplotlib",
    "matplotlib picture": "matplotlib",
    "table": "table",
    "histogram": "histogram",
    "confusion": "confusion_matrix",
    "scatter2d": "scatter2d",
    "scatter3d": "scatter3d",
    "surface": "surface",
    "line": "line",
}
SAMPLES = ("image", "audio", "video", "html", "text", "file", "elsewhere")


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        tone = (int(8000 * math.sin(2 * math.pi * 440 * t / 8000)) for t in range(4000))
        w.writeframes(b"".join(struct.pack("<h", v) for v in tone))
    return buffer.getvalue()


def _webm() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = np.zeros((48, 64, 3), np.uint8)
            frame[:, : 6 * (i + 1), 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _report_everything(task: Task) -> None:
    log = task.get_logger()
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3], name="plotly line"))
    log.report_plotly("plots", "plotly", fig, iteration=1)
    lines, ax = plt.subplots()
    ax.plot([0, 1, 2], [0, 1, 4], label="squares")
    ax.legend()
    log.report_matplotlib_figure("plots", "matplotlib", lines)
    bars, bar_ax = plt.subplots()
    bar_ax.bar(["a", "b"], [3, 5])
    log.report_matplotlib_figure("plots", "matplotlib picture", bars)
    frame = pd.DataFrame({"loss": [0.5, 0.25], "acc": [0.8, 0.9]}, index=["e1", "e2"])
    log.report_table("plots", "table", table_plot=frame)
    log.report_histogram("plots", "histogram", [[1, 3, 2], [2, 2, 1]], labels=["a", "b"])
    log.report_confusion_matrix("plots", "confusion", [[5, 1], [2, 7]], xlabels=["cat", "dog"])
    log.report_scatter2d("plots", "scatter2d", [(0, 1), (1, 3), (2, 2)], mode="markers")
    log.report_scatter3d("plots", "scatter3d", np.random.default_rng(0).random((20, 3)))
    log.report_surface("plots", "surface", np.outer(np.arange(6), np.arange(6)))
    log.report_line_plot(
        "plots", [log.SeriesInfo(name="line", data=[[0, 0], [1, 2], [2, 1]])], "x", "y"
    )
    for i in range(3):
        image = np.zeros((32, 32, 3), np.uint8)
        image[:, : 10 * (i + 1), 0] = 255
        log.report_image("samples", "image", iteration=i, image=image)
    log.report_media("samples", "audio", stream=_wav(), file_extension="wav")
    log.report_media("samples", "video", stream=_webm(), file_extension="webm")
    page = (
        "<h1 id=h>sandboxed</h1><script>document.getElementById('h').textContent+=' ran'</script>"
    )
    log.report_media("samples", "html", stream=io.StringIO(page), file_extension="html")
    log.report_media(
        "samples", "text", stream=io.StringIO("plain <b>text</b>"), file_extension="txt"
    )
    log.report_media("samples", "file", stream=b"\x00\x01", file_extension="bin")
    log.report_image("samples", "elsewhere", url="https://example.com/picture.png")
    task.flush()
    plt.close("all")


@pytest.fixture
def reported(store: Store, store_url: str, tmp_path: Path) -> Iterator[Task]:
    task = start_run(store_url, tmp_path / "out", project="results", name="everything", store=store)
    _report_everything(task)
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00" * 2048)
    model = OutputModel(task, name="classifier", framework="PyTorch", label_enumeration={"cat": 0})
    model.update_weights(weights)
    yield task
    task.close()


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


@on_one_database("sqlite")
def test_every_plot_type_and_media_kind_shows(store: Store, reported: Task, page: Page) -> None:
    expect = _expect()
    tab = page.tab
    with InProcessUi(store) as ui:
        tab.goto(f"{ui.url}/tasks/{reported.id}")
        for series, kind in PLOTS.items():
            box = tab.locator(f'#plots .plot-box[data-series="{series}"]')
            expect(box).to_have_attribute("data-drawn", re.compile(r"^\d+$"))
            expect(box).to_have_attribute("data-kind", kind)
            expect(box.locator(".main-svg").first).to_be_attached()
            box.scroll_into_view_if_needed()
            box.screenshot(path=str(page.shots / f"plot-{series.replace(' ', '-')}.png"))
        table = tab.locator('#plots .plot-box[data-series="table"]')
        expect(table).to_contain_text("loss")
        for series in SAMPLES:
            box = tab.locator(f'#samples .sample-box[data-series="{series}"]')
            expect(box).to_be_visible()
            box.scroll_into_view_if_needed()
            box.screenshot(path=str(page.shots / f"sample-{series}.png"))

        images = tab.locator('#samples .sample-box[data-series="image"]')
        expect(images.locator("img")).to_have_js_property("naturalWidth", 32)
        expect(images).to_have_attribute("data-iteration", "2")
        images.locator("input[type=range]").fill("0")
        expect(images).to_have_attribute("data-iteration", "0")
        expect(images).to_contain_text("iteration 0 (1 of 3)")
        images.screenshot(path=str(page.shots / "sample-image-slider.png"))

        audio = tab.locator('#samples .sample-box[data-series="audio"] audio')
        expect(audio).to_have_js_property("readyState", 4, timeout=20_000)
        video = tab.locator('#samples .sample-box[data-series="video"] video')
        expect(video).to_have_js_property("videoWidth", 64, timeout=20_000)

        frame = tab.locator('#samples .sample-box[data-series="html"] iframe')
        expect(frame).to_have_attribute("sandbox", "allow-scripts")
        expect(
            tab.frame_locator('.sample-box[data-series="html"] iframe').locator("#h")
        ).to_have_text("sandboxed ran")
        # The HTML sample runs in an opaque origin: the page's own document is out of reach.
        origin = frame.evaluate(
            "f => { try { return f.contentDocument === null } catch (e) { return true } }"
        )
        assert origin is True
        elsewhere = tab.locator('#samples .sample-box[data-series="elsewhere"] a')
        expect(elsewhere).to_have_attribute("href", "https://example.com/picture.png")
        assert tab.locator("#samples img[src^='https:']").count() == 0
        models = tab.locator("#models")
        expect(models).to_contain_text("classifier")
        expect(models).to_contain_text("PyTorch")
        expect(models).to_contain_text("2.0 KiB")
        models.screenshot(path=str(page.shots / "models.png"))
        page.shot("task-plots-and-samples")
    assert page.errors == []


@pytest.fixture
def sweep(store: Store, store_url: str, tmp_path: Path) -> list[Task]:
    """Three finished trials of an HPO-like sweep: Args/lr and a loss curve each."""
    trials = []
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        task = start_run(store_url, tmp_path / "out", project="sweep", name=f"trial-{i}")
        task.set_parameters({"Args/lr": lr, "Args/batch": 32})
        for step in range(5):
            task.get_logger().report_scalar("loss", "train", (i + 1) / (step + 1), step)
        task.close()
        trials.append(task)
    return trials


@on_one_database("postgres")
def test_tasks_compare_by_chosen_columns_and_on_shared_charts(
    store: Store, sweep: list[Task], page: Page
) -> None:
    expect = _expect()
    tab = page.tab
    with InProcessUi(store) as ui:
        tab.goto(f"{ui.url}/tasks?project=sweep&metric=loss/train:min&param=Args/lr")
        table = tab.locator("#tasks")
        expect(table.locator("thead")).to_contain_text("loss/train (min)")
        expect(table.locator("thead")).to_contain_text("Args/lr")
        expect(table.locator("tbody tr")).to_have_count(3)
        headers = table.locator("thead th")
        loss_column = [headers.nth(i).inner_text() for i in range(headers.count())].index(
            "loss/train (min)"
        )
        table.locator("button.sort", has_text="loss/train (min)").click()
        first = table.locator("tbody tr").first
        expect(first).to_contain_text("trial-0")  # the smallest loss first
        expect(first.locator("td").nth(loss_column)).to_have_text("0.2")
        table.locator("button.sort", has_text="loss/train (min)").click()
        expect(table.locator("tbody tr").first).to_contain_text("trial-2")
        tab.wait_for_timeout(2500)  # a poll re-renders the rows: the order holds
        expect(table.locator("tbody tr").first).to_contain_text("trial-2")
        page.shot("tasks-compare-columns")

        for trial in sweep[:2]:
            tab.check(f"#tasks input[value='{trial.id}']")
        tab.click("#compare")
        expect(tab.locator("#compared tbody tr")).to_have_count(2)
        expect(tab.locator("#compared thead")).to_contain_text("Args/lr")
        expect(tab.locator("#compared thead")).not_to_contain_text("Args/batch")  # the same
        chart = tab.locator('#compare-charts .chart[data-panel="compare-loss"]')
        expect(chart).to_have_attribute("data-points", "10")
        expect(chart).to_contain_text("trial-0 · train")
        expect(chart).to_contain_text("trial-1 · train")
        page.shot("compare-view")
    assert page.errors == []
