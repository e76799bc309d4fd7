"""Looking one URL up for `worker why`: the article, its listings, matches and deliveries."""

from __future__ import annotations

import difflib
import heapq
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.tables import article_sources, articles, deliveries, matches, sources

CLOSEST_POOL = 20_000  # stored URLs compared with an unknown one
# difflib over 20,000 URLs of one site takes ~9 s (they share most characters): the pool is first
# ranked by the words the URLs share, and difflib orders the best CLOSEST_SHORTLIST (~0.4 s in
# all for 20,000; the URL with one character dropped came first in 20 of 20 tries)
CLOSEST_SHORTLIST = 100
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Listing:
    """A source listed the article: first when, on which page, in which pass."""

    source: str
    first_seen: datetime
    page: int | None  # None: stored before the worker kept it
    pass_started: datetime | None
    baseline: bool  # in the source's first pass (its baseline: silent unless alert_backfill)


@dataclass(frozen=True, slots=True)
class MatchRecord:
    watchlist: str
    keywords: tuple[str, ...]
    matched_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    watchlist: str
    channel: str
    status: str
    attempts: int
    last_error: str | None
    created: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None


@dataclass(frozen=True, slots=True)
class UrlRecord:
    url: str
    title: str
    summary: str
    published: datetime | None
    first_seen: datetime
    source: str  # the first source that listed it
    listings: tuple[Listing, ...]
    matches: tuple[MatchRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]
    body: str | None = None  # the article's text, None when no source gave it


class LookupMixin(StoreBase):
    """`Store.lookup_url` and `Store.closest_urls`."""

    def lookup_url(self, candidates: list[str]) -> UrlRecord | None:
        """The first of `candidates` (spellings of one URL, best first) that is stored, or None."""
        if not candidates:
            return None
        a, s, src = articles, article_sources, sources
        with self._tx("looking up a URL", write=False) as conn:
            found = {
                row.url: row
                for row in conn.execute(sa.select(a).where(a.c.url.in_(candidates))).all()
            }
            row = next((found[url] for url in candidates if url in found), None)
            if row is None:
                return None
            listings = conn.execute(
                sa.select(
                    s.c.source, s.c.first_seen, s.c.page, s.c.pass_started, src.c.baselined_at
                )
                .select_from(s.outerjoin(src, src.c.name == s.c.source))
                .where(s.c.article_id == row.id)
                .order_by(s.c.first_seen, s.c.source)
            ).all()
            match_rows = conn.execute(
                sa.select(matches.c.watchlist, matches.c.keywords, matches.c.matched_at)
                .where(matches.c.article_id == row.id)
                .order_by(matches.c.watchlist)
            ).all()
            d = deliveries
            delivery_rows = conn.execute(
                sa.select(
                    d.c.watchlist,
                    d.c.channel,
                    d.c.status,
                    d.c.attempts,
                    d.c.last_error,
                    d.c.created,
                    d.c.sent_at,
                    d.c.next_attempt_at,
                )
                .where(d.c.article_id == row.id)
                .order_by(d.c.watchlist, d.c.channel)
            ).all()
        return UrlRecord(
            url=row.url,
            title=row.title,
            summary=row.summary,
            published=row.published,
            first_seen=row.first_seen,
            source=row.source,
            body=row.body,
            listings=tuple(
                Listing(
                    source=r.source,
                    first_seen=r.first_seen,
                    page=r.page,
                    pass_started=r.pass_started,
                    # a listing stored before the source's first complete pass ended belongs to
                    # its baseline (a first pass cut off and resumed is the baseline too)
                    baseline=r.baselined_at is None or r.first_seen <= r.baselined_at,
                )
                for r in listings
            ),
            matches=tuple(
                MatchRecord(r.watchlist, tuple(r.keywords or ()), r.matched_at) for r in match_rows
            ),
            deliveries=tuple(DeliveryRecord(**r._mapping) for r in delivery_rows),
        )

    def closest_urls(self, url: str, n: int = 5) -> list[str]:
        """Up to `n` stored URLs that look most like `url` (difflib), best first.

        Compared with the URLs of the same host when there are any, else with the newest
        CLOSEST_POOL stored ones.
        """
        parts = urlsplit(url)
        a = articles
        pool: list[str] = []
        with self._tx("finding the closest stored URLs", write=False) as conn:
            if parts.scheme and parts.netloc:
                host = parts.netloc.removeprefix("www.")
                like: Any = sa.or_(
                    *(
                        a.c.url.like(f"{scheme}://{www}{_escape(host)}/%", escape="\\")
                        for scheme in ("http", "https")
                        for www in ("", "www.")
                    )
                )
                pool = list(
                    conn.scalars(
                        sa.select(a.c.url).where(like).order_by(a.c.id.desc()).limit(CLOSEST_POOL)
                    )
                )
            if not pool:
                pool = list(
                    conn.scalars(sa.select(a.c.url).order_by(a.c.id.desc()).limit(CLOSEST_POOL))
                )
        return _closest(url, pool, n)


def _closest(url: str, pool: list[str], n: int) -> list[str]:
    words = set(_TOKEN.findall(url.lower()))

    def shared(candidate: str) -> float:
        other = set(_TOKEN.findall(candidate.lower()))
        return len(words & other) / (len(words | other) or 1)

    shortlist = heapq.nlargest(CLOSEST_SHORTLIST, pool, key=shared)
    return difflib.get_close_matches(url, shortlist, n=n, cutoff=0.5)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
