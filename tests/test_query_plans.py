"""Every query the store runs on its big tables is served by an index (issue 15): 100,000
articles, 110,000 listings, 20,000 matches and 100,000 deliveries, on SQLite and PostgreSQL.

Each query is the statement the store itself sends: the `Store` method is called and its SQL
and parameters are taken from SQLAlchemy's `before_cursor_execute` event (a method that writes
is stopped before its statement runs), then explained on the same database: PostgreSQL
`EXPLAIN (FORMAT JSON)` after `ANALYZE` (the planner has the table's statistics), SQLite
`EXPLAIN QUERY PLAN` (without ANALYZE, as a worker's database is). No plan may read a whole big
table: no `Seq Scan` node on PostgreSQL, no `SCAN <table>` without an index on SQLite.

The data is built once per database for the module (a few seconds each).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql

from worker.models import AlertPlan, Item
from worker.store import Store
from worker.store.tables import (
    article_sources,
    articles,
    deliveries,
    digests,
    incidents,
    matches,
    sources,
)

N = 100_000  # articles
SOURCES = 20
WATCHLISTS = 10
CHANNELS = 5
BIG = ("articles", "article_sources", "matches", "deliveries")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(minutes=N + 10)


def fill(store: Store, n: int = N) -> None:
    """`n` articles and what goes with them (bench/bench_queries.py builds larger ones), as
    tuples of the values the driver takes (timestamps as UTC text on SQLite, JSON as text),
    inserted in bulk (`_bulk`)."""
    sqlite = store.dialect == "sqlite"

    def ts(at: datetime) -> Any:
        return at.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else at

    minute = [ts(T0 + timedelta(minutes=i)) for i in range(n + 2)]
    hour_before = [ts(T0 + timedelta(minutes=i - 60)) for i in range(n + 2)]
    later = [ts(T0 + timedelta(minutes=i + 5)) for i in range(n + 2)]
    yes, no = (1, 0) if sqlite else (True, False)
    a_rows, s_rows, m_rows, d_rows = [], [], [], []
    for i in range(1, n + 1):
        at = minute[i]
        src = f"s{i % SOURCES:02d}"
        a_rows.append(
            (
                i,
                f"https://site{i % SOURCES}.example/2026/news-{i}/",
                f"News {i}",
                "",
                None if i % 10 == 0 else hour_before[i],
                at,
                None if i % 2 else "text",
                0,
                f"{i:032x}",
                src,
            )
        )
        s_rows.append((i, src, at, 1, at, yes))
        if i % 10 == 1:  # a second source lists one article in ten
            s_rows.append((i, f"s{(i + 1) % SOURCES:02d}", at, 1, at, no))
        if i % 5 == 0:
            watchlist = f"w{i % WATCHLISTS}"
            m_rows.append((i, watchlist, '["x"]', at))
            for c in range(CHANNELS):
                k = len(d_rows)
                status = "pending" if k % 100 == 0 else "failed" if k % 50 == 1 else "sent"
                due = later[i] if k % 200 == 0 else None
                sent = at if status == "sent" else None
                d_rows.append((i, watchlist, f"c{c}", status, 1, due, "[]", at, sent, src))
    base = ts(T0 + timedelta(minutes=5))
    tables = [
        (
            articles,
            "id, url, title, summary, published, first_seen, body, page_tries, fingerprint, source",
            a_rows,
        ),
        (article_sources, "article_id, source, first_seen, page, pass_started, own", s_rows),
        (matches, "article_id, watchlist, keywords, matched_at", m_rows),
        (
            deliveries,
            "article_id, watchlist, channel, status, attempts, next_attempt_at, done_targets, "
            "created, sent_at, source",
            d_rows,
        ),
        (
            sources,
            "name, baselined_at, failures",
            [(f"s{n:02d}", base, 0) for n in range(SOURCES)],
        ),
        (
            digests,
            "channel, kind, watchlist, status, attempts, done_targets, created",
            [
                (f"c{n % CHANNELS}", "digest", f"w{n % WATCHLISTS}", "sent", 1, "[]", minute[n])
                for n in range(200)
            ],
        ),
        (
            incidents,
            "kind, subject, status, streak",
            [("failing", f"s{n:02d}", "closed", 3) for n in range(SOURCES)],
        ),
    ]
    with store._engine.begin() as conn:
        for table, columns, rows in tables:
            _bulk(conn, sqlite, table, columns, rows)
        if not sqlite:
            # the ids were given: the sequences start above them, as after real inserts
            for name in ("articles", "deliveries", "digests", "incidents"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
    if not sqlite:
        with store._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f"ANALYZE {', '.join(t.name for t, _, _ in tables)}")


def _bulk(
    conn: sa.Connection, sqlite: bool, table: sa.Table, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    """SQLite: one executemany; PostgreSQL: one INSERT of arrays."""
    width = len(columns.split(","))
    cursor = conn.connection.cursor()
    try:
        if sqlite:
            marks = ", ".join("?" * width)
            cursor.executemany(f"INSERT INTO {table.name} ({columns}) VALUES ({marks})", rows)
            return
        # one INSERT .. SELECT FROM unnest(arrays) per table: the rows travel as arrays
        names = [c.strip() for c in columns.split(",")]
        kinds = [table.c[c].type.compile(dialect=postgresql.dialect()) for c in names]
        arrays = [f"%s::{'TEXT' if k == 'JSON' else k}[]" for k in kinds]
        picked = [
            f"u.{c}::{k}" if k == "JSON" else f"u.{c}" for c, k in zip(names, kinds, strict=True)
        ]
        cursor.execute(
            f"INSERT INTO {table.name} ({columns}) SELECT {', '.join(picked)} "
            f"FROM unnest({', '.join(arrays)}) AS u({columns})",
            [list(values) for values in zip(*rows, strict=True)],
            binary=True,
        )
    finally:
        cursor.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def big(request, tmp_path_factory) -> Iterator[Store]:
    """A store holding N articles and what goes with them (built once per database)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('plans') / 'big.db'}"
        admin = None
    else:
        admin_url = request.getfixturevalue("pg_admin_url")
        name = f"worker_plans_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.engine.make_url(admin_url).set(database=name).render_as_string(False)
    store = Store(url)
    try:
        store.migrate()
        started = time.perf_counter()
        fill(store)
        print(f"{request.param}: filled in {time.perf_counter() - started:.1f}s")
        yield store
    finally:
        store.close()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


class _Stop(Exception):
    """Raised before a captured write runs: nothing is changed."""


@dataclass(frozen=True)
class Sent:
    sql: str
    params: Any


def sent_by(store: Store, call: Callable[[Store], object], *, write: bool = False) -> list[Sent]:
    """The statements `call(store)` sends (with `write`: only its first, which is not run)."""
    sent: list[Sent] = []

    def capture(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if sql.lstrip().upper().startswith(("BEGIN", "PRAGMA", "SAVEPOINT", "RELEASE")):
            return
        if many and params and isinstance(params[0], tuple | list | dict):
            params = params[0]  # an executemany: the first row's parameters
        sent.append(Sent(sql, params or ()))
        if write:
            raise _Stop

    event.listen(store._engine, "before_cursor_execute", capture)
    try:
        call(store)
    except _Stop:
        pass
    finally:
        event.remove(store._engine, "before_cursor_execute", capture)
    assert sent, "the call sent no statement"
    return sent


def _pg_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from _pg_nodes(child)


_SQLITE_SCAN = re.compile(r"^SCAN (\w+)\b")  # with or without an index: all of it


def full_scans(store: Store, statement: Sent) -> list[str]:
    """The big tables the plan of `statement` reads whole, and the plan as text."""
    with store._engine.connect() as conn:
        if store.dialect == "postgresql":
            explained = conn.exec_driver_sql(
                f"EXPLAIN (FORMAT JSON) {statement.sql}", statement.params
            ).scalar()
            nodes = list(_pg_nodes(explained[0]["Plan"]))
            return [
                f"Seq Scan on {n['Relation Name']}"
                for n in nodes
                if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG
            ]
        details = [
            row[3]
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement.sql}", statement.params)
        ]
    # a walk in the order asked for that stops at the LIMIT (no sort of what it read) is not
    # a full scan: `SCAN deliveries` for ORDER BY id DESC LIMIT 50 reads 50 rows
    stops = " LIMIT " in statement.sql.upper() and not any("TEMP B-TREE" in d for d in details)
    return [
        d
        for d in details
        if (match := _SQLITE_SCAN.match(d)) and match.group(1) in BIG and not stops
    ]


def plan_text(store: Store, statement: Sent) -> str:
    with store._engine.connect() as conn:
        if store.dialect == "postgresql":
            return "\n".join(
                r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement.sql}", statement.params)
            )
        return "\n".join(
            r[3]
            for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement.sql}", statement.params)
        )


URL = f"https://site7.example/2026/news-{N - 13}/"


def _page(store: Store) -> None:
    items = [
        Item(
            url=f"https://site3.example/2026/news-{N - k * 20}/",
            title=f"News {N - k * 20}",
            summary="",
            published=None,
        )
        for k in range(5)
    ] + [
        Item(
            url=f"https://site3.example/2026/fresh-{k}/",
            title=f"Fresh railway news {k}",
            summary="A line that carries containers across the steppe.",
            published=NOW,
        )
        for k in range(5)
    ]

    def plan(item: Item) -> list[AlertPlan]:
        return [AlertPlan(watchlist="w1", keywords=("railway",), channels=("c1",))]

    store.store_page(
        "s03",
        items,
        plan,
        silent=False,
        now=NOW,
        listing_page=1,
        pass_started=NOW,
        listing_url="https://site3.example/?s=x",
    )


READS: dict[str, Callable[[Store], object]] = {
    "articles, newest first": lambda s: s.list_articles(limit=50),
    "articles of a source": lambda s: s.list_articles(source="s03", limit=50),
    "articles of a watchlist": lambda s: s.list_articles(watchlist="w3", limit=50),
    "articles since a day ago (search)": lambda s: s.articles_since(NOW - timedelta(days=1)),
    "a source's articles since a day ago": lambda s: s.articles_since(
        NOW - timedelta(days=1), source="s03"
    ),
    "alerts, newest first": lambda s: s.list_alerts(limit=50),
    "failed alerts": lambda s: s.list_alerts(status="failed", limit=50),
    "matches of a watchlist": lambda s: s.list_matches("w3", limit=100),
    "why: one URL": lambda s: s.lookup_url([URL]),
    "the alert queue's next due time": lambda s: s.next_due_at(),
    "urls listed since (resuming)": lambda s: s.urls_listed_since("s03", NOW - timedelta(hours=1)),
    "the last new article of a source": lambda s: s.last_new_at("s03"),
    "article pages to fetch": lambda s: s.pending_article_pages("s03", 20),
    "a channel's first waiting alert": lambda s: s.first_waiting_at("c1", "w1"),
    "a channel's sends since": lambda s: s.sent_since("c1", NOW - timedelta(hours=1)),
    "the next digest due": lambda s: s.next_digest_due_at(),
    "a source's state": lambda s: s.source_state("s03"),
    "storing a page": _page,
}

WRITES: dict[str, Callable[[Store], object]] = {
    "claiming due alerts": lambda s: s.claim_due(owner="x", now=NOW, lease=60, limit=50),
    "claiming due alerts of channels": lambda s: s.claim_due(
        owner="x", now=NOW, lease=60, limit=50, channels=["c1", "c2"], hold_watchlists=["w9"]
    ),
    "recording a sent alert": lambda s: s.mark_sent(17, at=NOW),
    "giving back claims": lambda s: s.release_claims("x"),
    "requeuing failed alerts": lambda s: s.retry_failed(),
    "holding a channel's alerts": lambda s: s.hold_channel("c1", "quiet"),
    "cutting a digest": lambda s: s.cut_digest("c1", watchlist="w1", at=NOW),
    "claiming digests": lambda s: s.claim_digests(
        owner="x", channel="c1", now=NOW, lease=60, limit=5
    ),
}


@pytest.mark.parametrize("what", list(READS))
def test_a_read_the_store_runs_reads_no_big_table_whole(big: Store, what: str) -> None:
    for statement in sent_by(big, READS[what]):
        scans = full_scans(big, statement)
        assert scans == [], f"{what}: {scans}\n{statement.sql}\n{plan_text(big, statement)}"


@pytest.mark.parametrize("what", list(WRITES))
def test_a_write_the_store_runs_reads_no_big_table_whole(big: Store, what: str) -> None:
    for statement in sent_by(big, WRITES[what], write=True):
        scans = full_scans(big, statement)
        assert scans == [], f"{what}: {scans}\n{statement.sql}\n{plan_text(big, statement)}"
