"""`run_daemon`: open the database, build the runtime, serve the daemon and clean up."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from worker.config import Config
from worker.daemon.lifecycle import Daemon
from worker.daemon.tasks import file_digest
from worker.fetch import Fetcher
from worker.pipeline import Runtime
from worker.store import Store, StoreError

log = logging.getLogger(__name__)


async def _open_store(url: str) -> Store | None:
    """The store with its schema migrated, or None (logged) when the database cannot be used."""
    try:
        store = Store(url)
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        return None
    try:
        await asyncio.to_thread(store.migrate)
    except StoreError as exc:
        log.error("cannot start: %s", exc)
        store.close()
        return None
    return store


async def run_daemon(
    config_path: str | Path,
    config: Config,
    *,
    on_ready: Callable[[Daemon], Awaitable[None] | None] | None = None,
) -> int:
    """`worker run`: run until SIGTERM/SIGINT (or `daemon.stop()`); return the exit code.

    0 after a clean stop; 1 when the database cannot be opened or migrated at start.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()  # a signal during start-up stops the daemon before it runs
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    digest = await asyncio.to_thread(file_digest, Path(config_path))
    store = await _open_store(config.database)
    if store is None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        return 1
    fetcher = Fetcher(config.http)
    runtime = Runtime(config, store=store, fetcher=fetcher)
    try:
        daemon = Daemon(runtime, config_path, stopping=stopping, config_digest=digest)
        await daemon.serve(on_ready=(lambda: on_ready(daemon)) if on_ready else None)
        # untried claims go back; a send cancelled mid-way keeps its claim (its thread may
        # still be sending) until the lease ends
        released = await runtime.release_claims()
        if released:
            log.info("gave back %d claimed alert(s) not tried", released)
    finally:
        await runtime.fetcher.aclose()
        if runtime.fetcher is not fetcher:
            await fetcher.aclose()
        store.close()
    return 0
