"""Storing a listing page: articles, the source's listings, matches and queued deliveries."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from worker.models import AlertPlan, Item, PageStored
from worker.store.engine import StoreBase, StoreError, dialect_insert
from worker.store.helpers import _aware, _chunks, _utcnow
from worker.store.tables import article_aliases, article_sources, articles, deliveries, matches

log = logging.getLogger(__name__)


_NETLOC = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#]*)")


def _host(url: str) -> str | None:
    """An http(s) URL's host without a leading `www.` (lower case), or None."""
    found = _NETLOC.match(url)
    return _netloc_host(found[1]) if found else _url_host(url)


@functools.lru_cache(maxsize=1024)
def _netloc_host(netloc: str) -> str | None:
    # a page's items are on a handful of hosts: urlsplit once each, not once an item (5 us)
    return _url_host(f"//{netloc}")


def _url_host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.removeprefix("www.") if host else None


def _own_host(listing_url: str | None) -> str | None:
    return _host(listing_url) if listing_url else None


MAX_URL_CHARS = 2048  # longer URLs are not stored (a PostgreSQL btree entry must stay < 2.7 kB)
MAX_BODY_CHARS = 100_000  # an article's stored text (the parse stage cuts it there already)
MAX_PAGE_TRIES = 3  # an article page that failed this often is not tried again
REPOST_WINDOW = timedelta(days=7)  # a story seen again on the same site within this is a repost
MIN_FINGERPRINT_TEXT = 40  # shorter title + text ("Weather", "Photo of the day"): no fingerprint
_WORDS = re.compile(r"\w+")
# ASCII letters and digits kept, every other byte a space
_ASCII_WORDS = bytes(c if c < 128 and chr(c).isalnum() else 32 for c in range(256))


def normal_words(text: str) -> str:
    r"""`text` casefolded, its words (runs of letters and digits: `[^\W_]+`) one space apart.
    ASCII text through a byte table: 4x faster than the regular expression, which a fingerprint
    spent 20 of its 35 us in (a tenth of a backfill's store)."""
    text = text.casefold()
    if text.isascii():
        return b" ".join(text.encode().translate(_ASCII_WORDS).split()).decode()
    return " ".join(_WORDS.findall(text.replace("_", " ")))


def fingerprint(item: Item) -> str | None:
    """The site (host, without "www.") and the story's normalised title and summary (or the
    body's start), hashed: the same story under another URL of the site has the same one."""
    text = item.summary or (item.body or "")[:1000]
    normal = normal_words(f"{item.title} {text}")
    if len(normal) < MIN_FINGERPRINT_TEXT:
        return None
    host = _host(item.url) or ""
    return hashlib.sha256(f"{host}\n{normal}".encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Insert:
    """An INSERT .. ON CONFLICT DO NOTHING of a page's rows, in their order, in one execution.

    SQLite: an executemany, one parameter set per row (SQLAlchemy's "insertmanyvalues" sends it
    as one multi-row INSERT). PostgreSQL: one array parameter per column, `INSERT .. SELECT ..
    FROM unnest(...) WITH ORDINALITY .. ORDER BY ordinality`, the same statement text whatever
    the number of rows (psycopg parses a statement of more than 50 parameters anew every time,
    and a multi-row VALUES of a 10-item page has 60).
    """

    stmt: sa.Executable
    columns: tuple[str, ...]  # the columns that differ from row to row
    columnar: bool  # True: arrays (PostgreSQL)

    def params(
        self, rows: list[dict[str, Any]], **same: Any
    ) -> dict[str, Any] | list[dict[str, Any]]:
        """The parameters for `rows` (dicts of `columns`, updated in place) and the values that
        are the `same` for every row."""
        if self.columnar:
            return {c: [row[c] for row in rows] for c in self.columns} | same
        for row in rows:
            row.update(same)
        return rows


def _insert(
    dialect: str,
    table: sa.Table,
    columns: tuple[str, ...],
    same: tuple[str, ...] = (),
    *,
    constants: dict[str, Any] | None = None,
    key: tuple[str, ...],
    returning: tuple[str, ...] = (),
    columnar: bool = True,
) -> _Insert:
    """`columns` vary by row, `same` are one value for all rows, `constants` SQL expressions;
    conflicts on the unique `key` are skipped. `columnar=False`: rows on PostgreSQL too."""
    constants = constants or {}
    columnar = columnar and dialect == "postgresql"
    stmt: Any
    if columnar:
        from sqlalchemy.dialects import postgresql  # (not loaded on SQLite)

        unnested = (
            sa.func.unnest(
                *(sa.bindparam(c, type_=postgresql.ARRAY(table.c[c].type)) for c in columns)
            )
            .table_valued(*columns, with_ordinality="ordinality")
            .render_derived()
        )
        select = sa.select(
            *(unnested.c[c] for c in columns),
            *(sa.bindparam(c, type_=table.c[c].type) for c in same),
            *constants.values(),
        ).order_by(unnested.c.ordinality)
        stmt = postgresql.insert(table).from_select([*columns, *same, *constants], select)
    else:
        stmt = dialect_insert(dialect)(table)
        if constants:
            stmt = stmt.values(**constants)
    stmt = stmt.on_conflict_do_nothing(index_elements=[table.c[c] for c in key])
    if returning:
        stmt = stmt.returning(*(table.c[c] for c in returning))
    return _Insert(stmt, columns, columnar)


@dataclass(frozen=True, slots=True)
class _PageStatements:
    """store_page's statements for one dialect, built once per process and shared by every Store:
    SQLAlchemy then finds each one compiled in the engine's cache by its memoized cache key,
    where building, coercing and hashing new constructs cost more than the SQL on every page."""

    insert_articles: _Insert  # RETURNING (url, id) of the rows inserted
    select_ids: sa.Select[str, int]  # (url, id) for :urls (an expanding IN list)
    # (url, id, body missing, date missing) for :urls: what another source may fill in
    select_gaps: sa.Select[str, int, bool, bool]
    fill_gaps: sa.Update  # body and published kept from whichever source gives them first
    select_aliases: sa.Select[str, int]  # (alias url, article id) for :urls
    select_fingerprints: sa.Select[str, int, str]  # (fingerprint, id, url) for :fps since :since
    select_urls: sa.Select[str]  # the urls of :urls that are articles
    insert_aliases: sa.Insert
    insert_listings: _Insert  # RETURNING article_id of the rows inserted
    own_text: sa.Update  # an article's text replaced by its own site's (see store_page)
    insert_matches: _Insert
    insert_deliveries: _Insert  # RETURNING (id, article_id) of the rows inserted
    # (url, body missing, date missing, listed by :source) for :urls: is the page quiet?
    select_quiet: sa.Select[str, bool, bool, bool]


@functools.cache
def _page_statements(dialect: str) -> _PageStatements:
    return _PageStatements(
        insert_articles=_insert(
            dialect,
            articles,
            ("url", "title", "summary", "published", "body", "fingerprint"),
            ("first_seen", "source"),
            key=("url",),
            returning=("url", "id"),
        ),
        select_ids=sa.select(articles.c.url, articles.c.id).where(
            articles.c.url.in_(sa.bindparam("urls", expanding=True))
        ),
        select_aliases=sa.select(article_aliases.c.url, article_aliases.c.article_id).where(
            article_aliases.c.url.in_(sa.bindparam("urls", expanding=True))
        ),
        select_fingerprints=sa.select(articles.c.fingerprint, articles.c.id, articles.c.url)
        .where(
            articles.c.fingerprint.in_(sa.bindparam("fps", expanding=True)),
            articles.c.first_seen >= sa.bindparam("since", type_=articles.c.first_seen.type),
        )
        .order_by(articles.c.id),
        select_urls=sa.select(articles.c.url).where(
            articles.c.url.in_(sa.bindparam("urls", expanding=True))
        ),
        insert_aliases=dialect_insert(dialect)(article_aliases).on_conflict_do_nothing(),
        select_gaps=sa.select(
            articles.c.url,
            articles.c.id,
            articles.c.body.is_(None),
            articles.c.published.is_(None),
        ).where(articles.c.url.in_(sa.bindparam("urls", expanding=True))),
        fill_gaps=sa.update(articles)
        .where(articles.c.id == sa.bindparam("article_id"))
        .values(
            body=sa.func.coalesce(articles.c.body, sa.bindparam("new_body", type_=sa.Text)),
            published=sa.func.coalesce(
                articles.c.published,
                sa.bindparam("new_published", type_=articles.c.published.type),
            ),
        ),
        insert_listings=_insert(
            dialect,
            article_sources,
            ("article_id", "title", "summary", "published", "own", "page"),
            ("source", "first_seen", "pass_started"),
            key=("article_id", "source"),
            returning=("article_id",),
        ),
        own_text=sa.update(articles)
        .where(
            articles.c.id == sa.bindparam("b_id"),
            ~sa.exists().where(
                article_sources.c.article_id == articles.c.id,
                article_sources.c.own,
                article_sources.c.source != sa.bindparam("b_source"),
            ),
        )
        .values(
            title=sa.bindparam("b_title"),
            summary=sa.bindparam("b_summary"),
            published=sa.bindparam("b_published"),
        ),
        insert_matches=_insert(
            dialect,
            matches,
            ("article_id", "watchlist", "keywords"),
            ("matched_at",),
            key=("article_id", "watchlist"),
            columnar=False,  # keywords is a JSON list, which an ARRAY would take for a dimension
        ),
        select_quiet=sa.select(
            articles.c.url,
            articles.c.body.is_(None),
            articles.c.published.is_(None),
            sa.exists().where(
                article_sources.c.article_id == articles.c.id,
                article_sources.c.source == sa.bindparam("source"),
            ),
        ).where(articles.c.url.in_(sa.bindparam("urls", expanding=True))),
        insert_deliveries=_insert(
            dialect,
            deliveries,
            ("article_id", "watchlist", "channel"),
            ("created", "source"),
            constants={  # in the SQL text: no parameters to bind for them on every row
                "status": sa.literal_column("'pending'"),
                "attempts": sa.literal_column("0"),
                "next_attempt_at": sa.null(),
                "done_targets": sa.literal_column("'[]'"),
            },
            key=("article_id", "watchlist", "channel"),
            returning=("id", "article_id"),
        ),
    )


class PagesMixin(StoreBase):
    """`Store.store_page`: the crawl side's one write per listing page."""

    @staticmethod
    def _reposts(
        conn: sa.Connection,
        stmts: _PageStatements,
        urls: list[str],
        prints: dict[str, str | None],
        now: datetime,
    ) -> dict[str, int]:
        """url -> the article it is a second URL of (see store_page, step 0)."""
        aliased: dict[str, int] = {}
        for chunk in _chunks(urls):
            aliased.update(iter(conn.execute(stmts.select_aliases, {"urls": chunk})))
        wanted = sorted({fp for url, fp in prints.items() if fp and url not in aliased})
        if not wanted:
            return aliased
        first: dict[str, tuple[int, str]] = {}  # fingerprint -> the oldest article with it
        for chunk in _chunks(wanted):
            params = {"fps": chunk, "since": now - REPOST_WINDOW}
            for fp, article_id, url in conn.execute(stmts.select_fingerprints, params):
                first.setdefault(fp, (article_id, url))
        candidates: dict[str, int] = {}  # url -> the article it looks like
        for url in urls:
            print_ = prints[url]
            if url not in aliased and print_ is not None and print_ in first:
                article_id, article_url = first[print_]
                if article_url != url:
                    candidates[url] = article_id
        if not candidates:
            return aliased
        stored: set[str] = set()  # an article of its own already: not a repost
        for chunk in _chunks(sorted(candidates)):
            stored.update(conn.scalars(stmts.select_urls, {"urls": chunk}))
        reposts = {url: article_id for url, article_id in candidates.items() if url not in stored}
        if reposts:
            conn.execute(
                stmts.insert_aliases,
                [
                    {"url": url, "article_id": article_id, "first_seen": now}
                    for url, article_id in sorted(reposts.items())
                ],
            )
            log.info("stored %d repost(s) as aliases: %s", len(reposts), ", ".join(reposts)[:500])
        return aliased | reposts

    def store_page(
        self,
        source: str,
        items: Sequence[Item],
        plan: Callable[[Item], Sequence[AlertPlan]],
        *,
        silent: bool,
        now: datetime | None = None,
        listing_page: int | None = None,
        pass_started: datetime | None = None,
        listing_url: str | None = None,
        hold_until: datetime | None = None,
    ) -> PageStored:
        """Store one listing page in one transaction; queue alerts for what is new to `source`.

        `plan(item)` is called once for each item this source never listed before; its plans are
        recorded in `matches`, and unless `silent` one delivery per (article, watchlist, channel)
        is queued. Safe to run concurrently in several processes: an article, a source listing and
        a delivery are each stored at most once. Rows are written in key order, so two
        transactions never wait on each other in a cycle (no deadlock on PostgreSQL).
        `listing_page` (its number) and `pass_started` (when the pass began) are kept
        with each listing new to `source`, for `worker why`.

        Each listing keeps the text its source showed; a delivery shows the text of the source
        that queued it. `listing_url` is the page's URL: an item on the same host (`www.` aside)
        is the site's "own" text, which replaces text an article was first stored with from a
        listing on another host, and which alerts prefer to any other host's text.
        """
        (stored,) = self._store(
            source,
            [(listing_page, items, listing_url)],
            plan,
            silent=silent,
            now=now,
            pass_started=pass_started,
            hold_until=hold_until,
            look_first=True,  # an incremental pass's page: most often one it listed before
        )
        return stored

    def store_pages(
        self,
        source: str,
        pages: Sequence[tuple[int | None, Sequence[Item], str | None]],
        plan: Callable[[Item], Sequence[AlertPlan]],
        *,
        silent: bool,
        now: datetime | None = None,
        pass_started: datetime | None = None,
        hold_until: datetime | None = None,
    ) -> list[PageStored]:
        """`store_page` for several pages of one pass, (listing_page, items, listing_url) each,
        in their order: a walk stores the pages it read while the last store ran, with one
        thread hand-off for them all. On SQLite in one transaction (one commit; writers are
        serialised, so no deadlock) and, unless two of the pages share a url or a fingerprint,
        with one execution of each statement for them all (five a page: 8 pages of 10 items,
        2.0 -> 1.4 ms of CPU a page); on PostgreSQL one transaction a page, each in key order,
        as store_page (pages together would lock rows out of key order)."""
        return self._store(
            source,
            pages,
            plan,
            silent=silent,
            now=now,
            pass_started=pass_started,
            hold_until=hold_until,
            look_first=False,  # a walk's pages: most often new
        )

    def _store(
        self,
        source: str,
        pages: Sequence[tuple[int | None, Sequence[Item], str | None]],
        plan: Callable[[Item], Sequence[AlertPlan]],
        *,
        silent: bool,
        now: datetime | None,
        pass_started: datetime | None,
        hold_until: datetime | None,
        look_first: bool,
    ) -> list[PageStored]:
        """store_pages; with `look_first`, a page that would write nothing (`_quiet`) is only
        read."""
        now = _aware(now, "now") if now is not None else _utcnow()
        prepared = [(number, self._page_of(source, items), url) for number, items, url in pages]
        empty = PageStored(new_for_source=(), new_articles=0, alerts_queued=0)

        def one(
            conn: sa.Connection,
            page: tuple[int | None, dict[str, Item], str | None],
            prints: dict[str, str | None] | None = None,
        ) -> list[PageStored]:
            return self._store_in(
                conn, source, [page], plan, silent, now, pass_started, hold_until, prints
            )

        if self.dialect != "sqlite" or len(prepared) == 1:
            out = []
            for stored in prepared:
                page = stored[1]
                if not page or (look_first and self._quiet(source, page)):
                    out.append(empty)
                    continue
                with self._tx(f"storing a page of {source}") as conn:
                    out.extend(one(conn, stored))
            return out
        if not any(page for _, page, _ in prepared):
            return [empty for _ in prepared]
        # (hashed before the write lock is taken)
        prints = [{url: fingerprint(item) for url, item in p.items()} for _, p, _ in prepared]
        with self._tx(f"storing {len(prepared)} pages of {source}") as conn:
            if _apart(prints):  # each statement once for all the pages
                every = {url: fp for page_prints in prints for url, fp in page_prints.items()}
                return self._store_in(
                    conn, source, prepared, plan, silent, now, pass_started, hold_until, every
                )
            out = []
            for stored, page_prints in zip(prepared, prints, strict=True):
                out.extend(one(conn, stored, page_prints) if stored[1] else [empty])
            return out

    def _quiet(self, source: str, page: dict[str, Item]) -> bool:
        """True when storing `page` would write nothing: every url is an article `source`
        listed before, with no body or date this page gives and the row lacks. One read
        (no write lock on SQLite), where storing it costs five statements in a write
        transaction: what most passes of a daemon see (a quiet first page)."""
        urls = sorted(page)
        if len(urls) > 500:  # (one chunk; a longer page is stored the usual way)
            return False
        stmts = _page_statements(self.dialect)
        with self._tx(f"reading a page of {source}", write=False) as conn:
            rows = conn.execute(stmts.select_quiet, {"urls": urls, "source": source}).all()
        if len(rows) != len(urls):
            return False  # a new url, or a repost's (an alias)
        for url, no_body, no_date, listed in rows:
            item = page[url]
            if not listed or (no_body and item.body) or (no_date and item.published):
                return False
        return True

    @staticmethod
    def _hold(conn: sa.Connection, ids: list[int], until: datetime) -> None:
        """Deliveries `ids` wait until `until`, those of articles whose page is still to be
        read (see store_page's `hold_until`)."""
        a = articles
        pending_page = sa.select(a.c.id).where(
            a.c.page_fetched.is_(None), a.c.body.is_(None), a.c.page_tries < MAX_PAGE_TRIES
        )
        for chunk in _chunks(ids):
            conn.execute(
                sa.update(deliveries)
                .where(deliveries.c.id.in_(chunk), deliveries.c.article_id.in_(pending_page))
                .values(next_attempt_at=until)
            )

    @staticmethod
    def _page_of(source: str, items: Sequence[Item]) -> dict[str, Item]:
        """url -> item, the first of each url, without urls too long to store."""
        page: dict[str, Item] = {}
        for item in items:
            if len(item.url) > MAX_URL_CHARS:
                log.warning("source %s: skipped a URL of %d characters", source, len(item.url))
                continue
            page.setdefault(item.url, item)
        return page

    def _store_in(
        self,
        conn: sa.Connection,
        source: str,
        pages: Sequence[tuple[int | None, dict[str, Item], str | None]],
        plan: Callable[[Item], Sequence[AlertPlan]],
        silent: bool,
        now: datetime,
        pass_started: datetime | None,
        hold_until: datetime | None = None,
        prints: dict[str, str | None] | None = None,
    ) -> list[PageStored]:
        """The rows of `pages` (listing_page, url -> item, listing_url), in the transaction of
        `conn` (see store_page), with one execution of each statement for them all: so several
        pages must not share a url or a fingerprint (`_apart`), or the second would not see what
        the first stored, as it does when they are stored one after the other."""
        page: dict[str, Item] = {}  # every url of the pages, in page order
        origin: dict[str, int] = {}  # url -> the index of its page in `pages`
        for index, (_, items, _) in enumerate(pages):
            for url, item in items.items():
                page[url] = item
                origin[url] = index
        urls = sorted(page)
        stmts = _page_statements(self.dialect)
        if prints is None:
            prints = {url: fingerprint(item) for url, item in page.items()}
        # (0) reposts: a url known as an alias is its article; a url no article has, whose
        # fingerprint an article of the same site had within REPOST_WINDOW, becomes one
        aliased = self._reposts(conn, stmts, urls, prints, now)
        if aliased:
            urls = [url for url in urls if url not in aliased]
        # (1) the articles nobody stored yet, with their new ids
        insert = stmts.insert_articles
        rows: list[dict[str, Any]] = [
            {
                "url": url,
                "title": (item := page[url]).title,
                "summary": item.summary,
                "published": item.published,
                "body": item.body[:MAX_BODY_CHARS] if item.body else None,
                "fingerprint": prints[url],
            }
            for url in urls
        ]
        params = insert.params(rows, first_seen=now, source=source)
        # (iter(): a Result has keys(), which dict() would take for a mapping's)
        ids: dict[str, int] = dict(iter(conn.execute(insert.stmt, params))) if rows else {}
        new_articles = Counter(origin[url] for url in ids)
        inserted = set(ids.values())
        # (2) the ids of those stored before
        if len(ids) < len(urls):
            stored = [url for url in urls if url not in ids]
            # stored before: a body or a date this source gives and the row lacks is kept
            # (one SELECT either way; an UPDATE only when a gap is filled)
            fills: list[dict[str, Any]] = []
            for chunk in _chunks(stored):
                if any(page[url].body or page[url].published for url in chunk):
                    for url, article_id, no_body, no_date in conn.execute(
                        stmts.select_gaps, {"urls": chunk}
                    ):
                        ids[url] = article_id
                        item = page[url]
                        if (no_body and item.body) or (no_date and item.published):
                            fills.append(
                                {
                                    "article_id": article_id,
                                    "new_body": item.body[:MAX_BODY_CHARS] if item.body else None,
                                    "new_published": item.published,
                                }
                            )
                else:
                    ids.update(iter(conn.execute(stmts.select_ids, {"urls": chunk})))
            if fills:
                fills.sort(key=lambda row: row["article_id"])  # key order: no deadlock
                conn.execute(stmts.fill_gaps, fills)
            if len(ids) != len(urls):  # pragma: no cover - would mean a broken unique key
                raise StoreError(f"store_page({source}): {len(urls) - len(ids)} articles vanished")
        ids.update(aliased)
        # (3) which of them this source lists for the first time
        insert = stmts.insert_listings
        firsts: dict[int, str] = {}  # one url per article (a story and its repost)
        for url in page:
            firsts.setdefault(ids[url], url)
        owns = [_own_host(listing_url) for _, _, listing_url in pages]
        listed = [
            {
                "article_id": article_id,
                "title": (item := page[url]).title,
                "summary": item.summary,
                "published": item.published,
                "own": (own := owns[origin[url]]) is not None and _host(url) == own,
                "page": pages[origin[url]][0],
            }
            for article_id, url in sorted(firsts.items())
        ]
        params = insert.params(listed, source=source, first_seen=now, pass_started=pass_started)
        new_ids = set(conn.execute(insert.stmt, params).scalars())
        new_for_source = [url for url in page if ids[url] in new_ids and firsts[ids[url]] == url]
        page_of = {ids[url]: origin[url] for url in new_for_source}  # article id -> page index
        # an article stored from another host's listing gets its own site's text
        retext = [
            {
                "b_id": row["article_id"],
                "b_source": source,
                "b_title": row["title"],
                "b_summary": row["summary"],
                "b_published": row["published"],
            }
            for row in listed
            if row["own"] and row["article_id"] in new_ids and row["article_id"] not in inserted
        ]
        if retext:  # (rare: only the first time a site lists what another host listed)
            conn.execute(stmts.own_text, retext)

        # (4) matches and deliveries for the new ones
        match_rows: dict[tuple[int, str], dict[str, Any]] = {}
        delivery_keys: set[tuple[int, str, str]] = set()
        for url in new_for_source:
            article_id = ids[url]
            for p in plan(page[url]):
                key = (article_id, p.watchlist)
                if key not in match_rows:
                    match_rows[key] = {
                        "article_id": article_id,
                        "watchlist": p.watchlist,
                        "keywords": list(p.keywords),
                    }
                delivery_keys.update((article_id, p.watchlist, ch) for ch in p.channels)
        if match_rows:
            insert = stmts.insert_matches
            rows = [match_rows[key] for key in sorted(match_rows)]
            conn.execute(insert.stmt, insert.params(rows, matched_at=now))
        alerts_queued: Counter[int] = Counter()  # page index -> deliveries queued
        would_alert: list[Counter[str]] = [Counter() for _ in pages]
        if silent:
            for article_id, watchlist in match_rows:
                would_alert[page_of[article_id]][watchlist] += 1
        elif delivery_keys:
            insert = stmts.insert_deliveries
            rows = [
                {"article_id": article_id, "watchlist": watchlist, "channel": channel}
                for article_id, watchlist, channel in sorted(delivery_keys)
            ]
            params = insert.params(rows, created=now, source=source)
            queued = conn.execute(insert.stmt, params).all()
            alerts_queued.update(page_of[int(article_id)] for _, article_id in queued)
            if queued and hold_until is not None:
                self._hold(conn, [int(delivery_id) for delivery_id, _ in queued], hold_until)
        return [
            PageStored(
                new_for_source=tuple(url for url in new_for_source if origin[url] == index),
                new_articles=new_articles[index],
                alerts_queued=alerts_queued[index],
                would_alert=dict(would_alert[index]),
            )
            for index in range(len(pages))
        ]


def _apart(pages: Sequence[dict[str, str | None]]) -> bool:
    """True when no url and no fingerprint is on two of `pages` (url -> fingerprint each): they
    can be stored with one execution of each statement (see PagesMixin._store_in)."""
    urls: set[str] = set()
    prints: set[str] = set()
    for page in pages:
        if not urls.isdisjoint(page):
            return False
        urls.update(page)
        here = {fp for fp in page.values() if fp is not None}
        if not prints.isdisjoint(here):
            return False
        prints |= here
    return True
