"""Reading the store: stored articles, alerts and counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _check_limit, _chunks
from worker.store.rows import AlertRow, ArticleRow
from worker.store.tables import STATUSES, article_sources, articles, deliveries, matches

# what an ArticleRow is read from, for the listing and for a search alike
_ARTICLE_COLUMNS = (
    articles.c.id,
    articles.c.url,
    articles.c.title,
    articles.c.summary,
    articles.c.published,
    articles.c.source,
    articles.c.first_seen,
    articles.c.body,
)


class ReadingMixin(StoreBase):
    """The read-only `Store` methods over articles and deliveries."""

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
        stmt = sa.select(*_ARTICLE_COLUMNS).order_by(
            a.c.published.desc().nulls_last(), a.c.first_seen.desc(), a.c.id.desc()
        )
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
        with self._tx("listing articles", write=False) as conn:
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
                body=row.body,
            )
            for row in rows
        ]

    def articles_since(
        self, since: datetime | None = None, *, source: str | None = None
    ) -> list[ArticleRow]:
        """Stored articles published at or after `since` (an undated one: first seen then), newest
        first, with their text (`body`) but without their watchlists (`watchlists` is empty): what
        `worker search` and the daemon's would-have-matched count run a query over. `source` as
        in list_articles."""
        a = articles

        def part(*where: sa.ColumnElement[bool]) -> sa.Select[Any]:
            stmt = sa.select(*_ARTICLE_COLUMNS).where(*where)
            if source is not None:
                stmt = stmt.where(
                    sa.exists().where(
                        article_sources.c.article_id == a.c.id, article_sources.c.source == source
                    )
                )
            return stmt

        if since is None:
            rows_of: Any = part().subquery()
        else:
            # the dated ones since then, and the undated ones first seen since then: two ranges
            # of the listing's index (one OR made SQLite walk all of it)
            since = _aware(since, "since")
            rows_of = sa.union_all(
                part(a.c.published >= since),
                part(a.c.published.is_(None), a.c.first_seen >= since),
            ).subquery()
        stmt = sa.select(rows_of).order_by(
            rows_of.c.published.desc().nulls_last(),
            rows_of.c.first_seen.desc(),
            rows_of.c.id.desc(),
        )
        with self._tx("reading articles for a search", write=False) as conn:
            rows = conn.execute(stmt).all()
        return [
            ArticleRow(
                url=row.url,
                title=row.title,
                summary=row.summary,
                published=row.published,
                source=row.source,
                first_seen=row.first_seen,
                watchlists=(),
                body=row.body,
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
        with self._tx("listing alerts", write=False) as conn:
            rows = conn.execute(stmt).mappings().all()
        return [AlertRow(**row) for row in rows]

    def counts(self) -> dict[str, int]:
        """{'articles': n, 'pending': n, 'sent': n, 'failed': n}."""
        d = deliveries
        with self._tx("counting the stored rows", write=False) as conn:
            result = {
                "articles": int(conn.scalar(sa.select(sa.func.count()).select_from(articles)) or 0)
            }
            result.update(dict.fromkeys(STATUSES, 0))
            for status, n in conn.execute(
                sa.select(d.c.status, sa.func.count()).group_by(d.c.status)
            ):
                result[status] = int(n)
        return result
