"""Crawl stage: page through one source's listing and store every page as it arrives.

Pages are reached by the `next` link or the `page_url` template; the "results X - Y of Z" counter
gives the last page. A source's first pass (its baseline) walks the whole listing up to
`max_pages`; later passes stop as soon as `overlap_pages` consecutive pages bring nothing that this
pass has not already met, so a quiet pass costs one request whatever the listing's length.

A page counts as "not quiet" when one of its items is new for the source *or was stored earlier in
this same pass*: when articles are published while we page, the items we already stored are pushed
down onto the next page, and that page must not be mistaken for the end of what is new (the items
pushed further down would be missed for good). When articles are deleted while we page, items move
up across the boundary; the next pass starts at page 1 again and picks them up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.config import SourceConfig
from worker.fetch import Fetcher, FetchError, NotFound, Page
from worker.models import AlertPlan, Item, ListingPage, PageStored
from worker.parse import ParseError, parse_listing_async
from worker.store import Store

log = logging.getLogger(__name__)

Plan = Callable[[Item], Sequence[AlertPlan]]


class CrawlError(Exception):
    """A source's pass cannot go on (a page could not be fetched or parsed).

    `report` says what the pass did before it stopped (what it stored stays stored).
    """

    def __init__(self, message: str, report: CrawlReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class CrawlReport:
    source: str
    baseline: bool = False  # this pass was the source's first complete crawl
    silent: bool = False  # new articles were stored without alerts
    pages: int = 0  # listing pages fetched and stored
    items: int = 0  # items read on those pages
    new: int = 0  # articles this source had never listed
    new_articles: int = 0  # articles no source had stored before
    alerts: int = 0  # deliveries queued
    would_alert: Counter[str] = field(default_factory=Counter)
    last_page: int | None = None  # from the results counter
    stop: str = ""  # why the pass stopped
    error: str | None = None
    complete: bool = False  # the pass reached an end (not an error)
    resumed: bool = False  # an earlier pass had been cut off; this one caught up with it
    duration: float = 0.0


class _Pages:
    """Yields listing pages in order, fetching ahead when the page count is known."""

    def __init__(self, source: SourceConfig, fetcher: Fetcher, *, window: int) -> None:
        self.source = source
        self.fetcher = fetcher
        self.window = window
        self.prefetch_to = 0  # last page number that may be fetched ahead
        self._ahead: dict[int, asyncio.Task[Page | None]] = {}

    def url_of(self, number: int) -> str:
        assert self.source.page_url is not None
        return self.source.page_url.format(page=number)

    async def _get(self, url: str, number: int) -> Page | None:
        try:
            return await self.fetcher.get_html(url)
        except NotFound:
            if number == 1:
                raise
            return None

    def allow_prefetch(self, last: int) -> None:
        """Pages up to `last` exist and will all be read: fetch them `window` at a time."""
        if self.source.page_url is not None:
            self.prefetch_to = last

    async def get(self, number: int, url: str) -> Page | None:
        task = self._ahead.pop(number, None)
        if number <= self.prefetch_to:
            for ahead in range(number + 1, min(self.prefetch_to, number + self.window) + 1):
                if ahead not in self._ahead:
                    self._ahead[ahead] = asyncio.create_task(self._get(self.url_of(ahead), ahead))
        if task is not None:
            return await task
        return await self._get(url, number)

    async def close(self) -> None:
        for task in self._ahead.values():
            task.cancel()
        if self._ahead:
            await asyncio.gather(*self._ahead.values(), return_exceptions=True)
        self._ahead.clear()


async def _pages(
    source: SourceConfig, fetcher: Fetcher, report: CrawlReport, *, window: int, full: bool
) -> AsyncGenerator[tuple[int, ListingPage], None]:
    pages = _Pages(source, fetcher, window=window)
    visited: set[str] = set()
    number, url = 1, source.url
    try:
        while True:
            if number > source.max_pages:
                report.stop = f"max_pages ({source.max_pages})"
                return
            visited.add(url)
            page = await pages.get(number, url)
            if page is None:
                report.stop = f"page {number} not found (past the end)"
                return
            try:
                listing = await parse_listing_async(page.text, page.url, source.select)
            except ParseError as exc:
                if number == 1:
                    raise
                report.stop = f"no items on page {number} ({exc})"
                return
            if listing.results is not None and report.last_page is None:
                report.last_page = listing.results.last_page
                if full:
                    pages.allow_prefetch(min(report.last_page, source.max_pages))
            yield number, listing
            if report.last_page is not None and number >= report.last_page:
                report.stop = f"last page ({number} of {report.last_page})"
                return
            if source.page_url is not None:
                url = pages.url_of(number + 1)
            elif listing.next_url is not None:
                url = listing.next_url
            else:
                report.stop = "no next link"
                return
            if url in visited:
                report.stop = "next link loops back"
                return
            number += 1
    finally:
        await pages.close()


async def crawl_source(
    source: SourceConfig, fetcher: Fetcher, store: Store, plan: Plan, *, window: int = 4
) -> CrawlReport:
    """Crawl one source and store its pages; raise CrawlError when the pass cannot go on.

    What was stored before an error stays stored; the next pass picks up from page 1.
    """
    started = time.monotonic()
    report = CrawlReport(source=source.name)
    baselined = await asyncio.to_thread(store.is_baselined, source.name)
    report.baseline = not baselined
    report.silent = report.baseline and not source.alert_backfill
    # urls stored as new by this pass, or by an earlier pass that was cut off before its end
    # (error, stop, crash): a page holding one of them is not the end of what is new
    met_this_pass: set[str] = set()
    unfinished = await asyncio.to_thread(store.begin_pass, source.name, at=datetime.now(UTC))
    if unfinished is not None and not report.baseline:
        met_this_pass = await asyncio.to_thread(store.urls_listed_since, source.name, unfinished)
        report.resumed = True
        log.info(
            "source=%s resuming a pass cut off at %s (%d article(s) stored since)",
            source.name,
            unfinished.isoformat(timespec="seconds"),
            len(met_this_pass),
        )
    quiet_run = 0
    # A baseline reads every page whatever is stored: page N is stored (in a thread) while
    # page N+1 is fetched and parsed. One store at a time, in page order.
    storing: asyncio.Task[tuple[int, ListingPage, PageStored]] | None = None

    def account(number: int, listing: ListingPage, stored: PageStored) -> bool:
        """Count a stored page; True when it had something new for this pass."""
        report.pages += 1
        report.items += len(listing.items)
        report.new += len(stored.new_for_source)
        report.new_articles += stored.new_articles
        report.alerts += stored.alerts_queued
        report.would_alert.update(stored.would_alert)
        fresh = any(item.url in met_this_pass for item in listing.items) or bool(
            stored.new_for_source
        )
        met_this_pass.update(stored.new_for_source)
        log.debug(
            "source=%s page=%d items=%d new=%d skipped=%d",
            source.name,
            number,
            len(listing.items),
            len(stored.new_for_source),
            listing.skipped,
        )
        return fresh

    async def store_one(number: int, listing: ListingPage) -> tuple[int, ListingPage, PageStored]:
        stored = await asyncio.to_thread(
            store.store_page, source.name, listing.items, plan, silent=report.silent
        )
        return number, listing, stored

    async def drain() -> None:
        nonlocal storing
        if storing is not None:
            task, storing = storing, None
            account(*await task)

    try:
        pages = _pages(source, fetcher, report, window=window, full=report.baseline)
        async with aclosing(pages):
            try:
                async for number, listing in pages:
                    if report.baseline:
                        await drain()
                        storing = asyncio.create_task(store_one(number, listing))
                        continue
                    fresh = account(*await store_one(number, listing))
                    quiet_run = 0 if fresh else quiet_run + 1
                    if quiet_run >= source.overlap_pages:
                        report.stop = f"caught up ({quiet_run} page(s) with nothing new)"
                        break
            finally:
                await drain()  # what was read is stored, also when the next page failed
    except (FetchError, ParseError) as exc:
        report.error = str(exc)
        raise CrawlError(str(exc), report) from exc
    finally:
        report.duration = time.monotonic() - started
    report.complete = True
    if report.baseline:
        await asyncio.to_thread(store.mark_baselined, source.name)
    await asyncio.to_thread(store.finish_pass, source.name)
    return report
