"""Article pages (`[sources.article]`, #14.1) end to end against the local site: text and date
from each new article's own page, matched once, politely and only from the listing's origin."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

import pytest

from tests.e2e import SELECT, run_worker, source_toml, write_config
from worker.article_pages import HostRules
from worker.config import ArticleConfig
from worker.site import NewsSite

UNDATED = SELECT.replace('published = { css = "time.entry-date", attr = "datetime" }\n', "")
GLACIER = '[[watchlists]]\nname = "ice"\nkeywords = ["glacier*"]\nchannels = ["one", "two"]\n'
BODY = (
    "Officials met in Bishkek on Tuesday.\n\n"
    "The talks covered trade, transit and the border.\n\n"
    "In the fourth paragraph: the Abramov glacier has lost a third of its mass since 1990."
)


def listing(site: NewsSite, article: str = "") -> str:
    return source_toml(site, "listing", page_url=True, select=UNDATED) + (
        f"\n[sources.article]\n{article}\n"
    )


def stored(capsys, config) -> dict[str, dict]:
    run = run_worker(capsys, config, "articles", "--json", "--limit", "100000")
    assert run.code == 0, run
    return {a["url"]: a for a in run.json()}


def article_requests(site: NewsSite) -> list[str]:
    return [
        p
        for p in site.requests
        if not p.startswith("/?") and not p.startswith("/page/") and p != "/robots.txt"
    ]


@pytest.fixture
def channels(webhook_server) -> dict[str, str]:
    return {"one": webhook_server.url("/one"), "two": webhook_server.url("/two")}


def test_article_pages_give_dates_the_listing_lacks_and_a_body_only_keyword_alerts_once(
    tmp_path, capsys, db_url, make_site, channels, webhook_server
):
    """The listing is read without dates: the first pass (a silent baseline) reads every
    article's page, takes its date (meta, JSON-LD or <time>) and its text; a new article whose
    keyword is only in its fourth paragraph alerts once per channel, and once only."""
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml", db_url, sources=listing(site), channels=channels, watchlists=GLACIER
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "article pages: 20 read, 20 dated from their page" in run.out, run
    for article in site.articles():
        got = stored(capsys, config)[site.url(article)]
        assert datetime.fromisoformat(got["published"]) == article.published
        assert got["body"].startswith(article.expected_summary[:30])
    news = site.publish("Kyrgyz and Kazakh Officials Meet in Bishkek", "Talks.", body=BODY)
    site.reset_log()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "2 alert(s) queued" in run.out, run
    assert article_requests(site) == [f"/{news.slug}/"]  # only the new article's page
    got = stored(capsys, config)[site.url(news)]
    assert "Abramov glacier" in got["body"] and got["watchlists"] == ["ice"]
    assert webhook_server.wait_for(2)
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0
    assert article_requests(site) == []  # never a page read before
    time.sleep(0.3)
    assert sorted(webhook_server.received_paths) == ["/one", "/two"]


def test_text_around_the_article_is_not_its_body(tmp_path, capsys, sqlite_url, make_site):
    """Related posts, comments, navigation and footer hold watchlist words; main-text
    extraction leaves them out, so they alert nothing."""
    site = make_site(sample=True)
    watch = (
        '[[watchlists]]\nname = "around"\nkeywords = ["Kambarata", "Trans-Afghan", "strike"]\n'
        'channels = ["one"]\n'
    )
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=listing(site),
        channels={"one": "json://127.0.0.1:9/x"},
        watchlists=watch,
    )
    assert run_worker(capsys, config, "once").code == 0
    news = site.publish("Quiet Day in Astana", "Nothing.", body="A calm day.\n\nNo news.")
    assert run_worker(capsys, config, "once").code == 0
    got = stored(capsys, config)[site.url(news)]
    assert got["body"] == "A calm day. No news." and got["watchlists"] == []


def test_an_article_page_that_fails_is_tried_on_the_next_pass_and_alerts_then(
    tmp_path, capsys, db_url, make_site, channels, webhook_server
):
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml", db_url, sources=listing(site), channels=channels, watchlists=GLACIER
    )
    assert run_worker(capsys, config, "once").code == 0
    news = site.publish("Kyrgyz and Kazakh Officials Meet in Bishkek", "Talks.", body=BODY)
    site.fail(500, paths=f"/{news.slug}/")
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "1 failed (tried again next pass)" in run.out, run
    got = stored(capsys, config)[site.url(news)]
    assert got["body"] is None and got["watchlists"] == []  # stored, matched on its teaser
    site.heal()
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "article pages: 1 read" in run.out and "2 alert(s)" in run.out, run
    assert webhook_server.wait_for(2)


def test_an_article_page_is_tried_three_times_at_most(tmp_path, capsys, sqlite_url, make_site):
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=listing(site),
        channels={"one": "json://x/y"},
        watchlists=GLACIER.replace('"one", "two"', '"one"'),
    )
    assert run_worker(capsys, config, "once").code == 0
    news = site.publish("A Page That Never Loads", "x")
    site.fail(404, paths=f"/{news.slug}/")
    for _ in range(5):
        assert run_worker(capsys, config, "once").code == 0
    assert article_requests(site).count(f"/{news.slug}/") == 3


def test_max_per_pass_leaves_the_rest_for_later_passes(tmp_path, capsys, sqlite_url, make_site):
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=listing(site, "max_per_pass = 8"),
        channels={"one": "json://x/y"},
        watchlists=GLACIER.replace('"one", "two"', '"one"'),
    )
    lines = [run_worker(capsys, config, "once").out for _ in range(3)]
    assert "article pages: 8 read" in lines[0] and "more left" in lines[0]
    assert "article pages: 8 read" in lines[1] and "article pages: 4 read" in lines[2]
    assert len(article_requests(site)) == 20
    assert all(a["body"] for a in stored(capsys, config).values())


@pytest.mark.parametrize(("hosts", "read"), [("", False), ('hosts = ["localhost"]', True)])
def test_an_article_on_another_host_is_matched_on_its_listing_text_unless_the_host_is_named(
    tmp_path, capsys, sqlite_url, make_site, webhook_server, hosts, read
):
    """The listing is asked at 127.0.0.1 and links to localhost, another origin: without
    `hosts` no article page is requested and each article is stored and matched on its listing
    text; `hosts = ["localhost"]` (a loopback host, allowed as the listing is on one) reads them."""
    site = make_site(sample=True, host="localhost")
    sources = listing(site, hosts).replace("http://localhost:", "http://127.0.0.1:")
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=sources,
        channels={"one": webhook_server.url("/one")},
        watchlists=GLACIER.replace('"one", "two"', '"one"'),
    )
    assert run_worker(capsys, config, "once").code == 0
    for n in range(4):  # links of either form (the site writes some relative)
        site.publish(f"Glacier Melt Speeds Up, Part {n + 1}", "Glaciers shrink.", body=BODY)
    assert run_worker(capsys, config, "once").code == 0
    got = stored(capsys, config)
    elsewhere = [url for url in got if url.startswith("http://localhost:")]
    assert elsewhere and len(elsewhere) < len(got) == 24
    assert all((got[url]["body"] is not None) is read for url in elsewhere)
    assert all(got[url]["body"] is not None for url in got if url not in elsewhere)
    assert len(article_requests(site)) == (24 if read else 24 - len(elsewhere))
    news = [url for url in elsewhere if "glacier-melt" in url]
    assert news and all(got[url]["watchlists"] == ["ice"] for url in news)  # the listing text


@pytest.mark.parametrize(
    ("listing_url", "hosts", "url", "allowed"),
    [
        ("https://news.example.org/?s=x", [], "https://news.example.org/a/", True),
        ("https://news.example.org/?s=x", [], "https://news.example.org:443/a/", True),
        ("https://news.example.org/?s=x", [], "http://news.example.org/a/", False),
        ("https://news.example.org/?s=x", [], "https://news.example.org:8443/a/", False),
        ("https://news.example.org/?s=x", [], "https://cdn.example.org/a/", False),
        ("https://news.example.org/?s=x", ["*"], "http://127.0.0.1/a/", False),
        ("https://news.example.org/?s=x", ["*"], "http://10.1.2.3/a/", False),
        ("https://news.example.org/?s=x", ["*"], "http://169.254.169.254/latest/", False),
        ("https://news.example.org/?s=x", ["*"], "http://[::1]/a/", False),
        ("https://news.example.org/?s=x", ["*"], "http://localhost/a/", False),
        ("https://news.example.org/?s=x", ["*"], "https://93.184.216.34/a/", True),
        ("https://news.example.org/?s=x", ["93.184.216.34"], "https://93.184.216.34/a/", True),
        ("https://news.example.org/?s=x", ["10.1.2.3"], "http://10.1.2.3/a/", False),
        ("http://127.0.0.1:8080/?s=x", ["*"], "http://10.1.2.3/a/", True),  # a local listing
        ("http://127.0.0.1:8080/?s=x", [], "http://127.0.0.1:8081/a/", False),
        ("https://news.example.org/?s=x", ["*"], "ftp://93.184.216.34/a", False),
    ],
)
async def test_article_pages_are_read_only_from_the_listings_origin_or_named_public_hosts(
    listing_url: str, hosts: list[str], url: str, allowed: bool
) -> None:
    rules = HostRules(listing_url, ArticleConfig(hosts=hosts))
    assert await rules.allows(url) is allowed


@pytest.mark.parametrize(
    ("body", "keywords", "summary", "quoted"),
    [
        ("One. Two. The Abramov glacier shrinks. Three.", ("glacier*",), "Summary", True),
        ("x " * 300 + "the Belt-and-Road plan" + " y" * 300, ('"Belt and Road"',), "S", True),
        ("The glacier shrinks.", ("glacier*",), "A glacier story", False),  # in the listing
        ("Nothing here.", ("glacier*",), "S", False),
        ("", ("glacier*",), "S", False),
    ],
)
def test_a_body_match_gets_a_snippet_around_it(body, keywords, summary, quoted) -> None:
    from worker.match.snippet import SNIPPET_WIDTH
    from worker.models import Delivery
    from worker.notify.render import body_quote

    delivery = Delivery(1, "w", "c", 0, "https://x.org/a", "Title", summary, None, "s", keywords)
    found = body_quote(replace(delivery, body=body))
    if not quoted:
        assert found is None
    elif "Belt" in body:
        assert found is not None and "Belt-and-Road plan" in found
        assert found.startswith("…") and found.endswith("…") and len(found) <= SNIPPET_WIDTH + 2
    else:
        assert found == body


def test_an_alert_for_a_body_only_match_carries_the_snippet_as_the_format_wants_it(
    tmp_path, capsys, sqlite_url, make_site, webhook_server
):
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=listing(site),
        channels={"one": webhook_server.url("/one")},
        watchlists=GLACIER.replace('"one", "two"', '"one"'),
    )
    assert run_worker(capsys, config, "once").code == 0
    body = BODY.replace("Abramov glacier", "Abramov glacier <b>*melting*</b>")
    site.publish("Officials Meet in Bishkek", "Talks.", body=body)
    assert run_worker(capsys, config, "once").code == 0
    assert webhook_server.wait_for(1)
    message = webhook_server.received[0]["message"]
    # json:// takes plain text: the scraped text as it is, no markup made of it, no backslashes
    # (Markdown and HTML channels escape the snippet like the summary: tests/test_notify.py)
    assert "the Abramov glacier <b>*melting*</b> has lost" in message and "\\*" not in message


def test_a_syndicated_copy_whose_page_names_the_original_as_canonical_is_not_alerted_again(
    tmp_path, capsys, sqlite_url, make_site, webhook_server
):
    """A copy under another title and slug whose page says rel=canonical -> the original, its
    listing text matching the watchlist too: its URL becomes an alias of the original, the copy
    is no article of its own, and neither its teaser nor its body alerts again."""
    site = make_site(sample=True)
    config = write_config(
        tmp_path / "w.toml",
        sqlite_url,
        sources=listing(site),
        channels={"one": webhook_server.url("/one")},
        watchlists=GLACIER.replace('"one", "two"', '"one"'),
    )
    assert run_worker(capsys, config, "once").code == 0
    original = site.publish("Officials Meet in Bishkek", "Talks.", body=BODY)
    assert run_worker(capsys, config, "once").code == 0
    assert webhook_server.wait_for(1)
    copy = site.publish(
        "Partner Wire: Glacier Talks in Bishkek", "Syndicated.", body=BODY, canonical_of=original
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0 and "1 repost(s) of a stored article" in run.out, run
    assert "0 alert(s) queued" in run.out  # the one its teaser queued went with it
    got = stored(capsys, config)
    assert site.url(copy) not in got and len(got) == 21
    assert got[site.url(original)]["watchlists"] == ["ice"]
    site.reset_log()
    assert run_worker(capsys, config, "once").code == 0  # the copy listed again: its alias
    assert article_requests(site) == []
    time.sleep(0.3)
    assert [b["title"] for b in webhook_server.received] == [f"[ice] {original.title}"]


async def test_a_redirect_that_leaves_the_listings_origin_is_never_followed(make_site) -> None:
    """An article URL on the listing's origin that redirects to another origin: the redirect is
    refused before the other host is asked (every hop is checked, not only the last)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from worker.config import HttpConfig
    from worker.fetch import Fetcher, RedirectRefused

    elsewhere = make_site(sample=True)

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"{elsewhere.base_url}/some-story/")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        rules = HostRules(f"{origin}/?s=x", ArticleConfig())
        async with Fetcher(HttpConfig(min_delay=0, retries=0)) as fetcher:
            with pytest.raises(RedirectRefused, match="refused"):
                await fetcher.get_html(f"{origin}/story/", follow=rules.allows)
        assert elsewhere.requests == []
    finally:
        server.shutdown()
        server.server_close()


META = '<meta property="article:published_time" content="2025-07-01T10:00:00+00:00">'
LD = '<script type="application/ld+json">{"@graph": [{"@type": "NewsArticle", "datePublished": "2025-07-02T10:00:00Z"}]}</script>'
TIME = '<time datetime="2025-07-03T10:00:00Z">3 July</time>'
SPAN = '<span class="posted">04.07.2025</span>'


@pytest.mark.parametrize(
    ("head", "body", "published", "expected"),
    [
        (META + LD, TIME, None, "2025-07-01T10:00:00+00:00"),  # meta first
        (LD, TIME, None, "2025-07-02T10:00:00+00:00"),  # then JSON-LD
        ("", TIME, None, "2025-07-03T10:00:00+00:00"),  # then <time datetime>
        (
            '<script type="application/ld+json">{broken</script>',
            TIME,
            None,
            "2025-07-03T10:00:00+00:00",
        ),
        (META, SPAN, "span.posted", "2025-07-04T00:00:00+00:00"),  # the selector, day-first
        (META, TIME, {"css": "time", "attr": "datetime"}, "2025-07-03T10:00:00+00:00"),
        ("", "<p>no date</p>", None, None),
    ],
)
def test_an_article_pages_date_comes_from_the_selector_or_meta_json_ld_and_time_in_order(
    head, body, published, expected
) -> None:
    from worker.parse.article import parse_article

    html = f"<html><head>{head}</head><body><article>{body}<p>Text.</p></article></body></html>"
    config = ArticleConfig.model_validate({"published": published, "body": "article"})
    page = parse_article(html, "https://ex.org/a/", config)
    assert page.published == (datetime.fromisoformat(expected) if expected else None)


def test_an_article_pages_text_is_capped_at_100000_characters() -> None:
    from worker.parse.article import parse_article
    from worker.parse.feeds import MAX_BODY

    html = "<html><body><article>" + "<p>word word word</p>" * 10_000 + "</article></body></html>"
    page = parse_article(html, "https://ex.org/a/", ArticleConfig(body="article"))
    assert MAX_BODY == 100_000 and len(page.body) == MAX_BODY and page.body.endswith("…")


def test_a_new_articles_alerts_wait_for_its_page_and_a_reposts_are_dropped(sqlite_url) -> None:
    """Alerts queued by the listing text of an article whose page is still to be read wait
    (up to `hold_until`), so that a delivery round between the listing and the page cannot send
    them: a page read or failed makes them due at once; a page naming another stored article
    as canonical drops them with the copy."""
    from datetime import UTC, timedelta

    import sqlalchemy as sa

    from worker.models import AlertPlan, Item
    from worker.store import Store

    def plan(item: Item) -> list[AlertPlan]:
        return [AlertPlan("rail", ("railway",), ("hook",))]

    t0 = datetime(2025, 7, 1, 12, tzinfo=UTC)
    hold = t0 + timedelta(minutes=10)
    store = Store(sqlite_url)
    store.migrate()
    try:
        page = [
            Item(url=f"https://ex.org/{n}/", title=f"Railway story {n}", summary=f"Text {n}.")
            for n in ("read", "fails", "copy")
        ]
        store.store_page("s", page, plan, silent=False, now=t0, hold_until=hold)
        assert store.next_due_at() == hold  # none due before its page is settled
        pending = {p.url.split("/")[3]: p for p in store.pending_article_pages("s", 10)}
        store.record_article_page(
            pending["read"], body="The railway.", published=None, plan=plan, silent=False, now=t0
        )
        store.article_page_failed(pending["fails"].id)
        result = store.record_article_page(
            pending["copy"],
            body="The railway.",
            published=None,
            plan=plan,
            silent=False,
            now=t0,
            canonical="https://ex.org/read/",
        )
        assert result.repost_of == "https://ex.org/read/" and result.alerts_dropped == 1
        engine = sa.create_engine(sqlite_url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT a.url, d.next_attempt_at FROM deliveries d "
                    "JOIN articles a ON a.id = d.article_id ORDER BY a.url"
                )
            ).all()
        engine.dispose()
        assert rows == [("https://ex.org/fails/", None), ("https://ex.org/read/", None)]
        assert store.next_due_at() == t0
    finally:
        store.close()
