"""A fleet: each source's next due time and its claim, the live replicas.

Revision ID: 0011_i13fleet
Revises: 0010_i11wd
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_i13fleet"
down_revision: str | None = "0010_i11wd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_schedule",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.Text, nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("source", name="pk_source_schedule"),
    )
    op.create_index("ix_source_schedule_next_due", "source_schedule", ["next_due"])
    op.create_table(
        "replicas",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replicas"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_index("ix_source_schedule_next_due", table_name="source_schedule")
    op.drop_table("source_schedule")
