"""Comparing tasks: chosen metric and parameter columns in the tasks table, and several
tasks' scalars on one chart per title.

A column is given in the query string: ``metric=loss/train`` (the series' last value;
``loss/train:min`` or ``:max`` for the others) or ``param=Args/lr``, repeated or comma
separated, so an HPO sweep's trials can be ranked at a glance (the page sorts by any
column). Every value is read with one query for the whole table
(``store.reported.summaries``), never one per task.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clearq.errors import InvalidInput
from clearq.models import ScalarPoint, ScalarSummary, Task
from clearq.scheduler import Store
from clearq.ui import charts, tables
from clearq.ui.tables import Cell, Row
from clearq.ui.web import render, store_of

STATS = ("last", "min", "max")
MAX_COLUMNS = 20
MAX_COMPARED = 20
POINTS_PER_SERIES = 500


@dataclass(frozen=True)
class Column:
    """A chosen column: a metric's statistic, or a parameter."""

    kind: str  # "metric" or "param"
    key: str
    stat: str = "last"

    @property
    def label(self) -> str:
        """The column's heading."""
        if self.kind == "param":
            return self.key
        return self.key if self.stat == "last" else f"{self.key} ({self.stat})"

    @property
    def query(self) -> tuple[str, str]:
        """The (name, value) that asks for this column again."""
        value = self.key if self.stat == "last" else f"{self.key}:{self.stat}"
        return self.kind, value


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for v in values for part in v.split(",") if part.strip()]


def _metric(text: str) -> Column:
    key, _, stat = text.partition(":") if text.rsplit(":", 1)[-1] in STATS else (text, "", "")
    if "/" not in key:
        raise InvalidInput(f"metric column {text!r}: give title/series, e.g. loss/train")
    return Column("metric", key, stat or "last")


def columns_of(request: Request) -> list[Column]:
    """The columns the query string asks for."""
    found = [_metric(m) for m in _split(request.query_params.getlist("metric"))]
    found += [Column("param", p) for p in _split(request.query_params.getlist("param"))]
    if len(found) > MAX_COLUMNS:
        raise InvalidInput(f"at most {MAX_COLUMNS} chosen columns")
    return found


def column_query(columns: Sequence[Column]) -> list[tuple[str, str]]:
    """The query string items that ask for ``columns``."""
    return [c.query for c in columns]


def _value(task: Task, summary: dict[tuple[str, str], ScalarSummary], column: Column) -> str:
    if column.kind == "param":
        return task.parameters.get(column.key, "-")
    title, _, series = column.key.rpartition("/")
    found = summary.get((title, series))
    return "-" if found is None else f"{getattr(found, column.stat):.6g}"


def compared_rows(
    store: Store, tasks: Sequence[Task], rows: Sequence[Row], columns: Sequence[Column]
) -> list[Row]:
    """The tasks table's rows with a selection box first and the chosen columns last."""
    summaries = store.reported.summaries([t.id for t in tasks]) if columns else {}
    out = []
    for task, row in zip(tasks, rows, strict=True):
        extra = tuple(Cell(_value(task, summaries.get(task.id, {}), c), cls="num") for c in columns)
        out.append(Row(id=row.id, cells=(Cell("", check=str(task.id)), *row.cells, *extra)))
    return out


def _task_ids(request: Request) -> list[uuid.UUID]:
    ids = []
    for given in _split(request.query_params.getlist("task")):
        try:
            ids.append(uuid.UUID(given))
        except ValueError:
            raise InvalidInput(f"{given!r} is not a task id") from None
    if not ids:
        raise InvalidInput("choose the tasks to compare: tick them in the tasks table")
    if len(ids) > MAX_COMPARED:
        raise InvalidInput(f"compare at most {MAX_COMPARED} tasks at once")
    return list(dict.fromkeys(ids))


def scalar_panels(named: Sequence[tuple[str, Sequence[ScalarPoint]]]) -> list[charts.Panel]:
    """One chart per scalar title, a line per (task, series), over the union of iterations."""
    by_title: dict[str, dict[str, dict[int, float]]] = {}
    for label, points in named:
        for p in points:
            lines = by_title.setdefault(p.title, {})
            lines.setdefault(f"{label} · {p.series}", {})[p.iteration] = p.value
    panels = []
    for title, lines in sorted(by_title.items()):
        x = sorted({i for values in lines.values() for i in values})
        series = [
            charts.Series(label, [values.get(i) for i in x]) for label, values in lines.items()
        ]
        panels.append(
            charts.Panel(
                id=f"compare-{title}",
                title=title,
                x=[float(i) for i in x],
                series=series,
                time=False,
                span_gaps=True,
            )
        )
    return panels


def _labels(tasks: Sequence[Task]) -> list[str]:
    names = [t.name for t in tasks]
    return [t.name if names.count(t.name) == 1 else f"{t.name} ({str(t.id)[:8]})" for t in tasks]


def compare_charts(request: Request) -> Response:
    """GET /api/compare/scalars?task=ID&task=ID: the tasks' scalars, a chart per title."""
    store = store_of(request)
    compared = [store.tasks.get(t) for t in _task_ids(request)]
    named = [
        (label, store.views.scalar_series(t.id, points=POINTS_PER_SERIES))
        for label, t in zip(_labels(compared), compared, strict=True)
    ]
    return JSONResponse([p.as_json() for p in scalar_panels(named)])


def compare_page(request: Request) -> Response:
    """GET /compare?task=ID&task=ID: the tasks side by side, their scalars on shared charts."""
    store = store_of(request)
    ids = _task_ids(request)
    compared = [store.tasks.get(t) for t in ids]
    names = sorted({k for t in compared for k in t.parameters})
    differing = [k for k in names if len({t.parameters.get(k) for t in compared}) > 1]
    summaries = store.reported.summaries(ids)
    keys = sorted({k for s in summaries.values() for k in s})
    rows = [
        Row(
            id=str(t.id),
            cells=(
                Cell(label, href=tables.task_href(t.id)),
                tables.status_cell(t.status.value),
                *(Cell(t.parameters.get(k, "-")) for k in differing),
                *(Cell(_last(summaries[t.id].get(k)), cls="num") for k in keys),
            ),
        )
        for label, t in zip(_labels(compared), compared, strict=True)
    ]
    columns = ["task", "status", *differing, *(f"{t}/{s}" for t, s in keys)]
    query = "&".join(f"task={t}" for t in ids)
    return render(
        request,
        "compare.html",
        title="Compare tasks",
        columns=columns,
        rows=rows,
        charts=f"/api/compare/scalars?{query}",
    )


def _last(summary: ScalarSummary | None) -> str:
    return "-" if summary is None else f"{summary.last:.6g}"
