"""The watchdog's messages on a queue of their own: one row per message and channel, claimed
under a lease, retried with backoff, marked sent (like a delivery), so that a message about the
worker itself is neither lost nor sent twice across a restart, and a failing channel holds up no
other.

Revision ID: 0010_i11wd
Revises: 0008_i13
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_i11wd"
down_revision: str | None = "0008_i13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "watchdog_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("incident_id", sa.Integer, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.Text, nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_targets", sa.JSON, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_watchdog_messages_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed', 'skipped')",
            name=op.f("ck_watchdog_messages_status"),
        ),
        sa.CheckConstraint("event IN ('open', 'close')", name=op.f("ck_watchdog_messages_event")),
    )
    op.create_index(
        op.f("ix_watchdog_messages_channel_status"), "watchdog_messages", ["channel", "status"]
    )
    op.create_index(op.f("ix_watchdog_messages_incident_id"), "watchdog_messages", ["incident_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_watchdog_messages_incident_id"), "watchdog_messages")
    op.drop_index(op.f("ix_watchdog_messages_channel_status"), "watchdog_messages")
    op.drop_table("watchdog_messages")
