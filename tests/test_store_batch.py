"""store_pages stores several pages with one execution of each statement (SQLite): what it
writes and returns must be exactly what storing the pages one after the other does.

Each case is a batch of pages (and what the database held before); the batch is stored once
with store_pages and, in a second database, page by page with store_page. Ids differ between
the two (they are handed out per execution), so rows are compared by their articles' URLs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from worker.models import AlertPlan, Item
from worker.store import Store
from worker.store.tables import article_aliases, article_sources, articles, deliveries, matches

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SITE = "https://news.example"


def item(slug: str, title: str, *, host: str = SITE, **extra: Any) -> Item:
    return Item(url=f"{host}/{slug}/", title=title, summary=extra.pop("summary", ""), **extra)


def plan(it: Item) -> list[AlertPlan]:
    """rail (two channels) for a title with "Railway", water (one) for "Water"."""
    plans = []
    if "Railway" in it.title:
        plans.append(AlertPlan(watchlist="rail", keywords=("railway",), channels=("a", "b")))
    if "Water" in it.title:
        plans.append(AlertPlan(watchlist="water", keywords=("water",), channels=("a",)))
    return plans


Page = tuple[int | None, list[Item], str | None]


@dataclass
class Case:
    pages: list[Page]
    silent: bool = False
    before: list[tuple[str, list[Item], str | None]] = field(default_factory=list)
    merged: bool = True  # store_pages runs each statement once for all the pages (SQLite)


LISTING = f"{SITE}/?s=x"
CASES = {
    "three pages of new articles, alerts on some": Case(
        [
            (1, [item("1", "Railway one"), item("2", "Weather")], LISTING),
            (2, [item("3", "Water and Railway"), item("4", "Markets")], LISTING),
            (3, [item("5", "Railway five")], LISTING),
        ]
    ),
    "a silent first pass: what would alert, page by page": Case(
        [
            (1, [item("1", "Railway one"), item("2", "Water two")], LISTING),
            (2, [item("3", "Water three")], LISTING),
        ],
        silent=True,
    ),
    "an empty page among them": Case(
        [
            (1, [item("1", "Railway one")], LISTING),
            (2, [], LISTING),
            (3, [item("3", "Water three")], LISTING),
        ]
    ),
    "articles another source stored first: gaps filled, own text, alerts queued once": Case(
        [
            (
                1,
                [
                    item("1", "Railway one, own text", published=NOW - timedelta(hours=1)),
                    item("2", "Water two"),
                ],
                LISTING,
            ),
            (2, [item("3", "Railway three", body="The whole text.")], LISTING),
        ],
        before=[
            (
                "aggregator",
                [
                    item("1", "Railway one, as the aggregator wrote it"),
                    item("3", "Railway three"),
                ],
                "https://aggregator.example/feed",
            )
        ],
    ),
    "items on another host are not the site's own text": Case(
        [
            (
                1,
                [item("1", "Railway one"), item("x", "Railway far", host="https://other.example")],
                LISTING,
            ),
            (2, [item("2", "Railway two")], LISTING),
        ],
    ),
    "a page listed on another host: its items are not its own text": Case(
        [
            (1, [item("1", "Railway one")], LISTING),
            (2, [item("2", "Railway two")], "https://mirror.example/page/2/"),
        ],
        before=[("aggregator", [item("1", "Railway"), item("2", "Railway")], None)],
    ),
    "a repost of an article of last week becomes its alias": Case(
        [
            (
                1,
                [
                    item(
                        "new-url",
                        "Water prices rise again in the capital",
                        summary="Tariffs up by a third.",
                    )
                ],
                LISTING,
            ),
            (2, [item("2", "Railway two")], LISTING),
        ],
        before=[
            (
                "src",
                [
                    item(
                        "old-url",
                        "Water prices rise again in the capital",
                        summary="Tariffs up by a third.",
                    )
                ],
                LISTING,
            )
        ],
    ),
    # what one page stores, the next must see: stored one after the other (one transaction)
    "a url on two pages (pushed down while paging)": Case(
        [
            (1, [item("1", "Railway one"), item("2", "Railway two")], LISTING),
            (2, [item("2", "Railway two"), item("3", "Railway three")], LISTING),
        ],
        merged=False,
    ),
    "one story under two urls on two pages": Case(
        [
            (
                1,
                [item("a", "Water prices rise again in the capital", summary="Tariffs up.")],
                LISTING,
            ),
            (
                2,
                [item("b", "Water prices rise again in the capital", summary="Tariffs up.")],
                LISTING,
            ),
        ],
        merged=False,
    ),
}


def snapshot(store: Store) -> dict[str, Any]:
    """Every row the pages wrote, ids replaced by article URLs."""
    with store._engine.connect() as conn:
        url_of = dict(conn.execute(sa.select(articles.c.id, articles.c.url)).all())
        a = sorted(
            (r.url, r.title, r.summary, r.published, r.body, r.fingerprint, r.source)
            for r in conn.execute(sa.select(articles))
        )
        listed = sorted(
            (url_of[r.article_id], r.source, r.page, r.title, r.summary, r.published, r.own)
            for r in conn.execute(sa.select(article_sources))
        )
        aliases = sorted(
            (r.url, url_of[r.article_id]) for r in conn.execute(sa.select(article_aliases))
        )
        matched = sorted(
            (url_of[r.article_id], r.watchlist, tuple(r.keywords))
            for r in conn.execute(sa.select(matches))
        )
        queued = sorted(
            (url_of[r.article_id], r.watchlist, r.channel, r.source, r.next_attempt_at)
            for r in conn.execute(sa.select(deliveries))
        )
    return {
        "articles": a,
        "listings": listed,
        "aliases": aliases,
        "matches": matched,
        "deliveries": queued,
    }


class Statements:
    """The statements executed on a store's engine."""

    def __init__(self, store: Store) -> None:
        self.sql: list[str] = []
        self.engine = store._engine
        event.listen(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.sql.append(statement.split(None, 1)[0].upper())

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def two_stores(tmp_path, request) -> Iterator[tuple[Store, Store]]:
    stores = [Store(f"sqlite:///{tmp_path / name}.db") for name in ("together", "apart")]
    for store in stores:
        store.migrate()
    yield stores[0], stores[1]
    for store in stores:
        store.close()


def store_before(store: Store, before: Sequence[tuple[str, list[Item], str | None]]) -> None:
    for source, items, listing_url in before:
        store.store_page(
            source,
            items,
            plan,
            silent=False,
            now=NOW - timedelta(days=2),
            listing_page=1,
            listing_url=listing_url,
        )


@pytest.mark.parametrize("name", list(CASES))
def test_pages_stored_together_write_and_return_what_pages_stored_one_by_one_do(
    name: str, two_stores: tuple[Store, Store]
) -> None:
    case = CASES[name]
    together, apart = two_stores
    hold = NOW + timedelta(minutes=10)
    for store in two_stores:
        store_before(store, case.before)
    statements = Statements(together)
    try:
        got = together.store_pages(
            "src", case.pages, plan, silent=case.silent, now=NOW, pass_started=NOW, hold_until=hold
        )
    finally:
        statements.close()
    expected = [
        apart.store_page(
            "src",
            items,
            plan,
            silent=case.silent,
            now=NOW,
            listing_page=number,
            pass_started=NOW,
            listing_url=listing_url,
            hold_until=hold,
        )
        for number, items, listing_url in case.pages
    ]
    assert got == expected
    assert snapshot(together) == snapshot(apart)
    inserts = statements.sql.count("INSERT")
    pages_with_items = sum(1 for _, items, _ in case.pages if items)
    if case.merged:  # articles, listings, matches (and deliveries, aliases): once each
        assert inserts <= 5, statements.sql
    else:
        assert inserts >= 2 * pages_with_items, statements.sql


def test_a_batch_of_many_pages_is_a_handful_of_statements(two_stores: tuple[Store, Store]) -> None:
    """Eight pages of ten new articles each: the statements do not grow with the pages."""
    together, _ = two_stores
    pages: list[Page] = [
        (n, [item(f"{n}-{i}", f"Railway story {n}.{i}") for i in range(10)], LISTING)
        for n in range(1, 9)
    ]
    statements = Statements(together)
    try:
        got = together.store_pages("src", pages, plan, silent=False, now=NOW, pass_started=NOW)
    finally:
        statements.close()
    assert [len(s.new_for_source) for s in got] == [10] * 8
    assert [s.alerts_queued for s in got] == [20] * 8
    assert len(statements.sql) <= 8, statements.sql  # 2 lookups, 4 inserts, BEGIN/COMMIT aside


# store_page first looks whether a page would write anything (`_quiet`): most pages of a daemon's
# passes list only what their source listed before. Each case stores a page after `before`:
# (what store_page returns) and whether it wrote, against a second database where the look is
# skipped (the page stored the usual way).
REPOSTED = "Water prices rise again in the capital"
QUIET_CASES = {
    "everything listed before by this source: only read": (
        [item("1", "Railway one"), item("2", "Water two")],
        False,
    ),
    "one article listed before only by another source: stored": (
        [item("1", "Railway one"), item("3", "Railway three")],
        True,
    ),
    "a date the stored article lacks: filled in": (
        [item("1", "Railway one", published=NOW - timedelta(hours=3)), item("2", "Water two")],
        True,
    ),
    "a body the stored article lacks: filled in": (
        [item("1", "Railway one", body="The whole text.")],
        True,
    ),
    "a new article: stored": ([item("1", "Railway one"), item("9", "Railway nine")], True),
    "a repost's url (an alias): stored the usual way": (
        [item("again", REPOSTED, summary="Tariffs up by a third.")],
        True,
    ),
}


@pytest.mark.parametrize("name", list(QUIET_CASES))
def test_a_page_that_would_write_nothing_is_only_read(
    name: str, two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    items, writes = QUIET_CASES[name]
    looked, usual = two_stores
    for store in two_stores:
        store_before(
            store,
            [
                ("src", [item("1", "Railway one"), item("2", "Water two")], LISTING),
                ("other", [item("3", "Railway three")], LISTING),
                ("src", [item("old", REPOSTED, summary="Tariffs up by a third.")], LISTING),
            ],
        )
    statements = Statements(looked)
    try:
        got = looked.store_page(
            "src", items, plan, silent=False, now=NOW, listing_page=1, listing_url=LISTING
        )
    finally:
        statements.close()
    monkeypatch.setattr(usual, "_quiet", lambda source, page: False)  # the usual way
    expected = usual.store_page(
        "src", items, plan, silent=False, now=NOW, listing_page=1, listing_url=LISTING
    )
    assert got == expected
    assert snapshot(looked) == snapshot(usual)
    wrote = any(sql in ("INSERT", "UPDATE") for sql in statements.sql)
    assert wrote == writes, statements.sql
    if not writes:
        assert [sql for sql in statements.sql if sql != "BEGIN"] == ["SELECT"]  # one read
