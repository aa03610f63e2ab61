"""The schema revision this clearq speaks (standard library only, imported by every opener)."""

SCHEMA_REVISION = "0023"
"""The newest migration's revision. Checked against the migrations by a test; kept as a
constant so that opening a store needs no Alembic import (Task.init and every CLI call
pay for imports)."""
