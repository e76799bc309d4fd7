"""The article's text (a feed's `content:encoded`, the REST API's `content` or its own page),
capped at 100,000 characters, and the state of its page (`[sources.article]`): fetched when,
failed how many times; reposts: the article's fingerprint and the aliases of a story.

Revision ID: 0006_i14
Revises: 0005_i9
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_i14"
down_revision: str | None = "0005_i9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("articles") as batch:
        batch.add_column(sa.Column("body", sa.Text, nullable=True))
        batch.add_column(sa.Column("page_fetched", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("page_tries", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("fingerprint", sa.Text, nullable=True))
    op.create_index("ix_articles_fingerprint_first_seen", "articles", ["fingerprint", "first_seen"])
    op.create_table(
        "article_aliases",
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url", name="pk_article_aliases"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_article_aliases_article_id_articles",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("article_aliases")
    op.drop_index("ix_articles_fingerprint_first_seen", "articles")
    with op.batch_alter_table("articles") as batch:
        batch.drop_column("fingerprint")
        batch.drop_column("page_tries")
        batch.drop_column("page_fetched")
        batch.drop_column("body")
