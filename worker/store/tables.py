"""Table definitions (SQLAlchemy Core) and the UTC timestamp type.

The Alembic migrations in `migrations/versions/` create exactly this schema; a test compares the
two on SQLite and PostgreSQL, so change both together (`alembic revision --autogenerate` helps).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.naming import conv

STATUSES = ("pending", "sent", "failed")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _sqlite_text(value: datetime) -> str:
    """A naive datetime as SQLAlchemy's SQLite dialect stores it: "2025-03-01 12:00:00.000000"."""
    return value.isoformat(" ", "microseconds")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime in and out, on every database.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so the value is stored as naive UTC
    and given `tzinfo=UTC` again when read. A naive datetime is refused (ValueError): the caller
    must say which zone it means.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is not UTC:  # (UTC already: the usual case, nothing to convert)
            if value.tzinfo is None or value.utcoffset() is None:
                raise ValueError(
                    f"naive datetime {value.isoformat()}: timestamps must be timezone-aware"
                )
            value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        process = super().bind_processor(dialect)  # process_bind_param, then the dialect's own
        if dialect.name != "sqlite" or process is None:
            return process
        # SQLite stores a datetime as text, which SQLAlchemy formats from a dict ("%(year)04d-..")
        # after process_bind_param: ~15 % of store_page's CPU. isoformat() writes the same text
        # in C, in one step for the usual UTC value. It is used only if it gives SQLAlchemy's
        # text for these probes; were SQLAlchemy's format to change, its processor is kept.
        probes = (
            datetime(1, 2, 3, 4, 5, 6, 7, tzinfo=UTC),
            datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC),
        )
        if any(process(p) != _sqlite_text(p.replace(tzinfo=None)) for p in probes):
            return process  # pragma: no cover - SQLAlchemy changed its SQLite datetime format
        to_naive_utc = self.process_bind_param

        def process_sqlite(value: Any) -> str | None:
            if value.__class__ is datetime and value.tzinfo is UTC:  # the usual case, in one step
                return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"
            value = to_naive_utc(value, dialect)
            return None if value is None else _sqlite_text(value)

        return process_sqlite

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


articles = sa.Table(
    "articles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("published", UTCDateTime, nullable=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("body", sa.Text, nullable=True),  # the article's text, when a source gave it
    # its own page ([sources.article]): when it was read, and the failed tries before that
    sa.Column("page_fetched", UTCDateTime, nullable=True),
    sa.Column("page_tries", sa.Integer, nullable=False, server_default="0"),
    # the site's host and its normalised title + summary, hashed (reposts: see worker.store.pages)
    sa.Column("fingerprint", sa.Text, nullable=True),
    sa.Column("source", sa.Text, nullable=False),  # the first source that listed it
    sa.UniqueConstraint("url"),
    # list_articles: newest first
    sa.Index(None, "published", "first_seen"),
    sa.Index(None, "fingerprint", "first_seen"),
)

# A second URL of a stored story (a repost under an edited slug, a copy in another category):
# listed again, it is that article.
article_aliases = sa.Table(
    "article_aliases",
    metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column(
        "article_id",
        sa.Integer,
        sa.ForeignKey("articles.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("first_seen", UTCDateTime, nullable=False),
)

# "New for a source" = no row here yet.
article_sources = sa.Table(
    "article_sources",
    metadata,
    sa.Column(
        "article_id",
        sa.Integer,
        sa.ForeignKey("articles.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    # where the source first listed it (`worker why`); NULL for rows stored before 0004_i16ops
    sa.Column("page", sa.Integer, nullable=True),  # listing page number, 1 = the first
    sa.Column("pass_started", UTCDateTime, nullable=True),  # when that pass began
    # the text this source showed (NULL in rows stored before migration 0005_i9: articles' text),
    # and whether the source's listing is on the article's own host ("own" text)
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("summary", sa.Text, nullable=True),
    sa.Column("published", UTCDateTime, nullable=True),
    sa.Column("own", sa.Boolean, nullable=False, server_default=sa.false()),
    # list_articles(source=...)
    sa.Index(None, "source", "article_id"),
    # urls_listed_since (resuming an unfinished pass)
    sa.Index(None, "source", "first_seen"),
)

matches = sa.Table(
    "matches",
    metadata,
    sa.Column(
        "article_id",
        sa.Integer,
        sa.ForeignKey("articles.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("watchlist", sa.Text, primary_key=True),
    sa.Column("keywords", sa.JSON, nullable=False),  # list of the matched keywords
    sa.Column("matched_at", UTCDateTime, nullable=False),
    # list_articles(watchlist=...)
    sa.Index(None, "watchlist", "article_id"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "article_id",
        sa.Integer,
        sa.ForeignKey("articles.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("watchlist", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),  # NULL = due now
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("done_targets", sa.JSON, nullable=False),  # indexes of the channel's URLs done
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    # the source whose listing queued it: the alert shows the text that source showed
    sa.Column("source", sa.Text, nullable=True),
    # held by the channel ("quiet": its quiet hours, "rate": its rate limit) until folded into a
    # digest; digest_id: the digest message that carries it (then it is sent with that message)
    sa.Column("hold", sa.Text, nullable=True),
    sa.Column("digest_id", sa.Integer, nullable=True),
    sa.UniqueConstraint("article_id", "watchlist", "channel"),
    # named as migration 0001 created it (the naming convention prefixed its name a second
    # time), so that a database created from this module and a migrated one are the same
    sa.CheckConstraint(
        "status IN ('pending', 'sent', 'failed')", name=conv("ck_deliveries_ck_deliveries_status")
    ),
    # claim_due / next_due_at / list_alerts(status=...) / counts
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "digest_id"),
)

# One message for several deliveries, sent and retried as a whole (migration 0006): a
# watchlist's digest ("digest") or the alerts a channel held in its quiet hours or beyond its
# rate limit ("held"). Its deliveries point to it (deliveries.digest_id), so each is in one only.
digests = sa.Table(
    "digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("watchlist", sa.Text, nullable=True),  # a "digest" digest's watchlist
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("done_targets", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
    sa.CheckConstraint("kind IN ('digest', 'held')", name="kind"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "channel", "watchlist", "created"),
)

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("baselined_at", UTCDateTime, nullable=True),  # first complete pass finished
    sa.Column("last_pass_at", UTCDateTime, nullable=True),
    sa.Column("last_success_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_pages", sa.Integer, nullable=True),
    sa.Column("last_new", sa.Integer, nullable=True),
    sa.Column("last_alerts", sa.Integer, nullable=True),
    sa.Column("last_duration", sa.Float, nullable=True),
    # start of the earliest pass that did not finish (cut off by an error, a stop or a crash):
    # the next pass does not stop early before it has met what that pass stored
    sa.Column("unfinished_since", UTCDateTime, nullable=True),
    # the pass that owns that mark (only it clears it); NULL: its pass ended cut off and the
    # next pass takes it over
    sa.Column("unfinished_by", sa.Text, nullable=True),
    # the listing's "of Z" counter at the end of the last pass that finished (less what that
    # pass was still looking for, when it stopped before finding it)
    sa.Column("listed_total", sa.Integer, nullable=True),
    # the last walk of the whole listing that reached its end: when, the distinct articles it
    # saw listed and the counter's total it is compared with
    sa.Column("walked_at", UTCDateTime, nullable=True),
    sa.Column("walk_seen", sa.Integer, nullable=True),
    sa.Column("walk_total", sa.Integer, nullable=True),
    # failed passes in a row (0 after a success): the breaker spaces out the next passes
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    # the validators of the last answer to the first URL of a pass (conditional GET)
    sa.Column("validated_url", sa.Text, nullable=True),
    sa.Column("etag", sa.Text, nullable=True),
    sa.Column("last_modified", sa.Text, nullable=True),
)

# robots.txt per origin ("http://host:port"), shared by every process on the database
robots_txt = sa.Table(
    "robots_txt",
    metadata,
    sa.Column("origin", sa.Text, primary_key=True),
    sa.Column("fetched_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),  # the HTTP status robots.txt answered
    sa.Column("body", sa.Text, nullable=False),
)

# The watchdog's incidents (migration 0006): a source failing pass after pass ("failing"),
# bringing nothing new for too long ("stale"), a channel whose deliveries fail for good
# ("channel"). "suspect": failures counted (`streak`), not yet an incident. One message when an
# incident opens (open_sent_at) and one when it closes (close_sent_at): since migration 0010 these
# record when the messages were queued (watchdog_messages), so a restart neither repeats nor
# forgets one.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("streak", sa.Integer, nullable=False, server_default="0"),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("opened_at", UTCDateTime, nullable=True),
    sa.Column("closed_at", UTCDateTime, nullable=True),
    sa.Column("open_sent_at", UTCDateTime, nullable=True),
    sa.Column("close_sent_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("status IN ('suspect', 'open', 'closed')", name="status"),
    sa.Index(None, "kind", "subject", "status"),
)

# The watchdog's messages (migration 0010): one row per message (an incident's "open" or
# "close") and channel, queued when the incident opens or closes (incidents.open_sent_at /
# close_sent_at then record when it was queued) and sent like a delivery: claimed under a lease,
# retried with backoff, "sent" once the channel took it; "skipped": an opening not sent yet when
# the incident closed (neither is told). A channel sends its messages in order, one at a time.
watchdog_messages = sa.Table(
    "watchdog_messages",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "incident_id",
        sa.Integer,
        sa.ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Column("done_targets", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed', 'skipped')", name="status"),
    sa.CheckConstraint("event IN ('open', 'close')", name="event"),
    sa.Index(None, "channel", "status"),
    sa.Index(None, "incident_id"),
)

# A fleet (migration 0011): each source's next due time, shared by the replicas on one
# PostgreSQL; a replica claims a due source (FOR UPDATE SKIP LOCKED) under a lease it renews
# while the pass runs, then sets the next due time and clears the claim.
source_schedule = sa.Table(
    "source_schedule",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("next_due", UTCDateTime, nullable=False),
    sa.Column("claimed_by", sa.Text, nullable=True),
    sa.Column("claimed_until", UTCDateTime, nullable=True),
    sa.Index(None, "next_due"),
)

# the replicas of a fleet: a heartbeat every few seconds (/healthz lists the live ones)
replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("host", sa.Text, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("heartbeat", UTCDateTime, nullable=False),
)
