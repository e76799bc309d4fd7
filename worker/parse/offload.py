"""Listing pages parsed off the event loop, within a time budget.

lexbor releases the GIL while it builds the tree (a 2 s parse in a thread left the loop's
longest pause at 32 ms), so a page parsed in a thread never holds up the daemon's other
sources, its deliveries or /healthz. A parse that takes longer than PARSE_BUDGET fails its page
with a ParseError; the thread finishes on its own (the depth guard bounds lexbor to a few
seconds, the tag scan checks its own budget).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from worker.config import SelectConfig
from worker.models import ListingPage
from worker.parse.dates import DateOrder
from worker.parse.document import HostilePage
from worker.parse.listing import parse_listing
from worker.urls import redact_url

__all__ = ["PARSE_BUDGET", "parse_listing_async"]

PARSE_BUDGET = 30.0  # seconds for one page: the scan, lexbor and the reading of the fields
# parses at once: a slow page holds one thread; the others keep parsing the other sources
_EXECUTOR = ThreadPoolExecutor(max_workers=4, thread_name_prefix="worker-parse")


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
    loop = asyncio.get_running_loop()
    work = functools.partial(parse_listing, html, page_url, select, date_order=date_order, now=now)
    future = loop.run_in_executor(_EXECUTOR, work)
    try:
        return await asyncio.wait_for(future, budget)
    except TimeoutError:
        raise HostilePage(
            f"page took longer than {budget:g}s to parse (hostile or broken markup) "
            f"on {redact_url(page_url)}"
        ) from None
