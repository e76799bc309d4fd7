"""Remember when a source's earliest unfinished pass began, so the next pass resumes it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("unfinished_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_article_sources_source_first_seen", "article_sources", ["source", "first_seen"]
    )


def downgrade() -> None:
    op.drop_index("ix_article_sources_source_first_seen", table_name="article_sources")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("unfinished_since")
