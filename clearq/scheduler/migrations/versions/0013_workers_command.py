"""workers.command: an operator's drain or pause

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

``clearq workers drain|pause NAME`` stores what the operator asked in the worker's row;
the agent reads it before it claims (and on a NOTIFY), ``resume`` clears it. NULL: serve.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("workers", sa.Column("command", sa.String(16)))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (no batch).
    op.drop_column("workers", "command")
