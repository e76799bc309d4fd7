"""Hostile sources against a real `worker run` subprocess: a page that is slow to parse and a
page nesting 100,000 elements behind `<!-->` never stall /healthz nor the good source beside
them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.hostile import LISTING_SELECT, HostileServer, answer, listing_html
from tests.fixtures.servers import WebhookServer
from tests.test_daemon import STARTUP, Worker, free_port, http_get, workers  # noqa: F401

ALERTED = 60.0  # seconds for the good source's alerts (a loaded machine)


def hostile_config(tmp_path: Path, port: int, webhook: str, sources: list[tuple[str, str]]) -> Path:
    text = [
        f'database = "sqlite:///{tmp_path / "worker.db"}"',
        "[http]\nmin_delay = 0\ntimeout = 10\nretries = 0",
        '[alerts]\nretry_base = "1s"\nsend_timeout = "10s"',
        f"[http_status]\nport = {port}",
        f'[channels]\nhook = "{webhook}"',
    ]
    for name, url in sources:
        text.append(
            f'[[sources]]\nname = "{name}"\nurl = "{url}"\nevery = "1s"\nalert_backfill = true\n'
            + LISTING_SELECT
        )
    text.append('[[watchlists]]\nname = "rail"\nkeywords = ["rail*"]\nchannels = ["hook"]')
    path = tmp_path / "worker.toml"
    path.write_text("\n\n".join(text) + "\n", encoding="utf-8")
    return path


def timed_get(url: str) -> tuple[float, int, str]:
    started = time.monotonic()
    code, body = http_get(url)
    return time.monotonic() - started, code, body


def test_healthz_answers_within_5s_while_a_1mb_page_parses_and_a_100k_deep_one_is_refused(
    tmp_path: Path,
    hostile_server: HostileServer,
    webhook_server: WebhookServer,
    workers: Callable[..., Worker],  # noqa: F811
) -> None:
    base = hostile_server.url("")
    heavy = listing_html(base + "/h", ["h1"]).replace(
        "</main>", "</main>" + "<p>x" * 250_000
    )  # 1 MB of flat paragraphs: a second or more of scanning and parsing, in a thread
    deep = listing_html(base + "/d", ["d1"]).replace("</main>", "</main><!-->" + "<div>" * 100_000)
    hostile_server.add("/heavy", lambda _r: answer(body=heavy))
    hostile_server.add("/deep", lambda _r: answer(body=deep))
    hostile_server.add("/good", lambda _r: answer(body=listing_html(base + "/g", ["g1", "g2"])))
    port = free_port()
    config = hostile_config(
        tmp_path,
        port,
        webhook_server.url("/hook"),
        [
            ("heavy", hostile_server.url("/heavy")),
            ("deep", hostile_server.url("/deep")),
            ("good", hostile_server.url("/good")),
        ],
    )
    worker = workers(config, "run")
    healthz = f"http://127.0.0.1:{port}/healthz"
    worker.expect(lambda: worker.passes("heavy") >= 1, STARTUP, "a pass of the heavy source")

    # poll /healthz while the heavy page is fetched and parsed every second, again and again
    slowest = 0.0
    heavy_passes = worker.passes("heavy")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and worker.passes("heavy") < heavy_passes + 3:
        seconds, code, _ = timed_get(healthz)
        assert code in (200, 503)
        slowest = max(slowest, seconds)
        time.sleep(0.05)
    assert worker.passes("heavy") >= heavy_passes + 3, worker.err()[-2000:]
    # the landed code stalled it 20-30 s on each pass of the deep source (lexbor on the loop)
    assert slowest < 5.0, f"/healthz took {slowest:.2f}s during a heavy pass"
    print(f"slowest /healthz answer during 3 heavy passes: {slowest:.3f}s")

    worker.expect(lambda: len(webhook_server.received) >= 3, ALERTED, "the good alerts")
    titles = sorted(body.get("title", "") for body in webhook_server.received)
    assert titles == [
        "[rail] Railway news g1",
        "[rail] Railway news g2",
        "[rail] Railway news h1",
    ]
    _, _, body = timed_get(healthz + "?detail=sources")
    sources = json.loads(body)["sources"]
    assert sources["good"]["ok"] is True and sources["heavy"]["ok"] is True
    assert sources["deep"]["ok"] is False
    assert "page nests more than 1000 elements" in sources["deep"]["last_error"]
