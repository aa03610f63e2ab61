"""quotas: limits on a user's or a project's running tasks and GPUs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

One row per limited user (kind ``user``, name = ``tasks.created_by``) or project (kind
``project``): at most ``max_running`` running tasks and ``max_gpus`` GPUs at once, read by
the claim (``clearq.scheduler.quotas``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quotas",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("max_running", sa.Integer()),
        sa.Column("max_gpus", sa.Integer()),
        sa.PrimaryKeyConstraint("kind", "name", name="pk_quotas"),
    )


def downgrade() -> None:
    op.drop_table("quotas")
