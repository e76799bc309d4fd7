"""`run_daemon`: open the database, build the runtime, serve the daemon and clean up."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import sqlalchemy as sa

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


class SqliteLock:
    """An exclusive lock on `DB.lock` beside a SQLite database file, held while the daemon runs:
    SQLite serves one daemon (a fleet needs PostgreSQL). The kernel drops it when the process
    ends, however it ends, so a killed daemon never leaves a stale lock."""

    def __init__(self, database_url: str) -> None:
        self.path: Path | None = None
        self._file: IO[str] | None = None
        try:
            url = sa.engine.make_url(database_url)
        except (sa.exc.ArgumentError, ValueError):
            return
        name = url.database or ""
        if url.get_backend_name() == "sqlite" and name and name != ":memory:":
            if not name.startswith("file:") and "mode=memory" not in str(url.query):
                self.path = Path(name).with_name(Path(name).name + ".lock")

    def acquire(self) -> str | None:
        """None when this process holds the lock (or needs none), else why it cannot."""
        if self.path is None:
            return None
        try:
            handle = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            log.warning("cannot open %s (%s); not checking for a second daemon", self.path, exc)
            return None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            return (
                f"another `worker run` (pid {holder}) is using this SQLite database; SQLite "
                "serves one daemon at a time: stop it first, or use PostgreSQL to run several "
                "replicas (README: Running a fleet)"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock; the file stays (no unlink race)
            self._file = None


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
    lock = SqliteLock(config.database)
    refused = lock.acquire()
    if refused is not None:
        log.error("cannot start: %s", refused)
        store = None
    else:
        store = await _open_store(config.database)
    if store is None:
        lock.release()
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
        lock.release()
    return 0
