"""The store: articles, matches and the alert delivery queue, on SQLite or PostgreSQL.

Every worker process opens its own `Store`; they coordinate through the database only:
unique keys with `INSERT .. ON CONFLICT DO NOTHING` make storing a page idempotent, and a lease
(`claimed_by`, `claimed_until`) on each delivery row lets several processes drain the queue without
sending one alert twice (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`
serialises writers, and the claim is one conditional `UPDATE .. RETURNING`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.util import CommandError
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from worker.models import AlertPlan, Delivery, Item, PageStored
from worker.store.tables import (
    STATUSES,
    UTCDateTime,
    article_sources,
    articles,
    deliveries,
    matches,
    sources,
)

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MAX_ERROR_CHARS = 1000  # deliveries.last_error / sources.last_error are cut to this
MAX_URL_CHARS = 2048  # longer URLs are not stored (a PostgreSQL btree entry must stay < 2.7 kB)
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
PG_CONNECT_TIMEOUT = 10  # seconds (unless the URL sets connect_timeout)
PG_STATEMENT_TIMEOUT_MS = 120_000  # per statement (unless the URL sets options)
_MIGRATE_LOCK = 0x776F726B6572  # pg_advisory_xact_lock key ("worker") held while migrating
_IN_CHUNK = 500  # ids per `IN (...)` list
_BEGIN = "worker_sqlite_begin"  # execution option: "IMMEDIATE" for SQLite write transactions

T = TypeVar("T")


class StoreError(Exception):
    """The database could not do what was asked (connection, lock timeout, schema, ...)."""


# --- rows returned to the CLI --------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True, slots=True)
class ArticleRow:
    url: str
    title: str
    summary: str
    published: datetime | None
    source: str  # the first source that listed it
    first_seen: datetime
    watchlists: tuple[str, ...]  # names of the watchlists it matched, sorted

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "published": _iso(self.published),
            "source": self.source,
            "first_seen": _iso(self.first_seen),
            "watchlists": list(self.watchlists),
        }


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    watchlist: str
    channel: str
    article_url: str
    title: str
    status: str  # 'pending' | 'sent' | 'failed'
    attempts: int
    last_error: str | None
    created: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "watchlist": self.watchlist,
            "channel": self.channel,
            "article_url": self.article_url,
            "title": self.title,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created": _iso(self.created),
            "sent_at": _iso(self.sent_at),
            "next_attempt_at": _iso(self.next_attempt_at),
        }


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    baselined_at: datetime | None
    last_pass_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_pages: int | None
    last_new: int | None
    last_alerts: int | None
    last_duration: float | None
    unfinished_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "baselined_at": _iso(self.baselined_at),
            "last_pass_at": _iso(self.last_pass_at),
            "last_success_at": _iso(self.last_success_at),
            "last_error": self.last_error,
            "last_pages": self.last_pages,
            "last_new": self.last_new,
            "last_alerts": self.last_alerts,
            "last_duration": self.last_duration,
        }


# --- helpers -------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value.isoformat()}")
    return value.astimezone(UTC)


def _describe(exc: BaseException) -> str:
    """One line about a database error, without the SQL statement and its parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return f"{type(orig if orig is not None else exc).__name__}: {line[:300]}"


def _chunks(values: Sequence[T], size: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:MAX_ERROR_CHARS]


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")


# --- the store -----------------------------------------------------------------------------------


class Store:
    """One process's handle on the database. Thread-safe (a connection pool underneath)."""

    def __init__(self, url: str) -> None:
        try:
            sa_url = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise StoreError("invalid database URL (expected an SQLAlchemy URL)") from None
        backend = sa_url.get_backend_name()
        if backend in ("postgresql", "postgres") and sa_url.drivername in (
            "postgresql",
            "postgres",
        ):
            sa_url = sa_url.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
            backend = "postgresql"
        self.dialect = backend  # "sqlite" or "postgresql"
        self._engine: sa.Engine
        self._write_engine: sa.Engine
        try:
            if backend == "sqlite":
                self._engine = _sqlite_engine(sa_url)
                self._write_engine = self._engine.execution_options(**{_BEGIN: "IMMEDIATE"})
            elif backend == "postgresql":
                self._engine = _pg_engine(sa_url)
                self._write_engine = self._engine
            else:
                raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")
        except SQLAlchemyError as exc:  # e.g. the driver is not installed
            raise StoreError(f"cannot open the database: {_describe(exc)}") from exc
        self._insert: Callable[[sa.Table], Any] = (
            sqlite.insert if backend == "sqlite" else postgresql.insert
        )

    def __repr__(self) -> str:
        return f"Store({self._engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _tx(self, what: str, *, write: bool = True) -> Iterator[sa.Connection]:
        """One transaction; database errors come out as StoreError. SQLite writers BEGIN IMMEDIATE."""
        engine = self._write_engine if write else self._engine
        try:
            with engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"{what}: {_describe(exc)}") from exc

    # --- lifecycle ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op when it is there already).

        Runs in one transaction that first takes a lock (PostgreSQL: an advisory lock; SQLite:
        BEGIN IMMEDIATE), so several processes starting at once migrate one after the other.
        """
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        try:
            with self._tx("migrate") as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK)))
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except CommandError as exc:
            raise StoreError(f"migrate: {exc}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.debug("database ping failed: %s", _describe(exc))
            return False

    # --- crawl side ----------------------------------------------------------------------------

    def is_baselined(self, source: str) -> bool:
        with self._tx("is_baselined", write=False) as conn:
            at = conn.scalar(sa.select(sources.c.baselined_at).where(sources.c.name == source))
        return at is not None

    def mark_baselined(self, source: str, *, at: datetime | None = None) -> None:
        """Record that `source` finished its first complete pass (the first time is kept)."""
        at = _aware(at, "at") if at is not None else _utcnow()
        stmt = self._insert(sources).values(name=source, baselined_at=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sources.c.name],
            set_={
                "baselined_at": sa.func.coalesce(sources.c.baselined_at, stmt.excluded.baselined_at)
            },
        )
        with self._tx("mark_baselined") as conn:
            conn.execute(stmt)

    def begin_pass(self, source: str, *, at: datetime | None = None) -> datetime | None:
        """Record that a pass of `source` starts; return when the earliest unfinished pass began.

        The mark stays until `finish_pass`, so a pass cut off by an error, a stop or a crash
        leaves it behind, and the next pass knows which of its articles it has not caught up to.
        """
        at = _aware(at, "at") if at is not None else _utcnow()
        stmt = self._insert(sources).values(name=source, unfinished_since=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[sources.c.name],
            set_={
                "unfinished_since": sa.func.coalesce(
                    sources.c.unfinished_since, stmt.excluded.unfinished_since
                )
            },
        )
        with self._tx("begin_pass") as conn:
            before = conn.scalar(
                sa.select(sources.c.unfinished_since).where(sources.c.name == source)
            )
            conn.execute(stmt)
        return before

    def finish_pass(self, source: str) -> None:
        """The pass of `source` reached its end: nothing is left to resume."""
        with self._tx("finish_pass") as conn:
            conn.execute(
                sa.update(sources).where(sources.c.name == source).values(unfinished_since=None)
            )

    def urls_listed_since(self, source: str, since: datetime) -> set[str]:
        """Canonical URLs that `source` listed for the first time at or after `since`."""
        since = _aware(since, "since")
        query = (
            sa.select(articles.c.url)
            .join(article_sources, article_sources.c.article_id == articles.c.id)
            .where(article_sources.c.source == source, article_sources.c.first_seen >= since)
        )
        with self._tx("urls_listed_since", write=False) as conn:
            return set(conn.scalars(query))

    def store_page(
        self,
        source: str,
        items: Sequence[Item],
        plan: Callable[[Item], Sequence[AlertPlan]],
        *,
        silent: bool,
        now: datetime | None = None,
    ) -> PageStored:
        """Store one listing page in one transaction; queue alerts for what is new to `source`.

        `plan(item)` is called once for each item this source never listed before; its plans are
        recorded in `matches`, and unless `silent` one delivery per (article, watchlist, channel)
        is queued. Safe to run concurrently in several processes: an article, a source listing and
        a delivery are each stored at most once. Rows are written in key order, so two
        transactions never wait on each other in a cycle (no deadlock on PostgreSQL).
        """
        now = _aware(now, "now") if now is not None else _utcnow()
        page: dict[str, Item] = {}
        for item in items:
            if len(item.url) > MAX_URL_CHARS:
                log.warning("source %s: skipped a URL of %d characters", source, len(item.url))
                continue
            page.setdefault(item.url, item)
        if not page:
            return PageStored(new_for_source=(), new_articles=0, alerts_queued=0)
        urls = sorted(page)

        with self._tx(f"store_page({source})") as conn:
            # (1) the articles nobody stored yet
            insert_articles = (
                self._insert(articles)
                .on_conflict_do_nothing(index_elements=[articles.c.url])
                .returning(articles.c.id)
            )
            new_articles = len(
                conn.execute(
                    insert_articles,
                    [
                        {
                            "url": url,
                            "title": page[url].title,
                            "summary": page[url].summary,
                            "published": page[url].published,
                            "first_seen": now,
                            "source": source,
                        }
                        for url in urls
                    ],
                ).all()
            )
            # (2) every url's id
            ids: dict[str, int] = {}
            for chunk in _chunks(urls):
                query = sa.select(articles.c.url, articles.c.id).where(articles.c.url.in_(chunk))
                ids.update((row.url, row.id) for row in conn.execute(query))
            if len(ids) != len(urls):  # pragma: no cover - would mean a broken unique key
                raise StoreError(f"store_page({source}): {len(urls) - len(ids)} articles vanished")
            # (3) which of them this source lists for the first time
            insert_listing = (
                self._insert(article_sources)
                .on_conflict_do_nothing(
                    index_elements=[article_sources.c.article_id, article_sources.c.source]
                )
                .returning(article_sources.c.article_id)
            )
            new_ids = set(
                conn.execute(
                    insert_listing,
                    [
                        {"article_id": ids[url], "source": source, "first_seen": now}
                        for url in sorted(urls, key=ids.__getitem__)
                    ],
                ).scalars()
            )
            new_for_source = tuple(url for url in page if ids[url] in new_ids)

            # (4) matches and deliveries for the new ones
            match_rows: dict[tuple[int, str], dict[str, Any]] = {}
            delivery_keys: set[tuple[int, str, str]] = set()
            for url in new_for_source:
                article_id = ids[url]
                for p in plan(page[url]):
                    key = (article_id, p.watchlist)
                    if key not in match_rows:
                        match_rows[key] = {
                            "article_id": article_id,
                            "watchlist": p.watchlist,
                            "keywords": list(p.keywords),
                            "matched_at": now,
                        }
                    delivery_keys.update((article_id, p.watchlist, ch) for ch in p.channels)
            if match_rows:
                conn.execute(
                    self._insert(matches).on_conflict_do_nothing(
                        index_elements=[matches.c.article_id, matches.c.watchlist]
                    ),
                    [match_rows[key] for key in sorted(match_rows)],
                )
            alerts_queued = 0
            would_alert: dict[str, int] = {}
            if silent:
                would_alert = dict(Counter(watchlist for _, watchlist in match_rows))
            elif delivery_keys:
                insert_deliveries = (
                    self._insert(deliveries)
                    .on_conflict_do_nothing(
                        index_elements=[
                            deliveries.c.article_id,
                            deliveries.c.watchlist,
                            deliveries.c.channel,
                        ]
                    )
                    .returning(deliveries.c.id)
                )
                alerts_queued = len(
                    conn.execute(
                        insert_deliveries,
                        [
                            {
                                "article_id": article_id,
                                "watchlist": watchlist,
                                "channel": channel,
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": None,
                                "done_targets": [],
                                "created": now,
                            }
                            for article_id, watchlist, channel in sorted(delivery_keys)
                        ],
                    ).all()
                )
        return PageStored(
            new_for_source=new_for_source,
            new_articles=new_articles,
            alerts_queued=alerts_queued,
            would_alert=would_alert,
        )

    def record_pass(
        self,
        source: str,
        *,
        ok: bool,
        error: str | None,
        pages: int,
        new: int,
        alerts: int,
        duration: float,
        at: datetime | None = None,
    ) -> None:
        """Record the outcome of one pass over `source` (last_success_at only moves when ok)."""
        at = _aware(at, "at") if at is not None else _utcnow()
        values: dict[str, Any] = {
            "last_pass_at": at,
            "last_error": _cut(error),
            "last_pages": pages,
            "last_new": new,
            "last_alerts": alerts,
            "last_duration": duration,
        }
        if ok:
            values["last_success_at"] = at
        stmt = self._insert(sources).values(name=source, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[sources.c.name], set_=values)
        with self._tx("record_pass") as conn:
            conn.execute(stmt)

    def source_status(self) -> list[SourceStatus]:
        with self._tx("source_status", write=False) as conn:
            rows = conn.execute(sa.select(sources).order_by(sources.c.name)).mappings().all()
        return [SourceStatus(**row) for row in rows]

    # --- delivery side -------------------------------------------------------------------------

    def claim_due(
        self,
        *,
        owner: str,
        now: datetime,
        lease: float,
        limit: int,
        channels: Collection[str] | None = None,
    ) -> list[Delivery]:
        """Lease up to `limit` due pending deliveries to `owner` for `lease` seconds, oldest first.

        Two processes claiming at once get disjoint rows. A row whose lease ran out (its owner
        died mid-send) is due again.
        """
        now = _aware(now, "now")
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease}")
        wanted = sorted(set(channels)) if channels is not None else None
        if limit <= 0 or wanted == []:
            return []
        d = deliveries
        due = sa.and_(
            d.c.status == "pending",
            sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
            sa.or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
        )
        if wanted is not None:
            due = sa.and_(due, d.c.channel.in_(wanted))
        # A MATERIALIZED CTE runs once: a plain `id IN (SELECT .. LIMIT n FOR UPDATE SKIP LOCKED)`
        # may be rescanned by PostgreSQL within the UPDATE and then claim more than n rows.
        picked = (
            sa.select(d.c.id)
            .where(due)
            .order_by(d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite holds the write lock instead
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        claim = (
            sa.update(d)
            .where(d.c.id.in_(sa.select(picked.c.id)), due)
            .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease))
            .returning(d.c.id)
        )
        with self._tx("claim_due") as conn:
            ids = sorted(conn.execute(claim).scalars())
            if not ids:
                return []
            m, a = matches, articles
            query = (
                sa.select(
                    d.c.id,
                    d.c.watchlist,
                    d.c.channel,
                    d.c.attempts,
                    d.c.done_targets,
                    a.c.url,
                    a.c.title,
                    a.c.summary,
                    a.c.published,
                    a.c.source,
                    m.c.keywords,
                )
                .join(a, a.c.id == d.c.article_id)
                .outerjoin(
                    m, sa.and_(m.c.article_id == d.c.article_id, m.c.watchlist == d.c.watchlist)
                )
                .where(d.c.id.in_(ids))
                .order_by(d.c.id)
            )
            rows = conn.execute(query).all()
        return [
            Delivery(
                id=row.id,
                watchlist=row.watchlist,
                channel=row.channel,
                attempts=row.attempts,
                article_url=row.url,
                title=row.title,
                summary=row.summary,
                published=row.published,
                source=row.source,
                keywords=tuple(row.keywords or ()),
                done_targets=tuple(int(i) for i in row.done_targets or ()),
            )
            for row in rows
        ]

    def mark_sent(self, delivery_id: int, *, at: datetime) -> None:
        """The delivery went out: it is never claimed again. A second call changes nothing."""
        at = _aware(at, "at")
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.id == delivery_id, d.c.status != "sent")
            .values(
                status="sent",
                attempts=d.c.attempts + 1,
                sent_at=at,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("mark_sent") as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_delivery(conn, delivery_id)
                log.debug("delivery %d was already marked sent", delivery_id)

    def mark_attempt_failed(
        self,
        delivery_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        """A send attempt failed: retry at `next_attempt_at`, or give up ('failed') when None.

        `done_targets` are the channel URLs (by index) already delivered to, kept for the retry.
        Only a pending delivery changes: one another process marked sent stays sent.
        """
        _aware(at, "at")
        retry_at = _aware(next_attempt_at, "next_attempt_at") if next_attempt_at else None
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.id == delivery_id, d.c.status == "pending")
            .values(
                status="pending" if retry_at is not None else "failed",
                attempts=d.c.attempts + 1,
                last_error=_cut(error),
                done_targets=sorted({int(i) for i in done_targets}),
                next_attempt_at=retry_at,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("mark_attempt_failed") as conn:
            if conn.execute(stmt).rowcount == 0:
                status = self._require_delivery(conn, delivery_id)
                log.warning(
                    "delivery %d is %s already; failed attempt not recorded", delivery_id, status
                )

    @staticmethod
    def _require_delivery(conn: sa.Connection, delivery_id: int) -> str:
        status = conn.scalar(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id))
        if status is None:
            raise StoreError(f"no delivery with id {delivery_id}")
        return str(status)

    def release_claims(self, owner: str) -> int:
        """Give back the pending deliveries `owner` claimed but did not try (at a clean stop),
        so that the next process sends them now rather than when the lease runs out."""
        stmt = (
            sa.update(deliveries)
            .where(deliveries.c.claimed_by == owner, deliveries.c.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        with self._tx("release_claims") as conn:
            return conn.execute(stmt).rowcount or 0

    def retry_failed(self) -> int:
        """Put every failed delivery back in the queue (attempts 0, due now); returns how many."""
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.status == "failed")
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("retry_failed") as conn:
            return int(conn.execute(stmt).rowcount)

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (a past time = now); None when none pends.

        A leased row counts from the end of its lease.
        """
        d = deliveries
        due = sa.func.coalesce(d.c.next_attempt_at, d.c.created)
        effective = sa.case(
            (sa.and_(d.c.claimed_until.is_not(None), d.c.claimed_until > due), d.c.claimed_until),
            else_=due,
        )
        stmt = sa.select(sa.type_coerce(sa.func.min(effective), UTCDateTime())).where(
            d.c.status == "pending"
        )
        with self._tx("next_due_at", write=False) as conn:
            value: datetime | None = conn.scalar(stmt)
        return value

    # --- reading -------------------------------------------------------------------------------

    def list_articles(
        self,
        *,
        source: str | None = None,
        watchlist: str | None = None,
        limit: int | None = 50,
    ) -> list[ArticleRow]:
        """Stored articles, newest first (published date, then first seen; undated ones last).

        `source` keeps the articles that source listed (first or not); `watchlist` those that
        matched it.
        """
        _check_limit(limit)
        a = articles
        stmt = sa.select(
            a.c.id, a.c.url, a.c.title, a.c.summary, a.c.published, a.c.source, a.c.first_seen
        ).order_by(a.c.published.desc().nulls_last(), a.c.first_seen.desc(), a.c.id.desc())
        if source is not None:
            stmt = stmt.where(
                sa.exists().where(
                    article_sources.c.article_id == a.c.id, article_sources.c.source == source
                )
            )
        if watchlist is not None:
            stmt = stmt.where(
                sa.exists().where(matches.c.article_id == a.c.id, matches.c.watchlist == watchlist)
            )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._tx("list_articles", write=False) as conn:
            rows = conn.execute(stmt).all()
            names: dict[int, list[str]] = {row.id: [] for row in rows}
            for chunk in _chunks(list(names)):
                for article_id, name in conn.execute(
                    sa.select(matches.c.article_id, matches.c.watchlist)
                    .where(matches.c.article_id.in_(chunk))
                    .order_by(matches.c.article_id, matches.c.watchlist)
                ):
                    names[article_id].append(name)
        return [
            ArticleRow(
                url=row.url,
                title=row.title,
                summary=row.summary,
                published=row.published,
                source=row.source,
                first_seen=row.first_seen,
                watchlists=tuple(names[row.id]),
            )
            for row in rows
        ]

    def list_alerts(self, *, status: str | None = None, limit: int | None = None) -> list[AlertRow]:
        """Deliveries, newest first, optionally only those with `status`."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        _check_limit(limit)
        d, a = deliveries, articles
        stmt = (
            sa.select(
                d.c.id,
                d.c.watchlist,
                d.c.channel,
                a.c.url.label("article_url"),
                a.c.title,
                d.c.status,
                d.c.attempts,
                d.c.last_error,
                d.c.created,
                d.c.sent_at,
                d.c.next_attempt_at,
            )
            .join(a, a.c.id == d.c.article_id)
            .order_by(d.c.id.desc())
        )
        if status is not None:
            stmt = stmt.where(d.c.status == status)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._tx("list_alerts", write=False) as conn:
            rows = conn.execute(stmt).mappings().all()
        return [AlertRow(**row) for row in rows]

    def counts(self) -> dict[str, int]:
        """{'articles': n, 'pending': n, 'sent': n, 'failed': n}."""
        d = deliveries
        with self._tx("counts", write=False) as conn:
            result = {
                "articles": int(conn.scalar(sa.select(sa.func.count()).select_from(articles)) or 0)
            }
            result.update(dict.fromkeys(STATUSES, 0))
            for status, n in conn.execute(
                sa.select(d.c.status, sa.func.count()).group_by(d.c.status)
            ):
                result[status] = int(n)
        return result


# --- engines -------------------------------------------------------------------------------------


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    memory = url.database in (None, "", ":memory:") or "mode=memory" in str(url.query)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
        # one shared connection for an in-memory database (tests), else the default pool
        **({"poolclass": sa.pool.StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy, not the sqlite3 module, emit BEGIN (see _on_begin): transactional DDL
        # and BEGIN IMMEDIATE for writers
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")

    return engine


def _pg_engine(url: sa.URL) -> sa.Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
    if "options" not in url.query:
        connect_args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
