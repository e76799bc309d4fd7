"""A good citizen (issue #13): robots.txt, Crawl-delay, conditional GET, a breaker per source,
active hours. `worker once` in process against the local site, and `worker run` as a subprocess
where the schedule is what is tested; requests are counted at the site."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e import run_worker, source_toml, write_config
from tests.test_completeness import age_last_walk
from tests.test_daemon import config_toml, free_port, http_get, workers
from tests.test_daemon import source_toml as daemon_source
from worker.config import ConfigError, SourceConfig, parse_config
from worker.config.models import in_windows
from worker.site import NewsSite

__all__ = ["workers"]  # the fixture, shared with test_daemon


@pytest.fixture
def hook(webhook_server) -> dict[str, str]:
    return {"hook": webhook_server.url("/hook")}


def once_config(
    tmp_path: Path, db_url: str, site: NewsSite, hook: dict[str, str], *, http: str = "", **kw
) -> Path:
    path = write_config(tmp_path / "w.toml", db_url, sources=source_toml(site, **kw), channels=hook)
    if http:
        text = path.read_text(encoding="utf-8").replace("[http]\n", f"[http]\n{http}\n", 1)
        path.write_text(text, encoding="utf-8")
    return path


# --- robots.txt --------------------------------------------------------------------------------

ROBOTS_CASES = [
    # (robots.txt, the pass may fetch the listing)
    ("User-agent: *\nDisallow: /wp-admin/\nAllow: /wp-admin/admin-ajax.php\n", True),
    ("User-agent: *\nDisallow: /\n", False),
    ("User-agent: worker\nDisallow: /\n\nUser-agent: *\nAllow: /\n", False),
    ("User-agent: otherbot\nDisallow: /\n", True),  # the rules name another product token
    ("User-agent: *\nDisallow: /\n\nUser-agent: worker\nAllow: /\n", True),
    ("User-agent: worker\nDisallow: /*?s=\n", False),  # the search listing itself
]


@pytest.mark.parametrize(("robots", "allowed"), ROBOTS_CASES)
def test_robots_txt_rules_for_the_workers_product_token_decide_whether_the_listing_is_fetched(
    tmp_path, capsys, sqlite_url, news_site, hook, robots, allowed
):
    """The rules that name the worker's product token (or `*` when none does) decide; a
    disallowed listing is not requested and the pass fails saying so, with the URL."""
    news_site.set_robots(robots)
    run = run_worker(capsys, once_config(tmp_path, sqlite_url, news_site, hook), "once")
    assert news_site.robots_requests == ["/robots.txt"]
    if allowed:
        assert run.code == 0, run
        assert news_site.listing_requests() >= 1
    else:
        assert run.code != 0
        assert f"{news_site.search_url}: disallowed by robots.txt" in run.out
        assert news_site.requests == []


def test_a_disallowed_page_two_is_not_fetched_and_fails_the_pass_after_page_one(
    tmp_path, capsys, sqlite_url, news_site, hook
):
    news_site.set_robots("User-agent: *\nDisallow: /page/\n")
    config = once_config(tmp_path, sqlite_url, news_site, hook, page_url=True)
    run = run_worker(capsys, config, "once")
    assert run.code != 0
    page2 = news_site.page_url_template.format(page=2)
    assert f"{page2}: disallowed by robots.txt" in run.out
    assert not any(target.startswith("/page/") for target in news_site.requests)


def test_robots_txt_is_fetched_once_and_shared_through_the_database(
    tmp_path, capsys, db_url, news_site, hook
):
    """Each `worker once` is a new process: the second reads the copy the first stored."""
    config = once_config(tmp_path, db_url, news_site, hook)
    for _ in range(3):
        assert run_worker(capsys, config, "once").code == 0
    assert news_site.robots_requests == ["/robots.txt"]
    assert news_site.listing_requests() >= 3


@pytest.mark.parametrize("status", [401, 403, 404, 410])
def test_a_robots_txt_answering_4xx_allows_everything(
    tmp_path, capsys, sqlite_url, news_site, hook, status
):
    news_site.set_robots("User-agent: *\nDisallow: /\n", status=status)
    run = run_worker(capsys, once_config(tmp_path, sqlite_url, news_site, hook), "once")
    assert run.code == 0, run
    assert news_site.listing_requests() >= 1


@pytest.mark.parametrize("status", [500, 503])
def test_a_robots_txt_answering_5xx_fetches_nothing_and_is_asked_again_next_pass(
    tmp_path, capsys, sqlite_url, news_site, hook, status
):
    news_site.set_robots("", status=status)
    config = once_config(tmp_path, sqlite_url, news_site, hook)
    run = run_worker(capsys, config, "once")
    assert run.code != 0
    assert f"robots.txt answered HTTP {status}: try later" in run.out
    assert news_site.requests == []
    news_site.set_robots(None)  # the site's own robots.txt again
    assert run_worker(capsys, config, "once").code == 0
    assert news_site.robots_requests == ["/robots.txt", "/robots.txt"]
    assert news_site.listing_requests() >= 1


def test_an_unreachable_robots_txt_means_try_later(tmp_path, capsys, sqlite_url, hook):
    site = NewsSite.sample()
    base = site.start()
    site.stop()  # nothing listens on that port now
    config = once_config(tmp_path, sqlite_url, site, hook)
    run = run_worker(capsys, config, "once")
    assert run.code != 0
    assert f"{base}/robots.txt: robots.txt did not answer" in run.out and "try later" in run.out


def test_robots_off_fetches_no_robots_txt_and_obeys_none(
    tmp_path, capsys, sqlite_url, news_site, hook
):
    news_site.set_robots("User-agent: *\nDisallow: /\n")
    config = once_config(tmp_path, sqlite_url, news_site, hook, http="robots = false")
    assert run_worker(capsys, config, "once").code == 0
    assert news_site.robots_requests == []


def test_crawl_delay_spaces_requests_to_the_host_beyond_min_delay(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """`Crawl-delay: 1` with `min_delay = 0`: the baseline walk's five pages (fetched ahead,
    several at a time, without it) arrive at the site at least a second apart."""
    site = make_site(30, per_page=6)
    site.set_robots("User-agent: *\nCrawl-delay: 1\n")
    arrivals: list[float] = []
    lock = threading.Lock()

    def arrived(_target: str) -> None:
        with lock:
            arrivals.append(time.monotonic())

    site.on_request(arrived, count=None)
    config = once_config(tmp_path, sqlite_url, site, hook, page_url=True)
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert len(arrivals) >= 5
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 0.9, gaps  # a lower bound: load only makes the gaps longer


# --- conditional GET ---------------------------------------------------------------------------


def test_an_unchanged_first_page_costs_one_304_and_a_later_change_is_fetched(
    tmp_path, capsys, db_url, news_site, hook, webhook_server
):
    config = once_config(tmp_path, db_url, news_site, hook)
    assert run_worker(capsys, config, "once").code == 0  # the baseline walk
    news_site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert news_site.requests == ["/?s=kyrgyzstan"]  # one request
    assert news_site.not_modified == ["/?s=kyrgyzstan"]  # answered 304
    assert "not modified since the last pass (HTTP 304)" in run.out
    news_site.publish("Railway to Kashgar approved", "The railway link is approved.")
    news_site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert news_site.not_modified == []
    assert " 1 new" in run.out
    assert webhook_server.wait_for(1, timeout=10)
    news_site.reset_log()
    assert run_worker(capsys, config, "once").code == 0  # quiet again: a 304
    assert news_site.not_modified == ["/?s=kyrgyzstan"]


def test_an_edited_source_fetches_its_first_page_in_full_so_a_broken_selector_is_seen(
    tmp_path, capsys, db_url, news_site, hook
):
    """A 304 says the page is the same, not that it reads the same with other selectors: the
    validators hold for one source config only."""
    config = once_config(tmp_path, db_url, news_site, hook)
    assert run_worker(capsys, config, "once").code == 0
    assert run_worker(capsys, config, "once").code == 0
    assert news_site.not_modified  # unchanged: answered 304
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('item = "', 'item = "div.markup-changed ', 1), encoding="utf-8")
    news_site.reset_log()
    run = run_worker(capsys, config, "once")
    assert news_site.not_modified == [] and run.code == 1, run
    assert "selector matched nothing" in run.out


def test_a_304_never_skips_a_reconcile_walk_that_is_due(tmp_path, capsys, db_url, news_site, hook):
    config = once_config(tmp_path, db_url, news_site, hook, extra='reconcile = "1h"')
    assert run_worker(capsys, config, "once").code == 0
    age_last_walk(db_url, hours=2)
    news_site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert news_site.not_modified == []
    assert "reconcile walk" in run.out
    assert news_site.listing_requests() == 4  # 20 articles, 6 a page: the whole listing


def test_a_pass_cut_off_is_resumed_in_full_not_answered_304(
    tmp_path, capsys, sqlite_url, news_site, hook
):
    """A pass that failed leaves a resume mark: the next one fetches page 1 in full (its
    validators still hold, but an unchanged page 1 is no sign that nothing is owed)."""
    config = once_config(tmp_path, sqlite_url, news_site, hook, extra='reconcile = "off"')
    assert run_worker(capsys, config, "once").code == 0
    news_site.fail(500, page=1)
    assert run_worker(capsys, config, "once").code != 0  # cut off at page 1
    news_site.heal()
    news_site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert news_site.not_modified == []
    assert run_worker(capsys, config, "once").code == 0  # the mark is gone: a 304 again
    assert news_site.not_modified == ["/?s=kyrgyzstan"]


# --- the breaker (a daemon on a 1 s schedule) ----------------------------------------------------


def test_the_breaker_spaces_out_passes_while_the_site_answers_503_and_one_success_closes_it(
    tmp_path, workers, news_site
):
    port = free_port()
    text = config_toml(
        tmp_path,
        channels={"log": "console://"},
        sources=daemon_source("news", news_site.search_url, every="1s"),
        watchlists="",
        port=port,
    ).replace("[http]\n", '[http]\nbreaker_after = 2\nbreaker_max = "4s"\n', 1)
    config = tmp_path / "worker.toml"
    config.write_text(text, encoding="utf-8")
    worker = workers(config, "run")
    worker.wait_passes(1, timeout=60)  # the baseline, robots.txt fetched and kept

    def source() -> dict:
        _, body = http_get(f"http://127.0.0.1:{port}/healthz/sources")
        return json.loads(body)["sources"]["news"]

    news_site.fail(503)
    worker.expect(lambda: source()["breaker"] == "open", 60, "the breaker to open")
    assert source()["failures"] >= 2
    _, metrics = http_get(f"http://127.0.0.1:{port}/metrics")
    assert 'worker_source_breaker_open{source="news"} 1.0' in metrics
    start = news_site.listing_requests()
    time.sleep(8)
    # a 1 s schedule would send 8 requests; spaced 2 s, then 4 s (breaker_max): at most 4
    during = news_site.listing_requests() - start
    assert during <= 4, during
    news_site.heal()
    worker.expect(lambda: source()["breaker"] == "closed", 30, "the breaker to close")
    assert source()["failures"] == 0
    code, _ = worker.stop()
    assert code == 0


# --- active hours --------------------------------------------------------------------------------


def _window(start: datetime, hours_from: float, hours_to: float) -> str:
    a = start + timedelta(hours=hours_from)
    b = start + timedelta(hours=hours_to)
    return f"{a:%H:%M}-{b:%H:%M}"


def test_active_hours_in_a_non_utc_time_zone_allow_passes_only_inside_them(
    tmp_path, workers, make_site
):
    """In Asia/Kathmandu (UTC+05:45) a source whose window holds the local time is passed every
    second; one whose window starts three hours later gets no request at all."""
    zone = "Asia/Kathmandu"
    local = datetime.now(ZoneInfo(zone))
    inside, outside = make_site(sample=True), make_site(sample=True)
    sources = daemon_source(
        "open", inside.search_url, extra=f'active = "{_window(local, -2, 2)}"'
    ) + daemon_source(
        "closed",
        outside.search_url,
        extra=f'active = ["{_window(local, 3, 5)}", "{_window(local, 6, 7)}"]',
    )
    text = config_toml(tmp_path, channels={"log": "console://"}, sources=sources, watchlists="")
    config = tmp_path / "worker.toml"
    config.write_text(f'timezone = "{zone}"\n' + text, encoding="utf-8")
    worker = workers(config, "run")
    worker.wait_passes(3, source="open", timeout=60)
    assert worker.passes("closed") == 0
    assert outside.requests == [] and outside.robots_requests == []
    code, _ = worker.stop()
    assert code == 0


WINDOW_CASES = [
    # (windows, local time, inside)
    (["06:00-23:00"], "06:00", True),
    (["06:00-23:00"], "22:59", True),
    (["06:00-23:00"], "23:00", False),  # the end is not included
    (["06:00-23:00"], "05:59", False),
    (["22:00-06:00"], "23:30", True),  # wraps midnight
    (["22:00-06:00"], "00:00", True),
    (["22:00-06:00"], "05:59", True),
    (["22:00-06:00"], "06:00", False),
    (["22:00-06:00"], "12:00", False),
    (["07:00-09:00", "17:00-19:30"], "18:00", True),
    (["07:00-09:00", "17:00-19:30"], "12:00", False),
    (["00:00-24:00"], "23:59", True),
]


@pytest.mark.parametrize(("windows", "at", "inside"), WINDOW_CASES)
def test_an_active_window_holds_its_start_not_its_end_and_may_wrap_midnight(windows, at, inside):
    hour, minute = (int(x) for x in at.split(":"))
    assert in_windows(windows, hour * 60 + minute) is inside


def test_active_hours_are_read_in_the_configs_time_zone_across_a_dst_change():
    source = SourceConfig.model_validate(
        {
            "name": "s",
            "url": "https://example.org/",
            "active": "08:00-09:00",
            "select": {"item": "a", "title": "a", "link": "a"},
        }
    )
    # 08:30 in New York is 13:30 UTC in winter (EST) and 12:30 UTC in summer (EDT)
    assert source.is_active(datetime(2026, 1, 15, 13, 30, tzinfo=UTC), "America/New_York")
    assert not source.is_active(datetime(2026, 1, 15, 12, 30, tzinfo=UTC), "America/New_York")
    assert source.is_active(datetime(2026, 7, 15, 12, 30, tzinfo=UTC), "America/New_York")
    assert not source.is_active(datetime(2026, 7, 15, 13, 30, tzinfo=UTC), "America/New_York")


GOOD = """
[[sources]]
name = "s"
url = "https://example.org/"
select = { item = "article", title = "h2", link = "a" }
"""


@pytest.mark.parametrize(
    ("top", "source", "problem"),
    [
        ('timezone = "Mars/Olympus"', "", r"^timezone: unknown time zone 'Mars/Olympus'"),
        ('timezone = "../../etc/passwd"', "", r"^timezone: .* is not an IANA time zone name"),
        ("", 'active = "6-23"', r"^sources\[0\]\.active\[0\]: '6-23' is not a window"),
        ("", 'active = "25:00-06:00"', r"^sources\[0\]\.active\[0\]: .*25:00 is not a time"),
        ("", 'active = "06:00-06:00"', r"^sources\[0\]\.active\[0\]: .* is empty"),
        ("", "active = []", r"^sources\[0\]\.active"),
        ("[http]\nbreaker_after = 0", "", r"^http\.breaker_after"),
        ('[http]\nbreaker_max = "soon"', "", r"^http\.breaker_max: 'soon' is not a duration"),
    ],
)
def test_a_bad_timezone_window_or_breaker_key_is_refused_with_the_key_named(top, source, problem):
    text = (top + "\n" + GOOD).replace(
        'url = "https://example.org/"\n', f'url = "https://example.org/"\n{source}\n'
    )
    if top.startswith("[http]"):
        text = GOOD + "\n" + top + "\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert any(re.search(problem, p) for p in info.value.problems), info.value.problems


def test_probe_obeys_robots_txt_too(make_site):
    from worker.config import HttpConfig
    from worker.probe import probe

    site = make_site(sample=True)
    site.set_robots("User-agent: *\nDisallow: /\n")
    result = asyncio.run(probe(site.search_url, HttpConfig(min_delay=0, retries=0)))
    assert not result.found
    assert result.reason == "could not fetch the page: disallowed by robots.txt"
    assert site.requests == [] and site.robots_requests == ["/robots.txt"]
