"""A good citizen: robots.txt per origin, validators for conditional GET, the breaker's count.

Revision ID: 0008_i13
Revises: 0007_i11
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_i13"
down_revision: str | None = "0007_i11"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("failures", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("validated_url", sa.Text, nullable=True))
        batch.add_column(sa.Column("etag", sa.Text, nullable=True))
        batch.add_column(sa.Column("last_modified", sa.Text, nullable=True))
    op.create_table(
        "robots_txt",
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("origin", name="pk_robots_txt"),
    )


def downgrade() -> None:
    op.drop_table("robots_txt")
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("last_modified")
        batch.drop_column("etag")
        batch.drop_column("validated_url")
        batch.drop_column("failures")
