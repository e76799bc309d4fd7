"""Bookkeeping benchmark: the transactions around a pass and the time they take (issue 15).

    python bench/bench_bookkeeping.py [--sources 50] [--rounds 5] [--articles 300]

The local news site (worker.site) serves one listing from a thread of this process; `--sources`
sources of one config read it (same URL, own names), on a SQLite store in a temporary directory.
After a baseline round, `--rounds` rounds of quiet passes: `Runtime.once` over every source at
once (the daemon's case: passes contending for SQLite's write lock), first with the site's
conditional answers on (page 1 answers 304: a quiet pass stores no page) and then off (page 1
comes back 200 and is stored).

Counted per pass, with SQLAlchemy's `begin` event on the store's engine: transactions (writes:
`BEGIN IMMEDIATE` on SQLite; reads). Timed per pass: the bookkeeping, i.e. the time spent in
every `Store` method a pass calls except `store_page` (storing the page is the work, not the
bookkeeping), lock waits included; the median and the smallest of the rounds' averages. Runs against whichever `worker` is first on PYTHONPATH, so
two checkouts can be compared (`PYTHONPATH=/tmp/before python bench/bench_bookkeeping.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import machine
from sqlalchemy import event

from worker.config import load_config
from worker.fetch import Fetcher
from worker.pipeline import Runtime
from worker.site import SELECT_TOML, NewsSite
from worker.store import Store

CONFIG = """\
database = "{database}"

[http]
min_delay = 0
concurrency = 8
per_host = 8
timeout = 30

[logging]
level = "WARNING"

[channels]
console = "console://"

[[watchlists]]
name = "rail"
keywords = ["railway"]
channels = ["console"]
{sources}"""

SOURCE = """
[[sources]]
name = "s{n:03d}"
url = "{url}"
max_pages = 1000
{select}
"""


class Counting:
    """Transactions begun on a Store's engines, and the time spent in its methods."""

    def __init__(self, store: Store) -> None:
        self.tx: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        engine = store._engine  # a benchmark looks inside

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("worker_sqlite_begin", "DEFERRED")
            self.tx["write" if mode == "IMMEDIATE" else "read"] += 1

        for name in dir(store):
            if name.startswith("_") or name in ("close", "migrate", "dialect"):
                continue
            method = getattr(store, name)
            if callable(method):
                setattr(store, name, self._timed(name, method))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed

    def reset(self) -> None:
        self.tx.clear()
        self.seconds.clear()
        self.calls.clear()

    def bookkeeping(self) -> float:
        return sum(s for name, s in self.seconds.items() if name != "store_page")


async def rounds(config_path: Path, site: NewsSite, n_rounds: int) -> dict[str, Any]:
    config = load_config(config_path)
    store = Store(config.database)
    store.migrate()
    counting = Counting(store)
    results: dict[str, Any] = {}
    try:
        async with Fetcher(config.http) as fetcher:
            runtime = Runtime(config, store=store, fetcher=fetcher)
            with contextlib.redirect_stdout(io.StringIO()):
                first = await runtime.once(config.sources)  # the baseline walks
            if not first.ok:
                sys.exit(f"baseline failed: {[p.line() for p in first.passes][:3]}")
            for conditional in (True, False):
                site.conditional = conditional
                await runtime.once(config.sources)  # validators settle: not counted
                per_pass: list[float] = []
                walls: list[float] = []
                counting.reset()
                for _ in range(n_rounds):
                    before = counting.bookkeeping()
                    started = time.perf_counter()
                    result = await runtime.once(config.sources)
                    walls.append(time.perf_counter() - started)
                    if not result.ok or any(p.crawl.new for p in result.passes):
                        sys.exit(f"quiet round failed: {[p.line() for p in result.passes][:3]}")
                    per_pass.append((counting.bookkeeping() - before) / len(config.sources))
                passes = n_rounds * len(config.sources)
                results["304" if conditional else "200"] = {
                    "write": counting.tx["write"] / passes,
                    "read": counting.tx["read"] / passes,
                    "bookkeeping_ms": statistics.median(per_pass) * 1000,
                    "bookkeeping_min_ms": min(per_pass) * 1000,
                    "round_s": statistics.median(walls),
                    "calls": {k: v / passes for k, v in sorted(counting.calls.items())},
                }
    finally:
        store.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sources", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--articles", type=int, default=300)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    import worker

    print(f"worker from {Path(worker.__file__).parent}")
    site = NewsSite.synthetic(args.articles, per_page=10)
    with site, tempfile.TemporaryDirectory(prefix="bench-bookkeeping-") as tmp:
        sources = "".join(
            SOURCE.format(n=n, url=site.search_url, select=SELECT_TOML) for n in range(args.sources)
        )
        path = Path(tmp) / "worker.toml"
        db = Path(tmp) / "bookkeeping.db"
        path.write_text(CONFIG.format(database=f"sqlite:///{db}", sources=sources), "utf-8")
        results = asyncio.run(rounds(path, site, args.rounds))
    print(f"\n{args.sources} sources, {args.rounds} rounds of quiet passes (all sources at once)")
    print(
        f"{'page 1':8} {'write tx':>9} {'read tx':>8} {'bookkeeping (median, min)':>26} "
        f"{'round':>8}"
    )
    for kind, r in results.items():
        print(
            f"{kind:8} {r['write']:9.2f} {r['read']:8.2f} {r['bookkeeping_ms']:11.2f} ms "
            f"{r['bookkeeping_min_ms']:8.2f} ms {r['round_s'] * 1000:6.0f}ms"
        )
    for kind, r in results.items():
        calls = ", ".join(f"{k} {v:g}" for k, v in r["calls"].items())
        print(f"store calls per pass ({kind}): {calls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
