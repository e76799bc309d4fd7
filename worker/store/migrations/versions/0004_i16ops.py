"""Remember on which page, and in which pass, a source first listed an article (`worker why`).

Revision ID: 0004_i16ops
Revises: 0003_i8
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_i16ops"
down_revision: str | None = "0003_i8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("article_sources") as batch:
        batch.add_column(sa.Column("page", sa.Integer, nullable=True))
        batch.add_column(sa.Column("pass_started", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_sources") as batch:
        batch.drop_column("pass_started")
        batch.drop_column("page")
