"""tasks.nodes and gang_members

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

A task may ask for N ranks on N agents (``nodes``); its queue entry is then held by the
gang former (``held_by = 'gang'``) and agents join it in ``gang_members`` until all N
are there, when the last one starts it for all of them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (never a batch operation: see 0004).
    op.add_column("tasks", sa.Column("nodes", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "gang_members",
        sa.Column(
            "task_id", sa.Uuid(), sa.ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("rank", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gang_members")
    op.drop_column("tasks", "nodes")
