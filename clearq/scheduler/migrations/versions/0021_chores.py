"""chores: whose turn it is to run a fleet-wide chore (agents' retention), and when next

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01

One row per chore (``retention``): the agent whose UPDATE moves ``next_at`` past now runs
it, the others see a time in the future and skip it (``clearq.scheduler.cleanup``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chores",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chores")),
    )


def downgrade() -> None:
    op.drop_table("chores")
