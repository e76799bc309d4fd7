"""The counter as a completeness check: the listing's total, the last complete walk, and the
pass that owns a source's resume mark.

Revision ID: 0003_i8
Revises: 0002
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_i8"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("unfinished_by", sa.Text, nullable=True))
        batch.add_column(sa.Column("listed_total", sa.Integer, nullable=True))
        batch.add_column(sa.Column("walked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("walk_seen", sa.Integer, nullable=True))
        batch.add_column(sa.Column("walk_total", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("walk_total")
        batch.drop_column("walk_seen")
        batch.drop_column("walked_at")
        batch.drop_column("listed_total")
        batch.drop_column("unfinished_by")
