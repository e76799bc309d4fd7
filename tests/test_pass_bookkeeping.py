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
        # start, 3 pages, end; and the site's robots.txt looked up and stored, once
        assert sum(begun.values()) == 2 + 3 + 2, begun
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
        assert sum(begun.values()) == 3, begun  # start, page 1 stored, the cut with the outcome
        status = {s.name: s for s in store.source_status()}["local"]
        assert status.unfinished_since is not None and status.failures == 1

        site.heal()
        resumed, begun = await counted_pass(config, store, fetcher)
    assert resumed.ok and resumed.crawl.resumed and resumed.failures == 0, resumed.line()
    assert resumed.crawl.new == 1  # the 11th new article, pushed onto page 2
    status = {s.name: s for s in store.source_status()}["local"]
    assert status.unfinished_since is None and status.failures == 0
