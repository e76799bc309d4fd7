"""Query benchmark: the store's reads at 100k and 1M articles on PostgreSQL, with and without
the indexes of migration 0009_i15idx (issue 15).

    python bench/bench_queries.py [--sizes 100000,1000000] [--repeat 20]

For each size a fresh PostgreSQL database (at $BENCH_PG_URL) is filled as tests/test_query_plans.py
fills its own (`fill`: articles, their listings, matches, deliveries), analysed, then each query
is timed through the `Store` method that runs it (median of --repeat, the connection warm):
first with every index, then with the indexes of 0009_i15idx dropped (the schema before it).
`worker articles` is `Store.list_articles(limit=50)` (and `--source` / `--watchlist`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from _common import PG_ADMIN_URL, machine

from tests.test_query_plans import T0, fill
from worker.store import Store

QUERIES: dict[str, Callable[[Store, int], object]] = {
    "worker articles": lambda s, n: s.list_articles(limit=50),
    "worker articles --source": lambda s, n: s.list_articles(source="s03", limit=50),
    "worker articles --watchlist": lambda s, n: s.list_articles(watchlist="w3", limit=50),
    "search, the last day": lambda s, n: s.articles_since(T0 + timedelta(minutes=n - 1440)),
    "a channel's sends, last hour": lambda s, n: s.sent_since("c1", T0 + timedelta(minutes=n - 60)),
}
NEW_INDEXES = ("ix_articles_newest", "ix_deliveries_channel_sent_at")


def timed(store: Store, n: int, repeat: int) -> dict[str, float]:
    out = {}
    for name, query in QUERIES.items():
        query(store, n)  # warm
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            query(store, n)
            samples.append(time.perf_counter() - started)
        out[name] = statistics.median(samples)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {machine(postgres=True)}")
    admin_url = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        name = f"worker_bench_q_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        store = Store(sa.engine.make_url(admin_url).set(database=name).render_as_string(False))
        try:
            store.migrate()
            started = time.perf_counter()
            fill(store, n)
            print(f"{n:,} articles: filled in {time.perf_counter() - started:.0f}s", flush=True)
            with_index = timed(store, n, args.repeat)
            with store._engine.begin() as conn:  # a benchmark looks inside
                for index in NEW_INDEXES:
                    conn.exec_driver_sql(f"DROP INDEX {index}")
            without = timed(store, n, args.repeat)
            rows += [(n, q, without[q], with_index[q]) for q in QUERIES]
        finally:
            store.close()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(f"\n{'articles':>10} {'query':30} {'before':>10} {'after':>10}")
    for n, q, before, after in rows:
        print(f"{n:10,} {q:30} {before * 1000:8.1f}ms {after * 1000:8.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
