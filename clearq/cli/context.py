"""What every subcommand shares: the settings and the database they open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from clearq.config import Settings, load_settings

if TYPE_CHECKING:
    from clearq.scheduler.engine import Database
    from clearq.scheduler.store import Store


@dataclass(frozen=True)
class CliContext:
    """The global options, resolved lazily so ``--help`` never touches the database."""

    database_url: str | None = None

    def settings(self) -> Settings:
        """The settings from the environment, the ``--database-url`` option applied."""
        settings = load_settings()  # ConfigError names the variable that is wrong
        if self.database_url:
            return settings.replace(database_url=self.database_url)
        return settings

    @contextmanager
    def store(self) -> Iterator[Store]:
        """A Store on the configured database, closed on exit."""
        from clearq.scheduler.store import Store  # SQLAlchemy loads only for a command that asks

        settings = self.settings()
        with Store(settings.resolved_database_url, settings=settings) as store:
            yield store

    @contextmanager
    def database(self) -> Iterator[Database]:
        """The bare database, for schema commands that must not create the schema."""
        from clearq.scheduler.engine import Database

        settings = self.settings()
        db = Database(settings.resolved_database_url, settings=settings)
        try:
            yield db
        finally:
            db.dispose()


def cli_context(ctx: typer.Context) -> CliContext:
    """The CliContext the root callback stored in ``ctx``."""
    found = ctx.find_object(CliContext)
    return found if found is not None else CliContext()
