"""Boolean and stemmed watchlists end to end: `worker once` against the local site alerts
exactly the articles they should match, `worker search` finds the same ones in the store, a bad
query is refused by `worker check` and `worker search` alike; the daemon's would-have-matched
count; the snippet of an alert for a match in the article's text."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e import run_worker, source_toml, write_config
from worker.config import WatchlistConfig
from worker.models import Delivery
from worker.notify import render
from worker.notify.render import Templates
from worker.search import changed_watchlists, log_would_have_matched, would_have_matched
from worker.site import NewsSite
from worker.store import Store

ROOT = Path(__file__).resolve().parents[1]

# (title, summary) of the articles the site publishes
ARTICLES = {
    "kz-rail": ("Kazakhstan Opens a Railway to China", "Freight trains will cross at Khorgos."),
    "kz-bri": ("Kazakhstan and the Belt and Road", "Talks in Astana on transit corridors."),
    "kz-opinion": ("Opinion: Kazakhstan's Railways Need Reform", "A column on rail policy."),
    "kz-roads": ("Kazakhstan Builds New Roads", "Highways in the north."),
    "sanctions": ("EU Sanctions Hit Kyrgyz Banks", "Lenders named in the new package."),
    "sanctioned": ("Two Tajik Firms Sanctioned", "Exporters of dual-use goods."),
    "sanctuary": ("A Bird Sanctuary Opens Near Issyk-Kul", "Rare cranes nest there."),
    "ru-sanctions": ("Банки под санкциями", "Новый пакет мер против Москвы."),
    "ru-sanatorium": ("Санатории Иссык-Куля", "Сезон открыт."),
    "water-near": ("Water and Energy Deal Signed", "Dushanbe and Tashkent agree on dams."),
    "water-far": ("Water Talks", "After long talks on many topics the energy ministers left."),
    "summary-gas": ("Ministers Meet", "Gas exports to China will grow."),
    "title-gas": ("Gas Prices Rise", "Households pay more."),
}

WATCHLISTS = {  # name -> (query, stem, the articles it must match)
    "kz-transport": (
        'Kazakhstan AND (rail* OR "Belt and Road") -opinion',
        False,
        {"kz-rail", "kz-bri"},
    ),
    "sanctions": ("sanction OR санкции", True, {"sanctions", "sanctioned", "ru-sanctions"}),
    "sanction-exact": ("sanction OR санкции", False, set()),
    "water-energy": ("water NEAR/2 energy", False, {"water-near"}),
    "gas-in-summary": ("summary:gas", False, {"summary-gas"}),
    "banks": ("(bank* OR lender*) -title:opinion", True, {"sanctions"}),
}


def watchlists_toml() -> str:
    out = ""
    for name, (query, stem, _) in WATCHLISTS.items():
        escaped = query.replace("\\", "\\\\").replace('"', '\\"')
        out += (
            f'[[watchlists]]\nname = "{name}"\nquery = "{escaped}"\n'
            f'stem = {"true" if stem else "false"}\nchannels = ["console"]\n'
        )
    return out


@pytest.fixture
def site() -> NewsSite:
    news = NewsSite(per_page=5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (slug, (title, summary)) in enumerate(ARTICLES.items()):
        news.publish(title, summary, published=start + timedelta(hours=i), slug=slug)
    news.start()
    yield news
    news.stop()


def url_of(site: NewsSite, slug: str) -> str:
    return next(a.canonical_url(site.base_url) for a in site.articles() if a.slug == slug)


def test_worker_once_alerts_and_worker_search_finds_the_same_articles(
    tmp_path, capsys, db_url, site
):
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, extra="alert_backfill = true"),
        channels={"console": "console://"},
        watchlists=watchlists_toml(),
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert len(run_worker(capsys, config, "articles", "--json").json()) == len(ARTICLES)

    alerts = run_worker(capsys, config, "alerts", "--json").json()
    alerted: dict[str, set[str]] = {name: set() for name in WATCHLISTS}
    for alert in alerts:
        assert alert["status"] == "sent"
        alerted[alert["watchlist"]].add(alert["article_url"])
    for name, (query, stem, slugs) in WATCHLISTS.items():
        expected = {url_of(site, s) for s in slugs}
        assert alerted[name] == expected, name
        args = ["search", query, "--json", "--limit", "1000"] + (["--stem"] if stem else [])
        found = run_worker(capsys, config, *args)
        assert found.code == 0, found
        assert {row["url"] for row in found.json()} == expected, name


# articles with a text of their own (the WordPress API gives it): (title, summary, body)
BODIES = {
    "body-rail": ("Ministers Meet in Astana", "Talks on trade.", "Kazakhstan will open a railway."),
    "body-forms": ("Banks Named", "A list.", "Russian lenders were sanctioned on Monday."),
    "summary-rail": ("Ministers Meet", "A railway for Kazakhstan.", "Talks on trade."),
    "title-rail": ("Kazakhstan Railway Opens", "Trains run.", "Talks on trade."),
    "split-phrase": ("Two Tajik Firms", "They joined the Belt and", "Road projects in 2025."),
    "none": ("Weather in Bishkek", "Sunny.", "Warm days ahead."),
}

BODY_WATCHLISTS = {  # name -> (query, stem, the articles it must match)
    "anywhere": ("Kazakhstan rail*", False, {"body-rail", "summary-rail", "title-rail"}),
    "in-body": ("body:rail*", False, {"body-rail"}),
    "in-summary": ("summary:(rail* Kazakhstan)", False, {"summary-rail"}),
    "forms-in-body": ("body:sanction NEAR/2 lender", True, {"body-forms"}),
    "phrase": ('"Belt and Road"', False, set()),  # never across the summary and the body
}


def test_a_sources_article_text_is_its_body_field_for_worker_once_and_worker_search(
    tmp_path, capsys, db_url
):
    site = NewsSite(per_page=5)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i, (slug, (title, summary, body)) in enumerate(BODIES.items()):
        site.publish(title, summary, body=body, published=start + timedelta(hours=i), slug=slug)
    site.start()
    try:
        watchlists = ""
        for name, (query, stem, _) in BODY_WATCHLISTS.items():
            escaped = query.replace('"', '\\"')
            watchlists += (
                f'[[watchlists]]\nname = "{name}"\nquery = "{escaped}"\n'
                f'stem = {"true" if stem else "false"}\nchannels = ["console"]\n'
            )
        config = write_config(
            tmp_path / "w.toml",
            db_url,
            sources=(
                f'[[sources]]\nname = "api"\ntype = "wordpress"\nurl = "{site.base_url}/"\n'
                'every = "1m"\nalert_backfill = true\n'
            ),
            channels={"console": "console://"},
            watchlists=watchlists,
        )
        run = run_worker(capsys, config, "once")
        assert run.code == 0, run
        alerts = run_worker(capsys, config, "alerts", "--json").json()
        alerted: dict[str, set[str]] = {name: set() for name in BODY_WATCHLISTS}
        for alert in alerts:
            alerted[alert["watchlist"]].add(alert["article_url"])
        for name, (query, stem, slugs) in BODY_WATCHLISTS.items():
            expected = {url_of(site, s) for s in slugs}
            assert alerted[name] == expected, name
            args = ["search", query, "--json"] + (["--stem"] if stem else [])
            found = run_worker(capsys, config, *args)
            assert found.code == 0, found
            assert {row["url"] for row in found.json()} == expected, name
    finally:
        site.stop()


def test_search_prints_matches_newest_first_with_their_terms(tmp_path, capsys, db_url, site):
    config = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(site), channels={"c": "console://"}
    )
    assert run_worker(capsys, config, "once").code == 0
    found = run_worker(capsys, config, "search", "Kazakhstan rail*", "--json")
    rows = found.json()
    assert [r["title"] for r in rows] == [
        ARTICLES["kz-opinion"][0],
        ARTICLES["kz-rail"][0],
    ]
    assert rows[0]["matched"] == ["Kazakhstan", "rail*"]
    assert rows[0]["source"] == "local" and rows[0]["published"].startswith("2026-01-01T")
    assert set(rows[0]) >= {"url", "title", "published", "source", "matched"}

    text = run_worker(capsys, config, "search", "Kazakhstan rail*", "--limit", "1")
    assert text.code == 0
    lines = text.out.splitlines()
    assert lines[0].endswith(f"{ARTICLES['kz-opinion'][0]}  [Kazakhstan, rail*]")
    assert lines[-1] == "1 match(es) in 13 stored article(s) (--limit reached)"


def test_search_since_and_source_narrow_the_articles(tmp_path, capsys, db_url, site):
    config = write_config(
        tmp_path / "w.toml", db_url, sources=source_toml(site), channels={"c": "console://"}
    )
    assert run_worker(capsys, config, "once").code == 0
    site.publish("Kazakhstan Rail Freight Grows", "Record volumes.")  # now: the only recent one
    assert run_worker(capsys, config, "once").code == 0
    recent = run_worker(capsys, config, "search", "Kazakhstan", "--since", "2d", "--json")
    assert [r["title"] for r in recent.json()] == ["Kazakhstan Rail Freight Grows"]
    everywhere = run_worker(capsys, config, "search", "Kazakhstan", "--json").json()
    local = run_worker(capsys, config, "search", "Kazakhstan", "--source", "local", "--json")
    assert local.json() == everywhere and everywhere  # the one source listed them all
    other = run_worker(capsys, config, "search", "Kazakhstan", "--source", "other")
    assert other.code == 2 and "unknown source 'other'" in other.err  # like every command


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("Kazakhstan AND (rail", "query: unbalanced '(' at column 16"),
        ("rail NEAR water", "query: NEAR needs a distance, e.g. NEAR/5, at column 6"),
        ("titel:rail", "query: unknown field 'titel:' (fields: title, summary, body) at column 1"),
    ],
)
def test_search_refuses_a_bad_query_with_exit_2(tmp_path, sqlite_url, query, message):
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources="",
        channels={"c": "console://"},
        watchlists='[[watchlists]]\nname = "r"\nkeywords = ["rail"]\nchannels = ["c"]\n',
    )
    run = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "search", query],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [message]
    assert run.stdout == ""


def test_worker_check_refuses_bad_queries_one_line_each(tmp_path, sqlite_url):
    watchlists = ""
    for i, query in enumerate(
        ['Kazakhstan AND (rail* OR "Belt and Road"', "a NEAR b", "titel:rail AND x"]
    ):
        watchlists += f'[[watchlists]]\nname = "w{i}"\nquery = \'{query}\'\nchannels = ["c"]\n'
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources="",
        channels={"c": "console://"},
        watchlists=watchlists,
    )
    run = subprocess.run(
        [sys.executable, "-m", "worker", "--config", str(config), "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"{config}: watchlists[0].query: unbalanced '(' at column 16",
        f"{config}: watchlists[1].query: NEAR needs a distance, e.g. NEAR/5, at column 3",
        f"{config}: watchlists[2].query: unknown field 'titel:' (fields: title, summary, body) "
        "at column 1",
    ]
    assert "Traceback" not in run.stderr


# --- the daemon's would-have-matched count ---------------------------------------------------


def wl(name: str, query: str, **extra) -> WatchlistConfig:
    return WatchlistConfig(name=name, query=query, channels=["c"], **extra)


def stored(tmp_path: Path, now: datetime) -> Store:
    from worker.models import Item

    store = Store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    items = [
        Item("https://x.org/1", "Rail freight grows", "", now - timedelta(days=2)),
        Item("https://x.org/2", "Rail strike", "", now - timedelta(days=40)),  # too old
        Item("https://x.org/3", "Water and rail", "", None),  # undated: first seen now
        Item("https://x.org/4", "Gas", "", now - timedelta(days=1)),
    ]
    store.store_page("src", items, lambda item: [], silent=True, now=now)
    return store


def test_would_have_matched_counts_the_last_30_days(tmp_path):
    now = datetime.now(UTC)
    store = stored(tmp_path, now)
    try:
        counts = would_have_matched(
            store,
            [wl("rail", "rail"), wl("water", "water -gas"), wl("other", "rail", sources=["b"])],
        )
    finally:
        store.close()
    assert counts == {"rail": 2, "water": 1, "other": 0}


def test_new_or_changed_watchlists_are_logged_with_their_count(tmp_path, caplog):
    now = datetime.now(UTC)
    store = stored(tmp_path, now)
    old = [wl("rail", "rail"), wl("gas", "gas")]
    new = [wl("rail", "rail"), wl("gas", "gas OR water"), wl("water", "water")]
    changed = changed_watchlists(old, new)
    assert [w.name for w in changed] == ["gas", "water"]
    with caplog.at_level(logging.INFO, logger="worker.search"):
        try:
            log_would_have_matched(store, changed)
        finally:
            store.close()
    assert [r.getMessage() for r in caplog.records if r.name == "worker.search"] == [
        "watchlist gas: would have matched 2 stored article(s) of the last 30 days",
        "watchlist water: would have matched 1 stored article(s) of the last 30 days",
    ]


# --- the alert's snippet ---------------------------------------------------------------------


def delivery(body: str, keywords: tuple[str, ...]) -> Delivery:
    return Delivery(
        id=1,
        watchlist="sanctions",
        channel="c",
        attempts=0,
        article_url="https://x.org/a",
        title="Banks",
        summary="Lenders named.",
        published=None,
        source="s",
        keywords=keywords,
        body=body,
    )


def test_an_alert_quotes_the_text_around_a_match_in_the_body_escaped():
    body = "Long intro. " * 30 + "The new <b>sanctions</b> hit *three* banks. " + "More. " * 30
    message = render(delivery(body, ("sanction",)))
    assert "In the text: …" in message.text and "<b>sanctions</b> hit *three* banks" in message.text
    assert "&lt;b&gt;sanctions&lt;/b&gt; hit *three* banks" in message.html
    assert "\\<b\\>sanctions\\</b\\> hit \\*three\\* banks" in message.markdown
    assert "In the text" not in render(delivery("", ("sanction",))).text
    assert "In the text" not in render(delivery("Nothing related.", ("sanction",))).text


def test_an_alert_quotes_the_body_only_for_terms_the_title_and_summary_lack():
    body = "Intro. The Kazakh railway opens. Banks were sanctioned."
    in_title = replace(delivery(body, ("sanction",)), title="Sanctions on banks")
    assert "In the text" not in render(in_title).text
    # `banks AND body:sanction`: banks is in the title, the quote is around the body's match
    mixed = replace(delivery(body, ("bank*", "sanction")), title="Banks")
    assert "In the text: Intro. The Kazakh railway opens. Banks were sanctioned." in (
        render(mixed).text
    )


def test_a_templates_article_snippet_is_the_quote_of_a_body_match_else_the_summary():
    body = "Intro. Banks were sanctioned on Monday."
    templates = Templates(body="{{ article.snippet }}")
    assert render(delivery(body, ("sanction",)), templates=templates).text == body
    assert render(delivery(body, ("lender*",)), templates=templates).text == "Lenders named."


def test_the_daemon_logs_what_a_new_watchlist_would_have_matched(tmp_path, sqlite_url):
    now = datetime.now(UTC)
    news = NewsSite(per_page=5)
    for i, (title, summary) in enumerate(
        [
            ("EU Sanctions Hit Kyrgyz Banks", "Lenders named."),
            ("Two Tajik Firms Sanctioned", "Exporters named."),
            ("Opinion: Sanctions Do Not Work", "A column."),
            ("A Bird Sanctuary Opens", "Cranes nest there."),
            ("Rail Freight Grows", "More trains."),
        ]
    ):
        news.publish(title, summary, published=now - timedelta(days=1, hours=i))
    news.start()
    rail = '[[watchlists]]\nname = "rail"\nkeywords = ["rail"]\nchannels = ["c"]\n'
    sanctions = (
        '[[watchlists]]\nname = "sanctions"\nquery = "sanction -opinion"\nstem = true\n'
        'channels = ["c"]\n'
    )
    config = tmp_path / "w.toml"

    def write(watchlists: str) -> None:
        text = write_config(
            tmp_path / "new.toml",
            sqlite_url,
            sources=source_toml(news).replace('every = "1m"', 'every = "1h"'),
            channels={"c": "console://"},
            watchlists=watchlists,
        )
        os.replace(text, config)

    write(rail)
    err = tmp_path / "run.err"
    with open(err, "wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        )
    try:

        def log() -> str:
            return err.read_text(encoding="utf-8", errors="replace")

        def wait_for(text: str, timeout: float = 30.0) -> None:
            deadline = time.monotonic() + timeout
            while text not in log():
                assert time.monotonic() < deadline, f"no {text!r} in:\n{log()[-3000:]}"
                assert proc.poll() is None, log()[-3000:]
                time.sleep(0.05)

        wait_for("pass source=local ok=True")
        wait_for("watchlist rail: would have matched")  # at start, all watchlists
        write(rail + sanctions)
        wait_for("watchlist sanctions: would have matched 2 stored article(s) of the last 30 days")
        assert log().count("watchlist rail: would have matched") == 1  # unchanged: not again
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        news.stop()
    assert proc.returncode == 0 and "Traceback" not in log()
