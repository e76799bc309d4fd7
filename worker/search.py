"""Queries over the stored articles: `worker search` and the daemon's "would have matched".

Both run the same `Matcher` the pipeline uses for new articles, so a query tried here means
exactly what it will mean in a watchlist. Articles are read newest first from the store
(`Store.articles_since`) and matched field by field as the pipeline matches a new article:
title, summary and, when a source gave it, the body.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.match import Matcher
from worker.store import ArticleRow, Store

log = logging.getLogger(__name__)

RECENT_DAYS = 30  # the window of the daemon's "would have matched" count
_LOG_EACH = 20  # more changed watchlists than this: one summary line (each one at DEBUG)


@dataclass(frozen=True, slots=True)
class Found:
    article: ArticleRow
    matched: tuple[str, ...]  # the query's terms that matched, as written

    def to_json(self) -> dict[str, Any]:
        row = self.article
        return {
            "url": row.url,
            "title": row.title,
            "summary": row.summary,
            "published": row.published.isoformat() if row.published else None,
            "source": row.source,
            "first_seen": row.first_seen.isoformat(),
            "matched": list(self.matched),
        }


def _fields(row: ArticleRow) -> dict[str, str]:
    """The article's fields as the pipeline gives them to the matcher (pipeline._fields_of)."""
    fields = {"title": row.title, "summary": row.summary}
    if row.body:
        fields["body"] = row.body
    return fields


def search(
    store: Store,
    watchlist: Any,
    *,
    since: datetime | None = None,
    source: str | None = None,
    limit: int | None = None,
) -> tuple[list[Found], int]:
    """The stored articles one watchlist (a WatchlistConfig) matches, newest first, at most
    `limit`; and how many articles were searched."""
    matcher = Matcher([watchlist])
    rows = store.articles_since(since, source=source)
    found: list[Found] = []
    for row in rows:
        result = matcher.match_fields(_fields(row))
        if watchlist.name in result:
            found.append(Found(row, result[watchlist.name]))
            if limit is not None and len(found) >= limit:
                break
    return found, len(rows)


def would_have_matched(
    store: Store, watchlists: Sequence[Any], *, days: int = RECENT_DAYS, now: datetime | None = None
) -> dict[str, int]:
    """Watchlist name -> stored articles of the last `days` days it matches (its `sources`
    counted by the source that first listed each article)."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    counts = dict.fromkeys((w.name for w in watchlists), 0)
    if not watchlists:
        return counts
    matcher = Matcher(watchlists)
    allowed = {w.name: (set(w.sources) if w.sources is not None else None) for w in watchlists}
    for row in store.articles_since(since):
        for name in matcher.match_fields(_fields(row)):
            only = allowed[name]
            if only is None or row.source in only:
                counts[name] += 1
    return counts


def changed_watchlists(old: Sequence[Any], new: Sequence[Any]) -> list[Any]:
    """The watchlists of `new` that `old` did not have, or had with another definition."""
    before = {w.name: w for w in old}
    return [w for w in new if before.get(w.name) != w]


def log_would_have_matched(store: Store, watchlists: Sequence[Any]) -> None:
    """Log, for new or changed watchlists, what they would have matched in the store."""
    if not watchlists:
        return
    try:
        counts = would_have_matched(store, watchlists)
    except Exception as exc:  # the database is down: the count is only a hint
        log.warning("could not count what the loaded watchlists would have matched: %s", exc)
        return
    each = log.info if len(counts) <= _LOG_EACH else log.debug
    for name, count in counts.items():
        each(
            "watchlist %s: would have matched %d stored article(s) of the last %d days",
            name,
            count,
            RECENT_DAYS,
        )
    if len(counts) > _LOG_EACH:
        log.info(
            "%d watchlist(s) loaded: together they would have matched %d stored article(s) of "
            "the last %d days (each one at DEBUG)",
            len(counts),
            sum(counts.values()),
            RECENT_DAYS,
        )
