"""Keep the text each source showed for an article, and which source queued each delivery.

An alert then shows the text of the source that listed the article for its watchlist, and text
from a listing on another host never replaces the text of the article's own site.

Revision ID: 0005_i9
Revises: 0004_i16ops
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_i9"
down_revision: str | None = "0004_i16ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("article_sources") as batch:
        batch.add_column(sa.Column("title", sa.Text, nullable=True))
        batch.add_column(sa.Column("summary", sa.Text, nullable=True))
        batch.add_column(sa.Column("published", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("own", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("source", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("source")
    with op.batch_alter_table("article_sources") as batch:
        batch.drop_column("own")
        batch.drop_column("published")
        batch.drop_column("summary")
        batch.drop_column("title")
