"""Plot figures, matplotlib conversion and sample files, without a store."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from clearq.errors import InvalidInput
from clearq.scheduler.runlink_results import kind_of
from clearq.sdk import mpl, plots, samples

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def test_figures_encode_numpy_and_non_finite_numbers_as_plain_json() -> None:
    figure = {"data": [{"y": np.array([1.0, np.nan, np.inf]), "n": np.int64(3)}], "t": (1, 2)}
    assert json.loads(plots.to_json(figure)) == {
        "data": [{"y": [1.0, None, None], "n": 3}],
        "t": [1, 2],
    }
    with pytest.raises(InvalidInput, match="cannot hold a object"):
        plots.to_json({"data": [object()]})


def test_builders_refuse_bad_shapes_and_modes_with_what_to_give() -> None:
    with pytest.raises(InvalidInput, match="N x 2"):
        plots.scatter2d(
            [1, 2, 3], title="t", series="s", xaxis=None, yaxis=None, labels=None, mode="lines"
        )
    with pytest.raises(InvalidInput, match="'lines', 'markers'"):
        plots.scatter2d(
            [[1, 2]], title="t", series="s", xaxis=None, yaxis=None, labels=None, mode="dots"
        )
    with pytest.raises(InvalidInput, match="'group', 'stack'"):
        plots.histogram([1], title="t", labels=None, xlabels=None, xaxis=None, yaxis=None, mode="x")
    with pytest.raises(InvalidInput, match="two dimensions"):
        plots.matrix(
            [1, 2],
            title="t",
            xaxis=None,
            yaxis=None,
            xlabels=None,
            ylabels=None,
            yaxis_reversed=False,
        )
    with pytest.raises(InvalidInput, match="DataFrame"):
        plots.table(42, title="t")


def test_extra_layout_merges_into_the_figure() -> None:
    fig = plots.histogram(
        [1, 2],
        title="t",
        labels=None,
        xlabels=None,
        xaxis="x",
        yaxis=None,
        mode=None,
        extra_layout={"xaxis": {"type": "log"}, "height": 600},
    )
    assert fig["layout"]["xaxis"] == {"title": {"text": "x"}, "type": "log"}
    assert fig["layout"]["height"] == 600


def test_simple_matplotlib_figures_convert_and_others_become_pictures() -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [2, 3], "o-", label="a")
    ax.scatter([1, 2], [3, 4], label="_hidden")
    ax.set_yscale("log")
    converted, interactive = mpl.to_plotly(fig, "t")
    assert interactive
    assert [t["mode"] for t in converted["data"]] == ["lines+markers", "markers"]
    assert converted["layout"]["yaxis"]["type"] == "log"
    assert "name" not in converted["data"][1]
    grid, _axes = plt.subplots(1, 2)
    picture, interactive = mpl.to_plotly(grid, "t")
    assert not interactive
    assert picture["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert mpl.figure_of(plt) is plt.gcf()
    plt.close("all")


def test_sample_kinds_come_from_a_fixed_table() -> None:
    assert kind_of("PNG") == ("image", "image/png")
    assert kind_of("html") == ("html", "text/html")
    assert kind_of("exe") == ("file", "application/octet-stream")
    assert samples.extension_of("a/b.tar.WAV") == "wav"
    with pytest.raises(InvalidInput, match="file_extension"):
        samples.extension_of("noext")
    with pytest.raises(InvalidInput, match="letters and digits"):
        samples.extension_of("", "../x")


def test_sample_folders_are_one_safe_component_and_distinct() -> None:
    a = samples.folder_of("../../etc", "passwd")
    b = samples.folder_of("..-..-etc", "passwd")
    assert "/" not in a
    assert not a.startswith(".")
    assert a != b


@pytest.mark.parametrize(
    ("array", "pixel"),
    [
        (np.full((2, 2), 7, dtype=np.uint8), 7),
        (np.ones((2, 2, 1), dtype=np.float32), 255),
        (np.array([[True, False]]), 255),
        (np.full((2, 2), 300.0), 255),
    ],
)
def test_image_arrays_encode_to_png(array: np.ndarray, pixel: int, tmp_path: Path) -> None:
    png = samples.image_bytes(array)()
    path = tmp_path / "x.png"
    path.write_bytes(png)
    assert np.asarray(Image.open(path)).flat[0] == pixel


def test_image_arrays_of_other_shapes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="H x W"):
        samples.image_bytes(np.zeros((2, 2, 5)))
    with pytest.raises(InvalidInput, match="numpy array or a PIL image"):
        samples.image_bytes([[1, 2]])


def test_slots_cycle_through_the_history(tmp_path: Path) -> None:
    files = samples.SampleFiles(str(tmp_path), uuid.uuid4())
    rows = [
        files.job(samples.Sample("t", "s", i, "txt", lambda i=i: str(i).encode(), history=2))()
        for i in range(3)
    ]
    assert rows[0].uri == rows[2].uri != rows[1].uri
    assert Path(rows[0].uri.removeprefix("file://")).read_text() == "2"
    unlimited = [
        files.job(samples.Sample("t", "u", i, "txt", lambda: b"", history=-1))().uri
        for i in range(3)
    ]
    assert len(set(unlimited)) == 3
