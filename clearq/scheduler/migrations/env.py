"""Alembic environment: runs on the connection clearq hands it (see clearq.scheduler.migrate)."""

from __future__ import annotations

from alembic import context

from clearq.errors import SchemaError
from clearq.scheduler.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise SchemaError("run migrations through `clearq db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
