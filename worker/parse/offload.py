"""Listing pages parsed off the event loop, within a time budget.

lexbor releases the GIL while it builds the tree (a 2 s parse in a thread left the loop's
longest pause at 32 ms), so a page parsed in a thread never holds up the daemon's other
sources, its deliveries or /healthz. A parse that takes longer than PARSE_BUDGET fails its page
with a ParseError; the thread finishes on its own (the depth guard bounds lexbor to a few
seconds, the tag scan checks its own budget).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from worker.config import SelectConfig
from worker.models import ListingPage
from worker.parse.dates import DateOrder
from worker.parse.document import HostilePage
from worker.parse.listing import parse_listing
from worker.urls import redact_url

__all__ = ["PARSE_BUDGET", "listing_of", "parse_listing_async", "parse_listings_ahead"]

PARSE_BUDGET = 30.0  # seconds for one page: the scan, lexbor and the reading of the fields
# parses at once: a slow page holds one thread; the others keep parsing the other sources
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker-parse")


def parse_listings_ahead(
    pages: Sequence[tuple[str, str]],
    select: SelectConfig,
    *,
    date_order: DateOrder | None = None,
    now: datetime | None = None,
) -> list[Future[ListingPage]]:
    """`parse_listing` of each (html, page_url) of `pages`, one after the other in one worker
    thread: one future each, in their order (a page's ParseError is its future's). A future
    cancelled before its turn is skipped. One hand-off for a walk's pages already fetched,
    not one each: a thread hand-off cost about as much CPU as reading a page's fields."""
    futures: list[Future[ListingPage]] = [Future() for _ in pages]

    def work() -> None:
        for (html, page_url), future in zip(pages, futures, strict=True):
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(
                    parse_listing(html, page_url, select, date_order=date_order, now=now)
                )
            except BaseException as exc:  # the page's own error, for whoever awaits it
                future.set_exception(exc)

    _EXECUTOR.submit(work)
    return futures


async def listing_of(
    future: Future[ListingPage], page_url: str, budget: float = PARSE_BUDGET
) -> ListingPage:
    """The listing `future` parses (see parse_listings_ahead); ParseError when it takes longer
    than `budget` from now (the future is then cancelled if its turn has not come)."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), budget)
    except TimeoutError:
        raise HostilePage(
            f"page took longer than {budget:g}s to parse (hostile or broken markup) "
            f"on {redact_url(page_url)}"
        ) from None


async def parse_listing_async(
    html: str,
    page_url: str,
    select: SelectConfig,
    *,
    budget: float = PARSE_BUDGET,
    date_order: DateOrder | None = None,
    now: datetime | None = None,
) -> ListingPage:
    """`parse_listing` in a worker thread; ParseError when it takes longer than `budget`."""
    (future,) = parse_listings_ahead([(html, page_url)], select, date_order=date_order, now=now)
    return await listing_of(future, page_url, budget)
