"""The Logger's plot reports, with ClearML's names and arguments.

Each call builds a plotly figure now (``plots``), so the caller may change its data at
once, and queues it on the run's reporter, which writes it with the next batch of scalars.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from clearq.errors import InvalidInput
from clearq.scheduler.runlink_results import PlotRow
from clearq.sdk import plots
from clearq.sdk.plots import SeriesInfo as _SeriesInfo

if TYPE_CHECKING:
    from clearq.sdk.reporter import Reporter

MAX_NAME = 255
"""The longest title or series the store keeps."""


def checked_name(what: str, value: str) -> str:
    """A title or series as stored: text of at most ``MAX_NAME`` characters."""
    text = str(value)
    if len(text) > MAX_NAME:
        raise InvalidInput(f"{what} {text[:40]!r}... is {len(text)} characters; at most {MAX_NAME}")
    return text


class PlotReports(ABC):
    """``report_plotly``, ``report_table``, ``report_histogram`` and the other plots."""

    SeriesInfo = _SeriesInfo
    """``Logger.SeriesInfo(name, data, labels)``: one line of ``report_line_plot``."""

    @abstractmethod
    def _reporter(self) -> Reporter:
        """The reporter of the run this logger reports into."""

    def _plot(self, title: str, series: str, iteration: int | None, kind: str, figure: Any) -> None:
        row = PlotRow(
            title=checked_name("title", title),
            series=checked_name("series", series),
            iteration=int(iteration or 0),
            kind=kind,
            figure=plots.to_json(figure),
        )
        self._reporter().plot(row)

    def report_plotly(
        self, title: str, series: str, figure: Any, iteration: int | None = None
    ) -> None:
        """Report a plotly ``Figure`` or a figure dict as plotly.js defines it."""
        self._plot(title, series, iteration, "plotly", plots.from_plotly(figure, series))

    def report_matplotlib_figure(
        self,
        title: str,
        series: str,
        figure: Any,
        iteration: int | None = None,
        report_image: bool = False,
        report_interactive: bool = True,
    ) -> None:
        """Report a matplotlib ``Figure`` (or ``pyplot``'s current one).

        Lines and scatter points on one set of axes become an interactive plot; other
        figures, or ``report_interactive=False``, a picture on the Plots tab;
        ``report_image=True`` a debug sample (PNG) instead.
        """
        from clearq.sdk import mpl

        fig = mpl.figure_of(figure)
        if report_image:
            png = mpl.png_of(fig)
            self._report_bytes(title, series, iteration, "png", png, history=None)
            return
        if report_interactive:
            converted, _ = mpl.to_plotly(fig, title)
        else:
            converted = mpl.picture(mpl.png_of(fig), title, fig.get_size_inches())
        self._plot(title, series, iteration, "matplotlib", converted)

    @abstractmethod
    def _report_bytes(
        self,
        title: str,
        series: str,
        iteration: int | None,
        extension: str,
        data: bytes,
        *,
        history: int | None,
    ) -> None:
        """Report ``data`` as a debug sample with ``extension``."""

    def report_table(
        self,
        title: str,
        series: str,
        iteration: int | None = None,
        table_plot: Any = None,
        csv: str | None = None,
        url: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
        extra_data: Mapping[str, Any] | None = None,
    ) -> None:
        """Report a table: a pandas DataFrame or rows (header first), ``csv`` (a file) or
        ``url`` (a CSV's address); exactly one of them."""
        given = [v for v in (table_plot, csv, url) if v is not None]
        if len(given) != 1:
            raise InvalidInput("report_table takes exactly one of table_plot, csv and url")
        table = table_plot if table_plot is not None else plots.read_csv(str(csv or url))
        figure = plots.table(table, title=title, extra_layout=extra_layout, extra_data=extra_data)
        self._plot(title, series, iteration, "table", figure)

    def report_histogram(
        self,
        title: str,
        series: str,
        values: Any,
        iteration: int | None = None,
        labels: Sequence[str] | None = None,
        xlabels: Sequence[str] | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        mode: str | None = None,
        data_args: Mapping[str, Any] | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report counted values as bars (not counted here): one row per bar series;
        ``mode`` groups, stacks or sums them ('group', 'stack', 'relative')."""
        figure = plots.histogram(
            values,
            title=title,
            labels=labels,
            xlabels=xlabels,
            xaxis=xaxis,
            yaxis=yaxis,
            mode=mode,
            data_args=data_args,
            extra_layout=extra_layout,
        )
        self._plot(title, series, iteration, "histogram", figure)

    def report_vector(
        self,
        title: str,
        series: str,
        values: Any,
        iteration: int | None = None,
        labels: Sequence[str] | None = None,
        xlabels: Sequence[str] | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        mode: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report a vector as bars: ``report_histogram`` under ClearML's older name."""
        self.report_histogram(
            title,
            series,
            values,
            iteration,
            labels=labels,
            xlabels=xlabels,
            xaxis=xaxis,
            yaxis=yaxis,
            mode=mode,
            extra_layout=extra_layout,
        )

    def report_confusion_matrix(
        self,
        title: str,
        series: str,
        matrix: Any,
        iteration: int | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        xlabels: Sequence[str] | None = None,
        ylabels: Sequence[str] | None = None,
        yaxis_reversed: bool = False,
        comment: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report a matrix as a heat map; ``yaxis_reversed`` puts (0, 0) top left."""
        figure = plots.matrix(
            matrix,
            title=title,
            xaxis=xaxis,
            yaxis=yaxis,
            xlabels=xlabels,
            ylabels=ylabels,
            yaxis_reversed=yaxis_reversed,
            comment=comment,
            extra_layout=extra_layout,
        )
        self._plot(title, series, iteration, "confusion_matrix", figure)

    def report_matrix(
        self,
        title: str,
        series: str,
        matrix: Any,
        iteration: int | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        xlabels: Sequence[str] | None = None,
        ylabels: Sequence[str] | None = None,
        yaxis_reversed: bool = False,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report a heat map: ``report_confusion_matrix`` under ClearML's older name."""
        self.report_confusion_matrix(
            title,
            series,
            matrix,
            iteration,
            xaxis=xaxis,
            yaxis=yaxis,
            xlabels=xlabels,
            ylabels=ylabels,
            yaxis_reversed=yaxis_reversed,
            extra_layout=extra_layout,
        )

    def report_scatter2d(
        self,
        title: str,
        series: str,
        scatter: Any,
        iteration: int | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        labels: Sequence[str] | None = None,
        mode: str = "lines",
        comment: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report (x, y) points (an N x 2 array or pairs) as 'lines', 'markers' or
        'lines+markers'; ``labels`` names each point."""
        figure = plots.scatter2d(
            scatter,
            title=title,
            series=series,
            xaxis=xaxis,
            yaxis=yaxis,
            labels=labels,
            mode=mode,
            comment=comment,
            extra_layout=extra_layout,
        )
        self._plot(title, series, iteration, "scatter2d", figure)

    def report_scatter3d(
        self,
        title: str,
        series: str,
        scatter: Any,
        iteration: int | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        zaxis: str | None = None,
        labels: Sequence[str] | None = None,
        mode: str = "markers",
        fill: bool = False,
        comment: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report (x, y, z) points (N x 3, or a list of such sets); ``fill`` draws the
        surface they span."""
        figure = plots.scatter3d(
            scatter,
            title=title,
            series=series,
            xaxis=xaxis,
            yaxis=yaxis,
            zaxis=zaxis,
            labels=labels,
            mode=mode,
            fill=fill,
            comment=comment,
            extra_layout=extra_layout,
        )
        self._plot(title, series, iteration, "scatter3d", figure)

    def report_surface(
        self,
        title: str,
        series: str,
        matrix: Any,
        iteration: int | None = None,
        xaxis: str | None = None,
        yaxis: str | None = None,
        zaxis: str | None = None,
        xlabels: Sequence[str] | None = None,
        ylabels: Sequence[str] | None = None,
        camera: Sequence[float] | None = None,
        comment: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report a matrix of heights as a 3D surface; ``camera`` is the eye's (x, y, z)."""
        figure = plots.surface(
            matrix,
            title=title,
            xaxis=xaxis,
            yaxis=yaxis,
            zaxis=zaxis,
            xlabels=xlabels,
            ylabels=ylabels,
            camera=camera,
            comment=comment,
            extra_layout=extra_layout,
        )
        self._plot(title, series, iteration, "surface", figure)

    def report_line_plot(
        self,
        title: str,
        series: Sequence[_SeriesInfo | Mapping[str, Any]],
        xaxis: str,
        yaxis: str,
        mode: str = "lines",
        iteration: int | None = None,
        reverse_xaxis: bool = False,
        comment: str | None = None,
        extra_layout: Mapping[str, Any] | None = None,
    ) -> None:
        """Report several lines on one plot: ``Logger.SeriesInfo(name, data, labels)``
        each (or dicts of those fields); the plot's series is the first line's name."""
        figure = plots.line_plot(
            series,
            title=title,
            xaxis=xaxis,
            yaxis=yaxis,
            mode=mode,
            reverse_xaxis=reverse_xaxis,
            comment=comment,
            extra_layout=extra_layout,
        )
        first = figure["data"][0].get("name", "") if figure["data"] else ""
        self._plot(title, str(first), iteration, "line", figure)
