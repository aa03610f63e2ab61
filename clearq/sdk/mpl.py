"""matplotlib figures as plots: interactive when simple, a picture otherwise.

A figure of one set of axes holding only lines and scatter points becomes plotly traces
(its title, axis labels, scales and legend names kept), so the page can zoom and hover as
on any plot. Anything else (several axes, bars, images, patches, text) is drawn by
matplotlib itself into a PNG that a plotly figure shows as its background image, so every
figure appears on the Plots tab, as ClearML does; ``report_image=True`` makes it a debug
sample instead. matplotlib is imported only by these calls.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from clearq.errors import InvalidInput
from clearq.sdk.plots import Figure

PNG_DPI = 100


def figure_of(figure: Any) -> Any:
    """The ``Figure`` of a figure, or of ``pyplot`` itself (its current figure)."""
    if callable(getattr(figure, "savefig", None)) and hasattr(figure, "axes"):
        if callable(getattr(figure, "gcf", None)):
            return figure.gcf()  # the pyplot module
        return figure
    raise InvalidInput(
        f"report_matplotlib_figure takes a matplotlib Figure or pyplot, "
        f"not a {type(figure).__name__}"
    )


def png_of(figure: Any) -> bytes:
    """The figure drawn by matplotlib as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI, bbox_inches="tight")
    return buffer.getvalue()


def to_plotly(figure: Any, title: str) -> tuple[Figure, bool]:
    """The figure as plotly, and whether it is interactive (traces) or a picture."""
    converted = _traces_of(figure)
    if converted is not None:
        return converted, True
    return picture(png_of(figure), title, figure.get_size_inches()), False


def picture(png: bytes, title: str, size_inches: Any = (6.4, 4.8)) -> Figure:
    """A plotly figure showing a PNG (a data URL: the page's CSP allows ``data:`` images)."""
    width, height = (int(float(v) * PNG_DPI) for v in size_inches)
    source = "data:image/png;base64," + base64.b64encode(png).decode()
    hidden = {"visible": False, "range": [0, 1]}
    layout = {
        "title": {"text": title},
        "width": width,
        "height": height + 60,
        "xaxis": hidden,
        "yaxis": {**hidden, "scaleanchor": "x", "scaleratio": height / max(width, 1)},
        "images": [
            {
                "source": source,
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1,
                "sizex": 1,
                "sizey": 1,
                "sizing": "contain",
                "layer": "below",
            }
        ],
        "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
    }
    return {"data": [], "layout": layout}


def _traces_of(figure: Any) -> Figure | None:
    axes = [a for a in figure.axes if a.get_visible()]
    if len(axes) != 1:
        return None
    ax = axes[0]
    if ax.patches or ax.images or ax.texts or ax.tables or getattr(ax, "name", "") != "rectilinear":
        return None
    data: list[dict[str, Any]] = []
    for line in ax.get_lines():
        data.append(_line(line))
    for collection in ax.collections:
        if type(collection).__name__ != "PathCollection":
            return None
        data.append(_points(collection))
    if not data:
        return None
    layout = {
        "title": {"text": ax.get_title() or _suptitle(figure)},
        "xaxis": _axis(ax.get_xlabel(), ax.get_xscale()),
        "yaxis": _axis(ax.get_ylabel(), ax.get_yscale()),
        "showlegend": ax.get_legend() is not None,
    }
    return {"data": data, "layout": layout}


def _suptitle(figure: Any) -> str:
    sup = getattr(figure, "_suptitle", None)
    return str(sup.get_text()) if sup is not None else ""


def _axis(label: str, scale: str) -> dict[str, Any]:
    axis: dict[str, Any] = {"title": {"text": label}}
    if scale == "log":
        axis["type"] = "log"
    return axis


def _color(rgba: Any) -> str:
    r, g, b, *alpha = (float(v) for v in rgba)
    a = alpha[0] if alpha else 1.0
    return f"rgba({round(r * 255)},{round(g * 255)},{round(b * 255)},{a:g})"


def _label(artist: Any) -> str | None:
    label = str(artist.get_label())
    return None if label.startswith("_") else label


def _line(line: Any) -> dict[str, Any]:
    from matplotlib.colors import to_rgba

    xy = line.get_xydata()
    has_line = line.get_linestyle() not in ("None", "", " ", "none")
    has_marker = line.get_marker() not in (None, "None", "", " ", "none")
    mode = "+".join(m for m, on in (("lines", has_line), ("markers", has_marker)) if on)
    color = _color(to_rgba(line.get_color(), line.get_alpha()))
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": mode or "lines",
        "x": xy[:, 0],
        "y": xy[:, 1],
        "line": {"color": color, "width": float(line.get_linewidth())},
        "marker": {"color": color},
    }
    name = _label(line)
    if name is not None:
        trace["name"] = name
    return trace


def _points(collection: Any) -> dict[str, Any]:
    offsets = collection.get_offsets()
    colors = collection.get_facecolor()
    trace: dict[str, Any] = {
        "type": "scatter",
        "mode": "markers",
        "x": offsets[:, 0],
        "y": offsets[:, 1],
        "marker": {"color": [_color(c) for c in colors] if len(colors) > 1 else None},
    }
    if len(colors) == 1:
        trace["marker"] = {"color": _color(colors[0])}
    name = _label(collection)
    if name is not None:
        trace["name"] = name
    return trace
