"""Good-citizen benchmark: what a quiet pass costs with and without a conditional GET, and what
the robots.txt check adds to each request.

    python bench/bench_citizen.py [--articles 3000] [--per-page 10] [--repeat 20]

The local news site (worker.site) serves the listing from a thread of this process; the pass is
`worker.crawl.crawl_source` on a SQLite store (min_delay 0). After a baseline walk:

- quiet pass, full GET: the site's conditional answers turned off (`site.conditional = False`),
  so page 1 comes back 200 with its body and is parsed and stored;
- quiet pass, conditional GET: page 1 answers 304 Not Modified (no body, nothing parsed);
- `Robots.admit()` on a cached robots.txt (the WordPress default rules), per request.

Each figure: seconds (median of --repeat), and bytes of the answer's body.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import machine

from worker.config import HttpConfig, SelectConfig, SourceConfig
from worker.crawl import crawl_source
from worker.fetch import Fetcher
from worker.models import AlertPlan, Item
from worker.robots import Robots
from worker.site import NewsSite
from worker.store import Store

SELECT = SelectConfig(
    item="#main article",
    title="h2.entry-title a",
    link="h2.entry-title a",
    summary=".entry-summary",
    published={"css": "time.entry-date", "attr": "datetime"},  # type: ignore[arg-type]
    results=".search-results-count",
    next="a.next.page-numbers",
)


def plan(item: Item) -> list[AlertPlan]:
    return []


async def quiet_passes(
    site: NewsSite, store: Store, source: SourceConfig, *, repeat: int
) -> list[float]:
    times = []
    async with Fetcher(HttpConfig(min_delay=0, retries=0)) as fetcher:
        for _ in range(repeat):
            started = time.perf_counter()
            report = await crawl_source(source, fetcher, store, plan)
            times.append(time.perf_counter() - started)
            assert report.complete and report.new == 0, report
    return times


async def admit_cost(site: NewsSite, n: int) -> float:
    robots = Robots(HttpConfig())
    url = httpx.URL(site.search_url)
    await robots.admit(url)  # fetched once, then cached
    started = time.perf_counter()
    for _ in range(n):
        await robots.admit(url)
    return (time.perf_counter() - started) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--per-page", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    site = NewsSite.synthetic(args.articles, per_page=args.per_page)
    site.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            store.migrate()
            source = SourceConfig(
                name="bench", url=site.search_url, max_pages=10_000, select=SELECT
            )
            asyncio.run(crawl_source_once(source, store))
            body = len(httpx.get(site.search_url, timeout=30).content)
            site.conditional = False
            full = asyncio.run(quiet_passes(site, store, source, repeat=args.repeat))
            site.conditional = True
            asyncio.run(quiet_passes(site, store, source, repeat=1))  # validators stored
            site.reset_log()
            cond = asyncio.run(quiet_passes(site, store, source, repeat=args.repeat))
            assert len(site.not_modified) == args.repeat, site.not_modified
            store.close()
        per_admit = asyncio.run(admit_cost(site, 20_000))
    finally:
        site.stop()
    print(f"listing: {args.articles} articles, {args.per_page} a page; page 1 = {body} bytes")
    print(f"quiet pass, full GET (200, {body} bytes):  {statistics.median(full) * 1000:7.2f} ms")
    print(f"quiet pass, conditional GET (304, 0 bytes): {statistics.median(cond) * 1000:7.2f} ms")
    print(f"Robots.admit() on a cached robots.txt:      {per_admit * 1e6:7.1f} µs per request")
    return 0


async def crawl_source_once(source: SourceConfig, store: Store) -> None:
    async with Fetcher(HttpConfig(min_delay=0, retries=0)) as fetcher:
        await crawl_source(source, fetcher, store, plan)


if __name__ == "__main__":
    sys.exit(main())
