"""The fetch stage against a real HTTP/1.1 server on 127.0.0.1 (asyncio, raw bytes, per test).

The server is hand-rolled so that it can misbehave on purpose: lie about Content-Length, drip a
body forever, stream a gzip bomb, redirect to ftp://. Retry waits go through a recording `sleep`,
so no test sleeps for a backoff; the per-host delay and the deadline are measured in real time.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import logging
import socket
import ssl
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from worker.config import HttpConfig
from worker.fetch import ACCEPT, Fetcher, FetchError, NotFound, Page

HTML = "<!doctype html><html><head><title>T</title></head><body><p>Hello, world</p></body></html>"
MB = 1024 * 1024


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when the request head was read


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]  # returns keep-alive


@dataclass
class Server:
    routes: dict[str, Handler] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    port: int = 0
    tls: ssl.SSLContext | None = None  # serve https with this context
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def route(self, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes[path] = handler
            return handler

        return register

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                _method, target, _version = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                request = Request(target.split("?")[0], headers, time.monotonic())
                self.log.append(request)
                self.hits[request.path] += 1
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    handler = self.routes.get(request.path, not_found)
                    keep_alive = await handler(request, writer)
                    await writer.drain()
                finally:
                    self.in_flight -= 1
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(
    writer: asyncio.StreamWriter,
    status: int = 200,
    body: bytes | str = HTML,
    content_type: str | None = "text/html; charset=utf-8",
    **extra: str,
) -> bool:
    data = body.encode() if isinstance(body, str) else body
    headers = {"Content-Length": str(len(data))}
    if content_type is not None:
        headers["Content-Type"] = content_type
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    writer.write(head(status, headers) + data)
    return True


async def not_found(request: Request, writer: asyncio.StreamWriter) -> bool:
    return respond(writer, 404, "<p>no</p>")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    await srv.start()
    yield srv
    await srv.stop()


@dataclass
class Made:
    fetcher: Fetcher
    waits: list[float]


@pytest.fixture
async def make() -> AsyncIterator[Callable[..., Made]]:
    """make(**HttpConfig fields) -> a Fetcher whose retry waits are recorded, not slept."""
    made: list[Fetcher] = []

    def factory(**settings: Any) -> Made:
        options: dict[str, Any] = {
            "timeout": 5.0,
            "min_delay": 0.0,
            "retries": 2,
            "concurrency": 4,
            "max_bytes": MB,
        }
        options.update(settings)
        waits: list[float] = []

        async def record(seconds: float) -> None:
            waits.append(seconds)

        fetcher = Fetcher(HttpConfig(**options), sleep=record)
        made.append(fetcher)
        return Made(fetcher, waits)

    yield factory
    for fetcher in made:
        await fetcher.aclose()


async def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetcher.get_html(url)
    return info.value


# --- success paths ---------------------------------------------------------------------------


async def test_serves_html_with_our_headers(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    m = make(user_agent="test-agent/1.0")
    result = await m.fetcher.get_html(server.url("/page"))
    assert result == Page(url=server.url("/page"), status=200, text=HTML)
    headers = server.log[0].headers
    assert headers["user-agent"] == "test-agent/1.0"
    assert headers["accept"] == ACCEPT
    assert "gzip" in headers["accept-encoding"] and "deflate" in headers["accept-encoding"]
    assert m.fetcher.requests == 1
    assert m.fetcher.requests_by_host == Counter({"127.0.0.1": 1})


async def test_gzip_body_is_decompressed(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/gz")
    async def gz(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, body=gzip.compress(HTML.encode()), Content_Encoding="gzip")

    page = await make().fetcher.get_html(server.url("/gz"))
    assert page.text == HTML


async def test_connections_are_reused(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    fetcher = make(concurrency=2).fetcher
    for _ in range(20):
        await fetcher.get_html(server.url("/page"))
    assert fetcher.requests == 20
    assert server.connections == 1


async def test_connections_in_use_together_are_all_kept_and_reused(
    server: Server, make: Callable[..., Made]
) -> None:
    """Eight requests at a time, twenty times: the pool's eight connections serve them all. (A
    connection that answered in the same turn of the loop as the pool's idle check must not be
    taken for one the server closed.)"""

    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    fetcher = make(concurrency=8).fetcher
    for _ in range(20):
        await asyncio.gather(*(fetcher.get_html(server.url("/page")) for _ in range(8)))
    assert fetcher.requests == 160
    assert server.connections <= 8, server.connections


async def test_a_304_and_an_empty_redirect_keep_their_connection(
    server: Server, make: Callable[..., Made]
) -> None:
    """A 304 (a quiet pass) and a redirect with an empty body are read to their end, so the
    connection goes back to the pool instead of being closed (each had cost a new connection);
    a redirect with a body is not waited for."""

    @server.route("/same")
    async def same(request: Request, writer: asyncio.StreamWriter) -> bool:
        if request.headers.get("if-none-match") == '"v1"':
            writer.write(head(304, {"ETag": '"v1"'}))
            return True
        return respond(writer, ETag='"v1"')

    @server.route("/moved")
    async def moved(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 302, "", Location="/same")

    @server.route("/moved-body")
    async def moved_body(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 302, "<p>moved</p>", Location="/same")

    fetcher = make(concurrency=1).fetcher
    first = await fetcher.get_html(server.url("/same"))
    assert first.status == 200 and first.etag == '"v1"'
    for _ in range(10):
        page = await fetcher.get_html(server.url("/same"), validators=('"v1"', None))
        assert page.status == 304 and page.text == ""
    page = await fetcher.get_html(server.url("/moved"))
    assert page.status == 200 and page.url == server.url("/same")
    assert fetcher.requests == 13
    assert server.connections == 1
    page = await fetcher.get_html(server.url("/moved-body"))
    assert page.status == 200
    assert server.connections == 2  # that redirect's connection was closed with its body unread


async def test_follows_relative_and_absolute_redirects(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/a")
    async def a(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 301, "", Location=server.url("/b"))

    @server.route("/b")
    async def b(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 302, "", Location="/final?x=1")

    @server.route("/final")
    async def final(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    m = make()
    page = await m.fetcher.get_html(server.url("/a"))
    assert page.url == server.url("/final?x=1")
    assert page.text == HTML
    assert m.fetcher.requests == 3


# --- decoding --------------------------------------------------------------------------------

CYRILLIC = "Привет, мир"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/html; charset=iso-8859-1", "<p>café</p>".encode("latin-1"), "<p>café</p>"),
        ("TEXT/HTML; Charset=UTF-8", "<p>café</p>".encode(), "<p>café</p>"),
        (None, "<p>café</p>".encode(), "<p>café</p>"),
        ("application/xhtml+xml", b"<html/>", "<html/>"),
        (
            "text/html",
            b'<meta charset="windows-1251"><p>' + CYRILLIC.encode("cp1251"),
            '<meta charset="windows-1251"><p>' + CYRILLIC,
        ),
        (
            "text/html",
            b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>'
            + CYRILLIC.encode("koi8_r"),
            '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>' + CYRILLIC,
        ),
        # the header wins over <meta>
        (
            "text/html; charset=utf-8",
            b'<meta charset="windows-1251"><p>' + CYRILLIC.encode(),
            '<meta charset="windows-1251"><p>' + CYRILLIC,
        ),
        # a UTF-8 byte order mark is tolerated and dropped
        ("text/html; charset=utf-8", b"\xef\xbb\xbf<p>caf\xc3\xa9</p>", "<p>café</p>"),
        # latin-1 means windows-1252 (WHATWG); its undefined bytes do not fail
        ("text/html; charset=latin-1", b"<p>\x80 \x81</p>", "<p>€ \x81</p>"),
    ],
)
async def test_decodes_charsets(
    server: Server,
    make: Callable[..., Made],
    content_type: str | None,
    body: bytes,
    expected: str,
) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, body=body, content_type=content_type)

    assert (await make().fetcher.get_html(server.url("/page"))).text == expected


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b'{"a": 1}', "not HTML (content-type application/json)"),
        ("image/png", b"\x89PNG\r\n", "not HTML (content-type image/png)"),
        ("application/pdf; x=1", b"%PDF-1.4", "not HTML (content-type application/pdf)"),
        ("text/html; charset=utf-8", b"<p>caf\xe9</p>", "cannot decode the body as utf-8"),
        (None, b"<p>\xff\xfe\xfd</p>", "cannot decode the body as utf-8"),
        # a <meta charset> past the first 2 KB is not looked at: UTF-8 is assumed, and fails
        (
            "text/html",
            b"<!--" + b"x" * 2100 + b'--><meta charset="windows-1251">' + CYRILLIC.encode("cp1251"),
            "cannot decode the body as utf-8",
        ),
        ("text/html", b"", "empty body"),
        ("text/html", b" \r\n ", "empty body"),
    ],
)
async def test_refuses_what_is_not_decodable_html(
    server: Server,
    make: Callable[..., Made],
    content_type: str | None,
    body: bytes,
    reason: str,
) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, body=body, content_type=content_type)

    m = make()
    error = await fetch_error(m.fetcher, server.url("/page"))
    assert not isinstance(error, NotFound)
    assert reason in error.reason
    assert str(error) == f"{server.url('/page')}: {error.reason}"
    assert m.fetcher.requests == 1 and m.waits == []  # never retried


# --- size caps -------------------------------------------------------------------------------


async def test_gzip_bomb_is_stopped_at_the_decompressed_cap(
    server: Server, make: Callable[..., Made]
) -> None:
    sent = {"compressed": 0, "plain": 0}

    @server.route("/bomb")
    async def bomb(request: Request, writer: asyncio.StreamWriter) -> bool:
        # an endless gzip stream of zeros: ~1 KB on the wire per MB once decompressed
        writer.write(
            head(
                200,
                {
                    "Content-Type": "text/html",
                    "Content-Encoding": "gzip",
                    "Transfer-Encoding": "chunked",
                },
            )
        )
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        block = b"<p>" + b"0" * MB
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            data = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            sent["compressed"] += len(data)
            sent["plain"] += len(block)
            await writer.drain()
            await asyncio.sleep(0)
        return False

    m = make(max_bytes=MB, timeout=10)
    started = time.monotonic()
    error = await fetch_error(m.fetcher, server.url("/bomb"))
    assert error.reason == f"response larger than {MB} bytes"
    # the stream never ends: only stopping at the cap can finish this fast (the deadline is 10s)
    assert time.monotonic() - started < 3
    assert m.fetcher.requests == 1
    assert sent["compressed"] < MB  # small on the wire...
    assert sent["plain"] > MB  # ...over the cap once decompressed


async def test_content_length_over_the_cap_is_refused_before_the_body(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/huge")
    async def huge(request: Request, writer: asyncio.StreamWriter) -> bool:
        # announces 5 MB and never sends a byte of it: reading would hit the deadline
        writer.write(head(200, {"Content-Type": "text/html", "Content-Length": str(5 * MB)}))
        await writer.drain()
        await asyncio.sleep(10)
        return False

    m = make(max_bytes=MB, timeout=5)
    started = time.monotonic()
    error = await fetch_error(m.fetcher, server.url("/huge"))
    assert error.reason.startswith(f"response larger than {MB} bytes")
    assert time.monotonic() - started < 1
    assert m.fetcher.requests == 1 and m.waits == []


async def test_plain_body_over_the_cap_without_content_length(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/big")
    async def big(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, {"Content-Type": "text/html", "Connection": "close"}))
        writer.write(b"<p>" + b"a" * (MB + 10))
        return False

    error = await fetch_error(make(max_bytes=MB).fetcher, server.url("/big"))
    assert error.reason == f"response larger than {MB} bytes"


async def test_body_shorter_than_its_content_length_is_retried_then_fails(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/short")
    async def short(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, {"Content-Type": "text/html", "Content-Length": "5000"}))
        writer.write(b"<p>only this</p>")
        return False  # close: the promised 5000 bytes never come

    m = make(retries=1)
    error = await fetch_error(m.fetcher, server.url("/short"))
    assert "RemoteProtocolError" in error.reason
    assert "gave up after 2 attempts" in error.reason
    assert m.fetcher.requests == 2 and len(m.waits) == 1


# --- status codes and retries ----------------------------------------------------------------


async def test_503_twice_then_200_is_retried_with_backoff(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/flaky")
    async def flaky(request: Request, writer: asyncio.StreamWriter) -> bool:
        if server.hits["/flaky"] <= 2:
            return respond(writer, 503, "<p>busy</p>")
        return respond(writer)

    m = make(retries=3)
    page = await m.fetcher.get_html(server.url("/flaky"))
    assert page.text == HTML
    assert m.fetcher.requests == 3 == server.hits["/flaky"]
    assert len(m.waits) == 2
    assert 1 <= m.waits[0] <= 2 and 2 <= m.waits[1] <= 3  # 1s, 2s, plus up to 1s of jitter


async def test_429_retry_after_seconds_is_honoured(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/limited")
    async def limited(request: Request, writer: asyncio.StreamWriter) -> bool:
        if server.hits["/limited"] == 1:
            return respond(writer, 429, "<p>slow down</p>", Retry_After="2")
        return respond(writer)

    m = make()
    assert (await m.fetcher.get_html(server.url("/limited"))).text == HTML
    assert m.waits == [2.0]
    assert m.fetcher.requests == 2


async def test_503_retry_after_http_date_is_honoured(
    server: Server, make: Callable[..., Made]
) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)

    @server.route("/later")
    async def later(request: Request, writer: asyncio.StreamWriter) -> bool:
        if server.hits["/later"] == 1:
            return respond(writer, 503, "<p>later</p>", Retry_After=when)
        return respond(writer)

    m = make()
    assert (await m.fetcher.get_html(server.url("/later"))).text == HTML
    assert len(m.waits) == 1 and 3.5 <= m.waits[0] <= 5.0


async def test_retry_after_beyond_the_cap_gives_up_at_once(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/closed")
    async def closed(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 429, "<p>come back tomorrow</p>", Retry_After="3600")

    m = make(retries=5)
    error = await fetch_error(m.fetcher, server.url("/closed"))
    assert "Retry-After 3600s" in error.reason and "HTTP 429" in error.reason
    assert m.fetcher.requests == 1 and m.waits == []


async def test_always_500_gives_up_after_the_retries(
    server: Server, make: Callable[..., Made], caplog: pytest.LogCaptureFixture
) -> None:
    @server.route("/broken")
    async def broken(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 500, "<p>oops</p>")

    m = make(retries=2)
    url = server.url("/broken").replace("http://", "http://alice:s3cret@")
    with caplog.at_level(logging.INFO, logger="worker.fetch"):
        error = await fetch_error(m.fetcher, url)
    assert not isinstance(error, NotFound)
    assert error.reason == "HTTP 500 (gave up after 3 attempts)"
    assert m.fetcher.requests == 3 == server.hits["/broken"]
    assert len(m.waits) == 2
    # credentials are used (basic auth) but never shown
    assert server.log[0].headers["authorization"].startswith("Basic ")
    assert error.url == server.url("/broken")
    assert "s3cret" not in str(error) and "alice" not in str(error)
    retries = [r for r in caplog.records if r.name == "worker.fetch"]
    assert len(retries) == 2
    assert "attempt 1/3" in retries[0].getMessage() and "HTTP 500" in retries[0].getMessage()
    assert server.url("/broken") in retries[0].getMessage()
    assert "s3cret" not in caplog.text


async def test_backoff_doubles_and_is_capped(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/broken")
    async def broken(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 502, "<p>bad gateway</p>")

    m = make(retries=8)
    await fetch_error(m.fetcher, server.url("/broken"))
    assert m.fetcher.requests == 9 and len(m.waits) == 8
    for n, wait in enumerate(m.waits[:5]):
        assert 2**n <= wait <= 2**n + 1
    assert m.waits[5:] == [30.0, 30.0, 30.0]


@pytest.mark.parametrize("status", [404, 410])
async def test_not_found_is_not_retried(
    server: Server, make: Callable[..., Made], status: int
) -> None:
    @server.route("/gone")
    async def gone(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, status, "<p>gone</p>")

    m = make(retries=3)
    with pytest.raises(NotFound) as info:
        await m.fetcher.get_html(server.url("/gone"))
    assert info.value.reason == f"HTTP {status}"
    assert m.fetcher.requests == 1 and m.waits == []


@pytest.mark.parametrize("status", [400, 401, 403, 451])
async def test_other_4xx_fail_without_retry(
    server: Server, make: Callable[..., Made], status: int
) -> None:
    @server.route("/no")
    async def no(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, status, "<p>no</p>")

    m = make(retries=3)
    error = await fetch_error(m.fetcher, server.url("/no"))
    assert type(error) is FetchError and error.reason == f"HTTP {status}"
    assert m.fetcher.requests == 1 and m.waits == []


async def test_connection_refused_is_retried_then_fails(make: Callable[..., Made]) -> None:
    with socket.socket() as sock:  # a port on which nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m = make(retries=2)
    error = await fetch_error(m.fetcher, f"http://127.0.0.1:{port}/")
    assert "ConnectError" in error.reason and "gave up after 3 attempts" in error.reason
    assert m.fetcher.requests == 3 and len(m.waits) == 2


async def test_slow_drip_is_stopped_by_the_total_deadline(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/drip")
    async def drip(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, {"Content-Type": "text/html", "Content-Length": "100000"}))
        for _ in range(100):  # a byte every 0.2s: no single read ever waits 1s
            writer.write(b"x")
            await writer.drain()
            await asyncio.sleep(0.2)
        return False

    m = make(timeout=1.0, retries=0)
    started = time.monotonic()
    error = await fetch_error(m.fetcher, server.url("/drip"))
    elapsed = time.monotonic() - started
    assert error.reason == "timed out after 1s"
    assert 1.0 <= elapsed < 1.5
    assert m.fetcher.requests == 1


async def test_redirect_to_ftp_is_refused(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/first")
    async def first(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 302, "", Location=server.url("/second"))

    @server.route("/second")
    async def second(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 301, "", Location="ftp://files.example.org/secret.html")

    m = make()
    error = await fetch_error(m.fetcher, server.url("/first"))
    assert error.reason == "redirect to a non-http(s) URL ftp://files.example.org/secret.html"
    assert error.url == server.url("/first")
    assert m.fetcher.requests == 2 and m.waits == []


async def test_redirect_loop_stops_after_5(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/loop")
    async def loop(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 307, "", Location="/loop")

    m = make()
    error = await fetch_error(m.fetcher, server.url("/loop"))
    assert error.reason == "more than 5 redirects"
    assert m.fetcher.requests == 6


@pytest.mark.parametrize("url", ["ftp://example.org/x", "file:///etc/passwd", "http://", "nope"])
async def test_non_http_urls_are_refused_without_a_request(
    make: Callable[..., Made], url: str
) -> None:
    m = make()
    error = await fetch_error(m.fetcher, url)
    assert "URL" in error.reason
    assert m.fetcher.requests == 0


async def test_failures_release_their_concurrency_slot(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    @server.route("/json")
    async def json(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, body="{}", content_type="application/json")

    @server.route("/broken")
    async def broken(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer, 500, "x")

    fetcher = make(concurrency=1, retries=0).fetcher
    for path in ("/missing", "/json", "/broken"):
        with pytest.raises(FetchError):
            await fetcher.get_html(server.url(path))
    result = await asyncio.wait_for(fetcher.get_html(server.url("/page")), 3)
    assert result.text == HTML


# --- politeness ------------------------------------------------------------------------------


async def test_min_delay_per_host(server: Server, make: Callable[..., Made]) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    fetcher = make(min_delay=0.5).fetcher
    # two sequential requests to one host start >= min_delay apart
    await fetcher.get_html(server.url("/page"))
    await fetcher.get_html(server.url("/page"))
    first, second = server.log
    assert second.at - first.at >= 0.45

    # concurrent callers: the same host waits its turn, another host does not wait for it
    server.log.clear()
    await asyncio.sleep(0.5)
    await asyncio.gather(
        fetcher.get_html(server.url("/page")),
        fetcher.get_html(server.url("/page")),
        fetcher.get_html(server.url("/page", host="localhost")),
    )
    by_host: dict[str, list[float]] = {}
    for request in server.log:
        by_host.setdefault(request.headers["host"].split(":")[0], []).append(request.at)
    local = sorted(by_host["127.0.0.1"])
    assert local[1] - local[0] >= 0.45
    # the other host did not queue behind 127.0.0.1's delay: its request came before the second
    # 127.0.0.1 one (an absolute bound on how soon failed one run in many on a loaded machine)
    assert by_host["localhost"][0] < local[1]
    assert fetcher.requests_by_host == Counter({"127.0.0.1": 4, "localhost": 1})


async def test_concurrency_bounds_requests_in_flight(
    server: Server, make: Callable[..., Made]
) -> None:
    @server.route("/slow")
    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.2)
        return respond(writer)

    fetcher = make(concurrency=2).fetcher
    started = time.monotonic()
    pages = await asyncio.gather(*(fetcher.get_html(server.url("/slow")) for _ in range(6)))
    assert len(pages) == 6 and server.hits["/slow"] == 6
    assert server.max_in_flight == 2
    assert time.monotonic() - started >= 0.6  # 3 rounds of 2


async def test_context_manager_closes_the_client(server: Server) -> None:
    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    async with Fetcher(HttpConfig(min_delay=0)) as fetcher:
        await fetcher.get_html(server.url("/page"))
    with pytest.raises(RuntimeError):
        await fetcher.get_html(server.url("/page"))


# --- transport -------------------------------------------------------------------------------


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    server: Server, make: Callable[..., Made]
) -> None:
    """The pool notices that the server closed a kept-alive connection (its socket turned
    readable) and opens a new one: the next request succeeds without a retry."""

    @server.route("/once")
    async def once(request: Request, writer: asyncio.StreamWriter) -> bool:
        respond(writer)  # no "Connection: close": the client keeps the connection...
        return False  # ...and the server closes it

    m = make(retries=0)
    await m.fetcher.get_html(server.url("/once"))
    await asyncio.sleep(0.2)  # the server's FIN arrives
    page = await m.fetcher.get_html(server.url("/once"))
    assert page.text == HTML
    assert server.connections == 2 and m.waits == []


async def _pool_run(server: Server, pool_class: type) -> tuple[int, int, int]:
    """Six requests at once through a pool of 2 connections, 1 kept alive, answered one at a
    time: (connections opened, most in flight, connections kept at the end)."""
    import httpx

    from worker import transport as transports

    limits = httpx.Limits(max_connections=2, max_keepalive_connections=1)
    original = transports._Pool
    transports._Pool = pool_class  # type: ignore[misc]
    try:
        transport = transports.make_transport(limits)
    finally:
        transports._Pool = original  # type: ignore[misc]
    assert type(transport.http._pool) is pool_class  # type: ignore[attr-defined]
    server.connections = server.max_in_flight = 0
    turn = asyncio.Event()

    @server.route("/slow")
    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        await turn.wait()
        turn.clear()
        return respond(writer)

    async def get() -> int:
        response = await transport.handle_async_request(httpx.Request("GET", server.url("/slow")))
        await response.aread()
        await response.aclose()
        return response.status_code

    try:
        requests = [asyncio.create_task(get()) for _ in range(6)]
        for _ in range(6):
            for _ in range(200):  # until the two connections are in use (or the last one)
                if (
                    server.in_flight == 2
                    or requests[-1].done()
                    or sum(not r.done() for r in requests) == server.in_flight
                ):
                    break
                await asyncio.sleep(0.005)
            turn.set()
            await asyncio.sleep(0.02)
        assert await asyncio.gather(*requests) == [200] * 6
        return (
            server.connections,
            server.max_in_flight,
            len(transport.http._pool.connections),  # type: ignore[attr-defined]
        )
    finally:
        await transport.aclose()


async def test_the_linear_pool_opens_keeps_and_closes_connections_as_httpcores_does(
    server: Server,
) -> None:
    """`_Pool` walks its connections once where httpcore's walks them again for each one: the
    same connections opened, never more than 2 in use, 1 kept alive at the end."""
    import httpcore

    from worker.transport import _Pool

    stock = await _pool_run(server, httpcore.AsyncConnectionPool)
    ours = await _pool_run(server, _Pool)
    assert ours == stock, (ours, stock)
    assert ours[1:] == (2, 1), ours


async def _three_hosts_run(pool_class: type) -> tuple[list[int], int]:
    """One request after the other to three servers (three origins) through a pool of 2
    connections, both kept alive: (connections each server saw, connections kept at the end)."""
    import httpx

    from worker import transport as transports

    servers = [Server() for _ in range(3)]
    for one in servers:
        await one.start()
        one.route("/page")(lambda request, writer: _answer(writer))
    original = transports._Pool
    transports._Pool = pool_class  # type: ignore[misc]
    try:
        transport = transports.make_transport(httpx.Limits(max_connections=2))
    finally:
        transports._Pool = original  # type: ignore[misc]
    try:
        for one in [*servers, servers[0]]:
            request = httpx.Request("GET", one.url("/page"))
            response = await transport.handle_async_request(request)
            await response.aread()
            await response.aclose()
        kept = len(transport.http._pool.connections)  # type: ignore[attr-defined]
        return [one.connections for one in servers], kept
    finally:
        await transport.aclose()
        for one in servers:
            await one.stop()


async def _answer(writer: asyncio.StreamWriter) -> bool:
    return respond(writer)


async def test_a_request_to_a_third_host_closes_an_idle_connection_as_httpcore_does() -> None:
    """The pool is full of idle connections to two other hosts: one is closed to make room
    (the first, as httpcore does), and the next request to that host opens a new one."""
    import httpcore

    from worker.transport import _Pool

    stock = await _three_hosts_run(httpcore.AsyncConnectionPool)
    ours = await _three_hosts_run(_Pool)
    assert ours == stock, (ours, stock)
    assert ours == ([2, 1, 1], 2), ours


def test_the_fetchers_pool_is_the_linear_one_with_the_lighter_backend() -> None:
    """httpx has no parameter for httpcore's pool or network backend: `make_transport` replaces
    the pool httpx built. This fails if httpx or httpcore rename what it replaces or overrides,
    instead of silently losing it."""
    import httpcore
    import httpx

    from worker.transport import _Backend, _Pool, make_transport

    limits = httpx.Limits(max_connections=2, max_keepalive_connections=1, keepalive_expiry=7)
    transport = make_transport(limits)
    pool = transport.http._pool  # type: ignore[attr-defined]
    assert type(pool) is _Pool and isinstance(pool._network_backend, _Backend)
    assert (pool._max_connections, pool._max_keepalive_connections) == (2, 1)
    assert pool._keepalive_expiry == 7 and pool._http1 and not pool._http2
    assert "_assign_requests_to_connections" in vars(httpcore.AsyncConnectionPool)
    fetcher = Fetcher(HttpConfig())
    assert type(fetcher._transport.http._pool) is _Pool  # type: ignore[attr-defined]


class _PlainStream:
    """What anyio's stream tells of its socket (all `_Stream` asks of it)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def get_extra_info(self, info: str) -> object:
        return self.sock if info == "socket" else None


def test_is_readable_sees_data_and_a_closed_peer() -> None:
    """The idle check: not readable while the peer is silent; readable once it sends data or
    closes the connection; a closed socket counts as readable (httpcore drops it)."""
    from worker.transport import _Stream

    a, b = socket.socketpair()
    with a, b:
        stream = _Stream(_PlainStream(a))  # type: ignore[arg-type]
        assert not stream.get_extra_info("is_readable")
        b.sendall(b"x")
        assert stream.get_extra_info("is_readable")
        a.recv(1)
        assert not stream.get_extra_info("is_readable")
        b.close()
        assert stream.get_extra_info("is_readable")
    assert stream.get_extra_info("is_readable")  # closed: fileno() is -1


# --- TLS only for https (issue 15) -------------------------------------------------------------


@pytest.fixture
def ca_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every CA bundle an SSL context loads in this process (what makes building one cost
    ~20 ms), counted; the Fetchers' shared context is built afresh for the test."""
    from worker.transport import tls_context

    loads: list[str] = []
    real_verify = ssl.SSLContext.load_verify_locations
    real_default = ssl.SSLContext.load_default_certs

    def verify(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append("verify locations")
        real_verify(self, *args, **kwargs)

    def default(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append("default certs")
        real_default(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", verify)
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", default)
    tls_context.cache_clear()
    yield loads
    tls_context.cache_clear()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no authority signed, and its key."""
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_server(self_signed: tuple[Path, Path]) -> AsyncIterator[tuple[Server, Path]]:
    """An https server on 127.0.0.1 with the self-signed certificate (and the certificate)."""
    cert, key = self_signed
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = Server(tls=context)

    @srv.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    await srv.start()
    yield srv, cert
    await srv.stop()


async def test_an_http_only_crawl_builds_no_tls_context(
    server: Server, make: Callable[..., Made], ca_loads: list[str]
) -> None:
    """Fetching http:// pages and their robots.txt loads no CA bundle: the TLS set-up is left
    for https."""
    from worker.robots import Robots

    @server.route("/page")
    async def page(request: Request, writer: asyncio.StreamWriter) -> bool:
        return respond(writer)

    m = make()
    m.fetcher.gate = Robots(HttpConfig())  # robots.txt asked for too (404 here: all allowed)
    for _ in range(3):
        assert (await m.fetcher.get_html(server.url("/page"))).text == HTML
    make()  # another Fetcher (a reload) changes nothing
    assert server.hits["/robots.txt"] == 1 and server.hits["/page"] == 3
    assert ca_loads == []


async def test_https_is_verified_with_one_context_for_every_fetcher(
    tls_server: tuple[Server, Path],
    make: Callable[..., Made],
    ca_loads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first https request builds the context (the CA bundle of $SSL_CERT_FILE, here the
    server's own certificate), and every Fetcher after it uses the same one."""
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for _ in range(2):
        fetcher = make().fetcher
        assert (await fetcher.get_html(server.url("/page"))).text == HTML
    assert ca_loads == ["verify locations"]


async def test_https_with_a_certificate_nobody_signed_fails(
    tls_server: tuple[Server, Path],
    make: Callable[..., Made],
    ca_loads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Verification stays on: without the server's certificate among the trusted ones, the
    page is not read."""
    server, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    error = await fetch_error(make(retries=0).fetcher, server.url("/page"))
    assert "CERTIFICATE_VERIFY_FAILED" in str(error) or "certificate" in str(error).lower(), error
    assert server.hits["/page"] == 0
