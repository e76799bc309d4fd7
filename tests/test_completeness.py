"""Never a missed article, against a listing that changes the way real news sites do: the "of Z"
counter as a completeness check, reconcile walks, no silent short passes (`worker once` end to end
against the local site; every run opens and closes the database, so runs are also restarts)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.e2e import run_worker, source_toml, write_config
from worker.config import parse_config
from worker.site import NewsSite

RAIL = 'keywords = ["railway"]'


@pytest.fixture
def hook(webhook_server) -> dict[str, str]:
    return {"hook": webhook_server.url("/hook")}


def stored(capsys, config: Path, source: str | None = None) -> set[str]:
    args = ["articles", "--json", "--limit", "100000"] + (["--source", source] if source else [])
    return {a["url"] for a in run_worker(capsys, config, *args).json()}


def listed(site: NewsSite) -> set[str]:
    return {site.url(a) for a in site.articles()}


def age_last_walk(db_url: str, hours: float) -> None:
    """Move the last complete walk `hours` back, as if that much time had passed."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        for name, walked in conn.execute(sa.text("SELECT name, walked_at FROM sources")).all():
            if isinstance(walked, str):  # SQLite: naive UTC text
                at: object = str(datetime.fromisoformat(walked) - timedelta(hours=hours))
            else:
                at = walked - timedelta(hours=hours)
            conn.execute(
                sa.text("UPDATE sources SET walked_at = :at WHERE name = :name"),
                {"at": at, "name": name},
            )
    engine.dispose()


@pytest.mark.parametrize("paging", ["next link", "page_url"])
def test_deletions_on_page_one_during_a_first_pass_lose_nothing_by_the_next_pass(
    tmp_path, capsys, db_url, make_site, hook, paging
):
    """Two articles deleted from page 1 while the first pass reads page 4 pull two others back
    onto page 3, already read: the counter fell, so the pass reads page 3 again and stores them;
    the next pass finds nothing missing."""
    site = make_site(60, per_page=6)
    top = site.articles()[:2]
    site.on_request(lambda _: [site.delete(a) for a in top], page=4)
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, page_url=paging == "page_url"),
        channels=hook,
    )
    run = run_worker(capsys, config, "once", "-v")  # the counter logs at INFO
    assert run.code == 0, run
    assert "counter fell from 60 to 58" in run.err and "page(s) read again" in run.out
    assert listed(site) <= stored(capsys, config)
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and " 0 new" in run.out
    assert listed(site) <= stored(capsys, config)


def test_a_fall_of_the_counter_past_the_re_read_budget_is_said_not_skipped_in_silence(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """Re-reads are held to `max_pages` a pass: deletions before pages 2, 3 and 4 ask for 1, 1
    and then 3 pages again, and the last 3 are over the budget of 4; the pass line and the log
    say which pages were not read again."""
    site = make_site(60, per_page=6)
    top = site.articles()
    site.on_request(lambda _: site.delete(top[0]), page=2)
    site.on_request(lambda _: [site.delete(a) for a in top[1:7]], page=3)
    site.on_request(lambda _: [site.delete(a) for a in top[7:25]], page=4)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(site, extra="max_pages = 4"),
        channels=hook,
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "counter fell by 18 while paging: page(s) 1-3 not read again (max_pages 4)" in run.out
    assert "page(s) 1-3 not read again (re-reads are held to max_pages, 4)" in run.err
    assert "2 page(s) read again" in run.out


def test_an_article_inserted_on_page_two_is_stored_and_alerted_once_by_the_next_pass(
    tmp_path, capsys, db_url, make_site, hook, webhook_server
):
    """A backdated post lands on page 2 while page 1 shows nothing new: the counter grew by one,
    so the pass reads on to page 2, stores it and alerts it once; the pass after is quiet."""
    site = make_site(60, per_page=6)
    config = write_config(tmp_path / "w.toml", db_url, sources=source_toml(site), channels=hook)
    assert run_worker(capsys, config, "once").code == 0
    late = site.insert("Late Railway Story Filed Yesterday", "railway", position=8)
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "1 new" in run.out and "counter grew by 1" in run.out and "all found" in run.out
    assert site.url(late) in stored(capsys, config)
    assert site.listing_requests() == 3  # pages 1 and 2, then page 3 for the overlap stop
    assert webhook_server.wait_for(1)
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert site.listing_requests() == 1  # quiet again: Z did not move
    time.sleep(0.3)
    assert [b["title"] for b in webhook_server.received] == [f"[rail] {late.title}"]


def test_an_article_published_while_a_pass_pages_is_left_to_the_next_pass_not_a_long_walk(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """The counter's growth a pass looks for is the one page 1 showed: an article published on
    top while page 2 is read is the next pass's (it is on its page 1), so neither pass reads on
    down the 30-page listing."""
    site = make_site(180, per_page=6)
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=source_toml(site), channels=hook)
    assert run_worker(capsys, config, "once").code == 0
    for i in range(5):
        site.publish(f"Fresh story {i}")
    late: list = []
    site.on_request(lambda _: late.append(site.publish("Published while paging")), page=2)
    site.reset_log()
    run = run_worker(capsys, config, "once", "-v")  # the counter logs at INFO
    assert run.code == 0 and "5 new" in run.out and "counter grew from 185 to 186" in run.err
    assert site.listing_requests() <= 3
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "1 new" in run.out and site.listing_requests() <= 2
    assert site.url(late[0]) in stored(capsys, config)


def test_a_quiet_pass_costs_one_request_when_the_counter_did_not_move(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    site = make_site(300 * 6, per_page=6)
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(site, page_url=True), channels=hook
    )
    assert run_worker(capsys, config, "once").code == 0
    site.reset_log()
    for _ in range(3):
        assert run_worker(capsys, config, "once").code == 0
    assert site.listing_requests() == 3


def test_a_deletion_and_an_insertion_that_leave_z_unchanged_are_caught_by_the_reconcile_walk(
    tmp_path, capsys, db_url, make_site, hook, webhook_server
):
    """One article deleted and one backdated onto page 4 between two passes: Z did not move and
    page 1 holds nothing new, so the incremental pass cannot see it; the next pass after
    `reconcile` since the last complete walk walks the whole listing, stores it and alerts it."""
    site = make_site(60, per_page=6)
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, extra='reconcile = "6h"'),
        channels=hook,
    )
    assert run_worker(capsys, config, "once").code == 0
    site.delete(site.articles()[30])
    late = site.insert("A Railway Story Backdated by Its Editor", "railway", position=20)
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "0 new" in run.out  # invisible to the counter
    age_last_walk(db_url, hours=5)
    assert "0 new" in run_worker(capsys, config, "once").out  # within the period: no walk
    age_last_walk(db_url, hours=2)  # now 7 h since the last walk
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "1 new" in run.out and "reconcile walk: 60 article(s) seen" in run.out
    assert site.listing_requests() == 10
    assert site.url(late) in stored(capsys, config)
    assert webhook_server.wait_for(1)
    site.reset_log()
    run = run_worker(capsys, config, "once")  # the walk was just made: an incremental pass
    assert run.code == 0 and site.listing_requests() == 1


def test_a_reconcile_walk_cut_off_is_walked_again_by_the_next_pass(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    site = make_site(60, per_page=6)
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=source_toml(site), channels=hook)
    assert run_worker(capsys, config, "once").code == 0
    late = site.insert("Backdated story", position=40)
    site.delete(site.articles()[0])  # Z unchanged: only a walk finds it
    age_last_walk(sqlite_url, hours=25)  # the default reconcile is "1d"
    site.fail(500, page=5, count=2)  # the first attempt and its retry
    run = run_worker(capsys, config, "once")
    assert run.code == 1 and "FAILED after 4 page(s)" in run.out
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "reconcile walk: 60 article(s) seen" in run.out and "1 new" in run.out
    assert site.url(late) in stored(capsys, config)


def test_reconcile_off_never_walks_again(tmp_path, capsys, sqlite_url, make_site, hook):
    site = make_site(60, per_page=6)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(site, extra='reconcile = "off"'),
        channels=hook,
    )
    assert run_worker(capsys, config, "once").code == 0
    age_last_walk(sqlite_url, hours=24 * 365)
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert site.listing_requests() == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("404", "page 5 not found before the counter's last page (12, 67 listed)"),
        ("empty", "no items on page 5 before the counter's last page (12)"),
        ("short", "page 5 is short: 4 item(s) where its counter says 25 - 30 of 67"),
    ],
)
def test_a_broken_middle_page_fails_the_pass_and_the_next_pass_stores_everything(
    tmp_path, capsys, db_url, make_site, hook, webhook_server, fault, message
):
    """A 404, an empty page or a short page before the counter's last page is an error for the
    pass (exit 1), not the end of the listing; the next pass stores everything, alerting the
    late article below the broken page once."""
    site = make_site(60, per_page=6)
    config = write_config(tmp_path / "w.toml", db_url, sources=source_toml(site), channels=hook)
    assert run_worker(capsys, config, "once").code == 0
    new = [site.publish(f"Fresh story {i}") for i in range(6)]
    late = site.insert("Railway Story Filed Late", "railway", position=40)  # page 7
    if fault == "404":
        site.fail(404, page=5, count=1)
    else:
        site.serve_short(0 if fault == "empty" else 4, page=5, count=1)
    run = run_worker(capsys, config, "once")
    assert run.code == 1, run
    assert "local: FAILED after 4 page(s), 6 new" in run.out and message in run.out
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "1 new" in run.out
    assert {site.url(a) for a in [*new, late]} <= stored(capsys, config) == listed(site)
    assert webhook_server.wait_for(1)
    assert run_worker(capsys, config, "once").code == 0
    time.sleep(0.3)
    assert len(webhook_server.received) == 1


def test_a_404_after_the_last_page_stays_the_normal_end(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """Without a counter, a 404 is the end of the listing, as before."""
    site = make_site(20, per_page=6)
    select = (
        source_toml(site)
        .split("[sources.select]")[1]
        .replace('results = ".search-results-count"\n', "")
    )
    sources = source_toml(site, select="[sources.select]" + select)
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=sources, channels=hook)
    site.fail(404, page=4)
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "page 4 not found (past the end)" in run.out


def test_max_pages_short_of_the_counter_is_reported(tmp_path, capsys, sqlite_url, make_site, hook):
    site = make_site(60, per_page=6)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(site, extra="max_pages = 3"),
        channels=hook,
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "max_pages (3) before the counter's last page (10): 42 listed article(s) not read" in (
        run.out
    )
    assert "baseline incomplete: 18 of 60 listed article(s) seen" in run.out
    assert "baseline incomplete: saw 18 distinct article(s), the counter says 60" in run.err


def walk_missing_metric(daemon) -> float | None:
    """`worker_source_walk_missing_articles{source="local"}` as the daemon's /metrics says it."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(daemon.metrics_text().decode()):
        for s in family.samples:
            if s.name == "worker_source_walk_missing_articles" and s.labels["source"] == "local":
                return s.value
    return None


@pytest.fixture
def walks(tmp_path, make_site):
    """A 60-article listing (10 pages of 6) crawled by daemon passes with `max_pages = 10`;
    yields (site, db_url, pass_and_status): pass_and_status() runs one pass and returns its
    report, then what a new Daemon over the same database answers: the /healthz summary and
    the source's detail, and the daemon itself (for /metrics)."""
    from worker.daemon import Daemon
    from worker.fetch import Fetcher
    from worker.pipeline import Runtime
    from worker.store import Store

    site = make_site(60, per_page=6)
    path = tmp_path / "w.toml"
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    write_config(
        path,
        db_url,
        sources=source_toml(site, extra="max_pages = 10"),
        channels={"console": "console://"},
    )
    config = parse_config(path.read_text(), path)
    store = Store(config.database)
    store.migrate()

    async def pass_and_status(*, crawl: bool = True):
        async with Fetcher(config.http) as fetcher:
            runtime = Runtime(config, store=store, fetcher=fetcher)
            report = await runtime.run_pass(config.sources[0]) if crawl else None
            daemon = Daemon(runtime, path)  # a new one each time: a restarted process
            detail = await daemon.status()
            return report, daemon.health_status(False), detail["sources"]["local"], daemon

    try:
        yield site, db_url, pass_and_status
    finally:
        store.close()


async def test_an_incomplete_reconcile_walk_shows_in_the_pass_line_healthz_and_a_metric(walks):
    """12 articles published on top push the listing to 12 pages: the reconcile walk, held to
    `max_pages = 10`, sees 60 of the 72 the counter lists and says so in its pass line, the
    /healthz summary and detail, and `worker_source_walk_missing_articles`."""
    site, db_url, pass_and_status = walks
    assert (await pass_and_status())[0].ok  # the baseline: 60 of 60
    for i in range(12):
        site.publish(f"Fresh story {i}")
    report, *_ = await pass_and_status()
    assert report.ok and report.crawl.new == 12 and not report.crawl.walk
    age_last_walk(db_url, hours=25)  # the default reconcile is "1d"
    report, summary, local, daemon = await pass_and_status()
    assert report.ok and report.crawl.reconcile and report.crawl.walk_missing == 12
    assert "reconcile walk incomplete: 60 of 72 listed article(s) seen" in report.crawl.notes
    assert "12 listed article(s) not read" in report.crawl.stop
    assert summary["incomplete_walks"] == ["local"] and "sources" not in summary
    assert (local["walk_incomplete"], local["walk_seen"], local["walk_total"]) == (True, 60, 72)
    assert walk_missing_metric(daemon) == 12


async def test_a_restarted_daemon_reports_the_last_incomplete_walk_before_it_walks_again(walks):
    """The gauge and /healthz come from the walk recorded in the database: a new process (or
    another replica) reports it before any pass of its own."""
    site, _, pass_and_status = walks
    for i in range(6):
        site.publish(f"Fresh story {i}")  # 11 pages: the baseline sees 60 of 66
    report, *_ = await pass_and_status()
    assert report.ok and report.crawl.walk_missing == 6
    _, summary, local, daemon = await pass_and_status(crawl=False)
    assert summary["incomplete_walks"] == ["local"] and local["walk_incomplete"] is True
    assert walk_missing_metric(daemon) == 6


async def test_a_complete_walk_after_an_incomplete_one_clears_the_report(walks):
    site, db_url, pass_and_status = walks
    extra = [site.publish(f"Fresh story {i}") for i in range(6)]
    assert (await pass_and_status())[0].crawl.walk_missing == 6
    for article in extra:
        site.delete(article)  # back to 10 pages
    age_last_walk(db_url, hours=25)
    report, summary, local, daemon = await pass_and_status()
    assert report.ok and report.crawl.reconcile and report.crawl.walk_missing == 0
    assert summary["incomplete_walks"] == [] and local["walk_incomplete"] is False
    assert walk_missing_metric(daemon) == 0


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 86400.0), ('"off"', None), ('"6h"', 21600.0)]
)
def test_reconcile_is_a_duration_or_off(tmp_path, make_site, value, expected):
    site = make_site(6)
    extra = "" if value is None else f"reconcile = {value}"
    path = write_config(
        tmp_path / "w.toml",
        "sqlite:///x.db",
        sources=source_toml(site, extra=extra),
        channels={"c": "console://"},
    )
    config = parse_config(path.read_text(), path)
    assert config.sources[0].reconcile == expected


def test_a_reconcile_below_a_second_is_refused_with_the_key_named(tmp_path, capsys, make_site):
    site = make_site(6)
    path = write_config(
        tmp_path / "w.toml",
        "sqlite:///x.db",
        sources=source_toml(site, extra='reconcile = "0s"'),
        channels={"c": "console://"},
    )
    run = run_worker(capsys, path, "check")
    assert run.code == 2 and "sources[0].reconcile" in run.err and "Traceback" not in run.err
