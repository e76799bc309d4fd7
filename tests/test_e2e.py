"""The worker end to end (`worker once`): local site -> store -> keyword alerts by email and webhook.

Every run of `worker once` opens and closes the database and the HTTP client, so consecutive runs
are also restarts: a test that counts deliveries across runs proves nothing is sent twice.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e import run_worker, source_toml, write_config
from worker.site import NewsSite

RAIL_TITLE = "Kazakhstan Opens New Railway Crossing on the Chinese Border"


@pytest.fixture
def channels(smtp_server, webhook_server) -> dict[str, str]:
    return {"mail": smtp_server.url(to="desk@example.org"), "hook": webhook_server.url("/hook")}


def _urls(run) -> set[str]:
    return {a["url"] for a in run.json()}


def test_baseline_is_silent_and_stores_clean_articles(
    tmp_path, capsys, db_url, news_site, channels, smtp_server, webhook_server
):
    """First pass stores every listed article once, cleaned (entities, tracking, shortcodes),
    ignores the sidebar, sends nothing, and reports what would have matched."""
    config = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(news_site), channels=channels
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "first pass: stored silently" in run.out and "rail=" in run.out

    stored = run_worker(capsys, config, "articles", "--json", "--limit", "1000").json()
    expected = {a.canonical_url(news_site.base_url): a for a in news_site.articles()}
    assert {a["url"] for a in stored} == set(expected)  # all 20, no sidebar link, no duplicates
    assert len(stored) == len(expected) == 20
    for row in stored:
        article = expected[row["url"]]
        assert row["title"] == article.title
        assert row["summary"] == article.expected_summary
        assert "utm_" not in row["url"] and "#" not in row["url"]
        assert "[caption" not in row["summary"] and "&amp;" not in row["title"]
        assert row["published"] is not None and row["source"] == "local"
    assert any(row["watchlists"] == ["rail"] for row in stored)
    assert smtp_server.messages == [] and webhook_server.received == []
    assert run_worker(capsys, config, "alerts", "--json").json() == []


def test_new_matching_articles_are_alerted_once_per_channel(
    tmp_path, capsys, db_url, news_site, channels, smtp_server, webhook_server
):
    """After the baseline, each new matching article gives one email and one webhook post;
    non-matching and excluded articles give none; later passes send nothing again."""
    config = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(news_site), channels=channels
    )
    assert run_worker(capsys, config, "once").code == 0
    news_site.publish(RAIL_TITLE, "Freight on the Belt and Road route will double.")
    news_site.publish("Glaciers Retreat in the Pamirs", "Nothing about trains here.")
    news_site.publish("Opinion: The Railway Nobody Asked For", "An opinion piece.")
    news_site.publish("Uzbek Rail Operator Buys Trains", "Rolling stock for the rail network.")

    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "2 alert(s) queued" not in run.out  # 2 articles x 2 channels = 4 deliveries
    assert "4 alert(s) queued" in run.out and "alerts: 4 sent" in run.out
    assert smtp_server.wait_for(2) and webhook_server.wait_for(2)
    subjects = sorted(m["subject"] for m in smtp_server.messages)
    assert subjects == ["[rail] " + RAIL_TITLE, "[rail] Uzbek Rail Operator Buys Trains"]
    mail = next(m for m in smtp_server.messages if RAIL_TITLE in m["subject"])
    assert mail.get_content_type() == "multipart/alternative"
    html = mail.get_body(("html",)).get_content()
    assert "railway" in html.lower() and "Belt and Road" in html
    bodies = " ".join(str(b) for b in webhook_server.received)
    assert "Uzbek Rail Operator Buys Trains" in bodies and "Opinion" not in bodies

    alerts = run_worker(capsys, config, "alerts", "--json").json()
    assert len(alerts) == 4 and {a["status"] for a in alerts} == {"sent"}
    assert {a["channel"] for a in alerts} == {"mail", "hook"}
    for key in ("watchlist", "article_url", "attempts", "last_error", "created", "sent_at"):
        assert all(key in a for a in alerts)

    for _ in range(2):  # more passes, each a restart: nothing is sent twice
        assert run_worker(capsys, config, "once").code == 0
    time.sleep(0.3)
    assert len(smtp_server.messages) == 2 and len(webhook_server.received) == 2


def test_quiet_pass_fetches_at_most_two_listing_pages(
    tmp_path, capsys, sqlite_url, make_site, channels
):
    """On a 13-page listing (78 articles, 6 a page) the baseline reads all 13 pages; a quiet
    pass and a pass with 5 new articles read at most 2."""
    site = make_site(78, per_page=6)
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(site), channels=channels
    )
    assert run_worker(capsys, config, "once").code == 0
    assert site.listing_requests() == 13
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert site.listing_requests() <= 2
    for i in range(5):
        site.publish(f"Fresh story {i}")
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "5 new" in run.out
    assert site.listing_requests() <= 2


def test_articles_shifted_across_a_page_boundary_are_all_stored(
    tmp_path, capsys, db_url, make_site, channels
):
    """Publishing more than a page of articles and deleting older ones between passes moves
    items across page boundaries; the next pass still stores every new article."""
    site = make_site(78, per_page=6)
    config = write_config(tmp_path / "w.toml", db_url, sources=source_toml(site), channels=channels)
    assert run_worker(capsys, config, "once").code == 0
    listed = site.articles()
    for old in (listed[1], listed[4], listed[9]):  # deletions shift old items up
        site.delete(old)
    new = [site.publish(f"Breaking story number {i}") for i in range(8)]  # > one page
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    stored = _urls(run_worker(capsys, config, "articles", "--json", "--limit", "1000"))
    assert {a.canonical_url(site.base_url) for a in new} <= stored
    assert len(stored) == 78 + 8


def test_articles_pushed_down_while_paging_are_not_missed(
    tmp_path, capsys, sqlite_url, make_site, channels, monkeypatch
):
    """Articles published *during* a pass push the ones already read onto the next page; the pass
    does not mistake that page for the end and still reaches the new articles pushed further."""
    site = make_site(60, per_page=6)
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(site), channels=channels
    )
    assert run_worker(capsys, config, "once").code == 0
    first = [site.publish(f"First wave story {i}") for i in range(7)]  # pages 1 and 2

    handle = site._handle
    pushed: list = []

    def handle_and_publish(target: str):
        if "/page/2/" in target and not pushed:  # just before page 2 is served
            pushed.extend(site.publish(f"Second wave story {i}") for i in range(6))
        return handle(target)

    monkeypatch.setattr(site, "_handle", handle_and_publish)
    assert run_worker(capsys, config, "once").code == 0
    stored = _urls(run_worker(capsys, config, "articles", "--json", "--limit", "1000"))
    assert {a.canonical_url(site.base_url) for a in first} <= stored  # none of the first wave lost
    assert run_worker(capsys, config, "once").code == 0  # the next pass takes the second wave
    stored = _urls(run_worker(capsys, config, "articles", "--json", "--limit", "1000"))
    assert {a.canonical_url(site.base_url) for a in pushed} <= stored


def test_failing_channel_keeps_its_alerts_and_delivers_them_once_after_recovery(
    tmp_path, capsys, db_url, news_site, channels, smtp_server, webhook_server
):
    """A webhook answering 503 does not hold back email; its alert stays pending with the error
    and is delivered once when the channel recovers, across restarts."""
    config = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(news_site), channels=channels
    )
    assert run_worker(capsys, config, "once").code == 0
    webhook_server.fail_with(503)
    news_site.publish(RAIL_TITLE)
    run = run_worker(capsys, config, "once")
    assert run.code == 1, run  # a delivery failed
    assert smtp_server.wait_for(1) and len(smtp_server.messages) == 1
    pending = run_worker(capsys, config, "alerts", "--status", "pending", "--json").json()
    assert len(pending) == 1 and pending[0]["channel"] == "hook"
    assert pending[0]["attempts"] == 1 and "503" in (pending[0]["last_error"] or "")

    assert run_worker(capsys, config, "once").code == 0  # not due yet: nothing sent, no failure
    assert webhook_server.received == []
    webhook_server.recover()
    time.sleep(1.2)  # retry_base = 1s
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "alerts: 1 sent" in run.out
    assert webhook_server.wait_for(1)
    for _ in range(2):
        run_worker(capsys, config, "once")
    time.sleep(0.3)
    assert len(webhook_server.received) == 1 and len(smtp_server.messages) == 1
    sent = run_worker(capsys, config, "alerts", "--json").json()
    assert sorted((a["channel"], a["status"]) for a in sent) == [("hook", "sent"), ("mail", "sent")]


def test_failed_alerts_are_requeued_by_alerts_retry(
    tmp_path, capsys, sqlite_url, news_site, webhook_server
):
    """After max_attempts a delivery is `failed`; `worker alerts --retry` puts it back and the
    next pass delivers it."""
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(news_site),
        channels={"hook": webhook_server.url()},
        alerts='retry_base = "0s"\nmax_attempts = 2',
    )
    assert run_worker(capsys, config, "once").code == 0
    webhook_server.fail_with(500)
    news_site.publish(RAIL_TITLE)
    assert run_worker(capsys, config, "once").code == 1
    assert run_worker(capsys, config, "once").code == 1
    failed = run_worker(capsys, config, "alerts", "--status", "failed", "--json").json()
    assert len(failed) == 1 and failed[0]["attempts"] == 2
    webhook_server.recover()
    assert run_worker(capsys, config, "once").code == 0
    assert webhook_server.received == []  # failed is final until requeued
    assert "1 failed alert(s) put back" in run_worker(capsys, config, "alerts", "--retry").out
    assert run_worker(capsys, config, "once").code == 0
    assert webhook_server.wait_for(1) and len(webhook_server.received) == 1


def test_selector_matching_nothing_fails_the_source_loudly(
    tmp_path, capsys, sqlite_url, news_site, channels
):
    """An `item` selector that matches nothing is an error for the source, not a quiet pass."""
    select = '[sources.select]\nitem = "div.no-such-thing"\ntitle = "h2 a"\nlink = "h2 a"\n'
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=source_toml(news_site, select=select),
        channels=channels,
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 1
    assert "FAILED" in run.out and "selector matched nothing" in run.out


def test_a_source_failing_midway_keeps_what_it_stored_and_the_next_pass_picks_up(
    tmp_path, capsys, db_url, make_site, news_site, channels, smtp_server
):
    """Page 3 failing stops that source's pass (exit 1) without touching another source; pages 1-2
    stay stored; the next pass completes the silent baseline without alerting old articles."""
    site = make_site(60, per_page=6)
    sources = source_toml(site, "long") + "\n" + source_toml(news_site, "other")
    config = write_config(tmp_path / "w.toml", db_url, sources=sources, channels=channels)
    site.fail(500, paths="/page/3/")
    run = run_worker(capsys, config, "once")
    assert run.code == 1
    assert "long: FAILED after 2 page(s), 12 new" in run.out
    assert "other: 4 page(s), 20 item(s), 20 new" in run.out
    site.heal()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "long: 10 page(s)" in run.out and "first pass" in run.out
    stored = run_worker(capsys, config, "articles", "--source", "long", "--json", "--limit", "100")
    assert len(stored.json()) == 60
    assert smtp_server.messages == []


def test_an_article_listed_by_two_sources_is_stored_and_alerted_once(
    tmp_path, capsys, sqlite_url, news_site, channels, smtp_server
):
    """Two sources listing the same article (search and category archive) share one row and one
    alert per channel."""
    category = (
        f'[[sources]]\nname = "category"\nurl = "{news_site.category_url()}"\n'
        + source_toml(news_site).split("\n", 4)[4]
    )
    sources = source_toml(news_site, "search") + "\n" + category
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=sources, channels=channels)
    assert run_worker(capsys, config, "once").code == 0
    news_site.publish(RAIL_TITLE)
    assert run_worker(capsys, config, "once").code == 0
    assert smtp_server.wait_for(1)
    time.sleep(0.3)
    assert len(smtp_server.messages) == 1
    rows = [
        a
        for a in run_worker(capsys, config, "articles", "--json").json()
        if a["title"] == RAIL_TITLE
    ]
    assert len(rows) == 1


def test_once_with_an_unknown_source_name_is_a_usage_error(
    tmp_path, capsys, sqlite_url, news_site, channels
):
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(news_site), channels=channels
    )
    run = run_worker(capsys, config, "once", "--source", "nope")
    assert run.code == 2 and "unknown source 'nope'" in run.err


def test_once_source_option_crawls_only_the_named_source(
    tmp_path, capsys, sqlite_url, news_site, make_site, channels
):
    other = make_site(12, per_page=6)
    sources = source_toml(news_site, "a") + "\n" + source_toml(other, "b")
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=sources, channels=channels)
    run = run_worker(capsys, config, "once", "--source", "b")
    assert run.code == 0 and run.out.startswith("b: ") and "\na: " not in run.out
    assert news_site.listing_requests() == 0 and other.listing_requests() == 2


def test_page_url_template_and_results_counter_crawl_the_whole_listing(
    tmp_path, capsys, sqlite_url, make_site, channels
):
    """With page_url and the "of Z" counter, the baseline fetches pages 2..last by number
    (ahead, concurrently) and stops at the last page without requesting past it."""
    site = make_site(95, per_page=10)
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(site, page_url=True), channels=channels
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "10 page(s), 95 item(s), 95 new" in run.out
    assert site.listing_requests() == 10  # no request for page 11


def test_worker_command_runs_as_a_subprocess(tmp_path, sqlite_url, news_site, channels):
    """`python -m worker` works as a program: exit 0 on a good pass, 2 on a broken config,
    and never prints a traceback."""
    import subprocess
    import sys

    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(news_site), channels=channels
    )
    ok = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "once"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "local: 4 page(s)" in ok.stdout
    broken = Path(tmp_path / "broken.toml")
    broken.write_text(config.read_text().replace("[http]", "[htp]"))
    bad = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(broken), "once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert "htp: unknown key" in bad.stderr and "Traceback" not in bad.stderr
    assert isinstance(NewsSite, type)


def test_a_pass_cut_off_after_page_one_is_resumed_by_the_next_pass(
    tmp_path, capsys, db_url, make_site, channels, webhook_server
):
    """8 new articles span pages 1-2; page 2 fails, so the pass stops after storing page 1.
    The next pass finds nothing new on page 1 but knows the last pass was cut off: it goes on to
    page 2 and stores and alerts the rest, each once."""
    site = make_site(30, per_page=6)
    config = write_config(tmp_path / "w.toml", db_url, sources=source_toml(site), channels=channels)
    assert run_worker(capsys, config, "once").code == 0
    new = [site.publish(f"Railway story {i}") for i in range(8)]
    site.fail(500, paths="/page/2/")
    run = run_worker(capsys, config, "once")
    assert run.code == 1 and "FAILED after 1 page(s), 6 new" in run.out
    site.heal()
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "2 new" in run.out, run
    stored = _urls(run_worker(capsys, config, "articles", "--json", "--limit", "1000"))
    assert {a.canonical_url(site.base_url) for a in new} <= stored
    assert webhook_server.wait_for(8)
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0  # caught up: back to one request
    assert site.listing_requests() == 1
    time.sleep(0.3)
    assert len(webhook_server.received) == 8


def test_once_with_no_alert_due_does_not_load_apprise(tmp_path, sqlite_url, news_site, channels):
    """`worker once` checks channel URLs with apprise only when an alert is due: a silent
    baseline never imports apprise (about 0.4 s of every run), while `worker check` does."""
    import subprocess
    import sys

    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(news_site), channels=channels
    )
    probe = (
        "import sys\nfrom worker.cli import main\ncode = main(sys.argv[1:])\n"
        "print('apprise loaded:', 'apprise' in sys.modules)\nraise SystemExit(code)"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", probe, "--config", str(config), *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    baseline = run("once")
    assert baseline.returncode == 0, baseline.stderr
    assert "first pass: stored silently" in baseline.stdout
    assert "apprise loaded: False" in baseline.stdout
    checked = run("check")
    assert checked.returncode == 0 and "apprise loaded: True" in checked.stdout
    news_site.publish(RAIL_TITLE, "Freight on the Belt and Road route will double.")
    alerting = run("once")
    assert alerting.returncode == 0, alerting.stderr
    assert "alerts: 2 sent" in alerting.stdout and "apprise loaded: True" in alerting.stdout


def test_once_with_a_bad_channel_url_keeps_the_alerts_queued_until_fixed(
    tmp_path, capsys, sqlite_url, news_site, channels, smtp_server, webhook_server
):
    """A channel URL apprise refuses is a config error as soon as an alert is due: the pass
    stores its articles, `once` exits 2 naming the key, nothing is sent or lost; `check` and
    `run` refuse that config at once; with the URL fixed, the next `once` sends the alerts."""
    good = dict(channels)
    broken = dict(channels, hook="nosuchservice://token@host")
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(news_site), channels=broken
    )
    baseline = run_worker(capsys, config, "once")  # silent: no alert is due, apprise not asked
    assert baseline.code == 0, baseline
    news_site.publish(RAIL_TITLE, "Freight on the Belt and Road route will double.")

    run = run_worker(capsys, config, "once")
    assert run.code == 2, run
    assert "1 new, 2 alert(s) queued" in run.out
    assert f"{config}: channels.hook: not a URL apprise accepts: nosuchservice://" in run.err
    assert "token" not in run.err and "Traceback" not in run.err
    assert smtp_server.messages == [] and webhook_server.received == []
    alerts = run_worker(capsys, config, "alerts", "--json").json()
    assert [a["status"] for a in alerts] == ["pending", "pending"]
    assert all(a["attempts"] == 0 for a in alerts)
    for command in ("check", "run"):
        refused = run_worker(capsys, config, command)
        assert refused.code == 2 and "channels.hook: not a URL apprise accepts" in refused.err

    write_config(config, sqlite_url, sources=source_toml(news_site), channels=good)
    fixed = run_worker(capsys, config, "once")
    assert fixed.code == 0, fixed
    assert "alerts: 2 sent" in fixed.out
    assert smtp_server.wait_for(1) and webhook_server.wait_for(1)
