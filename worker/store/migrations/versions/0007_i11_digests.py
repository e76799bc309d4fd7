"""Digests: one message for several deliveries (a watchlist's digest, alerts held by a
channel's quiet hours or rate limit), sent and retried as a whole; watchdog incidents.

Revision ID: 0007_i11
Revises: 0006_i14
Create Date: 2026-12-02 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_i11"
down_revision: str | None = "0006_i14"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digests",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("watchlist", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Text, nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_targets", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_digests_status")
        ),
        sa.CheckConstraint("kind IN ('digest', 'held')", name=op.f("ck_digests_kind")),
    )
    op.create_index(
        op.f("ix_digests_status_next_attempt_at"), "digests", ["status", "next_attempt_at"]
    )
    op.create_index(
        op.f("ix_digests_channel_watchlist_created"), "digests", ["channel", "watchlist", "created"]
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("streak", sa.Integer, nullable=False, server_default="0"),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("open_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('suspect', 'open', 'closed')", name=op.f("ck_incidents_status")
        ),
    )
    op.create_index(
        op.f("ix_incidents_kind_subject_status"), "incidents", ["kind", "subject", "status"]
    )
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("hold", sa.Text, nullable=True))
        batch.add_column(sa.Column("digest_id", sa.Integer, nullable=True))
        batch.create_index(batch.f("ix_deliveries_digest_id"), ["digest_id"])


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index(batch.f("ix_deliveries_digest_id"))
        batch.drop_column("digest_id")
        batch.drop_column("hold")
    op.drop_index(op.f("ix_incidents_kind_subject_status"), "incidents")
    op.drop_table("incidents")
    op.drop_index(op.f("ix_digests_channel_watchlist_created"), "digests")
    op.drop_index(op.f("ix_digests_status_next_attempt_at"), "digests")
    op.drop_table("digests")
