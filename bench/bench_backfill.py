"""Backfill benchmark: `worker once` on an empty SQLite database against a Scrapy spider.

    python bench/bench_backfill.py [--rounds 3] [--delays 0,0.02] [--articles 3000]
                                   [--per-page 10] [--concurrency 8] [--profile DIR]

The local news site (worker/site.py, NewsSite.synthetic: 3,000 articles, 300 pages of 10) is
served on 127.0.0.1 from a thread of this process. Four runs per round, each in its own
subprocess, in alternating order (reversed every other round); for each, the wall time (fork to
exit, process startup included), the CPU time and the peak RSS (os.wait4's ru_maxrss of that
child) are recorded:

- worker/next: `python -m worker once`, the source follows the `next` link (no `page_url`);
- scrapy/next: bench/scrapy_spider.py follows the same `next` link (the reference spider);
- worker/page: the source has `page_url` and `results`: the last page is known from "of Z" on
  page 1 and the others are fetched ahead concurrently (window = 2 x http.concurrency);
- scrapy/counter: the spider reads the same counter on page 1 and yields every other page at
  once, so Scrapy fetches them concurrently too (its defaults: CONCURRENT_REQUESTS=16, 8 per
  domain, no AutoThrottle; ROBOTSTXT_OBEY off, LOG_LEVEL=WARNING).

The worker stores, deduplicates and matches every article (the two watchlists of the demo config;
the first pass is silent); the spider writes JSON lines. After every run, both outputs are checked
against the site: the same 3,000 canonical URLs (worker.urls.canonicalize on the spider's links).

Each delay in --delays is one scenario: the site waits that many seconds before every answer
(0: loopback as fast as it goes, which measures CPU per page; 0.02: a fast remote server, which
measures how each tool hides latency).

With --profile DIR one extra worker run per mode of the first scenario is recorded with
pyinstrument (DIR/next.html, DIR/page.html and .txt).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from _common import (
    Measured,
    compile_worker,
    machine,
    median,
    pass_seconds,
    run_measured,
    worker_cmd,
    write_config,
)

from worker.site import NewsSite
from worker.urls import canonicalize

SPIDER = Path(__file__).with_name("scrapy_spider.py")
RUNS = (("worker", "next"), ("scrapy", "next"), ("worker", "page"), ("scrapy", "page"))
LABELS = {
    ("worker", "next"): "worker/next",
    ("scrapy", "next"): "scrapy/next",
    ("worker", "page"): "worker/page",
    ("scrapy", "page"): "scrapy/counter",
}
TARGET_NEXT = 0.8  # worker/next vs scrapy/next (issue 15; issue 4 asked 1.0)
TARGET_PAGE = 0.5  # worker/page vs Scrapy
TARGET_RSS_MB = 150


@dataclass
class Run:
    key: tuple[str, str]
    measured: Measured
    listing_requests: int
    crawl_seconds: float | None = None  # the worker's own pass duration (no startup)


def _fresh_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def check_worker(db: Path, expected: set[str]) -> tuple[bool, str]:
    with sqlite3.connect(db) as conn:
        urls = {row[0] for row in conn.execute("SELECT url FROM articles")}
    ok = urls == expected
    return ok, f"worker stored {len(urls)} URLs" + (
        "" if ok else f" ({len(urls ^ expected)} differ)"
    )


def check_spider(path: Path, expected: set[str], site: NewsSite) -> tuple[bool, str]:
    urls: set[str] = set()
    titles = dates = rows = 0
    by_url = {site.url(a): a for a in site.articles()}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            rows += 1
            url = canonicalize(row["url"])
            if url is None:
                continue
            urls.add(url)
            article = by_url.get(url)
            if article is not None:
                titles += " ".join(row["title"].split()) == " ".join(article.title.split())
                dates += datetime.fromisoformat(row["published"]) == article.published
    ok = urls == expected and rows == len(expected)
    text = (
        f"spider wrote {rows} rows, {len(urls)} canonical URLs ({titles} titles and {dates} "
        "dates as published)"
    )
    return ok, text + ("" if ok else f" ({len(urls ^ expected)} URLs differ)")


def worker_config(tmp: Path, site: NewsSite, mode: str, concurrency: int, db: Path) -> Path:
    return write_config(
        tmp / f"worker-{mode}.toml",
        database=f"sqlite:///{db}",
        search_url=site.search_url,
        page_url=site.page_url_template if mode == "page" else None,
        concurrency=concurrency,
    )


def run_worker(tmp: Path, site: NewsSite, mode: str, concurrency: int) -> tuple[Run, bool, str]:
    db = tmp / "worker.db"
    _fresh_db(db)
    config = worker_config(tmp, site, mode, concurrency, db)
    site.reset_log()
    measured = run_measured(worker_cmd(config), cwd=tmp)
    if measured.returncode != 0:
        sys.exit(f"worker failed ({measured.returncode}):\n{measured.stdout}\n{measured.stderr}")
    run = Run(("worker", mode), measured, site.listing_requests(), pass_seconds(measured.stdout))
    ok, text = check_worker(db, {site.url(a) for a in site.articles()})
    return run, ok, text


def run_spider(tmp: Path, site: NewsSite, mode: str) -> tuple[Run, bool, str]:
    out = tmp / f"scrapy-{mode}.jsonl"
    out.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "scrapy",
        "runspider",
        str(SPIDER),
        "-a",
        f"start_url={site.search_url}",
        *(["-a", f"page_url={site.page_url_template}"] if mode == "page" else []),
        "-O",
        str(out),
        "-s",
        "LOG_LEVEL=WARNING",
        "-s",
        "ROBOTSTXT_OBEY=False",
    ]
    site.reset_log()
    measured = run_measured(cmd, cwd=tmp)
    if measured.returncode != 0 or not out.exists():
        sys.exit(f"scrapy failed ({measured.returncode}):\n{measured.stderr[-3000:]}")
    ok, text = check_spider(out, {site.url(a) for a in site.articles()}, site)
    return Run(("scrapy", mode), measured, site.listing_requests()), ok, text


def profile_worker(tmp: Path, site: NewsSite, mode: str, concurrency: int, out: Path) -> None:
    db = tmp / "profile.db"
    config = worker_config(tmp, site, mode, concurrency, db)
    out.mkdir(parents=True, exist_ok=True)
    for renderer, suffix in (("html", "html"), ("text", "txt")):
        _fresh_db(db)
        target = out / f"{mode}.{suffix}"
        cmd = [sys.executable, "-m", "pyinstrument", "-r", renderer, "-o", str(target)]
        measured = run_measured([*cmd, "-m", "worker", "--config", str(config), "once"], cwd=tmp)
        if measured.returncode != 0:
            print(f"  profile run failed: {measured.stderr[-500:]}")
    print(f"  profile of worker/{mode}: {out / mode}.html and .txt")


def report(delay: float, runs: list[Run]) -> bool:
    by_key = {key: [r for r in runs if r.key == key] for key in RUNS}
    wall = {key: median([r.measured.wall for r in group]) for key, group in by_key.items() if group}
    rounds = max(len(group) for group in by_key.values())
    print(f"\n== site delay {delay * 1000:.0f} ms per answer: medians of {rounds} rounds")
    print(f"  {'':15} {'wall s':>7} {'cpu s':>6} {'peak RSS MB':>12} {'listing requests':>17}")
    for key, group in by_key.items():
        if not group:
            continue
        cpu = median([r.measured.cpu for r in group])
        rss = max(r.measured.max_rss_mb for r in group)
        requests = sorted({r.listing_requests for r in group})
        crawl = [r.crawl_seconds for r in group if r.crawl_seconds is not None]
        extra = f"   (pass alone {median(crawl):.1f}s)" if crawl else ""
        print(f"  {LABELS[key]:15} {wall[key]:7.2f} {cpu:6.2f} {rss:12.1f} {requests!s:>17}{extra}")
    ok = True

    def ratio(a: tuple[str, str], b: tuple[str, str], target: float, note: str) -> None:
        nonlocal ok
        if a in wall and b in wall:
            value = wall[a] / wall[b]
            hit = value <= target
            ok &= hit
            print(
                f"  {LABELS[a]} / {LABELS[b]}: {value:.2f} "
                f"(target <= {target}: {'OK' if hit else 'MISSED'}){note}"
            )

    ratio(("worker", "next"), ("scrapy", "next"), TARGET_NEXT, "")
    ratio(("worker", "page"), ("scrapy", "page"), TARGET_PAGE, "  <- Scrapy as concurrent")
    ratio(("worker", "page"), ("scrapy", "next"), TARGET_PAGE, "  <- the reference spider")
    worker_rss = max((r.measured.max_rss_mb for r in runs if r.key[0] == "worker"), default=0.0)
    rss_ok = worker_rss < TARGET_RSS_MB
    ok &= rss_ok
    print(
        f"  worker peak RSS {worker_rss:.0f} MB "
        f"(target < {TARGET_RSS_MB} MB: {'OK' if rss_ok else 'MISSED'})"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delays", default="0,0.02", help="seconds per answer, comma separated")
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--per-page", type=int, default=10)
    parser.add_argument("--modes", default="next,page", help="next and/or page (comma)")
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's http.concurrency")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR")
    args = parser.parse_args()
    modes = {m.strip() for m in args.modes.split(",") if m.strip()}
    if not modes or not modes <= {"next", "page"}:
        parser.error("--modes: next and/or page")
    delays = [float(d) for d in args.delays.split(",") if d.strip()]
    try:
        import scrapy  # noqa: F401
    except ImportError:
        sys.exit("Scrapy is not installed: pip install -e '.[bench]'")

    started = time.perf_counter()
    print(f"machine: {machine()}")
    print(compile_worker())
    site = NewsSite.synthetic(args.articles, per_page=args.per_page)
    pages = -(-args.articles // args.per_page)
    all_ok = True
    with site, tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"site: {site.search_url} ({args.articles:,} articles, {pages} pages)")
        for delay in delays:
            site.set_delay(delay)
            runs: list[Run] = []
            checks: set[str] = set()
            order = [key for key in RUNS if key[1] in modes]
            for round_no in range(args.rounds):
                for tool, mode in order if round_no % 2 == 0 else order[::-1]:
                    if tool == "worker":
                        run, ok, text = run_worker(tmp, site, mode, args.concurrency)
                    else:
                        run, ok, text = run_spider(tmp, site, mode)
                    runs.append(run)
                    all_ok &= ok
                    checks.add(f"{LABELS[run.key]}: " + ("OK, " if ok else "MISMATCH, ") + text)
                    print(
                        f"  [delay {delay * 1000:.0f} ms, round {round_no + 1}] "
                        f"{LABELS[run.key]:15} {run.measured.wall:6.2f}s "
                        f"{run.measured.max_rss_mb:6.1f} MB {run.listing_requests} listing requests",
                        flush=True,
                    )
            print("  same URLs as the site:")
            for line in sorted(checks):
                print(f"    {line}")
            all_ok &= report(delay, runs)
            if args.profile is not None and delay == delays[0]:
                for mode in sorted(modes):
                    profile_worker(tmp, site, mode, args.concurrency, args.profile)
    print(f"\n(total {time.perf_counter() - started:.0f}s)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
