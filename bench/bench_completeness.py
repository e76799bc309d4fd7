"""Completeness benchmark: what the counter check and a reconcile walk cost on a 300-page listing.

    python bench/bench_completeness.py [--articles 3000] [--per-page 10] [--repeat 5]

The local news site (worker.site) serves 3,000 articles, 10 a page, from a thread of this
process; the pass is `worker.crawl.crawl_source` in this process on a SQLite store (the site's
selectors, one watchlist matching everything, min_delay 0), for a config that follows `next`
links and one with `page_url` (pages fetched ahead concurrently). After a baseline:

- quiet: nothing moved (Z unchanged): must cost 1 request;
- 5 new on top: 2 requests (page 2 is the overlap stop);
- 1 backdated onto page 2 / page 150 / page 299: page 1 holds nothing new, the counter grew by
  one, so the pass reads on until it finds it (then one more page, the overlap stop);
- reconcile walk: the pass after `reconcile` since the last complete walk reads all 300 pages;
- the same with 2 articles deleted from page 1 while page 4 is read: the counter falls, page 3
  is read again.

Each figure: listing requests (from the site's log) and seconds (median of --repeat).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import machine

from worker.config import HttpConfig, SelectConfig, SourceConfig
from worker.crawl import CrawlReport, crawl_source
from worker.fetch import Fetcher
from worker.models import AlertPlan, Item
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
    return [AlertPlan(watchlist="all", keywords=("any",), channels=("console",))]


class Bench:
    def __init__(self, site: NewsSite, mode: str, tmp: Path) -> None:
        self.site = site
        self.source = SourceConfig(
            name="bench",
            url=site.search_url,
            page_url=site.page_url_template if mode == "page" else None,
            max_pages=10_000,
            select=SELECT,
        )
        self.store = Store(f"sqlite:///{tmp / f'completeness-{mode}.db'}")
        self.store.migrate()
        self.skew = timedelta(0)  # added to the clock: moves time past `reconcile`
        self.n = 0

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.skew

    async def run(self, fetcher: Fetcher) -> tuple[int, float, CrawlReport]:
        self.site.reset_log()
        started = time.perf_counter()
        report = await crawl_source(self.source, fetcher, self.store, plan, clock=self.clock)
        return self.site.listing_requests(), time.perf_counter() - started, report

    async def measure(
        self, fetcher: Fetcher, repeat: int, prepare: Callable[[], None]
    ) -> tuple[int, float, CrawlReport]:
        runs = []
        for _ in range(repeat):
            prepare()
            runs.append(await self.run(fetcher))
        requests = max(r[0] for r in runs)
        return requests, statistics.median(r[1] for r in runs), runs[-1][2]

    def title(self, what: str) -> str:
        self.n += 1
        return f"Bench story {self.n} ({what})"


async def bench_mode(site: NewsSite, mode: str, repeat: int, tmp: Path) -> list[str]:
    b = Bench(site, mode, tmp)
    per = site.per_page
    rows: list[str] = []
    async with Fetcher(HttpConfig(min_delay=0, concurrency=8, timeout=30)) as fetcher:
        requests, seconds, report = await b.run(fetcher)
        rows.append(f"| {mode} | baseline (a walk) | {requests} | {seconds:.2f} | {report.stop} |")

        def nothing() -> None:
            pass

        def five() -> None:
            for _ in range(5):
                site.publish(b.title("on top"))

        def backdate(page: int) -> Callable[[], None]:
            return lambda: site.insert(b.title(f"page {page}"), position=(page - 1) * per + 3)

        def walk_due() -> None:
            b.skew += timedelta(days=2)

        def walk_deleting() -> None:
            walk_due()
            top = site.articles()[:2]
            site.on_request(lambda _: [site.delete(a) for a in top], page=4)

        cases: list[tuple[str, Callable[[], None]]] = [
            ("quiet (Z unchanged)", nothing),
            ("5 new on top", five),
            ("1 backdated onto page 2", backdate(2)),
            ("1 backdated onto page 150", backdate(150)),
            ("1 backdated onto page 299", backdate(299)),
            ("reconcile walk", walk_due),
            ("reconcile walk, 2 deleted from page 1 while page 4 is read", walk_deleting),
        ]
        for name, prepare in cases:
            requests, seconds, report = await b.measure(fetcher, repeat, prepare)
            notes = "; ".join([report.stop, *report.notes])
            rows.append(f"| {mode} | {name} | {requests} | {seconds:.3f} | {notes} |")
            if name.startswith("quiet") and requests != 1:
                sys.exit(f"a quiet pass cost {requests} requests")
            site.clear_hooks()
    b.store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--per-page", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print(f"\n{args.articles:,} articles, {args.per_page} a page; median of {args.repeat}\n")
    print("| paging | pass | listing requests | seconds | pass line says |")
    print("|---|---|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("next", "page"):
            site = NewsSite.synthetic(args.articles, per_page=args.per_page)
            with site:
                for row in asyncio.run(bench_mode(site, mode, args.repeat, Path(tmp))):
                    print(row, flush=True)


if __name__ == "__main__":
    main()
