"""fair share: queues.fair_share, queue_entries.owner, fair_usage

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

A queue may share its turns by user or by project (``queues.fair_share``, with the
half-life of past usage). Its entries name their owner, indexed so the claim reads each
owner's first entry; ``fair_usage`` keeps each owner's decayed usage, updated when a run
ends (``clearq.scheduler.fair``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch operation (no table rebuild on SQLite).
    op.add_column("queues", sa.Column("fair_share", sa.String(16)))
    op.add_column("queues", sa.Column("fair_half_life", sa.Float()))
    op.add_column("queue_entries", sa.Column("owner", sa.Text()))
    op.create_index(
        "ix_queue_entries_fair_order",
        "queue_entries",
        ["queue_id", "owner", sa.text("priority DESC"), "id"],
    )
    op.create_table(
        "fair_usage",
        sa.Column("queue_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("score", sa.Float()),
        sa.ForeignKeyConstraint(
            ["queue_id"],
            ["queues.id"],
            name="fk_fair_usage_queue_id_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("queue_id", "owner", name="pk_fair_usage"),
    )


def downgrade() -> None:
    op.drop_table("fair_usage")
    op.drop_index("ix_queue_entries_fair_order", table_name="queue_entries")
    op.drop_column("queue_entries", "owner")
    op.drop_column("queues", "fair_half_life")
    op.drop_column("queues", "fair_share")
