"""The store on SQLite and PostgreSQL: schema, idempotent page storage, the delivery queue.

Every test taking `db_url` runs twice: on a fresh SQLite file and on a fresh PostgreSQL database.
Counts are checked through a separate SQLAlchemy engine, not through the Store under test.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from worker.models import AlertPlan, Item
from worker.store import AlertRow, ArticleRow, Store, StoreError
from worker.store.tables import include_object, metadata

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TABLES = {
    "articles",
    "article_sources",
    "article_aliases",
    "matches",
    "deliveries",
    "sources",
    "robots_txt",
    "alembic_version",
}
TABLES |= {"digests", "incidents", "watchdog_messages"}  # issue #11
TABLES |= {"source_schedule", "replicas"}  # issue #13: a fleet


# --- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    """An engine of our own, to look at the tables behind the Store's back."""
    engine = sa.create_engine(db_url)
    yield engine
    engine.dispose()


def count(engine: sa.Engine, table: str, where: str = "") -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(f"SELECT count(*) FROM {table} {where}")) or 0)


def items(*names: str, **published: datetime) -> list[Item]:
    return [
        Item(
            url=f"https://news.example/{n}",
            title=f"Title {n}",
            summary=f"Summary of {n}",
            published=published.get(n),
        )
        for n in names
    ]


def url(name: str) -> str:
    return f"https://news.example/{name}"


class Planner:
    """A stand-in for the matcher: every item matches the given watchlists; records its calls."""

    def __init__(self, plans: dict[str, tuple[str, ...]] | None = None) -> None:
        self.plans = plans if plans is not None else {"rail": ("mail", "chat")}
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, item: Item) -> Sequence[AlertPlan]:
        with self._lock:
            self.calls.append(item.url)
        return [AlertPlan(w, ("railway",), channels) for w, channels in self.plans.items()]


def queue(store: Store, n: int, *, channels: tuple[str, ...] = ("mail",)) -> None:
    """Store n articles with one delivery per channel each (ids in article order)."""
    names = [f"a{i:03d}" for i in range(n)]
    store.store_page("src", items(*names), Planner({"rail": channels}), silent=False, now=T0)


def run_threads(n: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def wrap(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]


# --- schema --------------------------------------------------------------------------------------


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from worker.store.store import MIGRATIONS_DIR

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def test_migrate_twice_is_a_noop(db_url: str, db: sa.Engine) -> None:
    s = Store(db_url)
    s.migrate()
    assert TABLES <= set(sa.inspect(db).get_table_names())
    s.store_page("src", items("a"), Planner(), silent=False, now=T0)
    s.migrate()  # again, same process
    s.close()
    s2 = Store(db_url)
    s2.migrate()  # again, "another process"
    s2.close()
    with db.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert versions.all() == [_head_revision()]
    assert count(db, "articles") == 1
    assert count(db, "deliveries") == 2


def test_migrations_create_exactly_the_tables_module(db_url: str, db: sa.Engine) -> None:
    """Alembic's migrations, run on an empty database, build the schema of tables.py."""
    s = Store(db_url)
    s._upgrade_with_alembic()
    s.close()
    with db.connect() as conn:
        opts = {"include_object": include_object(conn.dialect.name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
    assert diff == []


def _schema(engine: sa.Engine) -> dict[str, object]:
    """Everything the inspector reports about every table, names included, order-free."""

    def norm(items: list[dict[str, Any]]) -> list[str]:
        return sorted(repr(sorted((k, repr(v)) for k, v in item.items())) for item in items)

    inspector = sa.inspect(engine)
    schema: dict[str, object] = {}
    for table in sorted(inspector.get_table_names()):
        columns = [
            {k: c[k] for k in ("name", "nullable", "default")} | {"type": str(c["type"])}
            for c in inspector.get_columns(table)
        ]
        schema[table] = {
            "columns": norm(columns),
            "pk": inspector.get_pk_constraint(table),
            "fks": norm(inspector.get_foreign_keys(table)),
            "indexes": norm(inspector.get_indexes(table)),
            "unique": norm(inspector.get_unique_constraints(table)),
            "checks": norm(inspector.get_check_constraints(table)),
        }
    return schema


def test_a_new_database_gets_the_schema_the_migrations_build(db_url: str, db: sa.Engine) -> None:
    """`migrate()` creates an empty database's tables from tables.py without loading Alembic,
    stamped at the head revision: the same tables, columns, keys, indexes, constraint names and
    version row as running every migration."""
    s = Store(db_url)
    s._upgrade_with_alembic()
    migrated = _schema(db)
    with db.begin() as conn:
        metadata.drop_all(conn)
        conn.execute(sa.text("DROP TABLE alembic_version"))
    db.dispose()
    assert s.schema_revision() is None
    s.migrate()
    s.close()
    created = _schema(db)
    assert set(created) == TABLES
    assert created == migrated
    with db.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert versions.all() == [_head_revision()]


def test_migrate_upgrades_an_older_database_with_alembic(db_url: str, db: sa.Engine) -> None:
    """A database at an older revision is upgraded by Alembic (not re-created), keeping its
    rows."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    from worker.store.store import MIGRATIONS_DIR

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text("INSERT INTO sources (name) VALUES ('old')"))
    s = Store(db_url)
    assert s.schema_revision() == "0001"
    s.migrate()
    assert s.schema_revision() == _head_revision()
    s.close()
    assert count(db, "sources") == 1
    assert {"unfinished_since", "unfinished_by", "listed_total", "walked_at"} <= {
        c["name"] for c in sa.inspect(db).get_columns("sources")
    }


def test_concurrent_migrate_on_an_empty_database(db_url: str, db: sa.Engine) -> None:
    stores = [Store(db_url) for _ in range(3)]
    barrier = threading.Barrier(len(stores))

    def migrate(i: int) -> None:
        barrier.wait()
        stores[i].migrate()

    run_threads(len(stores), migrate)
    for s in stores:
        s.close()
    assert TABLES <= set(sa.inspect(db).get_table_names())
    assert count(db, "alembic_version") == 1


# --- store_page ----------------------------------------------------------------------------------


def test_store_page_dedupes_within_a_page_and_across_pages(store: Store, db: sa.Engine) -> None:
    plan = Planner()
    page1 = items("c", "a", "b", "a")  # "a" twice on one page
    got = store.store_page("src", page1, plan, silent=False, now=T0)
    assert got.new_for_source == (url("c"), url("a"), url("b"))  # page order, once each
    assert got.new_articles == 3
    assert got.alerts_queued == 6  # 3 articles x 1 watchlist x 2 channels
    assert got.would_alert == {}
    assert plan.calls == [url("c"), url("a"), url("b")]

    page2 = items("b", "d")  # "b" pushed over from page 1
    got = store.store_page("src", page2, plan, silent=False, now=T0)
    assert got.new_for_source == (url("d"),)
    assert (got.new_articles, got.alerts_queued) == (1, 2)
    assert plan.calls[3:] == [url("d")]  # plan only for what is new to the source

    got = store.store_page("src", page1 + page2, plan, silent=False, now=T0)
    assert (got.new_for_source, got.new_articles, got.alerts_queued) == ((), 0, 0)
    assert len(plan.calls) == 4
    assert count(db, "articles") == 4
    assert count(db, "article_sources") == 4
    assert count(db, "deliveries") == 8


def test_empty_page_stores_nothing(store: Store, db: sa.Engine) -> None:
    got = store.store_page("src", [], Planner(), silent=False, now=T0)
    assert (got.new_for_source, got.new_articles, got.alerts_queued) == ((), 0, 0)
    assert count(db, "articles") == 0


def test_one_article_listed_by_two_sources(store: Store, db: sa.Engine) -> None:
    plan = Planner({"rail": ("mail", "chat"), "trade": ("chat",)})
    first = store.store_page("alpha", items("x"), plan, silent=False, now=T0)
    second = store.store_page("beta", items("x"), plan, silent=False, now=T0 + timedelta(hours=1))
    assert (first.new_articles, first.alerts_queued) == (1, 3)
    assert second.new_for_source == (url("x"),)  # new for beta...
    assert (second.new_articles, second.alerts_queued) == (0, 0)  # ...but stored and alerted once
    assert count(db, "articles") == 1
    assert count(db, "article_sources") == 2
    assert count(db, "matches") == 2
    assert count(db, "deliveries") == 3
    [row] = store.list_articles()
    assert row.source == "alpha"  # the first source that listed it
    assert row.first_seen == T0
    assert store.list_articles(source="beta") == [row]


def test_silent_pass_records_matches_but_queues_nothing(store: Store, db: sa.Engine) -> None:
    plan = Planner({"rail": ("mail",), "trade": ("chat",)})
    got = store.store_page("src", items("a", "b"), plan, silent=True, now=T0)
    assert got.new_for_source == (url("a"), url("b"))
    assert got.new_articles == 2
    assert got.alerts_queued == 0
    assert got.would_alert == {"rail": 2, "trade": 2}
    assert count(db, "deliveries") == 0
    assert count(db, "matches") == 4
    assert [a.watchlists for a in store.list_articles(watchlist="rail")] == [
        ("rail", "trade"),
        ("rail", "trade"),
    ]
    # the baseline is done: the same articles on a later, loud pass alert nobody
    got = store.store_page("src", items("a", "b", "c"), plan, silent=False, now=T0)
    assert got.new_for_source == (url("c"),)
    assert got.alerts_queued == 2
    assert count(db, "deliveries") == 2


def test_alert_queued_once_per_article_watchlist_channel(store: Store, db: sa.Engine) -> None:
    def plan(item: Item) -> list[AlertPlan]:
        return [
            AlertPlan("rail", ("rail*",), ("mail", "chat", "mail")),  # channel twice
            AlertPlan("rail", ("railway",), ("chat",)),  # watchlist twice
            AlertPlan("quiet", ("x",), ()),  # matches, no channel
        ]

    got = store.store_page("s1", items("a"), plan, silent=False, now=T0)
    assert got.alerts_queued == 2
    got = store.store_page("s2", items("a"), plan, silent=False, now=T0)  # new for s2
    assert got.alerts_queued == 0
    with db.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT watchlist, channel FROM deliveries ORDER BY watchlist, channel")
        ).all()
    assert [tuple(r) for r in rows] == [("rail", "chat"), ("rail", "mail")]
    [delivery] = store.claim_due(owner="w", now=T0, lease=60, limit=10, channels=["mail"])
    assert delivery.keywords == ("rail*",)  # the first plan's keywords are recorded
    assert store.list_articles(watchlist="quiet")[0].url == url("a")


def test_concurrent_store_page_stores_each_article_once(db_url: str, db: sa.Engine) -> None:
    Store(db_url).migrate()
    names = [f"n{i:02d}" for i in range(30)]
    n_threads = 4
    stores = [Store(db_url) for _ in range(n_threads)]
    results: list[list] = [[] for _ in range(n_threads)]
    plan = Planner()
    barrier = threading.Barrier(n_threads)

    def crawl(i: int) -> None:
        order = names[:]
        random.Random(i).shuffle(order)  # different orders: no deadlock allowed either
        source = f"s{i % 2}"  # two threads per source
        barrier.wait()
        for start in range(0, len(order), 10):
            page = items(*order[start : start + 10])
            results[i].append(stores[i].store_page(source, page, plan, silent=False, now=T0))

    run_threads(n_threads, crawl)
    for s in stores:
        s.close()
    assert count(db, "articles") == 30
    assert count(db, "article_sources") == 60
    assert count(db, "deliveries") == 60  # 30 articles x 2 channels
    assert sum(r.new_articles for rs in results for r in rs) == 30
    assert sum(r.alerts_queued for rs in results for r in rs) == 60
    for source_threads in ((0, 2), (1, 3)):
        new = [u for i in source_threads for r in results[i] for u in r.new_for_source]
        assert sorted(new) == sorted(url(n) for n in names)  # each new once per source


def test_a_long_page_partly_stored_before(store: Store, db: sa.Engine) -> None:
    """More items than one `IN (...)` list holds (500), half of them stored by another source,
    some with a date and some without: every row comes out as with a page of one."""
    old = [f"o{i:04d}" for i in range(600)]
    fresh = [f"f{i:04d}" for i in range(600)]
    dated = {n: T0 - timedelta(minutes=i) for i, n in enumerate(fresh) if i % 3 == 0}
    store.store_page("other", items(*old), Planner({}), silent=True, now=T0)
    names = [n for pair in zip(reversed(old), fresh, strict=True) for n in pair]
    plan = Planner({"rail": ("mail", "chat")})
    later = T0 + timedelta(hours=1)
    got = store.store_page("src", items(*names, **dated), plan, silent=False, now=later)
    assert got.new_for_source == tuple(url(n) for n in names)  # page order
    assert (got.new_articles, got.alerts_queued) == (600, 2400)
    assert count(db, "articles") == 1200
    assert count(db, "article_sources") == 1800
    assert count(db, "matches") == 1200
    with db.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT status, attempts, next_attempt_at, CAST(done_targets AS TEXT), claimed_by,"
                " count(*) FROM deliveries"
                " GROUP BY status, attempts, next_attempt_at, CAST(done_targets AS TEXT), claimed_by"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("pending", 0, None, "[]", None, 2400)]
    by_url = {a.url: a for a in store.list_articles(source="src", limit=None)}
    assert len(by_url) == 1200
    assert by_url[url("f0003")].published == T0 - timedelta(minutes=3)
    assert by_url[url("f0001")].published is None
    assert by_url[url("f0001")].first_seen == later and by_url[url("f0001")].source == "src"
    assert by_url[url("o0001")].first_seen == T0 and by_url[url("o0001")].source == "other"
    assert by_url[url("o0001")].watchlists == by_url[url("f0001")].watchlists == ("rail",)
    [delivery, *_] = store.claim_due(owner="w", now=later, lease=60, limit=1)
    assert (delivery.attempts, delivery.keywords) == (0, ("railway",))


def test_stores_of_both_databases_in_one_process(sqlite_url: str, pg_url: str) -> None:
    """store_page's statements are built once per database kind and shared by every Store of
    the process: Stores of SQLite and of PostgreSQL, several of each, used in turns."""
    stores = [Store(u) for u in (sqlite_url, pg_url, sqlite_url, pg_url)]
    try:
        for s in stores[:2]:
            s.migrate()
        plan = Planner({"rail": ("mail",)})
        for round_ in range(2):
            for i, s in enumerate(stores):
                names = [f"r{round_}s{i}n{n}" for n in range(3)] + ["shared"] * (round_ == 0)
                got = s.store_page(f"src{i}", items(*names), plan, silent=False, now=T0)
                assert got.new_for_source == tuple(url(n) for n in names)
                assert got.new_articles == (4 if round_ == 0 and i < 2 else 3)
                assert got.alerts_queued == got.new_articles
        for s in stores[:2]:
            articles = s.list_articles(limit=None)
            assert len(articles) == 13  # 2 rounds x 2 stores x 3 + "shared"
            assert s.counts() == {"articles": 13, "pending": 13, "sent": 0, "failed": 0}
    finally:
        for s in stores:
            s.close()


# --- the delivery queue --------------------------------------------------------------------------


def test_claim_due_respects_limit_order_channels_and_due_time(store: Store) -> None:
    queue(store, 3, channels=("mail", "chat"))  # ids 1..6 alternate chat/mail per article
    got = store.claim_due(owner="w1", now=T0, lease=60, limit=2, channels={"mail"})
    assert [d.channel for d in got] == ["mail", "mail"]
    assert [d.article_url for d in got] == [url("a000"), url("a001")]
    assert got[0].id < got[1].id
    assert got[0].title == "Title a000"
    assert got[0].summary == "Summary of a000"
    assert got[0].source == "src"
    assert got[0].keywords == ("railway",)
    assert (got[0].attempts, got[0].done_targets) == (0, ())

    rest = store.claim_due(owner="w1", now=T0, lease=60, limit=100)
    assert len(rest) == 4  # the other mail row and the three chat rows
    assert {d.id for d in rest}.isdisjoint(d.id for d in got)
    assert store.claim_due(owner="w1", now=T0, lease=60, limit=100) == []
    assert store.claim_due(owner="w1", now=T0, lease=60, limit=0) == []


def test_claim_due_from_two_stores_gets_disjoint_rows(db_url: str, store: Store) -> None:
    queue(store, 20)
    others = [Store(db_url), Store(db_url)]
    claimed: list[list[int]] = [[], []]
    barrier = threading.Barrier(2)

    def claim(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            got = others[i].claim_due(owner=f"p{i}", now=T0, lease=60, limit=3)
            assert len(got) <= 3
            claimed[i] += [d.id for d in got]

    run_threads(2, claim)
    for s in others:
        s.close()
    assert set(claimed[0]).isdisjoint(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 20
    assert sorted(claimed[0] + claimed[1]) == sorted(set(claimed[0] + claimed[1]))


def test_lease_expiry_makes_a_row_claimable_again(store: Store) -> None:
    queue(store, 1)
    [first] = store.claim_due(owner="dead", now=T0, lease=60, limit=10)
    assert store.claim_due(owner="other", now=T0 + timedelta(seconds=59), lease=60, limit=10) == []
    assert store.next_due_at() == T0 + timedelta(seconds=60)
    [again] = store.claim_due(owner="other", now=T0 + timedelta(seconds=61), lease=60, limit=10)
    assert again.id == first.id


def test_restart_never_resends_a_sent_row_nor_loses_a_pending_one(db_url: str) -> None:
    s = Store(db_url)
    s.migrate()
    queue(s, 3)
    a, b, c = s.claim_due(owner="w", now=T0, lease=30, limit=10)
    s.mark_sent(a.id, at=T0 + timedelta(seconds=1))
    s.mark_attempt_failed(
        b.id, error="503", done_targets=[0], next_attempt_at=T0 + timedelta(seconds=30), at=T0
    )
    # c: claimed, then the process dies before it could say anything
    s.close()

    s = Store(db_url)
    s.migrate()
    later = T0 + timedelta(hours=1)
    got = {d.id: d for d in s.claim_due(owner="w2", now=later, lease=30, limit=10)}
    assert set(got) == {b.id, c.id}
    assert got[b.id].attempts == 1
    assert got[b.id].done_targets == (0,)
    assert got[c.id].attempts == 0
    s.mark_sent(b.id, at=later)
    s.mark_sent(c.id, at=later)
    s.close()

    s = Store(db_url)
    assert s.claim_due(owner="w3", now=later + timedelta(days=1), lease=30, limit=10) == []
    assert s.counts() == {"articles": 3, "pending": 0, "sent": 3, "failed": 0}
    assert s.next_due_at() is None
    s.close()


def test_mark_sent_records_the_send(store: Store) -> None:
    queue(store, 1)
    [d] = store.claim_due(owner="w", now=T0, lease=30, limit=1)
    store.mark_sent(d.id, at=T0 + timedelta(seconds=2))
    store.mark_sent(d.id, at=T0 + timedelta(seconds=9))  # a second ack changes nothing
    [row] = store.list_alerts()
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, T0 + timedelta(seconds=2))
    with pytest.raises(StoreError, match="no delivery"):
        store.mark_sent(999_999, at=T0)


def test_failed_then_retry_failed(store: Store) -> None:
    queue(store, 2)
    d1, d2 = store.claim_due(owner="w", now=T0, lease=30, limit=10)
    retry_at = T0 + timedelta(seconds=30)
    store.mark_attempt_failed(
        d1.id, error="x" * 5000, done_targets=[1, 0, 1], next_attempt_at=retry_at, at=T0
    )
    assert store.claim_due(owner="w", now=retry_at - timedelta(seconds=1), lease=30, limit=10) == []
    assert store.next_due_at() == retry_at
    [again] = store.claim_due(owner="w", now=retry_at, lease=30, limit=10)
    assert (again.id, again.attempts, again.done_targets) == (d1.id, 1, (0, 1))

    store.mark_attempt_failed(
        d1.id, error="gave up", done_targets=[0, 1], next_attempt_at=None, at=T0
    )
    store.mark_sent(d2.id, at=T0)
    failed = store.list_alerts(status="failed")
    assert [(r.id, r.attempts, r.last_error) for r in failed] == [(d1.id, 2, "gave up")]
    assert store.claim_due(owner="w", now=T0 + timedelta(days=1), lease=30, limit=10) == []
    assert store.next_due_at() is None

    assert store.retry_failed() == 1
    assert store.retry_failed() == 0
    [back] = store.claim_due(owner="w", now=T0, lease=30, limit=10)
    assert (back.id, back.attempts, back.done_targets) == (d1.id, 0, (0, 1))
    assert store.counts() == {"articles": 2, "pending": 1, "sent": 1, "failed": 0}


def test_last_error_is_cut_to_1000_chars(store: Store) -> None:
    queue(store, 1)
    [d] = store.claim_due(owner="w", now=T0, lease=30, limit=1)
    store.mark_attempt_failed(d.id, error="é" * 5000, done_targets=[], next_attempt_at=T0, at=T0)
    [row] = store.list_alerts()
    assert row.last_error == "é" * 1000


def test_a_failure_reported_after_another_process_sent_it_is_ignored(store: Store) -> None:
    queue(store, 1)
    [d] = store.claim_due(owner="slow", now=T0, lease=1, limit=1)
    [same] = store.claim_due(owner="fast", now=T0 + timedelta(seconds=5), lease=30, limit=1)
    store.mark_sent(same.id, at=T0 + timedelta(seconds=6))
    store.mark_attempt_failed(d.id, error="timeout", done_targets=[], next_attempt_at=None, at=T0)
    [row] = store.list_alerts()
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)


# --- timestamps, reading, sources --------------------------------------------------------------


def test_timestamps_come_back_timezone_aware_utc(store: Store) -> None:
    almaty = timezone(timedelta(hours=5))
    published = datetime(2025, 2, 28, 9, 30, 15, 123456, tzinfo=almaty)
    now = datetime(2025, 3, 1, 17, 0, tzinfo=almaty)
    store.store_page("src", items("a", a=published), Planner(), silent=False, now=now)
    [art] = store.list_articles()
    assert art.published == published
    assert art.published is not None and art.published.tzinfo == UTC
    assert art.published.hour == 4  # 09:30 at +05:00
    assert art.first_seen == now and art.first_seen.tzinfo == UTC
    [d, _] = store.claim_due(owner="w", now=now, lease=30, limit=10)
    assert d.published == published and d.published is not None and d.published.tzinfo == UTC
    alert = store.list_alerts()[0]
    assert alert.created == now and alert.created.tzinfo == UTC
    store.record_pass("src", ok=True, error=None, pages=1, new=1, alerts=2, duration=0.5, at=now)
    status = store.source_status()[0]
    assert status.last_pass_at == now and status.last_pass_at.tzinfo == UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        store.claim_due(owner="w", now=datetime(2025, 1, 1), lease=30, limit=1)


def test_sqlite_timestamp_text_is_sqlalchemys() -> None:
    """UTCDateTime writes SQLite's text itself (faster): the very text SQLAlchemy's SQLite
    DateTime writes for the same value in UTC (SQLite compares and sorts timestamps as text)."""
    from sqlalchemy.dialects import sqlite

    from worker.store.tables import UTCDateTime

    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)
    assert ours is not None and theirs is not None
    rng = random.Random(7)
    zones = [
        UTC,
        timezone(timedelta(0), "Z"),
        timezone(timedelta(hours=5)),
        timezone(-timedelta(hours=9.5)),
    ]
    values = [datetime(1, 1, 1, 12, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC)]
    values += [
        datetime(
            *(rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28)),
            *(rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
            rng.choice([0, rng.randint(0, 999_999)]),
            rng.choice(zones),
        )
        for _ in range(2000)
    ]
    for value in values:
        assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None)), value
    assert ours(None) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        ours(datetime(2025, 1, 1))
    with pytest.raises(TypeError, match="expected a datetime"):
        ours("2025-01-01 00:00:00")


def test_list_articles_newest_first_with_filters(store: Store) -> None:
    day = timedelta(days=1)
    store.store_page(
        "alpha",
        items("old", "new", "undated", old=T0 - day, new=T0 + day),
        Planner({"rail": ("mail",)}),
        silent=True,
        now=T0,
    )
    store.store_page(
        "beta",
        items("undated2", "mid", mid=T0),
        Planner({}),
        silent=False,
        now=T0 + day,
    )
    store.store_page("beta", items("new"), Planner({}), silent=False, now=T0 + 2 * day)
    order = [a.url.rsplit("/", 1)[1] for a in store.list_articles()]
    # by published (newest first), undated last, those by first_seen (newest first)
    assert order == ["new", "mid", "old", "undated2", "undated"]
    assert [a.url.rsplit("/", 1)[1] for a in store.list_articles(limit=2)] == ["new", "mid"]
    assert len(store.list_articles(limit=None)) == 5
    beta = [a.url.rsplit("/", 1)[1] for a in store.list_articles(source="beta")]
    assert beta == ["new", "mid", "undated2"]  # "new" was first listed by alpha, also by beta
    rail = store.list_articles(watchlist="rail")
    assert [a.url.rsplit("/", 1)[1] for a in rail] == ["new", "old", "undated"]
    assert all(a.watchlists == ("rail",) for a in rail)
    assert store.list_articles(source="beta", watchlist="rail")[0].url == url("new")
    assert store.list_articles(source="nobody") == []
    [mid] = [a for a in store.list_articles() if a.url == url("mid")]
    assert mid.watchlists == ()
    assert mid.to_json() == {
        "url": url("mid"),
        "title": "Title mid",
        "summary": "Summary of mid",
        "body": None,
        "published": "2025-03-01T12:00:00+00:00",
        "source": "beta",
        "first_seen": "2025-03-02T12:00:00+00:00",
        "watchlists": [],
    }
    undated = store.list_articles()[-1]
    assert isinstance(undated, ArticleRow) and undated.to_json()["published"] is None


def test_list_alerts_with_status_filter_and_counts(store: Store) -> None:
    queue(store, 3)
    assert store.counts() == {"articles": 3, "pending": 3, "sent": 0, "failed": 0}
    d1, d2, _d3 = store.claim_due(owner="w", now=T0, lease=30, limit=10)
    store.mark_sent(d1.id, at=T0)
    store.mark_attempt_failed(d2.id, error="boom", done_targets=[], next_attempt_at=None, at=T0)
    assert [r.id for r in store.list_alerts()] == [3, 2, 1]  # newest first
    assert [r.id for r in store.list_alerts(limit=1)] == [3]
    [sent] = store.list_alerts(status="sent")
    assert isinstance(sent, AlertRow)
    assert sent.to_json() == {
        "id": d1.id,
        "watchlist": "rail",
        "channel": "mail",
        "article_url": url("a000"),
        "title": "Title a000",
        "status": "sent",
        "attempts": 1,
        "last_error": None,
        "created": T0.isoformat(),
        "sent_at": T0.isoformat(),
        "next_attempt_at": None,
    }
    assert [r.status for r in store.list_alerts(status="failed")] == ["failed"]
    assert [r.status for r in store.list_alerts(status="pending")] == ["pending"]
    assert store.counts() == {"articles": 3, "pending": 1, "sent": 1, "failed": 1}
    with pytest.raises(ValueError, match="status"):
        store.list_alerts(status="lost")


def test_baseline_and_pass_records(store: Store) -> None:
    assert store.is_baselined("src") is False
    assert store.source_status() == []
    store.record_pass("src", ok=True, error=None, pages=13, new=78, alerts=0, duration=4.5, at=T0)
    assert store.is_baselined("src") is False  # a pass alone is no baseline
    store.mark_baselined("src", at=T0)
    store.mark_baselined("src", at=T0 + timedelta(days=1))  # the first time is kept
    assert store.is_baselined("src") is True
    assert store.is_baselined("other") is False
    later = T0 + timedelta(hours=1)
    store.record_pass(
        "src", ok=False, error="x" * 3000, pages=1, new=0, alerts=0, duration=0.25, at=later
    )
    [st] = store.source_status()
    assert st.name == "src"
    assert st.baselined_at == T0
    assert st.last_pass_at == later
    assert st.last_success_at == T0  # unchanged by the failed pass
    assert st.last_error == "x" * 1000
    assert (st.last_pages, st.last_new, st.last_alerts, st.last_duration) == (1, 0, 0, 0.25)
    store.mark_baselined("fresh")  # default time: now
    names = [s.name for s in store.source_status()]
    assert names == ["fresh", "src"]
    assert store.source_status()[0].to_json()["baselined_at"] is not None


def test_next_due_at(store: Store) -> None:
    assert store.next_due_at() is None
    queue(store, 1)
    assert store.next_due_at() == T0  # due since it was created
    [d] = store.claim_due(owner="w", now=T0, lease=30, limit=1)
    store.mark_attempt_failed(
        d.id, error="x", done_targets=[], next_attempt_at=T0 + timedelta(minutes=5), at=T0
    )
    assert store.next_due_at() == T0 + timedelta(minutes=5)


def test_ping_and_errors(store: Store) -> None:
    assert store.ping() is True


def test_unreachable_database_raises_store_error() -> None:
    s = Store("postgresql://nobody:secret@127.0.0.1:1/nothing?connect_timeout=2")
    assert s.ping() is False
    with pytest.raises(StoreError) as info:
        s.counts()
    assert "secret" not in str(info.value)
    assert "secret" not in repr(s)
    s.close()


def test_unsupported_or_invalid_urls() -> None:
    with pytest.raises(StoreError, match="unsupported"):
        Store("mysql://u:p@127.0.0.1/db")
    with pytest.raises(StoreError, match="invalid database URL"):
        Store("not a url")


def test_sqlite_store_in_a_missing_folder_raises_store_error(tmp_path) -> None:
    s = Store(f"sqlite:///{tmp_path / 'missing' / 'worker.db'}")
    with pytest.raises(StoreError):
        s.migrate()
    s.close()


def test_an_unfinished_pass_is_remembered_until_a_pass_finishes(db_url):
    """begin_pass returns the start of the earliest pass that did not finish, across restarts;
    finish_pass clears it; urls_listed_since names what the source listed since then."""
    s = Store(db_url)
    s.migrate()
    assert s.begin_pass("src", pass_id="p1", at=T0) is None  # first pass ever
    s.store_page("src", items("a", "b"), Planner(), silent=False, now=T0 + timedelta(seconds=1))
    s.close()  # cut off (a crash): no finish_pass, no cut_pass
    s = Store(db_url)
    later = T0 + timedelta(hours=2)  # the dead pass's mark is stale: taken over
    assert s.begin_pass("src", pass_id="p2", at=later) == T0  # the unfinished pass is still owed
    s.store_page("src", items("c"), Planner(), silent=False, now=later + timedelta(seconds=1))
    assert {u.rsplit("/", 1)[-1] for u in s.urls_listed_since("src", T0)} >= {"a", "b", "c"}
    assert len(s.urls_listed_since("src", later)) == 1
    assert s.urls_listed_since("other", T0) == set()
    s.finish_pass("src", pass_id="p2")
    assert s.begin_pass("src", pass_id="p3", at=later + timedelta(minutes=15)) is None
    s.close()


def test_a_pass_never_clears_the_resume_mark_of_another_running_pass(db_url):
    """Two processes over one source: B's quiet pass, run while A's pass is in flight, leaves
    A's mark; A cut off gives it up to the next pass, which resumes from A's start and, having
    caught up, clears it."""
    s = Store(db_url)
    s.migrate()
    t_a, t_b = T0, T0 + timedelta(seconds=5)
    assert s.begin_pass("src", pass_id="A", at=t_a) is None
    assert s.begin_pass("src", pass_id="B", at=t_b) == t_a  # B resumes from A's start
    s.finish_pass("src", pass_id="B")  # B was quiet: A's mark stays
    (row,) = s.source_status()
    assert row.unfinished_since == t_a and row.unfinished_by == "A"
    s.cut_pass("src", pass_id="A", since=t_a)
    (row,) = s.source_status()
    assert row.unfinished_since == t_a and row.unfinished_by is None
    assert s.begin_pass("src", pass_id="C", at=t_b + timedelta(seconds=5)) == t_a
    assert s.source_status()[0].unfinished_by == "C"  # taken over
    s.finish_pass("src", pass_id="C")
    assert s.begin_pass("src", pass_id="D", at=t_b + timedelta(minutes=1)) is None
    s.close()


def test_a_cut_off_pass_puts_back_a_mark_another_pass_cleared(db_url):
    """A's mark taken over and cleared by C while A still ran; A, cut off afterwards, puts its
    start back, so the next pass still resumes it."""
    s = Store(db_url)
    s.migrate()
    assert s.begin_pass("src", pass_id="A", at=T0) is None
    s.cut_pass("src", pass_id="other", since=T0 + timedelta(seconds=1))  # keeps the earlier
    assert s.source_status()[0].unfinished_since == T0
    assert s.begin_pass("src", pass_id="C", at=T0 + timedelta(seconds=2)) == T0
    s.finish_pass("src", pass_id="C")
    assert s.source_status()[0].unfinished_since is None
    s.cut_pass("src", pass_id="A", since=T0, listed_total=70)
    (row,) = s.source_status()
    assert row.unfinished_since == T0 and row.listed_total == 70
    s.close()


def test_finish_pass_keeps_the_counter_and_the_walk(db_url):
    s = Store(db_url)
    s.migrate()
    assert s.source_state("src").listed_total is None
    s.begin_pass("src", pass_id="p", at=T0)
    s.finish_pass("src", pass_id="p", listed_total=78, walk=(76, 78), at=T0)
    state = s.source_state("src")
    assert (state.listed_total, state.walked_at, state.walk_seen, state.walk_total) == (
        78,
        T0,
        76,
        78,
    )
    assert s.source_status()[0].walk_missing == 2
    s.finish_pass("src", pass_id="q", listed_total=80)  # not a walk: the walk stays
    state = s.source_state("src")
    assert state.listed_total == 80 and state.walked_at == T0
    s.close()


def test_release_claims_gives_back_only_the_owners_untried_pending_rows(db_url):
    """At a clean stop a process releases what it claimed and did not try; another process can
    claim those at once, while rows claimed by others stay leased."""
    s = Store(db_url)
    s.migrate()
    s.store_page("src", items("a", "b", "c"), Planner(), silent=False, now=T0)
    mine = s.claim_due(owner="me", now=T0, lease=300, limit=2)
    theirs = s.claim_due(owner="them", now=T0, lease=300, limit=100)
    assert mine and theirs
    s.mark_sent(mine[0].id, at=T0)
    assert s.release_claims("me") == len(mine) - 1
    again = s.claim_due(owner="next", now=T0 + timedelta(seconds=1), lease=300, limit=100)
    assert {d.id for d in again} == {d.id for d in mine[1:]}
    s.close()


def test_schema_head_constant_is_alembics_head(db_url):
    """`migrate()` skips loading Alembic when the database is at SCHEMA_HEAD: that constant must
    name the newest migration, and a migrated database must report it."""
    from worker.store.engine import SCHEMA_HEAD

    assert SCHEMA_HEAD == _head_revision()
    s = Store(db_url)
    assert s.schema_revision() is None
    s.migrate()
    assert s.schema_revision() == SCHEMA_HEAD
    s.close()


# what fingerprints were made of before the byte-table fast path: they must not change (a
# story stored before an upgrade must still be found as its repost's article)
_REFERENCE_NOT_WORD = re.compile(r"[\W_]+")

_TEXTS = [
    "Kazakhstan opens a rail link to the Caspian",
    "Water prices: up 30% in 2026 — “a third”, says the minister’s office…",
    "snake_case and __dunder__ words_",
    "Кыргызстан и Казахстан: водные споры 2026",
    "Ташкент_Самарканд  high-speed\trail\n\x1c\x1d\x1e\x1f",
    "x² ½ ٣ 𝟘 Ⅻ ① ﬁ ß İ",  # numbers, ligatures, a dotted capital
    "e\u0301 combining, \u00a0no-break\u2009thin\u3000ideographic",
    "ＦＵＬＬＷＩＤＴＨ ａｂｃ １２３ 😀🚆 #tags @handles",
    "",
    "   ",
]


def _reference_words(text: str) -> str:
    return " ".join(_REFERENCE_NOT_WORD.sub(" ", text.casefold()).split())


def _random_texts(count: int) -> list[str]:
    rng = random.Random(15)  # fixed: the same texts every run
    alphabet = (
        "abcXYZ019 _-.,;:'\"\t\n\x0b\x0c\x1c\x85\u00a0\u2009\u3000—–’“”…"
        "éÉßİıﬁ²½Ⅻ①٣𝟘ЖжЁё中文カ\u0301\u200b\u200d😀"
    )
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))) for _ in range(count)]


@pytest.mark.parametrize("text", _TEXTS + _random_texts(300))
def test_a_fingerprint_reads_the_words_as_the_regular_expression_did(text: str) -> None:
    from worker.store.pages import normal_words

    assert normal_words(text) == _reference_words(text)


def test_a_fingerprint_is_the_host_and_the_normalised_words_hashed() -> None:
    import hashlib

    from worker.store.pages import fingerprint

    title, summary = "Water prices rise again", "Tariffs up by a third in the capital."
    expected = hashlib.sha256(
        f"news.example\n{_reference_words(f'{title} {summary}')}".encode()
    ).hexdigest()[:32]
    for url in (
        "https://www.news.example/a/",
        "http://NEWS.example:8080/b?x=1",
        "https://u@news.example",
    ):
        assert fingerprint(Item(url=url, title=title, summary=summary, published=None)) == expected


def test_sqlite_writers_of_one_process_take_turns_without_an_error(tmp_path: Path) -> None:
    # each waits on the process's own lock (not SQLite's polling for its lock, which let some
    # writers wait seconds at 10,000 sources): 8 threads x 40 passes recorded, none lost
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for i in range(40):
                store.record_pass(
                    f"s{k}", ok=True, error=None, pages=i, new=0, alerts=0, duration=0.0
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted((s.name, s.last_pages) for s in store.source_status()) == [
        (f"s{k}", 39) for k in range(8)
    ]
    store.close()


def test_a_sqlite_writer_held_up_too_long_by_another_thread_gets_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.store import engine as engine_module

    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT", 0.2)
    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._tx("holding the lock"):  # a long write of this process
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    try:
        with pytest.raises(StoreError, match="recording a pass: database is locked"):
            store.record_pass("s", ok=True, error=None, pages=1, new=0, alerts=0, duration=0.0)
    finally:
        release.set()
        holder.join()
    store.record_pass("s", ok=True, error=None, pages=1, new=0, alerts=0, duration=0.0)
    store.close()
