"""Live config: watch the file, let an edit settle, validate it and hand it to the daemon."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from worker.config import Config, ConfigError, parse_config
from worker.daemon.collector import collector_paused
from worker.daemon.tasks import file_digest, wait_any
from worker.health import Metrics
from worker.notify import check_channel_urls

log = logging.getLogger(__name__)

CONFIG_POLL = 1.0  # seconds between two checks of the config file's content
CONFIG_SETTLE = 0.2  # a changed file is read again after this, until two reads agree
CONFIG_SETTLE_MAX = 5  # ... at most this many times (a file rewritten without pause)


class ConfigWatcher:
    """Reads the config file when its content changes (or on `reload()`, SIGHUP), validates it
    and calls `apply` with a valid Config; an invalid one is logged and the last good one stays.
    """

    def __init__(
        self,
        path: Path,
        apply: Callable[[Config], Awaitable[None]],
        metrics: Metrics,
        stopping: asyncio.Event,
        *,
        digest: bytes | None = None,
    ) -> None:
        self.path = path
        self.apply = apply
        self.metrics = metrics
        self.stopping = stopping
        self.digest = digest if digest is not None else file_digest(path)
        self.task: asyncio.Task[None] | None = None  # the watch loop, once started
        self._lock = asyncio.Lock()
        self._missing_logged = False

    def read(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except OSError:
            return None

    async def watch(self) -> None:
        """Reload when the file's content changes (in place or by rename) within ~1.5 s.

        Nothing ends this loop but the stop: an error in one check is logged and the next check
        runs a second later, on the last good config."""
        while not self.stopping.is_set():
            await wait_any((self.stopping,), seconds=CONFIG_POLL)
            if self.stopping.is_set():
                return
            try:
                await self.check_file()
            except Exception:
                log.exception("config watcher: check failed; keeping the last good config")

    async def check_file(self) -> None:
        """One look at the file: reload it when its content changed."""
        data = await asyncio.to_thread(self.read)
        if data is None:
            if not self._missing_logged:
                log.warning(
                    "config file %s cannot be read; keeping the last good config", self.path
                )
                self._missing_logged = True
            return
        self._missing_logged = False
        if hashlib.sha256(data).digest() == self.digest:
            return
        # let an editor finish writing: read until two reads CONFIG_SETTLE apart agree
        for _ in range(CONFIG_SETTLE_MAX):
            await asyncio.sleep(CONFIG_SETTLE)
            again = await asyncio.to_thread(self.read)
            if again is None or again == data:
                break
            data = again
        await self.reload(data)

    async def reload(self, data: bytes | None = None) -> bool:
        """Validate the config file (or `data`, its content) and apply it.

        Returns False, logs each problem as `worker check` prints it and keeps the last good
        config when the new one is invalid (or cannot be applied).
        """
        # the collector paused from the parse to the swap: the new config's objects, built in
        # threads, frozen by the daemon once accepted, never walked by a collection that would
        # pause the loop (collector.py)
        async with self._lock:
            with collector_paused():
                return await self._reload(data)

    async def _reload(self, data: bytes | None) -> bool:
        if data is None:
            data = await asyncio.to_thread(self.read)
        if data is not None:
            self.digest = hashlib.sha256(data).digest()
        try:
            new = await asyncio.to_thread(self.parse, data)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error(
                    "config reload refused, keeping the last good config: %s: %s",
                    exc.path,
                    problem,
                )
            self.metrics.observe_reload(False, [f"{exc.path}: {p}" for p in exc.problems])
            return False
        except Exception as exc:  # a validator's bug: refused like an invalid config
            log.error(
                "config reload refused, keeping the last good config: %s: cannot validate it (%s)",
                self.path,
                type(exc).__name__,
            )
            self.metrics.config_reloads.labels(outcome="invalid").inc()
            return False
        try:
            await self.apply(new)
        except Exception as exc:  # e.g. the new [http_status] port is taken
            log.error("config reload failed while applying it: %s", exc)
            self.metrics.observe_reload(False, [f"while applying it: {exc}"])
            return False
        self.metrics.observe_reload(True)
        return True

    def parse(self, data: bytes | None) -> Config:
        if data is None:
            raise ConfigError(self.path, ["file not found"])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(self.path, [f"cannot read the file: {exc}"]) from None
        return parse_config(text, self.path, check_channels=check_channel_urls)
