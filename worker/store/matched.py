"""Reading the matches of one watchlist, newest match first (the feed of matches)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _check_limit
from worker.store.tables import articles, matches


@dataclass(frozen=True, slots=True)
class MatchRow:
    url: str
    title: str
    summary: str
    published: datetime | None
    source: str
    matched_at: datetime
    keywords: tuple[str, ...]


class MatchedMixin(StoreBase):
    def list_matches(self, watchlist: str, *, limit: int = 100) -> list[MatchRow]:
        """The last `limit` articles that matched `watchlist`, newest match first."""
        _check_limit(limit)
        a, m = articles, matches
        stmt = (
            sa.select(
                a.c.url,
                a.c.title,
                a.c.summary,
                a.c.published,
                a.c.source,
                m.c.matched_at,
                m.c.keywords,
            )
            .join(a, a.c.id == m.c.article_id)
            .where(m.c.watchlist == watchlist)
            .order_by(m.c.matched_at.desc(), a.c.id.desc())
            .limit(limit)
        )
        with self._tx("listing matches", write=False) as conn:
            rows = conn.execute(stmt).all()
        return [
            MatchRow(
                url=r.url,
                title=r.title or "",
                summary=r.summary or "",
                published=r.published,
                source=r.source or "",
                matched_at=r.matched_at,
                keywords=tuple(r.keywords or ()),
            )
            for r in rows
        ]
