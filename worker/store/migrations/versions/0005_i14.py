"""The article's text (a feed's `content:encoded`, the REST API's `content` or its own page),
capped at 100,000 characters, and the state of its page (`[sources.article]`): fetched when,
failed how many times.

Revision ID: 0005_i14
Revises: 0004_i16ops
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_i14"
down_revision: str | None = "0004_i16ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("body", sa.Text, nullable=True))
        batch.add_column(sa.Column("page_fetched", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("page_tries", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("page_tries")
        batch.drop_column("page_fetched")
        batch.drop_column("body")
