"""The bookkeeping around a pass is two transactions (issue 15): one at its start (the mark, the
source's state, what a pass cut off stored), one at its end (the mark, the baseline, the counter,
the validators and the outcome). Counted with SQLAlchemy's `begin` event on the store's engine,
on SQLite and PostgreSQL, for `Runtime.run_pass` against the local news site."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.e2e import source_toml, write_config
from worker.config import Config, parse_config
from worker.fetch import Fetcher
from worker.pipeline import PassReport, Runtime
from worker.site import NewsSite
from worker.store import Store


class Transactions:
    """The transactions begun on a store's engine (writes: BEGIN IMMEDIATE on SQLite)."""

    def __init__(self, store: Store) -> None:
        self.begun: Counter[str] = Counter()
        self.engine = store._engine
        event.listen(self.engine, "begin", self._begin)

    def _begin(self, conn: Any) -> None:
        mode = conn.get_execution_options().get("worker_sqlite_begin", "DEFERRED")
        self.begun["write" if mode == "IMMEDIATE" else "read"] += 1

    @property
    def total(self) -> int:
        return sum(self.begun.values())

    def close(self) -> None:
        event.remove(self.engine, "begin", self._begin)


@pytest.fixture
def setup(tmp_path: Path, db_url: str, make_site) -> Iterator[tuple[NewsSite, Config, Store]]:
    site = make_site(30, per_page=10)
    path = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(site), channels={"c": "console://"}
    )
    config = parse_config(path.read_text(), path, check_channels=False)
    store = Store(config.database)
    store.migrate()
    try:
        yield site, config, store
    finally:
        store.close()


async def counted_pass(
    config: Config, store: Store, fetcher: Fetcher
) -> tuple[PassReport, Counter[str]]:
    runtime = Runtime(config, store=store, fetcher=fetcher)
    counting = Transactions(store)
    try:
        report = await runtime.run_pass(config.sources[0])
    finally:
        counting.close()
    return report, counting.begun


async def test_a_quiet_incremental_pass_is_two_transactions_and_a_page_stored_is_one_more(setup):
    """A quiet pass whose first page answers 304 makes two transactions, both writes; with the
    page answered in full it stores that page as well (one more); the baseline walk makes the
    same two around its pages."""
    site, config, store = setup
    async with Fetcher(config.http) as fetcher:
        baseline, begun = await counted_pass(config, store, fetcher)
        assert baseline.ok and baseline.crawl.baseline and baseline.crawl.pages == 3
        # start, the 3 pages (on SQLite those read while a store ran are stored in one
        # transaction with it), end; and the site's robots.txt looked up and stored, once
        assert 2 + 1 + 2 <= sum(begun.values()) <= 2 + 3 + 2, begun
        await counted_pass(config, store, fetcher)  # the first page's validators are kept

        quiet, begun = await counted_pass(config, store, fetcher)
        assert quiet.ok and quiet.crawl.not_modified and quiet.crawl.new == 0
        assert sum(begun.values()) == 2, begun
        if store.dialect == "sqlite":
            assert begun == Counter(write=2)

        site.conditional = False
        full, begun = await counted_pass(config, store, fetcher)
        assert full.ok and not full.crawl.not_modified and full.crawl.pages == 1
        assert sum(begun.values()) == 3, begun  # start, the page, end
        if store.dialect == "sqlite":  # the page listed nothing new: only read, no write lock
            assert begun == Counter(write=2, read=1), begun
    status = {s.name: s for s in store.source_status()}["local"]
    assert status.baselined_at is not None and status.unfinished_since is None
    assert status.last_pages == 1 and status.failures == 0  # the outcome was recorded


async def test_a_failed_pass_is_two_transactions_and_counts_towards_the_breaker(setup):
    """A pass cut off by an error makes two transactions too (start; the mark put back with
    the outcome), its failure is counted, and the next pass resumes it."""
    site, config, store = setup
    async with Fetcher(config.http) as fetcher:
        baseline, _ = await counted_pass(config, store, fetcher)
        assert baseline.ok
        site.fail(status=404, page=2)  # page 2 gone before the counter's last page
        site.conditional = False
        for n in range(11):  # a full page of new articles, and one pushed onto page 2
            site.publish(f"Railway news {n}", "A new line will carry containers.")
        failed, begun = await counted_pass(config, store, fetcher)
        assert not failed.ok and failed.failures == 1, failed.line()
        # start, page 1 looked at (a read: is it all known?) and stored, the cut with the outcome
        assert sum(begun.values()) == 4, begun
        status = {s.name: s for s in store.source_status()}["local"]
        assert status.unfinished_since is not None and status.failures == 1

        site.heal()
        resumed, begun = await counted_pass(config, store, fetcher)
    assert resumed.ok and resumed.crawl.resumed and resumed.failures == 0, resumed.line()
    assert resumed.crawl.new == 1  # the 11th new article, pushed onto page 2
    status = {s.name: s for s in store.source_status()}["local"]
    assert status.unfinished_since is None and status.failures == 0


def test_start_pass_and_end_pass_do_in_one_transaction_what_the_separate_calls_did(
    db_url: str,
) -> None:
    """start_pass = begin_pass + source_state (+ urls_listed_since when resuming a source with a
    baseline); end_pass = mark_baselined + finish_pass + save_validators + record_pass; a pass
    that does not own the mark leaves it."""
    from datetime import UTC, datetime, timedelta

    from worker.models import Item
    from worker.store import PassOutcome

    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    try:
        first = store.start_pass("src", pass_id="p1", at=t0)
        assert first.unfinished is None and first.state.baselined_at is None and not first.met
        failures = store.end_pass(
            "src",
            pass_id="p1",
            listed_total=30,
            walk=(30, 30),
            baseline=True,
            validators=("https://s.example/#k", '"v1"', None),
            outcome=PassOutcome(ok=True, error=None, pages=3, new=30, alerts=0, duration=1.5),
            at=t0 + timedelta(seconds=5),
        )
        assert failures == 0
        state = store.source_state("src")
        assert state.baselined_at == t0 + timedelta(seconds=5) and state.listed_total == 30
        assert (state.walk_seen, state.walk_total) == (30, 30)
        assert (state.validated_url, state.etag) == ("https://s.example/#k", '"v1"')
        status = {s.name: s for s in store.source_status()}["src"]
        assert status.last_pages == 3 and status.unfinished_since is None

        t1 = t0 + timedelta(minutes=15)
        store.start_pass("src", pass_id="p2", at=t1)
        item = Item(url="https://s.example/a/", title="A", summary="", published=None)
        store.store_page("src", [item], lambda i: [], silent=False, now=t1 + timedelta(seconds=1))
        failures = store.cut_pass(
            "src",
            pass_id="p2",
            since=t1,
            outcome=PassOutcome(ok=False, error="HTTP 503", pages=1, new=1, alerts=0, duration=1),
        )
        assert failures == 1
        resumed = store.start_pass("src", pass_id="p3", at=t1 + timedelta(minutes=15))
        assert resumed.unfinished == t1 and resumed.met == {"https://s.example/a/"}
        assert resumed.state.listed_total == 30
        store.end_pass("src", pass_id="someone else")  # not the owner: the mark stays
        assert store.source_state("src") == resumed.state
        assert {s.name: s for s in store.source_status()}["src"].unfinished_since == t1
        store.end_pass("src", pass_id="p3")
        assert {s.name: s for s in store.source_status()}["src"].unfinished_since is None
    finally:
        store.close()


def test_end_pass_records_the_same_whether_the_row_is_there_or_was_removed(db_url: str) -> None:
    """end_pass is one UPDATE of the row start_pass made; a row removed meanwhile is written by
    the statements one by one (inserting it): both end with the same row, and the failures in a
    row count on from what is stored."""
    from dataclasses import asdict
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from worker.store import PassOutcome
    from worker.store.tables import sources

    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    store = Store(db_url)
    store.migrate()
    try:
        for name in ("kept", "removed"):
            store.start_pass(name, pass_id=f"p-{name}", at=t0)
        with store._engine.begin() as conn:
            conn.execute(sa.delete(sources).where(sources.c.name == "removed"))
        failed = PassOutcome(ok=False, error="HTTP 503", pages=2, new=4, alerts=1, duration=0.5)
        for name in ("kept", "removed"):
            failures = store.end_pass(
                name,
                pass_id=f"p-{name}",
                listed_total=40,
                walk=(38, 40),
                baseline=True,
                validators=("https://s.example/#k", '"v2"', "Sun, 01 Mar 2026 12:00:00 GMT"),
                outcome=failed,
                at=t0 + timedelta(seconds=3),
            )
            assert failures == 1
        rows = {s.name: {**asdict(s), "name": None} for s in store.source_status()}
        assert rows["kept"] == rows["removed"]
        assert rows["kept"]["unfinished_since"] is None and rows["kept"]["last_error"] == "HTTP 503"
        assert rows["kept"]["baselined_at"] == t0 + timedelta(seconds=3)
        assert rows["kept"]["last_success_at"] is None
        # a second failure counts on; the baseline keeps its first time; a success resets
        later = t0 + timedelta(minutes=1)
        store.start_pass("kept", pass_id="p2", at=later)
        assert store.end_pass("kept", pass_id="p2", baseline=True, outcome=failed, at=later) == 2
        assert store.source_state("kept").baselined_at == t0 + timedelta(seconds=3)
        ok = PassOutcome(ok=True, error=None, pages=1, new=0, alerts=0, duration=0.1)
        store.start_pass("kept", pass_id="p3", at=later)
        assert store.end_pass("kept", pass_id="p3", outcome=ok, at=later) == 0
        status = {s.name: s for s in store.source_status()}["kept"]
        assert status.last_success_at == later and status.last_error is None
        assert status.unfinished_since is None and status.listed_total == 40
    finally:
        store.close()


def test_pages_stored_together_are_each_stored_as_store_page_stores_one(db_url: str) -> None:
    """store_pages: each page's articles, listings (with their page number), matches and
    deliveries as store_page would store them, in page order; an empty page stores nothing; on
    SQLite they are one transaction, on PostgreSQL one a page."""
    from datetime import UTC, datetime

    from worker.models import AlertPlan, Item

    now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def item(n: int) -> Item:
        return Item(url=f"https://s.example/{n}/", title=f"Railway {n}", summary="", published=None)

    def plan(it: Item) -> list[AlertPlan]:
        return [AlertPlan(watchlist="rail", keywords=("railway",), channels=("c",))]

    store = Store(db_url)
    store.migrate()
    counting = Transactions(store)
    try:
        stored = store.store_pages(
            "src",
            [(1, [item(1), item(2)], None), (2, [], None), (3, [item(2), item(3)], None)],
            plan,
            silent=False,
            now=now,
            pass_started=now,
        )
    finally:
        counting.close()
    try:
        assert [s.new_for_source for s in stored] == [
            ("https://s.example/1/", "https://s.example/2/"),
            (),
            ("https://s.example/3/",),  # 2 was listed on page 1
        ]
        assert [s.alerts_queued for s in stored] == [2, 0, 1]
        assert counting.total == (1 if store.dialect == "sqlite" else 2)
        record = store.lookup_url(["https://s.example/3/"])
        assert record is not None and [x.page for x in record.listings] == [3]
        assert len(store.list_alerts()) == 3
    finally:
        store.close()
