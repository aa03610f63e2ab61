"""``clearq db``: create or upgrade the store's schema, and say where it stands."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import JsonFlag, print_json, say
from clearq.errors import SchemaError

if TYPE_CHECKING:
    from clearq.scheduler.engine import Database

app = typer.Typer(help="The store's schema.", no_args_is_help=True)


def _shown(revision: str | None) -> str:
    return revision or "none (empty database)"


def _url(db: Database) -> str:
    return db.url.render_as_string(hide_password=True)


@app.command("upgrade")
def upgrade_command(ctx: typer.Context) -> None:
    """Create the schema, or bring it up to this clearq's revision (twice is a no-op)."""
    from clearq.scheduler.migrate import current_revision, head_revision, upgrade

    with cli_context(ctx).database() as db:
        before = current_revision(db)
        head = head_revision()
        if before == head:
            say(f"{_url(db)} is already at revision {head}: nothing to do")
            return
        upgrade(db)
        after = current_revision(db)
        say(f"upgraded {_url(db)} from revision {_shown(before)} to {after}")


def _advice(db: Database) -> str:
    from clearq.scheduler.migrate import ensure_schema

    try:
        ensure_schema(db, create_if_empty=False)
    except SchemaError as e:
        return str(e)
    return "up to date"


@app.command("status")
def status_command(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the database's schema revision and the one this clearq needs."""
    from clearq.scheduler.migrate import current_revision, head_revision

    with cli_context(ctx).database() as db:
        url, current, head = _url(db), current_revision(db), head_revision()
        advice = _advice(db)
    if as_json:
        print_json(
            {
                "url": url,
                "current_revision": current,
                "head_revision": head,
                "up_to_date": current == head,
            }
        )
        return
    say(f"database: {url}")
    say(f"revision: {_shown(current)} (this clearq needs {head})")
    say(f"state:    {advice}")
