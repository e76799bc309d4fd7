"""Feeds and the WordPress REST API as sources (#14.2, #14.3), end to end against the local
site: `worker once` and `worker articles --json`, the real CLI in this process."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.e2e import SELECT, run_worker, source_toml, write_config
from worker.site import NewsSite


@pytest.fixture
def hook(webhook_server) -> dict[str, str]:
    return {"hook": webhook_server.url("/hook")}


def feed_toml(site: NewsSite, name: str = "feed") -> str:
    return f'[[sources]]\nname = "{name}"\ntype = "feed"\nurl = "{site.feed_url}"\nevery = "1m"\n'


def wp_toml(site: NewsSite, name: str = "api", extra: str = "") -> str:
    return (
        f'[[sources]]\nname = "{name}"\ntype = "wordpress"\nurl = "{site.base_url}/"\n'
        f'every = "1m"\n{extra}\n'
    )


def articles(capsys, config) -> dict[str, dict]:
    run = run_worker(capsys, config, "articles", "--json", "--limit", "100000")
    assert run.code == 0, run
    return {a["url"]: a for a in run.json()}


def test_a_feed_source_stores_the_feeds_items_with_their_dates(
    tmp_path, capsys, db_url, make_site, hook
):
    site = make_site(sample=True)
    config = write_config(tmp_path / "w.toml", db_url, sources=feed_toml(site), channels=hook)
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    stored = articles(capsys, config)
    newest = site.articles()[:10]  # WordPress's feed: the 10 newest
    assert set(stored) == {site.url(a) for a in newest}
    for article in newest:
        got = stored[site.url(article)]
        assert got["title"] == article.title
        assert datetime.fromisoformat(got["published"]) == article.published
        assert got["summary"].startswith(article.expected_summary[:40])


def test_a_wordpress_source_walks_the_rest_api_by_its_counter_and_stores_every_post(
    tmp_path, capsys, db_url, make_site, hook
):
    """250 posts, 100 a page: three requests (X-WP-TotalPages), never the page past the last,
    every post stored with its date_gmt as UTC; a quiet pass asks page 1 only, a pass with one
    new post stops after the page with nothing new, as a listing's does."""
    site = make_site(250, per_page=6)
    config = write_config(tmp_path / "w.toml", db_url, sources=wp_toml(site), channels=hook)
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    api = [p for p in site.requests if p.startswith("/wp-json/")]
    assert len(api) == 3 and all("per_page=100" in p for p in api)
    assert sorted(p.rsplit("page=", 1)[1] for p in api) == ["1", "2", "3"]  # 2, 3 fetched ahead
    stored = articles(capsys, config)
    assert set(stored) == {site.url(a) for a in site.articles()}
    one = site.articles()[17]
    assert datetime.fromisoformat(stored[site.url(one)]["published"]) == one.published
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and " 0 new" in run.out, run
    assert len([p for p in site.requests if p.startswith("/wp-json/")]) == 1
    site.reset_log()
    site.publish("A Railway Opens Across the Pamirs", "rail news")
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "1 new" in run.out, run
    assert len([p for p in site.requests if p.startswith("/wp-json/")]) == 2


def test_a_wordpress_sources_search_key_is_the_apis_search_parameter(
    tmp_path, capsys, db_url, make_site, hook
):
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=wp_toml(site, extra='search = "uzbekistan"'),
        channels=hook,
    )
    assert run_worker(capsys, config, "once").code == 0
    assert any("search=uzbekistan" in p for p in site.requests)
    expected = {site.url(a) for a in site.articles(term="uzbekistan")}
    assert expected and set(articles(capsys, config)) == expected


def test_a_wordpress_sources_categories_and_tags_are_the_apis_parameters(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    from worker.site.api import category_id

    site = make_site(sample=True)
    rail = site.publish("A Railway Opens", "rail news", categories=("glaciology",))
    glaciology = category_id("glaciology")
    wanted = f"categories = [{glaciology}, 99999]"
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=wp_toml(site, extra=wanted), channels=hook
    )
    assert run_worker(capsys, config, "once").code == 0
    assert set(articles(capsys, config)) == {site.url(rail)}
    assert any(f"categories={glaciology}%2C99999&" in p for p in site.requests)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=wp_toml(site, "tagged", "tags = [7]"),
        channels=hook,
    )
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0  # the site's posts have no tags
    assert [p for p in site.requests if p.startswith("/wp-json/")] == [
        "/wp-json/wp/v2/posts?tags=7&orderby=date&order=desc&per_page=100&page=1"
    ]


@pytest.mark.parametrize("mode", ["404", "html"])
def test_a_rest_api_that_is_off_is_a_clear_error_naming_the_url(
    tmp_path, capsys, sqlite_url, make_site, hook, mode
):
    site = make_site(sample=True)
    site.rest_api = mode
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=wp_toml(site), channels=hook)
    run = run_worker(capsys, config, "once")
    assert run.code != 0
    text = run.out + run.err
    assert "no WordPress REST API here" in text
    assert f"{site.base_url}/wp-json/wp/v2/posts?" in text
    assert ("HTTP 404" if mode == "404" else "text/html") in text


def test_a_rest_page_missing_before_the_counters_last_page_fails_the_pass(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """Page 3 answers 400 (as rest_post_invalid_page_number) though page 1's counter says 3
    pages: a gap that fails the pass, not the end of the listing."""
    site = make_site(250, per_page=6)
    site.fail(400, paths="page=3")
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=wp_toml(site), channels=hook)
    run = run_worker(capsys, config, "once")
    assert run.code != 0
    assert "page 3 not found before the counter's last page (3, 250 listed)" in run.out + run.err


@pytest.mark.parametrize(
    ("counter", "asked", "stop"),
    [
        ("pages", ["1", "2", "3"], "last page (3 of 3)"),  # X-WP-TotalPages alone: no more
        ("none", ["1", "2", "3", "4"], "page 4 not found (past the end)"),  # its 400: the end
    ],
)
def test_a_rest_api_without_x_wp_total_is_read_to_its_last_page_by_the_other_signals(
    tmp_path, capsys, sqlite_url, make_site, hook, counter, asked, stop
):
    """250 posts behind a proxy that keeps only X-WP-TotalPages (the page counter), or strips
    both headers (then the API's 400 past the last page ends the walk): every post stored, the
    pass complete."""
    site = make_site(250, per_page=6)
    site.rest_counter = counter
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=wp_toml(site), channels=hook)
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and stop in run.out, run
    api = [p for p in site.requests if p.startswith("/wp-json/")]
    assert sorted(p.rsplit("page=", 1)[1] for p in api) == asked
    assert set(articles(capsys, config)) == {site.url(a) for a in site.articles()}


def test_the_local_rest_api_answers_400_past_the_last_page(make_site) -> None:
    import httpx

    site = make_site(sample=True)
    answer = httpx.get(f"{site.base_url}/wp-json/wp/v2/posts?per_page=100&page=2")
    assert answer.status_code == 400
    assert answer.json()["code"] == "rest_post_invalid_page_number"
    first = httpx.get(f"{site.base_url}/wp-json/wp/v2/posts?per_page=100&page=1")
    assert first.headers["X-WP-Total"] == "20" and first.headers["X-WP-TotalPages"] == "1"


def test_feed_and_wordpress_sources_refuse_listing_keys(tmp_path, capsys, sqlite_url, make_site):
    site = make_site(sample=True)
    bad = feed_toml(site) + 'page_url = "https://example.org/page/{page}/"\n'
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=bad, channels={})
    run = run_worker(capsys, config, "check")
    assert run.code != 0 and "page_url" in run.out + run.err
    bad = source_toml(site, extra='search = "x"')
    config = write_config(tmp_path / "w.toml", sqlite_url, sources=bad, channels={})
    run = run_worker(capsys, config, "check")
    assert run.code != 0 and "search" in run.out + run.err


# --- the parsers, on documents written as real sites write them --------------------------------

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><link href="https://ex.org/"/>
<entry><title type="html">Tashkent &amp;amp; Bishkek</title>
<link rel="alternate" href="https://ex.org/a/?utm_source=rss"/>
<published>2025-07-03T10:00:00+05:00</published><updated>2025-07-04T10:00:00Z</updated>
<summary>Short teaser</summary>
<content type="html">&lt;p&gt;First para.&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;&lt;p&gt;The railway [caption id="1"]pic[/caption] opens.&lt;/p&gt;</content>
</entry>
<entry><title>No link</title></entry>
</feed>"""

JSON_FEED = """{"version": "https://jsonfeed.org/version/1.1", "title": "t",
 "items": [{"id": "1", "url": "https://ex.org/b/", "title": "B &amp; C",
            "content_html": "<p>Body <b>text</b></p>", "summary": "S",
            "date_published": "2025-07-03T10:00:00Z"},
           {"id": "2", "title": "no url"}, "junk"]}"""


def test_an_atom_entry_gives_title_link_summary_text_body_and_date() -> None:
    from worker.parse.feeds import parse_feed

    page = parse_feed(ATOM, "https://ex.org/feed.atom")
    assert page.skipped == 1 and len(page.items) == 1
    item = page.items[0]
    assert item.url == "https://ex.org/a/"
    assert item.title == "Tashkent & Bishkek"
    assert item.summary == "Short teaser"
    assert item.body == "First para. The railway opens."
    assert item.published == datetime(2025, 7, 3, 5, 0, tzinfo=UTC)


def test_a_json_feed_is_read_too() -> None:
    from worker.parse.feeds import parse_feed

    page = parse_feed(JSON_FEED, "https://ex.org/feed.json")
    assert [(i.url, i.title, i.body) for i in page.items] == [
        ("https://ex.org/b/", "B & C", "Body text")
    ]
    assert page.skipped == 2


@pytest.mark.parametrize(
    "text", ["<html><body><p>Not a feed</p></body></html>", '{"items": []}', "{", "plain"]
)
def test_a_document_that_is_no_feed_is_a_parse_error(text: str) -> None:
    from worker.parse import ParseError
    from worker.parse.feeds import parse_feed

    with pytest.raises(ParseError):
        parse_feed(text, "https://ex.org/feed/")


def test_a_rest_api_post_is_read_with_date_gmt_as_utc_and_rendered_html_as_text() -> None:
    import json

    from worker.parse.feeds import parse_wordpress

    post = {
        "link": "https://ex.org/post/",
        "date": "2025-07-03T15:00:00",
        "date_gmt": "2025-07-03T10:00:00",
        "title": {"rendered": "Astana&#8217;s &#8220;Plan&#8221;"},
        "excerpt": {"rendered": "<p>Teaser [&hellip;]</p>\n"},
        "content": {"rendered": '<p>One [gallery ids="1,2"]</p>\n<p>Two &amp; three</p>\n'},
    }
    headers = {"x-wp-total": "250", "x-wp-totalpages": "3"}
    page = parse_wordpress(json.dumps([post]), "https://ex.org/wp-json/", headers, number=2)
    item = page.items[0]
    assert item.title == "Astana\u2019s \u201cPlan\u201d"
    assert item.summary == "Teaser [\u2026]"
    assert item.body == "One Two & three"
    assert item.published == datetime(2025, 7, 3, 10, 0, tzinfo=UTC)
    assert page.results is not None
    assert (page.results.first, page.results.last, page.results.total) == (101, 200, 250)


def test_a_rest_api_answer_that_is_no_list_of_posts_is_a_parse_error() -> None:
    from worker.parse import ParseError
    from worker.parse.feeds import parse_wordpress

    with pytest.raises(ParseError, match="rest_forbidden"):
        parse_wordpress('{"code": "rest_forbidden"}', "https://ex.org/wp-json/", {}, number=1)


async def test_the_fetcher_takes_a_feed_only_when_asked_for_one(make_site) -> None:
    from worker.config import HttpConfig
    from worker.fetch import FEED_TYPES, Fetcher, FetchError

    site = make_site(sample=True)
    async with Fetcher(HttpConfig(min_delay=0, retries=0)) as fetcher:
        with pytest.raises(FetchError, match="not HTML"):
            await fetcher.get_html(site.feed_url)
        page = await fetcher.get_html(site.feed_url, types=FEED_TYPES)
        assert page.text.startswith("<?xml") and "content:encoded" in page.text
        assert page.headers["content-type"].startswith("application/rss+xml")
        with pytest.raises(FetchError, match="not a feed"):
            await fetcher.get_html(site.search_url, types=FEED_TYPES)


def test_the_shipped_configs_commented_rest_api_source_is_valid_once_enabled(tmp_path) -> None:
    from pathlib import Path

    from worker.config import parse_config

    text = (Path(__file__).parents[1] / "config" / "worker.toml").read_text("utf-8")
    lines = text.splitlines()
    start = lines.index("# [[sources]]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    enabled = text.replace("\n".join(lines[start : start + len(block)]), "\n".join(block))
    config = parse_config(enabled, tmp_path / "w.toml")
    api = config.source("timesca-api")
    assert api.type == "wordpress" and api.search == "kyrgyzstan"
    assert config.source("timesca-feed").type == "feed"


# --- one article whichever source, its body stored and matched (#14.4, #14.7) ------------------

GLACIER = '[[watchlists]]\nname = "ice"\nkeywords = ["glacier*"]\nchannels = ["one", "two"]\n'
BODY = (
    "Officials met in Bishkek on Tuesday.\n\n"
    "The talks covered trade, transit and the border.\n\n"
    "In the fourth paragraph: the Abramov glacier has lost a third of its mass since 1990."
)


def three_sources(site: NewsSite, listing_extra: str = "") -> str:
    return source_toml(site, "listing", page_url=True, extra=listing_extra) + (
        "\n" + feed_toml(site) + "\n" + wp_toml(site)
    )


def test_a_keyword_only_in_the_body_is_alerted_once_per_channel_whichever_sources_find_it(
    tmp_path, capsys, db_url, make_site, webhook_server
):
    """A listing, the feed and the REST API of one site all list the new article: it is stored
    once, with its body; the keyword found only in the fourth paragraph alerts once on each of
    the two channels; the next pass alerts nothing more."""
    site = make_site(sample=True)
    channels = {"one": webhook_server.url("/one"), "two": webhook_server.url("/two")}
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=three_sources(site),
        channels=channels,
        watchlists=GLACIER,
    )
    assert run_worker(capsys, config, "once").code == 0  # the silent baselines
    article = site.publish("Kyrgyz and Kazakh Officials Meet in Bishkek", "Talks.", body=BODY)
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    stored = articles(capsys, config)
    assert len(stored) == 21
    got = stored[site.url(article)]
    assert got["watchlists"] == ["ice"] and "Abramov glacier" in got["body"]
    assert webhook_server.wait_for(2)
    assert run_worker(capsys, config, "once").code == 0
    import time

    time.sleep(0.3)
    assert sorted(webhook_server.received_paths) == ["/one", "/two"]
    assert all(b["title"] == f"[ice] {article.title}" for b in webhook_server.received)
    sources = run_worker(capsys, config, "articles", "--json", "--source", "feed").json()
    assert site.url(article) in {a["url"] for a in sources}


def test_a_date_and_a_body_missing_from_the_listing_are_kept_from_the_feed(
    tmp_path, capsys, db_url, make_site, hook
):
    """The listing (read without dates) stores the article first; the feed's pass then gives it
    its date and its body; the listing's next pass takes neither away."""
    site = make_site(sample=True)
    undated = SELECT.replace('published = { css = "time.entry-date", attr = "datetime" }\n', "")
    listing = source_toml(site, "listing", select=undated)
    config = write_config(tmp_path / "w.toml", db_url, sources=listing, channels=hook)
    assert run_worker(capsys, config, "once").code == 0
    article = site.publish("Dushanbe Opens a Glacier Museum", "A museum.", body=BODY)
    assert run_worker(capsys, config, "once").code == 0
    before = articles(capsys, config)[site.url(article)]
    assert before["published"] is None and before["body"] is None
    config = write_config(
        tmp_path / "w.toml", db_url, sources=listing + "\n" + feed_toml(site), channels=hook
    )
    assert run_worker(capsys, config, "once").code == 0
    after = articles(capsys, config)[site.url(article)]
    assert datetime.fromisoformat(after["published"]) == article.published
    assert after["body"] == BODY.replace("\n\n", " ")
    assert after["source"] == "listing"  # the first source that listed it
    site.publish("Another Story", "x")
    assert run_worker(capsys, config, "once").code == 0
    assert articles(capsys, config)[site.url(article)]["body"] == after["body"]


def test_an_articles_body_is_capped_at_100000_characters() -> None:
    from worker.parse.feeds import MAX_BODY, html_text

    text = html_text("<p>" + "word " * 60_000 + "</p>", MAX_BODY)
    assert MAX_BODY == 100_000 and len(text) == MAX_BODY and text.endswith("…")


# --- reposts (#14.5) ------------------------------------------------------------------------------


def test_a_story_republished_under_a_new_slug_is_one_article_alerted_once(
    tmp_path, capsys, db_url, make_site, webhook_server
):
    """The same story again under an edited slug (and filed in another category): the listing
    and the feed both list both URLs; the later URL is kept as an alias of the article, no second
    article is stored and no second alert goes out."""
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        db_url,
        sources=source_toml(site, "listing", page_url=True) + "\n" + feed_toml(site),
        channels={"hook": webhook_server.url("/hook")},
    )
    assert run_worker(capsys, config, "once").code == 0
    title = "Kazakhstan Opens a New Railway Line to China"
    summary = "The line runs from Dostyk to the border and doubles the freight capacity."
    first = site.publish(title, summary)
    assert run_worker(capsys, config, "once").code == 0
    assert webhook_server.wait_for(1)
    again = site.publish(
        title, summary, slug="kazakhstan-railway-line-china-updated", categories=("opinion", "news")
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "0 alert(s) queued" in run.out, run
    stored = articles(capsys, config)
    assert site.url(first) in stored and site.url(again) not in stored
    assert len(stored) == 21
    assert run_worker(capsys, config, "once").code == 0
    import time

    time.sleep(0.3)
    assert [b["title"] for b in webhook_server.received] == [f"[rail] {title}"]


def test_two_different_stories_with_short_equal_titles_are_two_articles(
    tmp_path, capsys, sqlite_url, make_site, hook
):
    """ "Photo of the day" twice, without summaries: too little text to say it is one story."""
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml", sqlite_url, sources=source_toml(site, page_url=True), channels=hook
    )
    assert run_worker(capsys, config, "once").code == 0
    a = site.publish("Photo of the day")
    b = site.publish("Photo of the day")
    assert run_worker(capsys, config, "once").code == 0
    stored = articles(capsys, config)
    assert site.url(a) in stored and site.url(b) in stored


def test_a_fingerprint_is_the_site_and_the_normalised_story() -> None:
    from worker.models import Item
    from worker.store.pages import fingerprint

    text = "Kazakhstan Opens a New Railway Line — the line runs from Dostyk to the border"
    one = Item(
        url="https://www.ex.org/a/", title="Kazakhstan Opens a New Railway Line", summary=text
    )
    two = Item(url="https://ex.org/b/", title="KAZAKHSTAN opens a new railway line!", summary=text)
    other_site = Item(url="https://other.org/a/", title=one.title, summary=text)
    assert fingerprint(one) == fingerprint(two) != fingerprint(other_site)
    assert fingerprint(Item(url="https://ex.org/c/", title="Photo of the day")) is None


@pytest.mark.parametrize(("days", "repost"), [(6, True), (8, False)])
def test_the_same_story_under_a_new_url_is_a_repost_within_7_days_only(sqlite_url, days, repost):
    """Seen again on the same site 6 days later: an alias, no alert; 8 days later (the 7-day
    window past): an article of its own, alerted."""
    from datetime import timedelta

    from worker.models import AlertPlan, Item
    from worker.store import Store

    story = {
        "title": "Kazakhstan Opens a New Railway Line to China",
        "summary": "The line runs from Dostyk to the border and doubles the freight capacity.",
    }

    def plan(item: Item) -> list[AlertPlan]:
        return [AlertPlan("rail", ("railway",), ("hook",))]

    t0 = datetime(2025, 7, 1, 12, tzinfo=UTC)
    store = Store(sqlite_url)
    store.migrate()
    try:
        first = store.store_page(
            "s", [Item(url="https://ex.org/a/", **story)], plan, silent=False, now=t0
        )
        later = t0 + timedelta(days=days)
        again = [Item(url="https://ex.org/a-updated/", **story)]
        second = store.store_page("s", again, plan, silent=False, now=later)
        assert first.alerts_queued == 1
        assert second.alerts_queued == (0 if repost else 1)
        urls = {a.url for a in store.list_articles(limit=None)}
        assert ("https://ex.org/a-updated/" in urls) is not repost
    finally:
        store.close()
