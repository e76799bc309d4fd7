"""Per-source isolation in `worker once` against hostile local servers: a cookie flood on one
source does not reach another on the same host, and 30 sources on a host that accepts and never
answers hold at most that host's slots, within each pass's deadline, while a good source on the
same host and one on another host complete."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from tests.e2e import run_worker
from tests.fixtures.hostile import (
    HANG,
    HostileRequest,
    HostileServer,
    answer,
    listing_html,
)
from tests.fixtures.servers import WebhookServer


def config(tmp_path: Path, webhook: str, sources: list[tuple[str, str]], http: str = "") -> Path:
    text = [
        f'database = "sqlite:///{tmp_path / "worker.db"}"',
        "[http]\nmin_delay = 0\n" + (http or "timeout = 5\nretries = 0"),
        '[alerts]\nretry_base = "1s"\nsend_timeout = "10s"',
        f'[channels]\nhook = "{webhook}"',
    ]
    for name, url in sources:
        text.append(
            f'[[sources]]\nname = "{name}"\nurl = "{url}"\nalert_backfill = true\n'
            '[sources.select]\nitem = "main article"\ntitle = "h2 a"\nlink = "h2 a"\n'
            'next = "a.next"\n'
        )
    text.append('[[watchlists]]\nname = "rail"\nkeywords = ["rail*"]\nchannels = ["hook"]')
    path = tmp_path / "worker.toml"
    path.write_text("\n\n".join(text) + "\n", encoding="utf-8")
    return path


def paged(server: HostileServer, prefix: str, pages: int, per_page: int = 3) -> None:
    """A listing at prefix/1 .. prefix/N, linked by a.next, per_page railway articles each."""

    def handler(request: HostileRequest) -> bytes:
        number = int(request.path.rsplit("/", 1)[1] or 1)
        slugs = [f"{prefix.strip('/')}-{number}-{i}" for i in range(per_page)]
        html = listing_html(server.url("/a"), slugs)
        if number < pages:
            html = html.replace(
                "</main>", f'</main><a class="next" href="{prefix}/{number + 1}">n</a>'
            )
        return answer(body=html)

    server.add(prefix + "/", handler)


def alerted(webhook: WebhookServer, prefix: str) -> int:
    return sum(1 for b in webhook.received if f" {prefix}-" in b.get("title", ""))


def pass_seconds(out: str, source: str) -> float:
    match = re.search(rf"^{source}: .*?\((\d+\.\d)s[;)]", out, re.MULTILINE)
    assert match, out
    return float(match.group(1))


# --- cookies ---------------------------------------------------------------------------------


def flood(server: HostileServer) -> None:
    """A source that sets 200 cookies of 100 bytes on every answer (path=/, whole host)."""

    def handler(request: HostileRequest) -> bytes:
        body = listing_html(server.url("/a"), ["flood-1-0"])
        head = ["HTTP/1.1 200 X", f"Content-Length: {len(body)}", "Content-Type: text/html"]
        head += [f"Set-Cookie: c{i}={'v' * 100}; Path=/" for i in range(200)]
        return ("\r\n".join(head) + "\r\n\r\n" + body).encode()

    server.add("/flood/", handler)


def strict_about_cookies(server: HostileServer, prefix: str, pages: int) -> None:
    """Like `paged`, but HTTP 431 when the Cookie header is over 4 KB (as nginx answers)."""
    paged(server, prefix, pages)
    inner = server.routes.pop()[1]

    def handler(request: HostileRequest) -> object:
        if len(request.headers.get("cookie", "")) > 4096:
            return answer(431, "<p>Request Header Fields Too Large</p>")
        time.sleep(0.2)  # the flood's first answer is in before our second page is asked for
        return inner(request)

    server.add(prefix + "/", handler)


def test_a_source_flooding_200_cookies_leaves_the_good_source_on_its_host_all_9_alerts(
    tmp_path: Path,
    hostile_server: HostileServer,
    webhook_server: WebhookServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flood(hostile_server)
    strict_about_cookies(hostile_server, "/good", pages=3)
    path = config(
        tmp_path,
        webhook_server.url("/hook"),
        [("flood", hostile_server.url("/flood/1")), ("good", hostile_server.url("/good/1"))],
    )
    run = run_worker(capsys, path, "once")
    assert run.code == 0, run.out + run.err
    assert alerted(webhook_server, "good") == 9
    cookies = [r.headers.get("cookie") for r in hostile_server.requests]
    assert cookies == [None] * len(cookies)  # `cookies = false`: none kept, none sent


def test_with_cookies_on_each_pass_keeps_its_own_capped_jar(
    tmp_path: Path,
    hostile_server: HostileServer,
    webhook_server: WebhookServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A site that needs its session cookie on page 2 works; the flood's 200 cookies are
    dropped (over 50); no source's cookie reaches another source's requests."""
    flood(hostile_server)
    strict_about_cookies(hostile_server, "/good", pages=3)
    paged(hostile_server, "/session", pages=2)
    inner = hostile_server.routes.pop()[1]

    def session(request: HostileRequest) -> object:
        if request.path.endswith("/1"):
            raw = inner(request)
            assert isinstance(raw, bytes)
            return raw.replace(b"\r\n\r\n", b"\r\nSet-Cookie: sid=abc; Path=/\r\n\r\n", 1)
        if "sid=abc" not in request.headers.get("cookie", ""):
            return answer(403, "<p>no session</p>")
        return inner(request)

    hostile_server.add("/session/", session)
    path = config(
        tmp_path,
        webhook_server.url("/hook"),
        [
            ("flood", hostile_server.url("/flood/1")),
            ("good", hostile_server.url("/good/1")),
            ("session", hostile_server.url("/session/1")),
        ],
        http="timeout = 5\nretries = 0\ncookies = true",
    )
    run = run_worker(capsys, path, "once")
    assert run.code == 0, run.out + run.err
    assert alerted(webhook_server, "good") == 9
    assert alerted(webhook_server, "session") == 6
    for request in hostile_server.requests:
        if not request.path.startswith("/session/"):
            assert request.headers.get("cookie") is None, request


# --- a host that never answers ----------------------------------------------------------------


def test_30_hanging_sources_hold_4_slots_and_good_sources_finish_within_30s(
    tmp_path: Path,
    hostile_server: HostileServer,
    webhook_server: WebhookServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = HostileServer().start()
    try:
        hostile_server.add("/hang/", lambda _r: HANG)
        paged(hostile_server, "/same", pages=3)
        paged(other, "/other", pages=3)
        sources = [(f"hang{i}", hostile_server.url(f"/hang/{i}")) for i in range(30)]
        sources += [("same", hostile_server.url("/same/1")), ("other", other.url("/other/1"))]
        path = config(
            tmp_path,
            webhook_server.url("/hook"),
            sources,
            http='timeout = 1\nretries = 1\nconcurrency = 8\nper_host = 4\npass_timeout = "20s"',
        )
        started = time.monotonic()
        run = run_worker(capsys, path, "once")
        elapsed = time.monotonic() - started
    finally:
        other.stop()
    assert run.code == 1  # the hanging sources failed
    assert alerted(webhook_server, "same") == 9 and alerted(webhook_server, "other") == 9
    other_s, same_s = pass_seconds(run.out, "other"), pass_seconds(run.out, "same")
    # the landed code: one request of the good source in 200 s. Here the other host is never
    # held up (4 of the 8 slots are its own); the same host's good source waits at most for
    # each hanging source's first try, 30 x 1 s over 4 slots
    assert other_s < 5, run.out
    assert same_s < 30, run.out
    hang_lines = [line for line in run.out.splitlines() if line.startswith("hang")]
    assert len(hang_lines) == 30 and all("FAILED" in line for line in hang_lines)
    assert all("timed out after 1s" in line for line in hang_lines)
    # every hanging source tried twice (retries = 1)
    assert hostile_server.hits("/hang/") == 60
    # 4 slots, seen from the server: it notices a timed-out connection closed a little late,
    # so a new attempt may overlap the old one; never the 8 that would starve the other host
    assert hostile_server.max_hanging < 8
    assert elapsed < 60
    print(f"other host {other_s:.1f}s, same host {same_s:.1f}s, whole pass {elapsed:.1f}s")


async def test_a_pass_on_a_hanging_host_fails_at_its_2s_deadline_not_after_4_attempts_of_5s(
    hostile_server: HostileServer,
) -> None:
    from worker.config import HttpConfig
    from worker.fetch import Fetcher, FetchError

    hostile_server.add("/hang/", lambda _r: HANG)
    http = HttpConfig(min_delay=0, timeout=5, retries=3, pass_timeout=2)
    async with Fetcher(http) as fetcher:
        started = time.monotonic()
        with fetcher.source_pass("slow"), pytest.raises(FetchError) as info:
            await fetcher.get_html(hostile_server.url("/hang/1"))
        elapsed = time.monotonic() - started
    assert info.value.reason == "the pass ran out of time (2s)"
    assert 1.5 < elapsed < 4.5  # not the 20 s + backoff four attempts would take
