"""The person-facing view of one task, for ``clearq task show``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from clearq.cli.output import status_text, table, timestamp

if TYPE_CHECKING:
    from clearq.models import Submodule, Task


def task_view(task: Task) -> RenderableType:
    """Every field of a task a person may want, in labelled sections."""
    parts: list[RenderableType] = [_fields(_summary(task)), _section("run", _fields(_run(task)))]
    parts.append(_section("code", _fields(_code(task))))
    parts.append(_section("environment", _fields(_environment(task))))
    parts.append(_section("parameters", _parameters(task)))
    return Group(*parts)


def _section(title: str, body: RenderableType) -> Group:
    return Group(Text(""), Text(title, style="bold underline"), body)


def _fields(rows: list[tuple[str, str | Text]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    return grid


def _summary(t: Task) -> list[tuple[str, str | Text]]:
    return [
        ("id", str(t.id)),
        ("name", t.name),
        ("project", t.project),
        ("type", t.type),
        ("status", status_text(t.status)),
        ("reason", t.status_reason or "-"),
        ("tags", ", ".join(t.tags) or "-"),
        ("comment", t.comment or "-"),
        ("parent", str(t.parent_id) if t.parent_id else "-"),
        ("created", timestamp(t.created_at)),
        ("updated", timestamp(t.updated_at)),
        ("archived", timestamp(t.archived_at)),
    ]


def _run(t: Task) -> list[tuple[str, str | Text]]:
    limit = "-" if t.max_run_seconds is None else f"{t.max_run_seconds:g}s"
    return [
        ("queue", t.queue or "-"),
        ("worker", t.worker or "-"),
        ("attempt", f"{t.attempt} (tries {t.tries} of {t.max_attempts})"),
        ("queued", timestamp(t.queued_at)),
        ("started", timestamp(t.started_at)),
        ("finished", timestamp(t.finished_at)),
        ("lease expires", timestamp(t.lease_expires_at)),
        ("stop requested", timestamp(t.stop_requested_at)),
        ("exit code", "-" if t.exit_code is None else str(t.exit_code)),
        ("time limit", limit),
        ("output uri", t.output_uri or "-"),
    ]


def _code(t: Task) -> list[tuple[str, str | Text]]:
    s = t.script
    return [
        ("repository", s.repository or "-"),
        ("branch", s.branch or "-"),
        ("commit", s.commit or "-"),
        ("entry point", s.entry_point or s.module or "-"),
        ("working dir", s.working_dir),
        ("arguments", " ".join(s.arguments) or "-"),
        ("diff", f"{len(s.diff.splitlines())} line(s)" if s.diff else "-"),
        ("untracked", ", ".join(sorted(f.path for f in s.untracked)) or "-"),
        ("submodules", "\n".join(_submodules(s.submodules)) or "-"),
        ("source", f"{len(s.source.splitlines())} line(s)" if s.source else "-"),
    ]


def _submodules(submodules: Sequence[Submodule], where: str = "") -> list[str]:
    """One line per submodule, nested ones by their full path: path, commit, changes."""
    lines = []
    for sub in submodules:
        changed = " (changed)" if sub.diff or sub.untracked else ""
        lines.append(f"{where}{sub.path} {sub.commit[:12]}{changed}")
        lines += _submodules(sub.submodules, f"{where}{sub.path}/")
    return lines


def _environment(t: Task) -> list[tuple[str, str | Text]]:
    e, c = t.env, t.container
    return [
        ("manager", e.manager.value),
        ("python", e.python or t.script.python_version or "-"),
        ("requirements", "\n".join(e.requirements) or e.lock_file or "-"),
        ("install first", "\n".join(e.install_first) or "-"),
        ("no build isolation", "\n".join(e.no_build_isolation) or "-"),
        ("image", c.image or "-"),
        ("variables", " ".join(sorted(t.environment)) or "-"),
    ]


def _parameters(t: Task) -> Table | Text:
    if not t.parameters:
        return Text("-")
    grid = table("NAME", "VALUE")
    for name in sorted(t.parameters):
        grid.add_row(Text(name), Text(t.parameters[name]))
    return grid
