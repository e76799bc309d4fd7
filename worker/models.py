"""Plain data passed between the stages (fetch -> parse -> crawl -> store -> match -> notify).

Every stage takes and returns these frozen objects; none of them reads raw dicts or config files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Item:
    """One teaser read from a listing page (parse stage output)."""

    url: str  # canonical, absolute http(s) URL (see worker.urls.canonicalize)
    title: str  # entity-decoded, whitespace-collapsed
    summary: str = ""  # entity-decoded, whitespace-collapsed, shortcodes removed
    published: datetime | None = None  # timezone-aware (UTC when the page gave no zone)
    body: str | None = None  # the article's full text, when the source gives it (feed, API)


@dataclass(frozen=True, slots=True)
class ResultsCount:
    """A counter such as "Viewing results 1 - 6 of 78", or a page counter ("Page 2 of 7":
    `pages` set, first = last = the page, total = the number of pages; it says nothing of how
    many articles are listed, so the completeness checks on Z do not apply to it)."""

    first: int
    last: int
    total: int
    pages: bool = False

    @property
    def per_page(self) -> int:
        return self.last - self.first + 1

    @property
    def last_page(self) -> int:
        """The number of the last listing page, from the total and this page's size."""
        if self.pages:
            return self.total
        per = max(self.per_page, 1)
        return max(1, -(-self.total // per))


@dataclass(frozen=True, slots=True)
class ListingPage:
    """One parsed listing page."""

    url: str
    items: tuple[Item, ...]
    results: ResultsCount | None = None
    next_url: str | None = None  # canonical absolute http(s) URL of the next page, if linked
    skipped: int = 0  # elements matched by `item` that had no usable title or link


@dataclass(frozen=True, slots=True)
class AlertPlan:
    """What one new article must produce for one watchlist: the matches and the channels."""

    watchlist: str
    keywords: tuple[str, ...]  # the keywords that matched, as written in the config
    channels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PageStored:
    """What storing one page of items did."""

    new_for_source: tuple[str, ...]  # urls this source had never listed before
    new_articles: int  # rows inserted into articles (never stored by any source)
    alerts_queued: int  # delivery rows inserted
    would_alert: dict[str, int] = field(default_factory=dict)  # watchlist -> matches (silent pass)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One pending alert delivery, joined with its article, as the notify stage needs it."""

    id: int
    watchlist: str
    channel: str
    attempts: int
    article_url: str
    title: str
    summary: str
    published: datetime | None
    source: str
    keywords: tuple[str, ...]
    done_targets: tuple[int, ...] = ()  # indexes of the channel's URLs already delivered to
    body: str = ""  # the article's text, when the source provides it (alerts quote a snippet)
