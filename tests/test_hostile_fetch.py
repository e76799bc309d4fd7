"""Hostile bodies against the fetcher, measured in a subprocess: stacked content-encodings are
refused from the header, a single-layer bomb stops at `max_bytes`, and the peak RSS of the
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
    routes = {
        "/plain": answer(body=page),
        "/gzip-gzip": answer(body=twice, Content_Encoding="gzip, gzip"),
        "/deflate3": answer(body=zlib3, Content_Encoding="deflate, deflate, deflate"),
        "/gzip-200mb": answer(body=inner, Content_Encoding="gzip"),
        "/br-200mb": answer(body=br, Content_Encoding="br"),
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


def test_an_encoding_other_than_gzip_deflate_br_is_a_clear_fetch_error(
    bombs: HostileServer,
) -> None:
    out = fetch_in_subprocess(bombs.url("/compress"))
    assert out["error"] == "unsupported content-encoding 'compress' (accepted: gzip, deflate, br)"


def test_stacked_bomb_is_small_on_the_wire(bombs: HostileServer) -> None:
    sizes = bombs.sizes  # type: ignore[attr-defined]
    assert sizes["/gzip-gzip"] < 10_000 and sizes["/deflate3"] < 10_000


def test_our_accept_encoding_names_only_what_we_decode(bombs: HostileServer) -> None:
    seen: list[HostileRequest] = []
    bombs.add("/echo", lambda r: seen.append(r) or answer(body="<p>hi</p>"))
    assert "ok" in fetch_in_subprocess(bombs.url("/echo"))
    assert seen[0].headers["accept-encoding"] == "gzip, deflate, br"
