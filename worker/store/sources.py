"""Per-source bookkeeping: baselines, unfinished passes, pass outcomes and their status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _cut, _utcnow
from worker.store.rows import SourceStatus
from worker.store.tables import article_sources, articles, sources


class SourcesMixin(StoreBase):
    """The `Store` methods that keep the `sources` table."""

    def is_baselined(self, source: str) -> bool:
        with self._tx("reading the source's state", write=False) as conn:
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
        with self._tx("recording the source's baseline") as conn:
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
        with self._tx("recording the start of a pass") as conn:
            before = conn.scalar(
                sa.select(sources.c.unfinished_since).where(sources.c.name == source)
            )
            conn.execute(stmt)
        return before

    def finish_pass(self, source: str) -> None:
        """The pass of `source` reached its end: nothing is left to resume."""
        with self._tx("recording the end of a pass") as conn:
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
        with self._tx("reading the source's recent articles", write=False) as conn:
            return set(conn.scalars(query))

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
        with self._tx("recording a pass") as conn:
            conn.execute(stmt)

    def source_status(self) -> list[SourceStatus]:
        with self._tx("reading the sources' status", write=False) as conn:
            rows = conn.execute(sa.select(sources).order_by(sources.c.name)).mappings().all()
        return [SourceStatus(**row) for row in rows]
