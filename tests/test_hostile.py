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

    def __init__(self) -> None:
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

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
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


def source(name: str, url: str, *, extra: str = "") -> str:
    return f'[[sources]]\nname = "{name}"\nurl = "{url}"\nalert_backfill = true\n{extra}\n{SELECT}\n'


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
