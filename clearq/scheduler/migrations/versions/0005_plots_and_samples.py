"""task_plots and task_samples

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

What a run reports beyond scalars: plots (plotly figures as JSON) and debug samples
(a row per image, audio, video, HTML or other file kept under the task's output location).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _keyed(table: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        table,
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("series", sa.String(length=255), nullable=False),
        sa.Column("iteration", sa.BigInteger(), nullable=False),
        *columns,
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f(f"fk_{table}_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    )
    op.create_index(f"ix_{table}_task_id_title_series", table, ["task_id", "title", "series"])


def upgrade() -> None:
    _keyed(
        "task_plots",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("figure", sa.JSON(), nullable=False),
    )
    _keyed(
        "task_samples",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("task_samples")
    op.drop_table("task_plots")
