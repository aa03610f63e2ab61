"""Schema migrations with Alembic, run from inside the package.

``clearq db upgrade`` calls :func:`upgrade`; a store opened on an empty database creates
the schema itself. Concurrent upgrades are serialised (an advisory lock on PostgreSQL,
the write lock on SQLite), so agents starting together are safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Connection

from clearq.errors import SchemaError
from clearq.scheduler.engine import Database
from clearq.scheduler.revision import SCHEMA_REVISION as SCHEMA_REVISION

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any fixed 64-bit number: the key of the advisory lock that serialises upgrades.
_PG_UPGRADE_LOCK = 0x636C65617271


def _config(conn: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The revision of the newest migration, read from the migrations themselves."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise SchemaError("clearq ships no migrations: the installation is broken")
    return head


def current_revision(db: Database) -> str | None:
    """The revision the database is at; None when it has no clearq schema."""
    with db.read() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return versions[0] if versions else None


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to ``revision``; a database already there is left as is."""
    from alembic import command
    from alembic.util import CommandError

    with db.write() as conn:
        if db.is_postgres:
            # A migration may rewrite a big table: no statement timeout for it.
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_UPGRADE_LOCK})
        try:
            command.upgrade(_config(conn), revision)
        except CommandError as e:
            raise SchemaError(
                f"cannot upgrade the schema to {revision}: {e}. A database written by a "
                "newer clearq needs that clearq: upgrade clearq on this machine."
            ) from e


def ensure_schema(db: Database, *, create_if_empty: bool = True) -> None:
    """Check the schema is this clearq's; create it on an empty database.

    Raises SchemaError, saying what to run, when the database is behind or ahead.
    """
    current = current_revision(db)
    head = SCHEMA_REVISION
    if current == head:
        return
    if current is None and create_if_empty:
        upgrade(db)
        return
    if current is None:
        raise SchemaError(
            f"{db.url.render_as_string()} has no clearq schema: run `clearq db upgrade`"
        )
    if not _known(current):
        raise SchemaError(
            f"the database is at schema revision {current}, which this clearq does not know: "
            "it was written by a newer clearq. Upgrade clearq on this machine."
        )
    raise SchemaError(
        f"the database schema is at {current}, this clearq needs {head}: run `clearq db upgrade`"
    )
