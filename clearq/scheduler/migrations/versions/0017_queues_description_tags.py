"""queues.description and queues.tags: what a queue is for, for people

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

``clearq queue create|edit --description ... --tag ...``, shown by ``queue list|show``.
NULL: no description, no tags (queues made before keep none).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("queues", sa.Column("description", sa.Text()))
    op.add_column("queues", sa.Column("tags", sa.JSON()))


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place (no batch).
    op.drop_column("queues", "tags")
    op.drop_column("queues", "description")
