"""Rows the store returns for display: articles, alerts and source status (each with to_json)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
    body: str | None = None  # the article's text, None when no source gave it

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "title": self.title,
            "summary": self.summary,
            "body": self.body,
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
    unfinished_by: str | None = None
    listed_total: int | None = None
    walked_at: datetime | None = None
    walk_seen: int | None = None
    walk_total: int | None = None
    failures: int = 0  # failed passes in a row
    validated_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def walk_missing(self) -> int | None:
        """Listed articles the last complete walk did not see (None: no walk, or no counter)."""
        if self.walk_seen is None or self.walk_total is None:
            return None
        return max(0, self.walk_total - self.walk_seen)

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
            "last_walk": _iso(self.walked_at),
            "walk_seen": self.walk_seen,
            "walk_total": self.walk_total,
            "failures": self.failures,
        }


@dataclass(frozen=True, slots=True)
class SourceState:
    """What a pass reads of its source before it starts."""

    baselined_at: datetime | None = None
    listed_total: int | None = None  # the counter's total the last finished pass left
    walked_at: datetime | None = None  # the last complete walk of the whole listing
    walk_seen: int | None = None
    walk_total: int | None = None
    # the validators of the last answer to the first URL of a pass (conditional GET)
    validated_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class PassStart:
    """What `Store.start_pass` found as the pass began (one transaction)."""

    state: SourceState
    unfinished: datetime | None  # when the earliest unfinished pass began (None: none is)
    # the urls the source listed since `unfinished`, when resuming a source with a baseline
    met: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PassOutcome:
    """A pass's outcome, as `sources` keeps it (`record_pass`)."""

    ok: bool
    error: str | None
    pages: int
    new: int
    alerts: int
    duration: float
