"""tasks.environment

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

A task's own environment variables (``TaskSpec.environment``): what its process and
setup script get besides the agent's allow-listed variables. NULL reads as none.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (never a batch operation on tasks: see 0004).
    op.add_column("tasks", sa.Column("environment", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "environment")
