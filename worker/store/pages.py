"""Storing a listing page: articles, the source's listings, matches and queued deliveries."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from worker.models import AlertPlan, Item, PageStored
from worker.store.engine import StoreBase, StoreError
from worker.store.helpers import _aware, _chunks, _utcnow
from worker.store.tables import article_sources, articles, deliveries, matches

log = logging.getLogger(__name__)

MAX_URL_CHARS = 2048  # longer URLs are not stored (a PostgreSQL btree entry must stay < 2.7 kB)


class PagesMixin(StoreBase):
    """`Store.store_page`: the crawl side's one write per listing page."""

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
