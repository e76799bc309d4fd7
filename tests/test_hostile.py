"""Hostile inputs met at run time (issue #9): URLs with IDNA-invalid hosts in redirects and next
links, scraped text built to ping a whole chat or to pass a link off, and a listing that
pre-registers another site's article with its own text. Against local servers: a static listing
server (this file) and the alert receivers of tests/fixtures/servers.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e import run_worker
from worker.config import HttpConfig
from worker.fetch import Fetcher, FetchError

SELECT = '[sources.select]\nitem = "article"\ntitle = "h2 a"\nlink = "h2 a"\nsummary = "p"\n'
BAD_HOSTS = [
    "http://xn--zz.example/",  # not a valid A-label (punycode)
    "http://xn--ls8h.la/",  # decodes to an emoji, which IDNA 2008 refuses
    "http://ex\u200dample.org/",  # a joiner where IDNA forbids it
]


class StaticServer:
    """Serves `pages[path] = (status, {header: value}, body)` on 127.0.0.1 (threads)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, tuple[int, dict[str, str], str]] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = pages.get(self.path, (404, {}, "not found"))
                data = body.encode("utf-8")
                self.send_response(status)
                for name, value in headers.items():
                    # a Location with raw non-ASCII, as a hostile server sends it
                    self.send_header(name, value.encode("utf-8").decode("latin-1"))
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://{host}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def listing(self, path: str, items: list[tuple[str, str, str]], next_url: str = "") -> str:
        """Serve a listing of (url, title, summary) at `path`; returns its URL."""
        body = "".join(
            f'<article><h2><a href="{url}">{title}</a></h2><p>{summary}</p></article>'
            for url, title, summary in items
        )
        nav = f'<a class="next" href="{next_url}">Next</a>' if next_url else ""
        self.pages[path] = (200, {}, f"<html><body>{body}{nav}</body></html>")
        return self.base + path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def static() -> Iterator[StaticServer]:
    server = StaticServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def other_host() -> Iterator[StaticServer]:
    """A second listing server on another host (127.0.0.2: the loopback answers all of 127/8)."""
    server = StaticServer("127.0.0.2")
    try:
        yield server
    finally:
        server.close()


def source(name: str, url: str, *, extra: str = "") -> str:
    return (
        f'[[sources]]\nname = "{name}"\nurl = "{url}"\nalert_backfill = true\n{extra}\n{SELECT}\n'
    )


def config_file(
    tmp_path: Path, db_url: str, sources: str, watchlists: str, channels: dict[str, str]
) -> Path:
    chans = "\n".join(f'{name} = "{url}"' for name, url in channels.items())
    path = tmp_path / "w.toml"
    path.write_text(
        f'database = "{db_url}"\n\n[http]\nmin_delay = 0\ntimeout = 10\nretries = 0\n\n'
        f'[alerts]\nretry_base = "1s"\n\n[channels]\n{chans}\n\n{sources}\n{watchlists}',
        encoding="utf-8",
    )
    return path


# --- IDNA-invalid hosts met at run time -----------------------------------------------------------


@pytest.mark.parametrize("target", BAD_HOSTS)
async def test_a_redirect_to_an_idna_invalid_host_is_a_fetch_error(
    static: StaticServer, target: str
) -> None:
    static.pages["/moved"] = (302, {"Location": target}, "")
    async with Fetcher(HttpConfig(min_delay=0, retries=0, timeout=5)) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.get_html(static.base + "/moved")
    assert info.value.reason.startswith(("redirect to an invalid URL", "RemoteProtocolError"))


@pytest.mark.parametrize("target", BAD_HOSTS)
async def test_fetching_an_idna_invalid_host_is_a_fetch_error(target: str) -> None:
    async with Fetcher(HttpConfig(min_delay=0, retries=0, timeout=5)) as fetcher:
        with pytest.raises(FetchError) as info:
            await fetcher.get_html(target + "page/2/")
    assert info.value.reason.startswith("invalid URL")


def test_a_next_link_to_an_idna_invalid_host_fails_the_source_with_a_message(
    tmp_path, capsys, static: StaticServer
) -> None:
    url = static.listing(
        "/list", [(static.base + "/a/1", "One", "x")], next_url="http://xn--zz.example/page/2/"
    )
    config = config_file(
        tmp_path,
        f"sqlite:///{tmp_path / 'w.db'}",
        source("s", url) + 'next = "a.next"\n',
        "",
        {},
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 1, run
    assert "s: FAILED after 1 page(s), 1 new stored" in run.out
    assert "xn--zz.example/page/2/: invalid URL" in run.out
    assert "Traceback" not in run.err


# --- scraped text in chat ---------------------------------------------------------------------

MENTIONS = "Railway @everyone @here <!channel> <@U123> [click](https://evil.example/x)"


def test_mentions_and_masked_links_in_a_title_reach_every_chat_format_inert(
    tmp_path, capsys, db_url, static: StaticServer, webhook_server
) -> None:
    """A listed title built to ping a whole channel and pass off a link: the JSON webhook (plain
    text) and Mattermost (text, title in the body) receive it with a zero-width space after each
    `@`/`<` that would act and between `]` and `(`; nothing pings, nothing links to evil."""
    url = static.listing(
        "/list", [(static.base + "/a/1", MENTIONS, "See <https://evil.example|here>")]
    )
    mattermost = f"mmost://127.0.0.1:{webhook_server.port}/tok3nabcdefgh"
    config = config_file(
        tmp_path,
        db_url,
        source("s", url),
        '[[watchlists]]\nname = "rail"\nkeywords = ["railway"]\nchannels = ["hook", "mm"]\n',
        {"hook": webhook_server.url("/hook"), "mm": mattermost},
    )
    run = run_worker(capsys, config, "once")
    assert run.code == 0, run
    assert "alerts: 2 sent" in run.out
    assert webhook_server.wait_for(2)
    texts = [" ".join(str(v) for v in body.values()) for body in webhook_server.received]
    for text in texts:
        for live in ("@everyone", "@here", "<!channel>", "<@U123>", "](", "<https://evil"):
            assert live not in text, (live, text)
        assert "@\u200beveryone" in text and "[click]\u200b(https://evil.example/x)" in text
        assert "\\" not in text  # plain text: no backslash escapes


def test_discord_posts_allow_no_mentions(monkeypatch) -> None:
    """Discord parses @everyone, @here, users and roles unless told not to: every post says
    `allowed_mentions: {"parse": []}` (checked at the last step before the network: requests)."""
    import asyncio
    import json

    import requests

    from worker.models import Delivery
    from worker.notify import Notifier, render

    posted: list[dict[str, object]] = []

    def post(url: str, data: str | bytes | None = None, **kwargs: object) -> requests.Response:
        posted.append(json.loads(data or "{}"))
        response = requests.Response()
        response.status_code = 204
        return response

    monkeypatch.setattr(requests, "post", post)
    notifier = Notifier({"d": ["discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js"]}, timeout=5)
    delivery = Delivery(
        id=1,
        watchlist="rail",
        channel="d",
        attempts=0,
        article_url="https://x.org/a",
        title=MENTIONS,
        summary="",
        published=None,
        source="s",
        keywords=("railway",),
    )
    try:
        result = asyncio.run(notifier.send("d", render(delivery)))
    finally:
        notifier.close()
    assert result.ok, result
    assert posted and all(p.get("allowed_mentions") == {"parse": []} for p in posted)
    assert "allow_mentions" not in posted[0]
    assert "@everyone" not in json.dumps(posted[0], ensure_ascii=False)


@pytest.mark.parametrize(
    "url",
    [
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#news",
    ],
    ids=["discord", "slack"],
)
def test_mentions_and_masked_links_in_a_title_reach_discord_and_slack_inert(
    monkeypatch, url: str
) -> None:
    """The services no local server stands in for, checked at the last step before the network
    (requests.post, requests.request for Slack): no mention, no Slack link, no Markdown link is
    left live in what is posted,
    after apprise's own conversions (its Slack plugin turns `[text](url)` into `<url|text>`)."""
    import asyncio
    import json

    import requests

    from worker.models import Delivery
    from worker.notify import Notifier, render

    posted: list[str] = []

    def post(url: str, data: str | bytes | None = None, **kwargs: object) -> requests.Response:
        posted.append(json.dumps(json.loads(data or "{}"), ensure_ascii=False))
        response = requests.Response()
        response.status_code = 200 if "slack" in url else 204
        response._content = b"ok"
        return response

    monkeypatch.setattr(requests, "post", post)
    monkeypatch.setattr(requests, "request", lambda _method, url, **kw: post(url, **kw))
    notifier = Notifier({"c": [url]}, timeout=5)
    delivery = Delivery(
        id=1,
        watchlist="rail",
        channel="c",
        attempts=0,
        article_url="https://x.org/a",
        title=MENTIONS,
        summary="See <https://evil.example|here> and [more](https://evil.example/y) @channel",
        published=None,
        source="s",
        keywords=("railway",),
    )
    try:
        result = asyncio.run(notifier.send("c", render(delivery)))
    finally:
        notifier.close()
    assert result.ok, result
    assert posted
    for body in posted:
        for live in ("@everyone", "@here", "@channel", "<!channel>", "<@U123>", "]("):
            assert live not in body, (live, body)
        assert "<https://evil" not in body and "|click" not in body, body


# --- an article's text belongs to the source that listed it -------------------------------------


def _alerts(capsys, config: Path) -> list[dict[str, object]]:
    return run_worker(capsys, config, "alerts", "--json").json()


def test_a_hostile_listing_that_pre_registers_a_sites_article_cannot_put_its_text_in_the_alert(
    tmp_path, capsys, db_url, static: StaticServer, other_host: StaticServer, webhook_server
) -> None:
    """evil (another host) lists the trusted site's article first with its own title; the
    watchlist follows the trusted source only: its alert shows the trusted text, and the stored
    article shows its own site's text from then on."""
    article = static.base + "/2025/railway-opens/"
    trusted = static.listing("/list", [(article, "Railway to Bishkek opens", "The real summary.")])
    evil = other_host.listing("/list", [(article, "Buy now at evil.example", "Hostile text.")])
    config = config_file(
        tmp_path,
        db_url,
        source("trusted", trusted) + source("evil", evil),
        '[[watchlists]]\nname = "rail"\nkeywords = ["railway", "buy"]\nchannels = ["hook"]\n'
        'sources = ["trusted"]\n',
        {"hook": webhook_server.url("/hook")},
    )
    assert run_worker(capsys, config, "once", "--source", "evil").code == 0
    stored = run_worker(capsys, config, "articles", "--json").json()
    assert [a["title"] for a in stored] == ["Buy now at evil.example"]  # evil came first
    run = run_worker(capsys, config, "once", "--source", "trusted")
    assert run.code == 0 and "alerts: 1 sent" in run.out, run
    assert webhook_server.wait_for(1)
    sent = webhook_server.received[0]
    assert sent["title"] == "[rail] Railway to Bishkek opens"
    assert "The real summary." in sent["message"] and "Source: trusted" in sent["message"]
    assert "evil" not in sent["message"] and "Hostile" not in sent["message"]
    stored = run_worker(capsys, config, "articles", "--json").json()
    assert [(a["title"], a["summary"]) for a in stored] == [
        ("Railway to Bishkek opens", "The real summary.")
    ]


def test_text_from_another_host_never_replaces_the_sites_own_in_an_alert(
    tmp_path, capsys, db_url, static: StaticServer, other_host: StaticServer, webhook_server
) -> None:
    """The site lists its article (no match); a listing on another host then lists the same URL
    with a title that matches and pings: the alert it queues shows the site's own text."""
    article = static.base + "/2025/market-report/"
    trusted = static.listing("/list", [(article, "Market report for July", "Prices rose.")])
    evil = other_host.listing("/list", [(article, MENTIONS, "Hostile text.")])
    config = config_file(
        tmp_path,
        db_url,
        source("trusted", trusted) + source("evil", evil),
        '[[watchlists]]\nname = "rail"\nkeywords = ["railway"]\nchannels = ["hook"]\n',
        {"hook": webhook_server.url("/hook")},
    )
    assert run_worker(capsys, config, "once", "--source", "trusted").code == 0
    run = run_worker(capsys, config, "once", "--source", "evil")
    assert run.code == 0 and "alerts: 1 sent" in run.out, run
    assert webhook_server.wait_for(1)
    sent = webhook_server.received[0]
    assert sent["title"] == "[rail] Market report for July"
    assert "Prices rose." in sent["message"] and "Hostile" not in sent["message"]
    assert [a["title"] for a in run_worker(capsys, config, "articles", "--json").json()] == [
        "Market report for July"
    ]
