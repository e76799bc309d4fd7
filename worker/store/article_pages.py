"""Articles' own pages (`[sources.article]`): which to fetch next, and what a fetch gave."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from worker.models import AlertPlan, Item
from worker.store.engine import StoreBase, dialect_insert
from worker.store.helpers import _aware
from worker.store.pages import MAX_BODY_CHARS, MAX_PAGE_TRIES
from worker.store.tables import (
    article_aliases,
    article_sources,
    articles,
    deliveries,
    matches,
    sources,
)


@dataclass(frozen=True, slots=True)
class PendingPage:
    """An article whose own page is still to be read."""

    id: int
    url: str
    title: str
    summary: str
    published: datetime | None
    baseline: bool  # listed by the source's first pass (its silent baseline)


@dataclass(frozen=True, slots=True)
class PageResult:
    """What reading one article page gave, for `record_article_page`."""

    alerts_queued: int
    matched: tuple[str, ...]  # watchlists matched now that were not matched before
    repost_of: str | None = None  # the page names another stored article as its canonical URL
    alerts_dropped: int = 0  # alerts the repost's listing text had queued, dropped with it


def _release(conn: sa.Connection, article_id: int) -> None:
    """The article's alerts held for its page (store_page's `hold_until`) are due now."""
    d = deliveries
    conn.execute(
        sa.update(d)
        .where(
            d.c.article_id == article_id,
            d.c.status == "pending",
            d.c.attempts == 0,  # not one waiting for its retry
            d.c.next_attempt_at.is_not(None),
        )
        .values(next_attempt_at=None)
    )


class ArticlePagesMixin(StoreBase):
    def pending_article_pages(self, source: str, limit: int) -> list[PendingPage]:
        """Articles `source` lists whose page was never read (nor given a body by another
        source) and failed fewer than MAX_PAGE_TRIES times: the first listed first."""
        a, s, src = articles, article_sources, sources
        baseline = sa.or_(src.c.baselined_at.is_(None), s.c.first_seen <= src.c.baselined_at)
        stmt = (
            sa.select(a.c.id, a.c.url, a.c.title, a.c.summary, a.c.published, baseline)
            .join(s, s.c.article_id == a.c.id)
            .outerjoin(src, src.c.name == s.c.source)
            .where(
                s.c.source == source,
                a.c.page_fetched.is_(None),
                a.c.body.is_(None),
                a.c.page_tries < MAX_PAGE_TRIES,
            )
            .order_by(a.c.id)
            .limit(limit)
        )
        with self._tx("reading the article pages to fetch", write=False) as conn:
            return [
                PendingPage(row[0], row[1], row[2], row[3], row[4], bool(row[5]))
                for row in conn.execute(stmt).all()
            ]

    def article_page_failed(self, article_id: int) -> int:
        """Count a failed try; returns the tries so far."""
        with self._tx("recording an article page that failed") as conn:
            conn.execute(
                sa.update(articles)
                .where(articles.c.id == article_id)
                .values(page_tries=articles.c.page_tries + 1)
            )
            _release(conn, article_id)  # matched on its listing text meanwhile
            return int(
                conn.scalar(sa.select(articles.c.page_tries).where(articles.c.id == article_id))
                or 0
            )

    def skip_article_page(self, article_id: int) -> None:
        """Never read this article's page (a host the source may not read from)."""
        with self._tx("skipping an article page") as conn:
            conn.execute(
                sa.update(articles)
                .where(articles.c.id == article_id)
                .values(page_tries=MAX_PAGE_TRIES)
            )
            _release(conn, article_id)

    def _fold_repost(
        self, conn: sa.Connection, copy: int, url: str, original: int, now: datetime
    ) -> int:
        """The copy's URL becomes an alias of `original`, and the copy is folded into it: the
        sources that list the copy list the original (those that did not already), its aliases
        go over, and the copy is deleted with the matches and alerts its listing text made (its
        page says it is the same story: one article, one alert). Unless one of those alerts is
        sent or being sent: then the copy stays an article of its own, its page read. Returns
        the alerts dropped."""
        d, s = deliveries, article_sources
        started = conn.scalar(
            sa.select(sa.func.count())
            .select_from(d)
            .where(
                d.c.article_id == copy,
                sa.or_(
                    d.c.status != "pending",
                    d.c.claimed_by.is_not(None),
                    d.c.digest_id.is_not(None),
                ),
            )
        )
        dropped = 0
        if not started:
            dropped = int(
                conn.scalar(sa.select(sa.func.count()).select_from(d).where(d.c.article_id == copy))
                or 0
            )
            listed = sorted(conn.scalars(sa.select(s.c.source).where(s.c.article_id == original)))
            conn.execute(
                sa.update(s)
                .where(s.c.article_id == copy, s.c.source.not_in(listed))
                .values(article_id=original)
            )
            conn.execute(
                sa.update(article_aliases)
                .where(article_aliases.c.article_id == copy)
                .values(article_id=original)
            )
            # the rest of the copy's rows (listings, matches, alerts) go with it (ON DELETE
            # CASCADE)
            conn.execute(sa.delete(articles).where(articles.c.id == copy))
        else:
            conn.execute(sa.update(articles).where(articles.c.id == copy).values(page_fetched=now))
            _release(conn, copy)
        conn.execute(
            dialect_insert(self.dialect)(article_aliases).on_conflict_do_nothing(),
            {"url": url, "article_id": original, "first_seen": now},
        )
        return dropped

    def record_article_page(
        self,
        pending: PendingPage,
        *,
        body: str | None,
        published: datetime | None,
        plan: Callable[[Item], Sequence[AlertPlan]],
        silent: bool,
        now: datetime,
        canonical: str | None = None,
    ) -> PageResult:
        """Keep the page's body and date (a date the listing gave stays), then match the
        article again with its body: a watchlist it matches now and did not before is recorded
        and, unless `silent`, alerted (once per channel: the delivery key is unique).

        A page whose `<link rel="canonical">` (`canonical`) is another stored article is a
        repost of it: its URL becomes that article's alias, its body is not matched, and the
        copy is folded into the original (`_fold_repost`): no second article, no second alert."""
        now = _aware(now, "now")
        body = body[:MAX_BODY_CHARS] if body else None
        item = Item(
            url=pending.url,
            title=pending.title,
            summary=pending.summary,
            published=pending.published or published,
            body=body,
        )
        plans = list(plan(item)) if body else []
        a = articles
        with self._tx("storing an article page") as conn:
            if canonical and canonical != pending.url:
                original = conn.scalar(sa.select(a.c.id).where(a.c.url == canonical))
                if original is not None and original != pending.id:
                    dropped = self._fold_repost(conn, pending.id, pending.url, original, now)
                    return PageResult(
                        alerts_queued=0, matched=(), repost_of=canonical, alerts_dropped=dropped
                    )
            conn.execute(
                sa.update(a)
                .where(a.c.id == pending.id)
                .values(
                    page_fetched=now,
                    body=sa.func.coalesce(a.c.body, sa.bindparam("b", body, type_=sa.Text)),
                    published=sa.func.coalesce(
                        a.c.published, sa.bindparam("p", published, type_=a.c.published.type)
                    ),
                )
            )
            _release(conn, pending.id)
            before = set(
                conn.scalars(
                    sa.select(matches.c.watchlist).where(matches.c.article_id == pending.id)
                )
            )
            fresh = [p for p in plans if p.watchlist not in before]
            insert = dialect_insert(self.dialect)
            if fresh:
                conn.execute(
                    insert(matches).on_conflict_do_nothing(),
                    [
                        {
                            "article_id": pending.id,
                            "watchlist": p.watchlist,
                            "keywords": list(p.keywords),
                            "matched_at": now,
                        }
                        for p in sorted(fresh, key=lambda p: p.watchlist)
                    ],
                )
            queued = 0
            if not silent:
                rows = sorted({(p.watchlist, ch) for p in plans for ch in p.channels})
                for watchlist, channel in rows:
                    result = conn.execute(
                        insert(deliveries)
                        .values(
                            article_id=pending.id,
                            watchlist=watchlist,
                            channel=channel,
                            status="pending",
                            attempts=0,
                            created=now,
                            done_targets=[],
                        )
                        .on_conflict_do_nothing()
                    )
                    queued += result.rowcount or 0
        return PageResult(alerts_queued=queued, matched=tuple(p.watchlist for p in fresh))
