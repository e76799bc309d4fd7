"""Incremental benchmark: what a pass costs once a long listing is stored, quiet or with 5 new.

    python bench/bench_incremental.py [--sizes 3000,30000] [--per-page 10] [--repeat 3]

For each listing size (default 3,000 and 30,000 articles, i.e. 300 and 3,000 pages of 10), the
local news site (worker/site.py) is served from a thread of this process and the baseline is
stored once by `python -m worker once` in a subprocess (page_url + results: pages fetched
concurrently). Then, for a config that follows `next` links and one with `page_url`:

- quiet: a pass when nothing was published;
- 5 new: 5 articles matching the "rail" watchlist are published, then a pass: they must be
  stored (5 new) and alerted (5 alerts sent to console://, captured here).

Each pass is measured two ways: in this process (`pipeline.run_once`, the pass itself: store
open, crawl, delivery; median of --repeat) and as the command a cron job would run
(`python -m worker once` in a subprocess, process startup included). The listing requests
come from the site's own log (NewsSite.listing_requests()). Target: at most 2 listing requests
for a quiet and a 5-new pass at any listing length, and a time that does not grow with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import machine, median, run_measured, worker_cmd, write_config

from worker.config import load_config
from worker.pipeline import run_once
from worker.site import NewsSite

TARGET_REQUESTS = 2
RAIL_TITLES = (
    "Kazakhstan Opens a New Railway Crossing with China at Bakhty",
    "Uzbekistan Orders Electric Locomotives for the Railway to Termez",
    "Kyrgyzstan Starts Building the China-Kyrgyzstan-Uzbekistan Railway",
    "Tajikistan Upgrades Its Railway Link to Afghanistan",
    "Turkmenistan Railway Freight Doubles on the Trans-Caspian Route",
)


@dataclass
class PassResult:
    size: int
    mode: str  # next | page
    kind: str  # quiet | 5 new
    how: str  # in-process | cli
    requests: int
    new: int
    sent: int
    seconds: float


def in_process_pass(config_path: Path) -> tuple[float, int, int]:
    config = load_config(config_path)
    captured = io.StringIO()  # console:// alerts are printed on stdout
    started = time.perf_counter()
    with contextlib.redirect_stdout(captured):
        result = asyncio.run(run_once(config))
    seconds = time.perf_counter() - started
    if not result.ok:
        sys.exit(f"pass failed: {[p.line() for p in result.passes]}")
    sent = result.delivery.sent if result.delivery else 0
    return seconds, result.passes[0].crawl.new, sent


def warm(site: NewsSite) -> None:
    """Ask the site for page 1 first, so that its own work after a publish (sorting the
    listing again) is not counted in the pass; then clear its request log."""
    with urllib.request.urlopen(site.search_url, timeout=30) as answer:
        answer.read()
    site.reset_log()


def publish_five(site: NewsSite, round_no: int) -> None:
    for title in RAIL_TITLES:
        site.publish(
            f"{title} ({round_no})",
            "The line will carry containers between China, Central Asia and Europe.",
        )


def bench_size(size: int, per_page: int, repeat: int, tmp: Path) -> list[PassResult]:
    pages = -(-size // per_page)
    started = time.perf_counter()
    site = NewsSite.synthetic(size, per_page=per_page)
    results: list[PassResult] = []
    published = 0
    with site:
        db = tmp / f"incremental-{size}.db"
        configs = {
            mode: write_config(
                tmp / f"incremental-{size}-{mode}.toml",
                database=f"sqlite:///{db}",
                search_url=site.search_url,
                page_url=site.page_url_template if mode == "page" else None,
            )
            for mode in ("next", "page")
        }
        baseline = run_measured(worker_cmd(configs["page"]), cwd=tmp, timeout=900)
        if baseline.returncode != 0:
            sys.exit(f"baseline failed:\n{baseline.stdout}\n{baseline.stderr[-2000:]}")
        print(
            f"\n== {size:,} articles, {pages:,} pages (site built and baseline stored in "
            f"{time.perf_counter() - started:.1f}s; baseline `worker once` {baseline.wall:.1f}s, "
            f"peak RSS {baseline.max_rss_mb:.0f} MB, {site.listing_requests()} listing requests)"
        )
        in_process_pass(configs["next"])  # warm-up (imports, first connection): not counted
        for mode, config in configs.items():
            for kind in ("quiet", "5 new"):
                samples: list[tuple[float, int, int, int]] = []
                for _ in range(repeat):
                    if kind == "5 new":
                        published += 1
                        publish_five(site, published)
                    warm(site)
                    seconds, new, sent = in_process_pass(config)
                    samples.append((seconds, new, sent, site.listing_requests()))
                results.append(
                    PassResult(
                        size,
                        mode,
                        kind,
                        "in-process",
                        max(s[3] for s in samples),
                        min(s[1] for s in samples),
                        min(s[2] for s in samples),
                        median([s[0] for s in samples]),
                    )
                )
                if kind == "5 new":
                    published += 1
                    publish_five(site, published)
                warm(site)
                cli = run_measured(worker_cmd(config), cwd=tmp)
                if cli.returncode != 0:
                    sys.exit(f"cli pass failed:\n{cli.stdout}\n{cli.stderr[-2000:]}")
                sent_match = re.search(r"alerts: (\d+) sent", cli.stdout)
                new_match = re.search(r"(\d+) new,", cli.stdout)
                sent = int(sent_match.group(1)) if sent_match else -1
                new = int(new_match.group(1)) if new_match else -1
                results.append(
                    PassResult(
                        size, mode, kind, "cli", site.listing_requests(), new, sent, cli.wall
                    )
                )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="3000,30000", help="articles per listing (comma)")
    parser.add_argument("--per-page", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="in-process passes per figure")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    print(f"machine: {machine()}")
    results: list[PassResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        for size in sizes:
            results.extend(bench_size(size, args.per_page, args.repeat, Path(tmp)))

    print(f"\n{'pages':>6} {'config':6} {'pass':6} {'how':11} {'listing req':>11} {'new':>4} "
          f"{'sent':>5} {'time':>9}")  # fmt: skip
    for r in results:
        pages = -(-r.size // args.per_page)
        print(
            f"{pages:6,} {r.mode:6} {r.kind:6} {r.how:11} {r.requests:11} {r.new:4} {r.sent:5} "
            f"{r.seconds * 1000:7.0f}ms"
        )
    ok = all(r.requests <= TARGET_REQUESTS for r in results)
    ok &= all(r.new == (5 if r.kind == "5 new" else 0) for r in results)
    ok &= all(r.sent == (5 if r.kind == "5 new" else 0) for r in results if r.how == "in-process")
    print(
        f"\nat most {TARGET_REQUESTS} listing requests per pass, 5 new stored and alerted: "
        f"{'OK' if ok else 'MISSED'}"
    )
    for how in ("in-process", "cli"):
        by_size = {
            size: median([r.seconds for r in results if r.size == size and r.how == how])
            for size in sizes
        }
        text = ", ".join(
            f"{-(-s // args.per_page):,} pages {t * 1000:.0f}ms" for s, t in by_size.items()
        )
        print(f"median pass time ({how}): {text}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
