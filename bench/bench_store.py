"""Store benchmark: articles per second through Store.store_page, on SQLite and PostgreSQL.

    python bench/bench_store.py [--articles 10000] [--per-page 10] [--backends sqlite,pg]
                                [--pg-url postgresql://postgres@127.0.0.1:5432/test]

Each page of 10 items goes through `Store.store_page` (one transaction: INSERT .. ON CONFLICT DO
NOTHING of the articles, their ids, the source's listing rows, matches and deliveries), as the
crawler calls it. Scenarios, in this order on one database per backend:

- new: every item is new;
- 50% dup: each page has 5 items this source already stored and 5 new ones;
- 100% dup: every item is already stored (what a quiet pass re-reads);
- new+alerts: every item is new, not silent, and one in two matches a watchlist routed to two
  channels (a match row and two delivery rows each).

Backends: `sqlite` (a file, WAL, as the worker opens it) and `pg` (a fresh database created on
--pg-url's server and dropped afterwards), the default; and two variants kept from the profiling
that led to the worker's current settings: `normal` (PRAGMA synchronous=NORMAL set again by this
script) and `pgcustom` (`SET plan_cache_mode = force_custom_plan` on every connection). The
worker now does both itself, so each variant measures the same as its base.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import PG_ADMIN_URL, machine
from sqlalchemy import event

from worker.models import AlertPlan, Item
from worker.store import Store

Plan = Callable[[Item], Sequence[AlertPlan]]
SOURCE = "bench"
RAIL = AlertPlan(watchlist="rail", keywords=("railway",), channels=("console", "mail"))


def items(prefix: str, start: int, count: int) -> list[Item]:
    base = datetime(2025, 6, 30, tzinfo=UTC)
    return [
        Item(
            url=f"https://news.example.org/2025/06/{prefix}-article-number-{n}/",
            title=f"Kazakhstan and Uzbekistan Sign {n % 40} Agreements on Water Management ({n})",
            summary=(
                "Officials in Kazakhstan said talks with Uzbekistan on water management would "
                "continue later this year. The Trans-Caspian Route is expected to cut transit "
                f"times between both countries. Trade grew by {n % 30}% last year. ({prefix} {n})"
            ),
            published=base - timedelta(minutes=17 * n),
        )
        for n in range(start, start + count)
    ]


def no_plan(item: Item) -> Sequence[AlertPlan]:
    return ()


def half_rail(item: Item) -> Sequence[AlertPlan]:
    return (RAIL,) if item.url.endswith(("0/", "2/", "4/", "6/", "8/")) else ()


def run_pages(
    store: Store, pages: list[list[Item]], plan: Plan, *, silent: bool
) -> tuple[float, int, int]:
    new = alerts = 0
    started = time.perf_counter()
    for page in pages:
        stored = store.store_page(SOURCE, page, plan, silent=silent)
        new += len(stored.new_for_source)
        alerts += stored.alerts_queued
    return time.perf_counter() - started, new, alerts


def paginate(rows: list[Item], per_page: int) -> list[list[Item]]:
    return [rows[i : i + per_page] for i in range(0, len(rows), per_page)]


def bench_backend(name: str, url: str, n: int, per_page: int, setting: str | None) -> list[str]:
    store = Store(url)
    if setting is not None:  # a PRAGMA or SET run on every new connection

        @event.listens_for(store._engine, "connect")
        def _setting(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute(setting)
            if name.startswith("pg"):
                dbapi_conn.commit()

    lines = []
    try:
        store.migrate()
        half = per_page // 2
        first = items("a", 0, n)
        scenarios: list[tuple[str, list[list[Item]], Plan, bool, int, int]] = [
            ("new", paginate(first, per_page), no_plan, True, n, 0),
        ]
        mixed_pages = []
        fresh = items("b", 0, n)
        for i in range(0, n, per_page):
            mixed_pages.append(first[i : i + half] + fresh[i : i + per_page - half])
        expected_mixed = sum(len(p) - min(half, len(p)) for p in mixed_pages)
        scenarios.append(("50% dup", mixed_pages, no_plan, True, expected_mixed, 0))
        scenarios.append(("100% dup", paginate(first, per_page), no_plan, True, 0, 0))
        scenarios.append(
            ("new+alerts", paginate(items("c", 0, n), per_page), half_rail, False, n, n)
        )
        for label, pages, plan, silent, want_new, want_alerts in scenarios:
            seconds, new, alerts = run_pages(store, pages, plan, silent=silent)
            count = sum(len(p) for p in pages)
            if new != want_new or alerts != want_alerts:
                sys.exit(
                    f"{name} {label}: {new} new / {alerts} alerts, expected {want_new}/{want_alerts}"
                )
            lines.append(
                f"  {name:8} {label:11} {count / seconds:9,.0f} articles/s "
                f"{len(pages) / seconds:7,.0f} pages/s {seconds / len(pages) * 1000:6.2f} ms/page "
                f"({new} new, {alerts} deliveries)"
            )
            print(lines[-1], flush=True)
    finally:
        store.close()
    return lines


def pg_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"bench_store_{uuid.uuid4().hex[:8]}"
    admin = make_url(admin_url)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return admin.set(database=name).render_as_string(hide_password=False), drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--articles", type=int, default=10_000, help="per scenario")
    parser.add_argument("--per-page", type=int, default=10)
    parser.add_argument("--backends", default="sqlite,pg")
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="an existing database to connect")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"machine: {machine(postgres=any(b.startswith('pg') for b in backends))}")
    print(f"{args.articles:,} articles per scenario, pages of {args.per_page}, source {SOURCE!r}")
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for backend in backends:
            if backend in ("sqlite", "normal"):
                url = f"sqlite:///{Path(tmp) / f'{backend}.db'}"
                pragma = "PRAGMA synchronous=NORMAL" if backend == "normal" else None
                bench_backend(backend, url, args.articles, args.per_page, pragma)
            elif backend in ("pg", "pgcustom"):
                url, drop = pg_database(args.pg_url)
                setting = (
                    "SET plan_cache_mode = force_custom_plan" if backend == "pgcustom" else None
                )
                try:
                    bench_backend(backend, url, args.articles, args.per_page, setting)
                finally:
                    drop()
            else:
                parser.error(f"unknown backend {backend!r}: sqlite, normal, pg or pgcustom")
    return 0


if __name__ == "__main__":
    sys.exit(main())
