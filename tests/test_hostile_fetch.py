"""Hostile bodies against the fetcher, measured in a subprocess: stacked content-encodings are
refused from the header, a single-layer bomb (gzip, br, zstd) stops at `max_bytes`, a zstd frame
asking for a window over 8 MB is refused, and the peak RSS of the
process stays within a few MB of a plain fetch (the landed code took 4,162 MB for `gzip, gzip`).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator

import brotli
import pytest
from backports import zstd

from tests.fixtures.hostile import HostileRequest, HostileServer, answer

MB = 1024 * 1024
CAP = 5 * MB

# one fetch in a fresh interpreter: its outcome and its peak RSS (VmHWM: ru_maxrss would carry
# the forking pytest process's peak across exec)
SCRIPT = """
import asyncio, json, sys
from worker.config import HttpConfig
from worker.fetch import Fetcher, FetchError
async def main():
    async with Fetcher(HttpConfig(min_delay=0, retries=0, timeout=30, max_bytes=CAP)) as f:
        try:
            page = await f.get_html(sys.argv[1])
            return {"ok": len(page.text)}
        except FetchError as exc:
            return {"error": exc.reason}
out = asyncio.run(main())
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
out["rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
""".replace("CAP", str(CAP))


def fetch_in_subprocess(url: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, url], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _zeros_gzip(size: int) -> bytes:
    return gzip.compress(b"\0" * size, 9)


@pytest.fixture(scope="module")
def bombs() -> Iterator[HostileServer]:
    server = HostileServer().start()
    page = b"<!doctype html><p>" + b"a" * 1000
    inner = _zeros_gzip(200 * MB)  # 200 MB of zeros: about 200 KB gzipped
    twice = gzip.compress(inner, 9)  # gzip of gzip: a few KB on the wire
    zlib3 = zlib.compress(zlib.compress(zlib.compress(b"\0" * (200 * MB), 9), 9), 9)
    br = brotli.compress(b"<p>" + b"\0" * (200 * MB), quality=5)
    zst = zstd.compress(b"<p>" + b"\0" * (200 * MB))
    # a frame that names a 1 GB window (a decoder allocates it up front) for 200 MB of zeros
    wide = zstd.compress(b"\0" * (200 * MB), options={zstd.CompressionParameter.window_log: 30})
    routes = {
        "/plain": answer(body=page),
        "/gzip-gzip": answer(body=twice, Content_Encoding="gzip, gzip"),
        "/deflate3": answer(body=zlib3, Content_Encoding="deflate, deflate, deflate"),
        "/gzip-200mb": answer(body=inner, Content_Encoding="gzip"),
        "/br-200mb": answer(body=br, Content_Encoding="br"),
        "/zstd-200mb": answer(body=zst, Content_Encoding="zstd"),
        "/zstd-1gb-window": answer(body=wide, Content_Encoding="zstd"),
        "/compress": answer(body=b"x", Content_Encoding="compress"),
    }
    for path, raw in routes.items():
        server.add(path, lambda _r, raw=raw: raw)
    server.sizes = {path: len(raw) for path, raw in routes.items()}  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def baseline_rss(bombs: HostileServer) -> float:
    out = fetch_in_subprocess(bombs.url("/plain"))
    assert "ok" in out
    return float(out["rss_mb"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/gzip-gzip", "stacked content-encodings (gzip, gzip): only one layer is accepted"),
        (
            "/deflate3",
            "stacked content-encodings (deflate, deflate, deflate): only one layer is accepted",
        ),
        ("/gzip-200mb", f"response larger than {CAP} bytes"),
        ("/br-200mb", f"response larger than {CAP} bytes"),
        ("/zstd-200mb", f"response larger than {CAP} bytes"),
        ("/zstd-1gb-window", "cannot decompress the body (zstd frame with a window over 8 MB)"),
    ],
)
def test_a_200mb_compression_bomb_fails_its_fetch_within_20mb_of_a_plain_fetchs_rss(
    bombs: HostileServer, baseline_rss: float, path: str, reason: str
) -> None:
    out = fetch_in_subprocess(bombs.url(path))
    assert out.get("error") == reason
    rss = float(out["rss_mb"])  # type: ignore[arg-type]
    # the cap is 5 MB: the body held plus one 64 KB piece, never the 200 MB
    print(f"{path}: peak RSS {rss:.0f} MB (plain fetch {baseline_rss:.0f} MB)")
    assert rss - baseline_rss < 20, (path, rss, baseline_rss)


def test_an_encoding_other_than_gzip_deflate_br_zstd_is_a_clear_fetch_error(
    bombs: HostileServer,
) -> None:
    out = fetch_in_subprocess(bombs.url("/compress"))
    assert out["error"] == (
        "unsupported content-encoding 'compress' (accepted: gzip, deflate, br, zstd)"
    )


def test_stacked_bomb_is_small_on_the_wire(bombs: HostileServer) -> None:
    sizes = bombs.sizes  # type: ignore[attr-defined]
    assert sizes["/gzip-gzip"] < 10_000 and sizes["/deflate3"] < 10_000


def test_our_accept_encoding_names_only_what_we_decode(bombs: HostileServer) -> None:
    seen: list[HostileRequest] = []
    bombs.add("/echo", lambda r: seen.append(r) or answer(body="<p>hi</p>"))
    assert "ok" in fetch_in_subprocess(bombs.url("/echo"))
    assert seen[0].headers["accept-encoding"] == "gzip, deflate, br, zstd"


# --- robots.txt: fetched for every origin, before any page of it ------------------------------

ROBOTS_SCRIPT = """
import asyncio, json, sys
import httpx
from worker.config import HttpConfig
from worker.fetch import FetchError
from worker.robots import Robots
async def main():
    robots = Robots(HttpConfig(min_delay=0, retries=0, timeout=30))
    out = {}
    for path in sys.argv[2:]:
        try:
            await robots.admit(httpx.URL(sys.argv[1] + path))
            out[path] = "allowed"
        except FetchError as exc:
            out[path] = exc.reason
    return out
out = asyncio.run(main())
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
out["rss_mb"] = int(hwm.split()[1]) / 1024
print(json.dumps(out))
"""


def robots_in_subprocess(robots_answer: bytes, *paths: str) -> dict[str, object]:
    """Ask a fresh Robots about `paths` of a server whose /robots.txt is `robots_answer`."""
    server = HostileServer().start()
    try:
        server.add("/robots.txt", lambda _r: robots_answer)
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        done = subprocess.run(
            [sys.executable, "-c", ROBOTS_SCRIPT, server.url(""), *paths],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_stacked_gzip_robots_txt_is_unreadable_and_stays_within_20mb_of_a_plain_fetchs_rss(
    baseline_rss: float,
) -> None:
    """httpx inflated robots.txt itself: `gzip, gzip` of 200 MB took the process to 443 MB
    before its 500 KB cap was checked. Now it is decoded as pages are, and refused."""
    twice = gzip.compress(_zeros_gzip(200 * MB), 9)
    out = robots_in_subprocess(answer(body=twice, Content_Encoding="gzip, gzip"), "/a")
    assert out["/a"] == (
        "robots.txt cannot be read (stacked content-encodings (gzip, gzip): only one layer is"
        " accepted): try later"
    )
    rss = float(out["rss_mb"])  # type: ignore[arg-type]
    print(f"robots.txt gzip, gzip: peak RSS {rss:.0f} MB (plain fetch {baseline_rss:.0f} MB)")
    assert rss - baseline_rss < 20, (rss, baseline_rss)


def test_a_200mb_gzip_robots_txt_is_read_to_its_first_500kb_within_20mb_of_a_plain_fetchs_rss(
    baseline_rss: float,
) -> None:
    rules = b"User-agent: *\nDisallow: /private\n"
    body = gzip.compress(rules + b"#" * (200 * MB), 9)
    out = robots_in_subprocess(answer(body=body, Content_Encoding="gzip"), "/a", "/private/b")
    assert (out["/a"], out["/private/b"]) == ("allowed", "disallowed by robots.txt")
    rss = float(out["rss_mb"])  # type: ignore[arg-type]
    print(f"robots.txt gzip 200 MB: peak RSS {rss:.0f} MB (plain fetch {baseline_rss:.0f} MB)")
    assert rss - baseline_rss < 20, (rss, baseline_rss)
