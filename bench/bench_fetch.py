"""Fetch benchmark: CPU per request of worker.fetch.Fetcher against plain httpx, on 127.0.0.1.

    python bench/bench_fetch.py [--pages 300] [--rounds 3]

Fetches the 300 listing pages of the local news site one after the other, through the worker's
Fetcher (deadlines, retries, size cap, decoding) and through a bare httpx.AsyncClient, and
prints the wall time per request and the client's CPU time (the site runs in a child
process), medians. It also says whether `sniffio` is importable:
httpcore 1.0 tries `import sniffio` each time it sets up a lock for a request, and when the
package is missing (anyio >= 4.5 no longer depends on it) every attempt searches sys.path again.
To compare: `pip install --target /tmp/with-sniffio sniffio` and run this script again with
PYTHONPATH=/tmp/with-sniffio.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import sys
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection

import httpx
from _common import machine, median

from worker.config import HttpConfig
from worker.fetch import Fetcher
from worker.site import NewsSite


async def with_fetcher(urls: list[str]) -> None:
    async with Fetcher(HttpConfig(min_delay=0, concurrency=8, per_host=8)) as fetcher:
        for url in urls:
            await fetcher.get_html(url)


async def with_httpx(urls: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        for url in urls:
            (await client.get(url)).text  # noqa: B018


def measure(run: Callable[[list[str]], Awaitable[None]], urls: list[str]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run(urls))  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.process_time() - cpu


def serve(pages: int, conn: Connection) -> None:
    """The site, in a process of its own: the client's figures are then its own."""
    with NewsSite.synthetic(pages * 10, per_page=10) as site:
        conn.send(site.page_url_template)
        conn.recv()  # until the parent is done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    has_sniffio = importlib.util.find_spec("sniffio") is not None
    print(f"sniffio importable: {has_sniffio}")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(args.pages, child), daemon=True)
    server.start()
    try:
        template = parent.recv()
        urls = [template.format(page=n) for n in range(1, args.pages + 1)]
        results: dict[str, list[tuple[float, float]]] = {"Fetcher": [], "httpx": []}
        for _ in range(args.rounds):
            results["Fetcher"].append(measure(with_fetcher, urls))
            results["httpx"].append(measure(with_httpx, urls))
    finally:
        parent.send("done")
        server.join(timeout=10)
    for name, rows in results.items():
        wall = median([r[0] for r in rows]) / len(urls) * 1000
        cpu = median([r[1] for r in rows]) / len(urls) * 1000
        print(f"  {name:8} {wall:5.2f} ms wall, {cpu:5.2f} ms CPU of the client per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
