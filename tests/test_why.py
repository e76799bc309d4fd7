"""`worker why URL`: the real command in a subprocess, over a database two real passes filled.

The scenario (built once for the module): the sample news site, crawled once (the silent
baseline), then a new article about rail is published and a second pass alerts it on two
channels: `console` (sent) and `down` (nobody listens there: the attempt failed and is retried).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.test_daemon import child_env
from worker.config import WatchlistConfig
from worker.match import Matcher, explain_watchlists
from worker.models import AlertPlan, Item
from worker.site import SELECT_TOML, NewsSite
from worker.store import Store

SECRET = "s3cret-pass"
PER_PAGE = 6  # the sample site's listing


@dataclass
class Scenario:
    config: Path
    site: NewsSite
    baseline_url: str  # a rail article on page 2 of the baseline
    baseline_page: int
    new_url: str  # the rail article the second pass alerted

    def why(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker", "--config", str(self.config), "why", *args],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
        )

    def answer(self, url: str) -> dict[str, Any]:
        done = self.why("--json", url)
        assert done.returncode == 0, done.stderr
        data: dict[str, Any] = json.loads(done.stdout)
        return data


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("why")
    site = NewsSite.sample()
    site.start()
    try:
        config = tmp / "worker.toml"
        config.write_text(
            f'database = "sqlite:///{tmp / "worker.db"}"\n'
            "[http]\nmin_delay = 0\ntimeout = 10\nretries = 0\n"
            '[alerts]\nretry_base = "1h"\nsend_timeout = "10s"\n'
            "[channels]\n"
            'console = "console://"\n'
            f'down = "json://desk:{SECRET}@127.0.0.1:{_closed_port()}/hook"\n'
            f'[[sources]]\nname = "news"\nurl = "{site.search_url}"\n{SELECT_TOML}\n'
            f'[[sources]]\nname = "other"\nurl = "{site.category_url("nothing")}"\n{SELECT_TOML}\n'
            '[[watchlists]]\nname = "rail"\nkeywords = ["rail*"]\nexclude = ["opinion"]\n'
            'channels = ["console", "down"]\n'
            '[[watchlists]]\nname = "water"\nkeywords = ["water", "dam"]\nchannels = ["console"]\n'
            '[[watchlists]]\nname = "strict"\nkeywords = ["rail*"]\nexclude = ["railway"]\n'
            'channels = ["console"]\n'
            '[[watchlists]]\nname = "elsewhere"\nkeywords = ["rail*"]\nsources = ["other"]\n'
            'channels = ["console"]\n',
            encoding="utf-8",
        )
        listed = site.articles()  # newest first, as the listing shows them
        rail = Matcher([WatchlistConfig(name="rail", keywords=["rail*"], channels=["c"])])
        index = next(
            i
            for i, a in enumerate(listed)
            if i >= PER_PAGE and rail.match(a.title, a.expected_summary)
        )

        def once() -> None:
            cmd = [sys.executable, "-m", "worker", "--config", str(config), "once"]
            done = subprocess.run(
                [*cmd, "--source", "news"],
                capture_output=True,
                text=True,
                env=child_env(),
                timeout=120,
            )
            assert done.returncode in (0, 1), done.stderr  # 1: the `down` channel failed

        once()
        new = site.publish(
            "Rail freight corridor opens to Europe", "The new railway cuts transit times."
        )
        once()
        yield Scenario(
            config=config,
            site=site,
            baseline_url=site.url(listed[index]),
            baseline_page=index // PER_PAGE + 1,
            new_url=site.url(new),
        )
    finally:
        site.stop()


def _spellings(url: str) -> dict[str, str]:
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    return {
        "as stored": url,
        "tracking parameters and a fragment": f"{url}?utm_source=news&fbclid=x#comments",
        "upper-case scheme and host": f"{scheme.upper()}://{host.upper()}/{path}",
        "https for http": f"https://{rest}",
        "no trailing slash": url.rstrip("/"),
        "www. before the host": f"{scheme}://www.{host}/{path}",
    }


SPELLINGS = list(_spellings("http://h/p/"))


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_why_finds_a_seen_url_in_any_spelling(scenario: Scenario, spelling: str) -> None:
    asked = _spellings(scenario.new_url)[spelling]
    data = scenario.answer(asked)
    assert data["seen"] is True and data["url"] == scenario.new_url
    assert data["asked"] == asked


def test_why_says_which_source_saw_it_first_on_which_page_of_which_pass(
    scenario: Scenario,
) -> None:
    old = scenario.answer(scenario.baseline_url)
    (listing,) = old["listings"]
    assert listing["source"] == "news" and old["source"] == "news"
    assert listing["page"] == scenario.baseline_page >= 2
    assert listing["baseline"] is True
    started = datetime.fromisoformat(listing["pass_started"])
    assert started <= datetime.fromisoformat(listing["first_seen"])

    new = scenario.answer(scenario.new_url)
    (listing,) = new["listings"]
    assert listing["page"] == 1 and listing["baseline"] is False
    assert datetime.fromisoformat(listing["pass_started"]) > started  # the second pass


def test_why_shows_the_stored_title_summary_and_date(scenario: Scenario) -> None:
    data = scenario.answer(scenario.new_url)
    assert data["title"] == "Rail freight corridor opens to Europe"
    assert data["summary"] == "The new railway cuts transit times."
    published = datetime.fromisoformat(data["published"])
    assert abs(published - datetime.now(UTC)) < timedelta(hours=1)


def test_why_explains_every_watchlist_matched_or_which_part_failed(scenario: Scenario) -> None:
    verdicts = {w["watchlist"]: w for w in scenario.answer(scenario.new_url)["watchlists"]}
    assert list(verdicts) == ["rail", "water", "strict", "elsewhere"]  # config order
    rail, water, strict, elsewhere = verdicts.values()
    assert rail["matched"] is True and rail["keywords"] == ["rail*"] and rail["failed"] is None
    assert rail["recorded"]["keywords"] == ["rail*"] and rail["alerted"] is True
    assert water["matched"] is False and water["failed"] == "keywords"
    assert "'water', 'dam'" in water["reason"]
    assert strict["matched"] is False and strict["failed"] == "exclude"
    assert strict["keywords"] == ["rail*"] and strict["excluded_by"] == ["railway"]
    assert elsewhere["matched"] is False and elsewhere["failed"] == "sources"
    assert "(other)" in elsewhere["reason"] and "news" in elsewhere["reason"]


def test_why_lists_every_delivery_with_its_status_attempts_and_masked_error(
    scenario: Scenario,
) -> None:
    done = scenario.why("--json", scenario.new_url)
    assert SECRET not in done.stdout and SECRET not in done.stderr
    deliveries = {d["channel"]: d for d in json.loads(done.stdout)["deliveries"]}
    assert set(deliveries) == {"console", "down"}
    sent, down = deliveries["console"], deliveries["down"]
    assert sent["watchlist"] == "rail" and sent["status"] == "sent" and sent["attempts"] == 1
    assert sent["sent_at"] is not None and sent["last_error"] is None
    assert down["status"] == "pending" and down["attempts"] == 1
    assert down["last_error"] and down["next_attempt_at"] is not None


def test_why_says_a_match_of_the_silent_first_pass_was_not_alerted(scenario: Scenario) -> None:
    data = scenario.answer(scenario.baseline_url)
    rail = next(w for w in data["watchlists"] if w["watchlist"] == "rail")
    assert rail["matched"] is True and rail["recorded"] is not None
    assert rail["alerted"] is False and "first pass" in rail["note"]
    assert data["deliveries"] == []


def test_why_prints_the_answer_as_text(scenario: Scenario) -> None:
    done = scenario.why(scenario.new_url + "?utm_source=x")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"{scenario.new_url}  (asked: ")
    assert "title:     Rail freight corridor opens to Europe" in out
    assert "  news: page 1 of the pass started " in out
    assert "  rail: matched: matched 'rail*'" in out
    assert "  strict: not matched: matched 'rail*' but excluded by 'railway'" in out
    assert "  rail -> console: sent, 1 attempt(s)" in out
    assert "  rail -> down: pending, 1 attempt(s), next try " in out
    assert SECRET not in out


def test_why_exits_1_for_a_url_never_seen_naming_the_closest_stored_ones(
    scenario: Scenario,
) -> None:
    typo = scenario.new_url.replace("corridor", "coridor")
    done = scenario.why(typo)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{typo}: never seen\nclosest stored URLs:\n")
    assert done.stdout.splitlines()[2].strip() == scenario.new_url
    data = json.loads(scenario.why("--json", typo).stdout)
    assert data["seen"] is False and data["closest"][0] == scenario.new_url


def test_why_refuses_what_is_not_an_http_url(scenario: Scenario) -> None:
    done = scenario.why("javascript:alert(1)")
    assert done.returncode == 2 and "not an http(s) URL" in done.stderr


# --- the parts underneath ------------------------------------------------------------------------

CASES = tomllib.loads((Path(__file__).parent / "cases" / "match.toml").read_text("utf-8"))["case"]


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_explanations_agree_with_the_matcher_on_every_rules_case(case: dict[str, Any]) -> None:
    specs = case.get("watchlists") or [
        {"name": "w", "keywords": case["keywords"], "exclude": case.get("exclude", [])}
    ]
    watchlists = [
        WatchlistConfig(
            name=w["name"], keywords=w["keywords"], exclude=w.get("exclude", []), channels=["c"]
        )
        for w in specs
    ]
    title, summary = case["title"], case.get("summary", "")
    matched = Matcher(watchlists).match(title, summary)
    for e in explain_watchlists(watchlists, title, summary):
        assert e.matched == (e.watchlist in matched), e
        if e.matched:
            assert e.keywords == matched[e.watchlist]


def test_an_explanation_reads_the_body_as_the_pipeline_does() -> None:
    watchlists = [
        WatchlistConfig(name="body", query="body:glacier*", channels=["c"]),
        WatchlistConfig(name="summary", query="summary:glacier*", channels=["c"]),
    ]
    body = "In the fourth paragraph: the Abramov glacier shrinks."
    by_name = {e.watchlist: e for e in explain_watchlists(watchlists, "Talks", "Trade.", body)}
    assert by_name["body"].matched and by_name["body"].keywords == ("glacier*",)
    assert not by_name["summary"].matched
    assert "does not match the title, summary or text" in by_name["summary"].reason
    (without,) = explain_watchlists(watchlists[:1], "Talks", "Trade.")
    assert not without.matched and "the title or summary" in without.reason


def test_store_keeps_the_page_and_pass_where_a_source_first_listed_an_article(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.migrate()
        first = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        item = Item(url="https://example.org/a/", title="A", summary="", published=None)

        def plan(_: Item) -> list[AlertPlan]:
            return []

        store.store_page("s", [item], plan, silent=True, listing_page=3, pass_started=first)
        later = first + timedelta(hours=1)
        store.store_page("s", [item], plan, silent=False, listing_page=1, pass_started=later)
        store.store_page("t", [item], plan, silent=False, listing_page=2, pass_started=later)
        record = store.lookup_url(["https://example.org/a/"])
        assert record is not None
        pages = {x.source: (x.page, x.pass_started) for x in record.listings}
        assert pages == {"s": (3, first), "t": (2, later)}  # the first listing of each source
    finally:
        store.close()
