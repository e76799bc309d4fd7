"""Crawl stage: page through one source's listing and store every page as it arrives.

Pages are reached by the `next` link or the `page_url` template; the "results X - Y of Z" counter
gives the last page, and it is the one signal a listing gives about what we have not seen:

- **Walks.** A source's first pass (its baseline) walks the whole listing up to `max_pages`, and
  so does a *reconcile walk*, at most `reconcile` after the last complete walk: it stores what the
  incremental passes missed (a deletion and an insertion in the same interval leave Z unchanged).
  A walk that saw fewer distinct articles than the counter's total is reported as incomplete.
- **Incremental passes** stop as soon as `overlap_pages` consecutive pages bring nothing that this
  pass has not already met, so a quiet pass costs one request whatever the listing's length, *but*
  not while Z grew by more than the new articles found so far (a late or backdated post lands
  below page 1): they page on until the difference is found or the listing ends.
- **Shifts.** A page counts as "not quiet" when one of its items is new for the source *or was
  stored earlier in this same pass*: articles published while we page push the ones already read
  onto the next page. Articles deleted while we page pull items up across a page boundary onto a
  page already read: when Z falls between two pages, the pages before the boundary are read
  again (as many as the fall can have crossed).
- **No silent short passes.** A 404, an empty page or a page with fewer items than its counter
  says, before the counter's last page, fails the pass (the next one resumes it); a 404 after the
  last page is the normal end. A pass stopped by `max_pages` says how many listed articles it did
  not read.
- **Resuming.** A pass cut off (error, stop, crash) leaves a mark (`Store.begin_pass`/`cut_pass`)
  that belongs to one pass at a time; the next pass does not stop early before it has met what
  the cut-off pass stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from worker.config import SourceConfig
from worker.fetch import FEED_TYPES, HTML_TYPES, JSON_TYPES, Fetcher, FetchError, NotFound, Page
from worker.models import AlertPlan, Item, ListingPage, PageStored
from worker.paging import guess_pages
from worker.parse import (
    HostilePage,
    ParseError,
    listing_of,
    parse_listing_async,
    parse_listings_ahead,
)
from worker.parse.feeds import WP_PER_PAGE, parse_feed, parse_wordpress
from worker.store import PassOutcome, Store

log = logging.getLogger(__name__)

WALK_BATCH = 8  # a walk's pages stored together at most (while the store before them ran)
# a walk following next links fetches this many pages ahead on their guessed addresses when no
# counter tells the last page (at the end of the listing, as many requests go past it; with a
# counter, the window of a `page_url` walk, and none past the end): 300 pages 20 ms away, 7.0 s
# -> ~1.6 s
GUESS_AHEAD = 4
# a walk's pages already fetched, parsed with the one it reads, in one thread hand-off, at most:
# one hand-off a page was ~5 % of a 300-page backfill's CPU
PARSE_AHEAD = 8
# [sources.article]: a new article's alerts wait this long at most for its page to be read
# (read, failed or refused, they go at once), so that a page naming another stored article as
# canonical drops them before a delivery round sends them (store_page's `hold_until`)
ARTICLE_HOLD = timedelta(minutes=10)

Plan = Callable[[Item], Sequence[AlertPlan]]
Clock = Callable[[], datetime]


class CrawlError(Exception):
    """A source's pass cannot go on (a page could not be fetched or parsed, or was short).

    `report` says what the pass did before it stopped (what it stored stays stored).
    """

    def __init__(self, message: str, report: CrawlReport) -> None:
        super().__init__(message)
        self.report = report


class ListingGap(Exception):
    """A page before the counter's last page was missing (404), empty or short."""


@dataclass
class CrawlReport:
    source: str
    baseline: bool = False  # this pass was the source's first complete crawl
    silent: bool = False  # new articles were stored without alerts
    walk: bool = False  # this pass walked the whole listing (the baseline or a reconcile walk)
    reconcile: bool = False  # a reconcile walk (`reconcile` after the last complete walk)
    pages: int = 0  # listing pages fetched and stored (re-read pages included)
    rereads: int = 0  # pages read again because the counter fell while paging
    items: int = 0  # items read on those pages
    new: int = 0  # articles this source had never listed
    new_articles: int = 0  # articles no source had stored before
    alerts: int = 0  # deliveries queued
    would_alert: Counter[str] = field(default_factory=Counter)
    last_page: int | None = None  # from the results counter (its latest total)
    total: int | None = None  # the counter's total (Z), latest seen
    first_total: int | None = None  # the total on the first page that had a counter
    min_total: int | None = None  # the smallest total seen in this pass
    per_page: int | None = None  # items a full page holds (from the first counter)
    walk_seen: int | None = None  # a walk: distinct articles seen listed
    not_read: int | None = None  # listed articles beyond `max_pages`, not read
    stop: str = ""  # why the pass stopped
    notes: list[str] = field(default_factory=list)  # what else the pass line must say
    error: str | None = None
    complete: bool = False  # the pass reached an end (not an error)
    resumed: bool = False  # an earlier pass had been cut off; this one caught up with it
    not_modified: bool = False  # the first page answered 304 Not Modified: nothing to read
    # the validators (ETag, Last-Modified) of the first page's answer, for the next pass
    validators: tuple[str | None, str | None] | None = None
    duration: float = 0.0
    # `crawl_source(record=True)`: the source's failed passes in a row, as recorded with the
    # pass's end (None: the outcome is not recorded yet)
    failures: int | None = None

    @property
    def walk_missing(self) -> int | None:
        """A finished walk: listed articles (by the smallest total seen) it did not see."""
        if not self.walk or self.walk_seen is None or self.min_total is None:
            return None
        return max(0, self.min_total - self.walk_seen)


def wordpress_api_url(source: SourceConfig, number: int) -> str:
    """Page `number` of the site's /wp-json/wp/v2/posts, newest first, 100 a page, with the
    source's `search`, `categories` and `tags`."""
    params: list[tuple[str, str | int]] = []
    if source.search is not None:
        params.append(("search", source.search))
    if source.categories is not None:
        params.append(("categories", ",".join(str(c) for c in source.categories)))
    if source.tags is not None:
        params.append(("tags", ",".join(str(t) for t in source.tags)))
    params += [
        ("orderby", "date"),
        ("order", "desc"),
        ("per_page", WP_PER_PAGE),
        ("page", number),
    ]
    root = source.url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    return f"{root}/wp-json/wp/v2/posts?{urlencode(params)}"


_TYPES = {"listing": HTML_TYPES, "feed": FEED_TYPES, "wordpress": JSON_TYPES}


class _Pages:
    """Yields listing pages in order, fetching ahead when the page count is known."""

    def __init__(self, source: SourceConfig, fetcher: Fetcher, *, window: int) -> None:
        self.source = source
        self.fetcher = fetcher
        self.window = window
        self.prefetch_to = 0  # last page number that may be fetched ahead
        self._ahead: dict[int, asyncio.Task[Page | None]] = {}
        # following next links: what the links to pages 2 and 3 say of the others (see
        # worker.paging), the addresses fetched ahead on that guess, and the pages it may reach
        self._second: str | None = None  # the next link to page 2
        self._candidate: Callable[[int], str] | None = None  # guessed from pages 2 and 3
        self._guess: Callable[[int], str] | None = None  # ... and confirmed by page 4
        self._guessed: dict[int, str] = {}
        self._guess_to = 0
        self._guess_ahead = GUESS_AHEAD
        self._spent: list[asyncio.Task[Page | None]] = []  # fetched ahead, then not needed
        # pages reached by number (a `page_url` template, the REST API), not by a next link
        self.numbered = source.page_url is not None or source.type == "wordpress"
        # the first request of the pass is conditional with these (None: fetched in full)
        self.validators: tuple[str | None, str | None] | None = None
        # page number -> (the page, its listing being parsed), parsed ahead (see `parse`)
        self._parsed: dict[int, tuple[Page, Future[ListingPage]]] = {}

    async def first(self, url: str) -> Page:
        """The first page, conditionally when validators are known (a 304: status 304)."""
        validators, self.validators = self.validators, None
        page = await self.fetch(url, 1, validators)
        assert page is not None  # page 1 is never "past the end": NotFound is raised
        return page

    def url_of(self, number: int) -> str:
        if self.source.type == "wordpress":
            return wordpress_api_url(self.source, number)
        if number == 1:  # a listing's first page is its `url` (a template may differ there)
            return self.source.url
        assert self.source.page_url is not None
        return self.source.page_url.format(page=number)

    async def fetch(
        self, url: str, number: int, validators: tuple[str | None, str | None] | None = None
    ) -> Page | None:
        try:
            return await self.fetcher.get_html(
                url, types=_TYPES[self.source.type], validators=validators
            )
        except NotFound:
            if number == 1:
                if self.source.type == "wordpress":
                    raise FetchError(
                        url, "no WordPress REST API here (HTTP 404): is it switched off?"
                    ) from None
                raise
            return None
        except FetchError as exc:
            if self.source.type != "wordpress":
                raise
            if exc.status == 400 and number > 1:
                return None  # rest_post_invalid_page_number: past the last page
            if exc.reason.startswith("not JSON"):
                raise FetchError(
                    url, f"no WordPress REST API here: it answered {exc.reason[4:]}, not JSON"
                ) from None
            raise

    def allow_prefetch(self, last: int) -> None:
        """Pages up to `last` exist and will all be read: fetch them `window` at a time."""
        if self.numbered:
            self.prefetch_to = last

    def learn(self, number: int, url: str, last: int | None, limit: int) -> None:
        """A walk's next link to page `number`; `last`: the counter's last page, if any; no
        page after `limit` is read. From the links to pages 2 and 3, guess the others'
        addresses (worker.paging); once the link to page 4 confirms the guess, fetch ahead on
        it (pages 2 to 4 are read one after the other, as without a guess)."""
        self._guess_to = min(limit, last) if last is not None else limit
        self._guess_ahead = self.window if last is not None else GUESS_AHEAD
        if number == 2:
            self._second = url
        elif number == 3 and self._second is not None:
            self._candidate = guess_pages(self._second, url)
        elif number == 4 and self._candidate is not None and self._candidate(4) == url:
            self._guess = self._candidate  # the link to page 4 confirms it: read ahead from 5

    async def get(self, number: int, url: str) -> Page | None:
        task = self._ahead.pop(number, None)
        if number <= self.prefetch_to:
            for ahead in range(number + 1, min(self.prefetch_to, number + self.window) + 1):
                if ahead not in self._ahead:
                    self._ahead[ahead] = asyncio.create_task(self.fetch(self.url_of(ahead), ahead))
        elif self._guessed or self._guess is not None:
            if task is not None and self._guessed.pop(number) != url:
                self._drop_guess(task)  # the next link says otherwise: follow the links alone
                task = None
            if self._guess is not None:
                for ahead in range(number + 1, min(self._guess_to, number + self._guess_ahead) + 1):
                    if ahead not in self._ahead:
                        guessed = self._guessed[ahead] = self._guess(ahead)
                        self._ahead[ahead] = asyncio.create_task(self.fetch(guessed, ahead))
        if task is not None:
            return await task
        return await self.fetch(url, number)

    async def parse(self, page: Page, number: int) -> ListingPage:
        """Page `number`'s listing. A listing's pages fetched ahead and already in are parsed
        with it, in order, in one thread hand-off (PARSE_AHEAD pages at most); when their turn
        comes, the page `get` returns must be the very page that was parsed."""
        held = self._parsed.pop(number, None)
        if held is not None:
            if held[0] is page:
                return await listing_of(held[1], page.url)
            held[1].cancel()
        if self.source.type != "listing" or not self._ahead:
            return await _parse(page, self.source, number)
        batch = [(number, page)]
        for ahead in range(number + 1, number + PARSE_AHEAD):
            task = self._ahead.get(ahead)
            if task is None or not task.done() or task.cancelled() or task.exception():
                break
            fetched = task.result()
            if fetched is None or ahead in self._parsed:
                break
            batch.append((ahead, fetched))
        if len(batch) == 1:
            return await _parse(page, self.source, number)
        assert self.source.select is not None  # the config requires it of a listing
        futures = parse_listings_ahead(
            [(p.text, p.url) for _, p in batch],
            self.source.select,
            date_order=self.source.date_order,
            now=datetime.now(UTC),  # for relative dates: the pages were fetched just before
        )
        for (ahead, fetched), future in zip(batch[1:], futures[1:], strict=True):
            self._parsed[ahead] = (fetched, future)
        return await listing_of(futures[0], page.url)

    def _drop_guess(self, task: asyncio.Task[Page | None]) -> None:
        log.info("source=%s: next links not numbered as guessed; following them", self.source.name)
        self._guess = None
        self._guessed.clear()
        self._spent += [task, *self._ahead.values()]
        self._ahead.clear()
        for spent in self._spent:
            spent.cancel()

    async def close(self) -> None:
        for _, parsing in self._parsed.values():
            parsing.cancel()  # (one already running finishes in its thread, unread)
        self._parsed.clear()
        tasks = [*self._ahead.values(), *self._spent]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._ahead.clear()
        self._spent.clear()


async def _parse(page: Page, source: SourceConfig, number: int) -> ListingPage:
    # relative dates ("2 hours ago") are read against now: the page was fetched just before
    now = datetime.now(UTC)
    if source.type == "wordpress":
        return await asyncio.to_thread(
            parse_wordpress, page.text, page.url, page.headers, number=number
        )
    if source.type == "feed":
        return await asyncio.to_thread(
            parse_feed, page.text, page.url, date_order=source.date_order, now=now
        )
    assert source.select is not None  # the config requires it of a listing
    return await parse_listing_async(
        page.text, page.url, source.select, date_order=source.date_order, now=now
    )


def _check_full(number: int, listing: ListingPage, report: CrawlReport) -> None:
    """Raise ListingGap when page `number` holds fewer items than it should."""
    count = len(listing.items) + listing.skipped
    results = listing.results
    if results is not None and not results.pages:
        expected = results.last - results.first + 1
        if 0 < expected and count < expected:
            raise ListingGap(
                f"page {number} is short: {count} item(s) where its counter says "
                f"{results.first} - {results.last} of {results.total}"
            )
    elif report.last_page is not None and report.per_page is not None:
        if number < report.last_page and count < report.per_page:
            raise ListingGap(
                f"page {number} of {report.last_page} is short: {count} item(s) of "
                f"{report.per_page}"
            )


async def _pages(
    source: SourceConfig,
    fetcher: Fetcher,
    report: CrawlReport,
    *,
    window: int,
    full: bool,
    validators: tuple[str | None, str | None] | None = None,
) -> AsyncGenerator[tuple[int, ListingPage, bool], None]:
    """(page number, listing, re-read?) in order; a page read again comes before the page whose
    counter showed that items were pulled back across the boundary. With `validators` the first
    request is conditional: a 304 ends the listing before its first page."""
    pages = _Pages(source, fetcher, window=window)
    pages.validators = validators
    visited: set[str] = set()
    urls: dict[int, str] = {}
    forward_total: int | None = None  # the counter on the last page read going forward
    number, url = 1, pages.url_of(1)
    try:
        while True:
            if number > source.max_pages:
                report.stop = f"max_pages ({source.max_pages})"
                if report.last_page is not None and number <= report.last_page:
                    if report.total is None or report.per_page is None:  # a page counter
                        report.stop += (
                            f" before the counter's last page ({report.last_page}): "
                            f"{report.last_page - source.max_pages} listed page(s) not read"
                        )
                        return
                    report.not_read = max(0, report.total - source.max_pages * report.per_page)
                    report.stop += (
                        f" before the counter's last page ({report.last_page}): "
                        f"{report.not_read} listed article(s) not read"
                    )
                return
            visited.add(url)
            urls[number] = url
            page: Page | None
            if number == 1:
                page = await pages.first(url)
                if page.status == 304:
                    report.not_modified = True
                    report.stop = "not modified since the last pass (HTTP 304)"
                    return
                report.validators = (page.etag, page.last_modified)
            else:
                page = await pages.get(number, url)
            if page is None:
                if report.last_page is not None and number <= report.last_page:
                    listed = f", {report.total} listed" if report.total is not None else ""
                    raise ListingGap(
                        f"page {number} not found before the counter's last page "
                        f"({report.last_page}{listed})"
                    )
                report.stop = f"page {number} not found (past the end)"
                return
            try:
                listing = await pages.parse(page, number)
            except ParseError as exc:
                if number == 1 or isinstance(exc, HostilePage):
                    raise
                if report.last_page is not None and number <= report.last_page:
                    raise ListingGap(
                        f"no items on page {number} before the counter's last page "
                        f"({report.last_page}): {exc}"
                    ) from None
                report.stop = f"no items on page {number} ({exc})"
                return
            _check_full(number, listing, report)
            results = listing.results
            if results is not None and results.pages:
                # "Page 2 of 7": the last page, and no count of articles to check
                report.last_page = results.total
                if full and number == 1:
                    pages.allow_prefetch(min(report.last_page, source.max_pages))
            elif results is not None:
                if report.per_page is None:
                    report.per_page = max(1, results.per_page)
                total = results.total
                report.total = total
                if report.first_total is None:
                    report.first_total = total
                report.min_total = (
                    total if report.min_total is None else min(report.min_total, total)
                )
                report.last_page = max(1, -(-total // report.per_page))
                if full and number == 1:
                    pages.allow_prefetch(min(report.last_page, source.max_pages))
                if forward_total is not None and total < forward_total and number > 1:
                    # deletions above pulled up to (fall) items across the boundary onto pages
                    # already read: read those pages again
                    fall = forward_total - total
                    first = max(1, number - -(-fall // report.per_page))
                    if report.rereads + (number - first) <= source.max_pages:
                        log.info(
                            "source=%s counter fell from %d to %d between pages %d and %d: "
                            "re-reading page(s) %d-%d",
                            source.name,
                            forward_total,
                            total,
                            number - 1,
                            number,
                            first,
                            number - 1,
                        )
                        for back in range(first, number):
                            again = await pages.fetch(urls[back], back)
                            if again is not None:
                                report.rereads += 1
                                yield back, await _parse(again, source, back), True
                    else:  # re-reads are held to max_pages a pass: say what was not looked at
                        log.warning(
                            "source=%s counter fell from %d to %d between pages %d and %d: "
                            "page(s) %d-%d not read again (re-reads are held to max_pages, %d)",
                            source.name,
                            forward_total,
                            total,
                            number - 1,
                            number,
                            first,
                            number - 1,
                            source.max_pages,
                        )
                        report.notes.append(
                            f"counter fell by {fall} while paging: page(s) {first}-{number - 1} "
                            f"not read again (max_pages {source.max_pages})"
                        )
                elif forward_total is not None and total > forward_total:
                    log.info(
                        "source=%s counter grew from %d to %d between pages %d and %d: items "
                        "pushed down onto the pages ahead",
                        source.name,
                        forward_total,
                        total,
                        number - 1,
                        number,
                    )
                forward_total = total
            yield number, listing, False
            if report.last_page is not None and number >= report.last_page:
                report.stop = f"last page ({number} of {report.last_page})"
                return
            if pages.numbered:
                url = pages.url_of(number + 1)
            elif listing.next_url is not None:
                url = listing.next_url
                if full:
                    pages.learn(number + 1, url, report.last_page, source.max_pages)
            else:
                report.stop = "no next link"
                return
            if url in visited:
                report.stop = "next link loops back"
                return
            number += 1
    finally:
        await pages.close()


def _validation_key(source: SourceConfig) -> str:
    """What a page's stored validators hold for: the first URL and the source's whole config. An
    edited source (a new selector, another type) fetches its first page in full again: a 304
    says the page is the same, not that it reads the same with other selectors."""
    digest = hashlib.sha256(source.model_dump_json().encode()).hexdigest()[:16]
    return f"{source.url}#{digest}"


def _now() -> datetime:
    return datetime.now(UTC)


def _outcome(report: CrawlReport, *, ok: bool) -> PassOutcome:
    return PassOutcome(
        ok=ok,
        error=report.error,
        pages=report.pages,
        new=report.new,
        alerts=report.alerts,
        duration=report.duration,
    )


async def crawl_source(
    source: SourceConfig,
    fetcher: Fetcher,
    store: Store,
    plan: Plan,
    *,
    window: int = 4,
    clock: Clock = _now,
    on_page: Callable[[CrawlReport], None] | None = None,
    record: bool = False,
) -> CrawlReport:
    """Crawl one source and store its pages; raise CrawlError when the pass cannot go on.

    What was stored before an error stays stored; the next pass resumes the pass that was cut
    off. `clock` gives every timestamp the pass records (tests move it). `on_page(report)` is
    called after each page is stored (progress: worker.progress). `record`: the pass's outcome
    (`Store.record_pass`) is recorded in the transaction that ends it, and `report.failures`
    says its failed passes in a row (a pass that ends in another way than CrawlError, e.g.
    cancelled, records none).

    The bookkeeping is two transactions (issue 15): one before the first page (the mark, the
    source's state, what a pass cut off stored), one at the end (the mark cleared or put back,
    the baseline, the counter's total, the validators, the outcome).
    """
    started = time.monotonic()
    report = CrawlReport(source=source.name)
    begun = clock()
    pass_id = uuid.uuid4().hex
    start = await asyncio.to_thread(store.start_pass, source.name, pass_id=pass_id, at=begun)
    state, unfinished = start.state, start.unfinished
    report.baseline = state.baselined_at is None
    report.silent = report.baseline and not source.alert_backfill
    if not report.baseline and source.reconcile is not None:
        due = state.walked_at is None or begun - state.walked_at >= timedelta(
            seconds=source.reconcile
        )
        report.reconcile = due
    report.walk = report.baseline or report.reconcile
    # urls stored as new by this pass, or by an earlier pass that was cut off before its end
    # (error, stop, crash): a page holding one of them is not the end of what is new
    met_this_pass: set[str] = set()
    seen: set[str] = set()  # a walk: every url listed
    if unfinished is not None and not report.baseline:
        met_this_pass = set(start.met)
        report.resumed = True
        log.info(
            "source=%s resuming a pass cut off at %s (%d article(s) stored since)",
            source.name,
            unfinished.isoformat(timespec="seconds"),
            len(met_this_pass),
        )
    # Conditional GET of the first page: only where a 304 can mean "nothing new" — not for a walk
    # (the baseline, a reconcile walk that is due), not while resuming a pass that was cut off,
    # and not when the pass would read on past a quiet first page (overlap_pages > 1). The
    # validators are kept only when an unchanged first page leaves nothing owed (see below).
    validators: tuple[str | None, str | None] | None = None
    if (
        not report.walk
        and unfinished is None
        and source.overlap_pages == 1
        and state.validated_url == _validation_key(source)
        and (state.etag or state.last_modified)
    ):
        validators = (state.etag, state.last_modified)
    quiet_run = 0
    pressed = False  # the counter kept this pass paging past the overlap stop
    # A walk reads every page whatever is stored: page N is stored (in a thread) while page N+1
    # is fetched and parsed. One store at a time, in page order; the pages read while a store
    # runs are stored together by the next one (up to WALK_BATCH: one thread hand-off, and on
    # SQLite one commit, for them all).
    storing: asyncio.Task[list[tuple[int, ListingPage, PageStored]]] | None = None
    queued: list[tuple[int, ListingPage]] = []

    def deficit() -> int:
        """How many more new articles the counter on page 1 says there are than this pass found
        (what is published after page 1 was read is for the next pass: it sees it in its own
        counter)."""
        if state.listed_total is None or report.first_total is None:
            return 0
        return report.first_total - state.listed_total - report.new

    def account(number: int, listing: ListingPage, stored: PageStored) -> bool:
        """Count a stored page; True when it had something new for this pass."""
        report.pages += 1
        report.items += len(listing.items)
        report.new += len(stored.new_for_source)
        report.new_articles += stored.new_articles
        report.alerts += stored.alerts_queued
        report.would_alert.update(stored.would_alert)
        if report.walk:
            seen.update(item.url for item in listing.items)
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
        if on_page is not None:
            on_page(report)
        return fresh

    def hold_until() -> datetime | None:
        return clock() + ARTICLE_HOLD if source.article is not None else None

    async def store_one(number: int, listing: ListingPage) -> tuple[int, ListingPage, PageStored]:
        stored = await asyncio.to_thread(
            store.store_page,
            source.name,
            listing.items,
            plan,
            silent=report.silent,
            now=clock(),
            listing_page=number,
            pass_started=begun,
            listing_url=listing.url,
            hold_until=hold_until(),
        )
        return number, listing, stored

    async def store_queued() -> list[tuple[int, ListingPage, PageStored]]:
        batch = queued.copy()
        queued.clear()
        stored = await asyncio.to_thread(
            store.store_pages,
            source.name,
            [(number, listing.items, listing.url) for number, listing in batch],
            plan,
            silent=report.silent,
            now=clock(),
            pass_started=begun,
            hold_until=hold_until(),
        )
        return [(n, listing, s) for (n, listing), s in zip(batch, stored, strict=True)]

    async def drain() -> None:
        """Wait for the store that runs and count its pages."""
        nonlocal storing
        if storing is not None:
            task, storing = storing, None
            for done in await task:
                account(*done)

    def owed_total() -> int | None:
        """The total to leave for the next pass when this one did not reach the end: what this
        pass found is found, the rest of the counter's growth is still owed."""
        if state.listed_total is None or report.total is None:
            return report.total
        return min(report.total, state.listed_total + report.new)

    try:
        pages = _pages(
            source, fetcher, report, window=window, full=report.walk, validators=validators
        )
        async with aclosing(pages):
            try:
                async for number, listing, reread in pages:
                    if report.walk:
                        queued.append((number, listing))
                        if storing is None or storing.done() or len(queued) >= WALK_BATCH:
                            await drain()
                            storing = asyncio.create_task(store_queued())
                        continue
                    fresh = account(*await store_one(number, listing))
                    if reread:
                        continue  # a look back: says nothing about the pages below
                    quiet_run = 0 if fresh else quiet_run + 1
                    if quiet_run >= source.overlap_pages:
                        owed = deficit()
                        if owed <= 0:
                            report.stop = f"caught up ({quiet_run} page(s) with nothing new)"
                            break
                        if not pressed:
                            pressed = True
                            log.info(
                                "source=%s counter grew from %d to %d, %d new found by page "
                                "%d: reading on",
                                source.name,
                                state.listed_total,
                                report.total,
                                report.new,
                                number,
                            )
            finally:  # what was read is stored, also when the next page failed
                await drain()
                if queued:
                    storing = asyncio.create_task(store_queued())
                    await drain()
    except BaseException as exc:  # an error, a stop (cancelled), a database outage
        report.duration = time.monotonic() - started
        failed = isinstance(exc, FetchError | ParseError | ListingGap)
        if failed:
            report.error = str(exc)
        outcome = _outcome(report, ok=False) if failed and record else None
        try:  # the next pass resumes this one
            report.failures = await asyncio.to_thread(
                store.cut_pass,
                source.name,
                pass_id=pass_id,
                since=begun,
                listed_total=owed_total(),
                outcome=outcome,
                at=clock(),
            )
        except Exception as cut_exc:  # the database may be what failed: the mark then stays
            log.warning("source=%s could not record the pass as cut off: %s", source.name, cut_exc)
        if failed:
            raise CrawlError(str(exc), report) from exc
        raise
    finally:
        report.duration = time.monotonic() - started
    report.complete = True
    if pressed:
        owed = deficit()
        report.notes.append(
            f"counter grew by {report.new + owed}, read on to find them: "
            + ("all found" if owed <= 0 else f"{owed} not found")
        )
    if report.rereads:
        report.notes.append(f"counter fell while paging: {report.rereads} page(s) read again")
    walk: tuple[int, int | None] | None = None
    if report.walk:
        report.walk_seen = len(seen)
        walk = (report.walk_seen, report.min_total)
        kind = "baseline" if report.baseline else "reconcile walk"
        missing = report.walk_missing
        if missing:
            report.notes.append(
                f"{kind} incomplete: {report.walk_seen} of {report.min_total} listed "
                "article(s) seen"
            )
            log.warning(
                "source=%s %s incomplete: saw %d distinct article(s), the counter says %d",
                source.name,
                kind,
                report.walk_seen,
                report.min_total,
            )
        elif report.reconcile:
            report.notes.append(f"reconcile walk: {report.walk_seen} article(s) seen")
    # after a walk, or a pass that reached the listing's end or max_pages, nothing more can be
    # found by paging: the next pass compares with this total
    caught_up = report.stop.startswith("caught up")
    listed_total = owed_total() if caught_up and not report.walk else report.total
    new_validators: tuple[str, str | None, str | None] | None = None  # None: unchanged
    if not report.not_modified:
        # The next pass may take a 304 for "nothing new" only if this pass owes nothing: with
        # the same first page (so the same counter), its counter check would find no debt.
        keep = report.validators
        if report.first_total is not None and listed_total != report.first_total:
            keep = None
        etag, modified = keep if keep is not None else (None, None)
        held = (
            (state.etag, state.last_modified)
            if state.validated_url == _validation_key(source)
            else None
        )
        if (etag, modified) != (held or (None, None)):
            new_validators = (_validation_key(source), etag, modified)
    report.failures = await asyncio.to_thread(
        store.end_pass,
        source.name,
        pass_id=pass_id,
        listed_total=listed_total,
        walk=walk,
        baseline=report.baseline,
        validators=new_validators,
        outcome=_outcome(report, ok=True) if record else None,
        at=clock(),
    )
    return report
