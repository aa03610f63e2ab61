"""Plotly figures for the Logger's plot reports, as plain JSON-ready dicts.

Each builder takes what ClearML's ``Logger.report_*`` of the same name takes and returns
``{"data": [...], "layout": {...}}``, the form plotly.js draws and the store keeps.
numpy is imported only by a report that needs it. :func:`to_json` is the one way a
figure is encoded: numpy values become lists and numbers, and NaN or infinity become
``null`` (JSON has no such numbers, and PostgreSQL's ``json`` refuses them).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from clearq.errors import InvalidInput

Figure = dict[str, Any]


class SeriesInfo:
    """One line of ``report_line_plot``: its name, its (x, y) points and point labels."""

    def __init__(self, name: str, data: Any, labels: Sequence[str] | None = None) -> None:
        self.name = name
        self.data = data
        self.labels = labels

    def __repr__(self) -> str:
        return f"SeriesInfo(name={self.name!r}, data={self.data!r}, labels={self.labels!r})"


def to_json(figure: Mapping[str, Any]) -> str:
    """A figure as JSON text, numpy and non-finite numbers made plain."""
    return json.dumps(plain(figure), allow_nan=False, separators=(",", ":"))


def plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars, tuples and odd numbers made JSON's own."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, pandas series
    if callable(tolist):
        return plain(tolist())
    isoformat = getattr(value, "isoformat", None)  # datetimes, numpy/pandas timestamps
    if callable(isoformat):
        return str(isoformat())
    raise InvalidInput(f"a plot cannot hold a {type(value).__name__}: give numbers, text or lists")


def _array(values: Any, *, name: str) -> Any:
    import numpy as np

    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{name} must be numbers (a list or a numpy array): {e}") from e
    return array


def _axes(xaxis: str | None, yaxis: str | None, zaxis: str | None = None) -> dict[str, Any]:
    layout: dict[str, Any] = {}
    if zaxis is None:
        if xaxis:
            layout["xaxis"] = {"title": {"text": xaxis}}
        if yaxis:
            layout["yaxis"] = {"title": {"text": yaxis}}
        return layout
    scene = {
        axis: {"title": {"text": text}}
        for axis, text in (("xaxis", xaxis), ("yaxis", yaxis), ("zaxis", zaxis))
        if text
    }
    return {"scene": scene} if scene else {}


def _figure(
    data: list[dict[str, Any]],
    layout: dict[str, Any],
    *,
    title: str,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    heading: dict[str, Any] = {"text": title}
    if comment:
        heading["subtitle"] = {"text": comment}
    merged = _merge({"title": heading, **layout}, dict(extra_layout or {}))
    return {"data": data, "layout": merged}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def from_plotly(figure: Any, series: str) -> Figure:
    """A plotly ``Figure`` or a figure dict, titled by the series as ClearML does."""
    if isinstance(figure, Mapping):
        found = dict(figure)
    elif callable(getattr(figure, "to_plotly_json", None)):
        found = dict(figure.to_plotly_json())
    else:
        raise InvalidInput(
            f"report_plotly takes a plotly Figure or a dict, not a {type(figure).__name__}"
        )
    if not isinstance(found.get("data", []), list | tuple):
        raise InvalidInput("a plotly figure's 'data' must be a list of traces")
    layout = dict(found.get("layout") or {})
    layout.pop("template", None)  # plotly.py's default theme: large and the page's own is used
    layout.setdefault("title", {"text": series})
    return {"data": list(found.get("data", [])), "layout": layout}


def histogram(
    values: Any,
    *,
    title: str,
    labels: Sequence[str] | None,
    xlabels: Sequence[str] | None,
    xaxis: str | None,
    yaxis: str | None,
    mode: str | None,
    data_args: Mapping[str, Any] | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """Bars of already counted values: one row of ``values`` per bar series."""
    array = _array(values, name="histogram values")
    rows = array.reshape(1, -1) if array.ndim <= 1 else array.reshape(array.shape[0], -1)
    mode = mode or "group"
    if mode not in ("group", "stack", "relative"):
        raise InvalidInput(f"histogram mode {mode!r}: use 'group', 'stack' or 'relative'")
    x = list(xlabels) if xlabels is not None else list(range(rows.shape[1]))
    data = []
    for i, row in enumerate(rows):
        trace: dict[str, Any] = {"type": "bar", "x": x, "y": row}
        if labels is not None and i < len(labels):
            trace["name"] = labels[i]
        data.append(_merge(trace, dict(data_args or {})))
    layout = {**_axes(xaxis, yaxis), "barmode": mode}
    return _figure(data, layout, title=title, extra_layout=extra_layout)


def table(
    table_plot: Any,
    *,
    title: str,
    extra_layout: Mapping[str, Any] | None = None,
    extra_data: Mapping[str, Any] | None = None,
) -> Figure:
    """A table: a pandas DataFrame (its index is the first column) or rows, header first."""
    if callable(getattr(table_plot, "to_dict", None)) and hasattr(table_plot, "columns"):
        frame = table_plot
        header = [str(frame.index.name or ""), *[str(c) for c in frame.columns]]
        columns = [list(frame.index), *[list(frame[c]) for c in frame.columns]]
    elif isinstance(table_plot, Sequence) and table_plot and not isinstance(table_plot, str):
        rows = [list(r) for r in table_plot]
        header = [str(h) for h in rows[0]]
        body = rows[1:]
        columns = [[r[i] if i < len(r) else "" for r in body] for i in range(len(header))]
    else:
        raise InvalidInput(
            "report_table takes a pandas DataFrame, a list of rows (header first), "
            "csv= (a file) or url= (a CSV's address)"
        )
    trace: dict[str, Any] = {
        "type": "table",
        "header": {"values": header},
        "cells": {"values": [[_cell(v) for v in column] for column in columns]},
    }
    trace = _merge(trace, dict(extra_data or {}))
    return _figure([trace], {}, title=title, extra_layout=extra_layout)


def _cell(value: Any) -> Any:
    # Missing and infinite numbers are shown as ClearML shows them, not as blanks.
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Inf" if value > 0 else "-Inf")
    return value


def read_csv(source: str) -> Any:
    """A CSV file or URL as a DataFrame (first column as its index, as ClearML reads it)."""
    try:
        import pandas as pd
    except ImportError as e:
        raise InvalidInput("report_table with csv= or url= needs pandas: pip install pandas") from e
    try:
        return pd.read_csv(source, index_col=[0])
    except (OSError, ValueError) as e:
        raise InvalidInput(f"cannot read the table at {source!r}: {e}") from e


def scatter2d(
    scatter: Any,
    *,
    title: str,
    series: str,
    xaxis: str | None,
    yaxis: str | None,
    labels: Sequence[str] | None,
    mode: str,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """Points (x, y): an N x 2 array or a list of pairs."""
    trace = _xy_trace(scatter, series, mode, labels)
    return _figure(
        [trace], _axes(xaxis, yaxis), title=title, comment=comment, extra_layout=extra_layout
    )


def _xy_trace(points: Any, name: str, mode: str, labels: Sequence[str] | None) -> dict[str, Any]:
    _check_mode(mode)
    array = _array(points, name=f"the points of {name!r}")
    if array.size == 0:
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidInput(f"the points of {name!r} must be (x, y) pairs: an N x 2 array")
    trace: dict[str, Any] = {
        "type": "scatter",
        "name": name,
        "mode": mode,
        "x": array[:, 0],
        "y": array[:, 1],
    }
    if labels is not None:
        trace["text"] = list(labels)
    return trace


def _check_mode(mode: str) -> None:
    if mode not in ("lines", "markers", "lines+markers"):
        raise InvalidInput(f"mode {mode!r}: use 'lines', 'markers' or 'lines+markers'")


def line_plot(
    series: Sequence[SeriesInfo | Mapping[str, Any]],
    *,
    title: str,
    xaxis: str | None,
    yaxis: str | None,
    mode: str,
    reverse_xaxis: bool,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """One line per ``SeriesInfo`` (name, N x 2 points, labels)."""
    lines = [s if isinstance(s, SeriesInfo) else SeriesInfo(**s) for s in series]
    data = [_xy_trace(s.data, s.name, mode, s.labels) for s in lines]
    layout = _axes(xaxis, yaxis)
    if reverse_xaxis:
        layout = _merge(layout, {"xaxis": {"autorange": "reversed"}})
    return _figure(data, layout, title=title, comment=comment, extra_layout=extra_layout)


def scatter3d(
    scatter: Any,
    *,
    title: str,
    series: str,
    xaxis: str | None,
    yaxis: str | None,
    zaxis: str | None,
    labels: Sequence[str] | None,
    mode: str,
    fill: bool,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """Points (x, y, z): an N x 3 array, or a list of them (one trace each)."""
    _check_mode(mode)
    groups = scatter if _several_point_sets(scatter) else [scatter]
    data = []
    for i, group in enumerate(groups):
        array = _array(group, name=f"the points of {series!r}")
        if array.ndim != 2 or array.shape[1] != 3:
            raise InvalidInput(f"the points of {series!r} must be (x, y, z): an N x 3 array")
        trace: dict[str, Any] = {
            "type": "scatter3d",
            "name": series if len(groups) == 1 else f"{series} {i}",
            "mode": mode,
            "x": array[:, 0],
            "y": array[:, 1],
            "z": array[:, 2],
        }
        if labels is not None:
            trace["text"] = list(labels)
        if fill:
            trace["surfaceaxis"] = 2
        data.append(trace)
    layout = _axes(xaxis or "x", yaxis or "y", zaxis or "z")
    return _figure(data, layout, title=title, comment=comment, extra_layout=extra_layout)


def _several_point_sets(scatter: Any) -> bool:
    if not isinstance(scatter, list) or not scatter:
        return False
    first = scatter[0]
    return bool(getattr(first, "ndim", 0) == 2) or (
        isinstance(first, list) and bool(first) and isinstance(first[0], list | tuple)
    )


def matrix(
    values: Any,
    *,
    title: str,
    xaxis: str | None,
    yaxis: str | None,
    xlabels: Sequence[str] | None,
    ylabels: Sequence[str] | None,
    yaxis_reversed: bool,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """A heat map (a confusion matrix), each cell's value written on it."""
    array = _array(values, name="the matrix")
    if array.ndim != 2:
        raise InvalidInput(f"a matrix has two dimensions, not {array.ndim}")
    trace: dict[str, Any] = {"type": "heatmap", "z": array, "texttemplate": "%{z}"}
    if xlabels is not None:
        trace["x"] = list(xlabels)
    if ylabels is not None:
        trace["y"] = list(ylabels)
    layout = _axes(xaxis, yaxis)
    if yaxis_reversed:
        layout = _merge(layout, {"yaxis": {"autorange": "reversed"}})
    return _figure([trace], layout, title=title, comment=comment, extra_layout=extra_layout)


def surface(
    values: Any,
    *,
    title: str,
    xaxis: str | None,
    yaxis: str | None,
    zaxis: str | None,
    xlabels: Sequence[str] | None,
    ylabels: Sequence[str] | None,
    camera: Sequence[float] | None,
    comment: str | None = None,
    extra_layout: Mapping[str, Any] | None = None,
) -> Figure:
    """A 3D surface over a matrix of heights."""
    array = _array(values, name="the surface")
    if array.ndim != 2:
        raise InvalidInput(f"a surface is a matrix of two dimensions, not {array.ndim}")
    trace: dict[str, Any] = {"type": "surface", "z": array}
    if xlabels is not None:
        trace["x"] = list(xlabels)
    if ylabels is not None:
        trace["y"] = list(ylabels)
    layout = _axes(xaxis or "x", yaxis or "y", zaxis or "z")
    if camera is not None:
        if len(camera) != 3:
            raise InvalidInput("camera is the eye's (x, y, z): three numbers")
        eye = dict(zip(("x", "y", "z"), (float(c) for c in camera), strict=True))
        layout = _merge(layout, {"scene": {"camera": {"eye": eye}}})
    return _figure([trace], layout, title=title, comment=comment, extra_layout=extra_layout)
