"""Initial schema: articles, article_sources, matches, deliveries, sources.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool = True) -> sa.Column:
    # worker.store.tables.UTCDateTime stores as DateTime(timezone=True)
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False, server_default=""),
        _ts("published"),
        _ts("first_seen", nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_articles"),
        sa.UniqueConstraint("url", name="uq_articles_url"),
    )
    op.create_index("ix_articles_published_first_seen", "articles", ["published", "first_seen"])

    op.create_table(
        "article_sources",
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        _ts("first_seen", nullable=False),
        sa.PrimaryKeyConstraint("article_id", "source", name="pk_article_sources"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_article_sources_article_id_articles",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_article_sources_source_article_id", "article_sources", ["source", "article_id"]
    )

    op.create_table(
        "matches",
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("watchlist", sa.Text, nullable=False),
        sa.Column("keywords", sa.JSON, nullable=False),
        _ts("matched_at", nullable=False),
        sa.PrimaryKeyConstraint("article_id", "watchlist", name="pk_matches"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_matches_article_id_articles",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_matches_watchlist_article_id", "matches", ["watchlist", "article_id"])

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("article_id", sa.Integer, nullable=False),
        sa.Column("watchlist", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        _ts("next_attempt_at"),
        sa.Column("claimed_by", sa.Text, nullable=True),
        _ts("claimed_until"),
        sa.Column("done_targets", sa.JSON, nullable=False),
        _ts("created", nullable=False),
        _ts("sent_at"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.ForeignKeyConstraint(
            ["article_id"],
            ["articles.id"],
            name="fk_deliveries_article_id_articles",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "article_id", "watchlist", "channel", name="uq_deliveries_article_id_watchlist_channel"
        ),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="ck_deliveries_status"),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )

    op.create_table(
        "sources",
        sa.Column("name", sa.Text, nullable=False),
        _ts("baselined_at"),
        _ts("last_pass_at"),
        _ts("last_success_at"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_pages", sa.Integer, nullable=True),
        sa.Column("last_new", sa.Integer, nullable=True),
        sa.Column("last_alerts", sa.Integer, nullable=True),
        sa.Column("last_duration", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_sources"),
    )


def downgrade() -> None:
    op.drop_table("sources")
    op.drop_table("deliveries")
    op.drop_table("matches")
    op.drop_table("article_sources")
    op.drop_table("articles")
