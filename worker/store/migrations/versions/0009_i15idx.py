"""Indexes for the queries the store runs at scale (issue 15): the articles listing's order on
PostgreSQL, a channel's sends by time.

Revision ID: 0009_i15idx
Revises: 0008_i13
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_i15idx"
down_revision: str | None = "0008_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # `ORDER BY published DESC NULLS LAST, first_seen DESC, id DESC` (list_articles): an
        # ascending index read backwards gives NULLS FIRST on PostgreSQL, so it sorted the table
        op.create_index(
            "ix_articles_newest",
            "articles",
            [sa.text("published DESC NULLS LAST"), sa.text("first_seen DESC"), sa.text("id DESC")],
        )
    op.create_index("ix_deliveries_channel_sent_at", "deliveries", ["channel", "sent_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_channel_sent_at", table_name="deliveries")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_articles_newest", table_name="articles")
