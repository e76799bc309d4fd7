"""`worker demo`: the whole loop, offline, in one command.

Serves a local copy of a news listing on 127.0.0.1, runs the daemon against it with alerts to the
console, and publishes a new matching article every few seconds. The first pass is the silent
baseline; every article published afterwards is alerted once.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import tempfile
from pathlib import Path

from worker.config import load_config
from worker.daemon import Daemon, run_daemon
from worker.notify import check_channel_urls
from worker.site import SELECT_TOML, NewsSite

log = logging.getLogger(__name__)

PUBLISH_EVERY = 5.0  # seconds between two published articles
FIRST_PUBLISH = 1.0  # seconds after the baseline pass
SOURCE = "demo-search"

DEMO_CONFIG = """\
database = "sqlite:///{db}"

[http]
min_delay = 0
timeout = 10

[alerts]
retry_base = "2s"

[channels]
console = "console://"

[[sources]]
name = "{source}"
url = "{search_url}"
every = "3s"

{select}
{watchlists}"""

# the demo's watchlists (console alerts); the benchmarks use them too
WATCHLISTS_TOML = """\
[[watchlists]]
name = "rail"
keywords = ["railway", "rail*", "\\"Belt and Road\\""]
channels = ["console"]

[[watchlists]]
name = "water"
keywords = ["glacier*", "water", "hydropower"]
channels = ["console"]
"""

HEADLINES = [
    (
        "Kazakhstan and China Open Second Railway Crossing at Khorgos",
        "A second railway crossing opened on the Kazakh-Chinese border, doubling freight capacity "
        "on the Belt and Road route between Lianyungang and the Caspian ports.",
    ),
    (
        "Kyrgyzstan Builds Three More Artificial Glaciers in Batken",
        "Ice towers storing water through the winter now supply villages in Batken region, "
        "where glaciers have retreated sharply over the last decades.",
    ),
    (
        "Uzbekistan Orders Twenty High-Speed Trains for the Tashkent-Samarkand Rail Line",
        "The new rolling stock will cut travel time on the busiest rail corridor in the country.",
    ),
    (
        "Tajikistan Hydropower Exports to Afghanistan Reach Record High",
        "Electricity from the Nurek and Rogun plants flows south as demand for power and water "
        "management cooperation grows.",
    ),
    (
        "Trans-Caspian Railway Corridor Sees Container Traffic Double",
        "Freight forwarders report record volumes on the Middle Corridor rail route via Aktau.",
    ),
]


def _headlines():
    for n in itertools.count(1):
        for title, summary in HEADLINES:
            yield (title if n == 1 else f"{title} (update {n})"), summary


async def _publisher(site: NewsSite, daemon: Daemon) -> None:
    """Once the first (silent) pass is stored, publish a matching article every few seconds."""
    store = daemon.runtime.store
    while not await asyncio.to_thread(store.is_baselined, SOURCE):
        if await _stopped(daemon, 0.5):
            return
    print("[demo] first pass stored silently (the baseline); now publishing", flush=True)
    wait = FIRST_PUBLISH
    for title, summary in _headlines():
        if await _stopped(daemon, wait):
            return
        site.publish(title, summary)
        print(f"[demo] published on the local site: {title}", flush=True)
        wait = PUBLISH_EVERY


async def _stopped(daemon: Daemon, seconds: float) -> bool:
    """Wait `seconds`; True when the daemon stopped meanwhile."""
    try:
        async with asyncio.timeout(seconds):
            await daemon.stopping.wait()
    except TimeoutError:
        return False
    return True


async def _demo(seconds: float | None) -> int:
    with tempfile.TemporaryDirectory(prefix="worker-demo-") as tmp, NewsSite.sample() as site:
        path = Path(tmp) / "worker.toml"
        path.write_text(
            DEMO_CONFIG.format(
                db=Path(tmp) / "demo.db",
                search_url=site.search_url,
                source=SOURCE,
                select=SELECT_TOML,
                watchlists=WATCHLISTS_TOML,
            ),
            encoding="utf-8",
        )
        config = load_config(path, check_channels=check_channel_urls)
        print(
            f"[demo] local news site: {site.search_url}\n"
            f"[demo] a new article every {PUBLISH_EVERY:.0f}s; alerts print below; "
            "Ctrl-C stops.",
            flush=True,
        )
        tasks: list[asyncio.Task[None]] = []

        def ready(daemon: Daemon) -> None:
            tasks.append(asyncio.create_task(_publisher(site, daemon)))
            if seconds is not None:
                asyncio.get_running_loop().call_later(seconds, daemon.stop)

        code = await run_daemon(path, config, on_ready=ready)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return code


def run_demo(seconds: float | None = None) -> int:
    return asyncio.run(_demo(seconds))
