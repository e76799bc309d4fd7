"""Sources beyond teasers: a 300-page backfill with article pages on, a 3,000-item REST API
backfill, a feed pass, and main-text extraction compared (trafilatura, readability-lxml, the
`.entry-content` selector) on the local site's article pages, and feed parsing compared
(feedparser, and fastfeedparser when it is importable: not a dependency).

    python bench/bench_sources.py [--articles 3000] [--per-page 10]

The local news site (worker.site) serves the articles from a thread of this process; each pass
is `worker.pipeline.Runtime.run_pass` (the crawl, then the article pages) on a SQLite store
(min_delay 0, concurrency 4, one watchlist matching "glacier*"). Figures: requests (from the
site's log) and wall seconds of one pass; per-page extraction cost (median of all pages).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _common import machine

from worker.config import parse_config
from worker.fetch import Fetcher
from worker.pipeline import Runtime
from worker.site import SELECT_TOML, NewsSite
from worker.store import Store


def config_text(db: Path, sources: str) -> str:
    return (
        f'database = "sqlite:///{db}"\n[http]\nmin_delay = 0\nconcurrency = 4\ntimeout = 30\n'
        '[channels]\nconsole = "console://"\n'
        f"{sources}\n"
        '[[watchlists]]\nname = "ice"\nkeywords = ["glacier*"]\nchannels = ["console"]\n'
    )


async def one_pass(text: str, name: str) -> tuple[float, str]:
    config = parse_config(text)
    store = Store(config.database)
    store.migrate()
    try:
        async with Fetcher(config.http) as fetcher:
            runtime = Runtime(config, store=store, fetcher=fetcher)
            started = time.perf_counter()
            report = await runtime.run_pass(config.source(name))
            elapsed = time.perf_counter() - started
            runtime.close_notifier()
    finally:
        store.close()
    return elapsed, report.line()


def extraction(site: NewsSite, n: int) -> None:
    import readability
    import trafilatura

    from worker.config import ArticleConfig
    from worker.parse.article import parse_article

    pages = [httpx.get(site.url(a)).text for a in site.articles()[:n]]
    around = ("Related", "Share on", "A reader writes", "Previous:", "Most Read", "Privacy")
    selector = ArticleConfig(body=".entry-content")
    for label, extract in (
        ("trafilatura", lambda h: parse_article(h, "http://x/", ArticleConfig()).body),
        (
            "readability-lxml",
            lambda h: " ".join(trafilatura.html2txt(readability.Document(h).summary()).split()),
        ),
        ("selector .entry-content", lambda h: parse_article(h, "http://x/", selector).body),
    ):
        extract(pages[0])  # imports, first-call set-up
        times, leaks = [], 0
        for html in pages:
            started = time.perf_counter()
            text = extract(html)
            times.append(time.perf_counter() - started)
            leaks += any(word in text for word in around)
        print(
            f"  {label:24} {statistics.median(times) * 1000:6.2f} ms/page, "
            f"{leaks} of {len(pages)} pages with surrounding text in the body"
        )


def feed_parsers() -> None:
    """The local site's RSS (as WordPress writes it) of 10 and of 100 items, parsed as
    worker.parse.feeds calls feedparser, and by fastfeedparser; median of 20 parses."""
    import feedparser

    from worker.site import api
    from worker.site.samples import synthetic_articles

    try:
        import fastfeedparser
    except ImportError:
        fastfeedparser = None
    newest_first = list(reversed(synthetic_articles(200)))
    parsers = [
        (
            "feedparser",
            lambda b: feedparser.parse(b, sanitize_html=False, resolve_relative_uris=False),
        )
    ]
    if fastfeedparser is not None:
        parsers.append(("fastfeedparser", fastfeedparser.parse))
    else:
        print("  (fastfeedparser not installed: feedparser alone)")
    default = api.FEED_ITEMS
    try:
        for n in (10, 100):
            api.FEED_ITEMS = n
            body = api.feed_response(newest_first, "http://127.0.0.1:1").body
            for label, parse in parsers:
                parse(body)
                times = []
                for _ in range(20):
                    started = time.perf_counter()
                    parse(body)
                    times.append(time.perf_counter() - started)
                print(
                    f"  {label:16} {n:3} items ({len(body):,} bytes): "
                    f"{statistics.median(times) * 1000:6.2f} ms"
                )
    finally:
        api.FEED_ITEMS = default


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--per-page", type=int, default=10)
    args = parser.parse_args()
    print(machine())
    with (
        NewsSite.synthetic(args.articles, per_page=args.per_page) as site,
        tempfile.TemporaryDirectory() as tmp,
    ):
        pages = -(-args.articles // args.per_page)
        listing = (
            f'[[sources]]\nname = "listing"\nurl = "{site.search_url}"\n'
            f'page_url = "{site.page_url_template}"\nmax_pages = 10000\n{SELECT_TOML}'
        )
        print(f"{args.articles} articles, {pages} listing pages of {args.per_page}")
        site.reset_log()
        elapsed, line = asyncio.run(one_pass(config_text(Path(tmp) / "a.db", listing), "listing"))
        print(f"listing backfill, no article pages: {len(site.requests)} requests, {elapsed:.1f}s")
        print(f"  {line}")
        with_pages = listing + "\n[sources.article]\nmax_per_pass = 10000\n"
        site.reset_log()
        elapsed, line = asyncio.run(
            one_pass(config_text(Path(tmp) / "b.db", with_pages), "listing")
        )
        print(f"listing backfill with article pages: {len(site.requests)} requests, {elapsed:.1f}s")
        print(f"  {line}")
        api = f'[[sources]]\nname = "api"\ntype = "wordpress"\nurl = "{site.base_url}/"\nmax_pages = 100\n'
        site.reset_log()
        elapsed, line = asyncio.run(one_pass(config_text(Path(tmp) / "c.db", api), "api"))
        print(f"REST API backfill: {len(site.requests)} requests, {elapsed:.1f}s")
        print(f"  {line}")
        feed = f'[[sources]]\nname = "feed"\ntype = "feed"\nurl = "{site.feed_url}"\n'
        site.reset_log()
        elapsed, line = asyncio.run(one_pass(config_text(Path(tmp) / "d.db", feed), "feed"))
        print(f"feed pass (10 items): {len(site.requests)} request(s), {elapsed:.2f}s")
        print("main text of the local site's article pages (200 pages):")
        extraction(site, 200)
        print("feed parsing:")
        feed_parsers()


if __name__ == "__main__":
    main()
