"""Live config: watch the file, let an edit settle, validate it and apply the difference."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from worker.config import Config, ConfigError, WatchlistConfig, parse_config
from worker.daemon.core import _wait_any
from worker.daemon.schedule import ScheduleMixin, _schedule_key, trigger_for
from worker.fetch import Fetcher
from worker.health import HealthServer
from worker.logs import set_format
from worker.search import changed_watchlists, log_would_have_matched

if TYPE_CHECKING:
    from worker.daemon.lifecycle import Daemon

log = logging.getLogger(__name__)

CONFIG_POLL = 1.0  # seconds between two checks of the config file's content
CONFIG_SETTLE = 0.2  # a changed file is read again after this, until two reads agree
CONFIG_SETTLE_MAX = 5  # ... at most this many times (a file rewritten without pause)


class ReloadMixin(ScheduleMixin):
    """The daemon's live config: the watcher, `reload` and applying a new config."""

    def _read(self) -> bytes | None:
        try:
            return self.config_path.read_bytes()
        except OSError:
            return None

    async def _watch_config(self) -> None:
        """Reload when the file's content changes (in place or by rename) within ~1.5 s.

        Nothing ends this loop but the stop: an error in one check is logged and the next check
        runs a second later, on the last good config."""
        while not self.stopping.is_set():
            await _wait_any((self.stopping,), seconds=CONFIG_POLL)
            if self.stopping.is_set():
                return
            try:
                await self._check_config_file()
            except Exception:
                log.exception("config watcher: check failed; keeping the last good config")

    async def _check_config_file(self) -> None:
        """One look at the file: reload it when its content changed."""
        data = await asyncio.to_thread(self._read)
        if data is None:
            if not self._missing_logged:
                log.warning(
                    "config file %s cannot be read; keeping the last good config",
                    self.config_path,
                )
                self._missing_logged = True
            return
        self._missing_logged = False
        if hashlib.sha256(data).digest() == self._config_digest:
            return
        # let an editor finish writing: read until two reads CONFIG_SETTLE apart agree
        for _ in range(CONFIG_SETTLE_MAX):
            await asyncio.sleep(CONFIG_SETTLE)
            again = await asyncio.to_thread(self._read)
            if again is None or again == data:
                break
            data = again
        await self.reload(data)

    async def reload(self, data: bytes | None = None) -> bool:
        """Validate the config file (or `data`, its content) and apply the difference.

        Returns False, logs each problem as `worker check` prints it and keeps the last good
        config when the new one is invalid.
        """
        async with self._reload_lock:
            if data is None:
                data = await asyncio.to_thread(self._read)
            if data is not None:
                self._config_digest = hashlib.sha256(data).digest()
            try:
                new = await asyncio.to_thread(self._parse, data)
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
                    "config reload refused, keeping the last good config: %s: "
                    "cannot validate it (%s)",
                    self.config_path,
                    type(exc).__name__,
                )
                self.metrics.config_reloads.labels(outcome="invalid").inc()
                return False
            try:
                await self._apply(new)
            except Exception as exc:  # e.g. the new [http_status] port is taken
                log.error("config reload failed while applying it: %s", exc)
                self.metrics.observe_reload(False, [f"while applying it: {exc}"])
                return False
            self.metrics.observe_reload(True)
            return True

    def _parse(self, data: bytes | None) -> Config:
        if data is None:
            raise ConfigError(self.config_path, ["file not found"])
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(self.config_path, [f"cannot read the file: {exc}"]) from None
        return parse_config(text, self.config_path)

    async def _apply(self, new: Config) -> None:
        runtime = self.runtime
        old = runtime.config
        if new == old:
            log.info("config file changed; nothing to apply")
            return
        if new.database != old.database:
            log.warning("config: `database` changed; restart the worker to use the new one")
            new = new.model_copy(update={"database": old.database})
        if new.http_status != old.http_status:
            await self._move_health(new)
        old_notifier, old_fetcher = runtime.notifier, runtime.fetcher
        runtime.apply(new)
        if runtime.notifier is not old_notifier:
            self._retire_notifier(old_notifier)
        if new.http != old.http:
            runtime.fetcher = Fetcher(new.http)
            self._retire_fetcher(old_fetcher)
            log.info("config: [http] changed; new passes use a new HTTP client")
        if new.logging != old.logging:
            logging.getLogger().setLevel(new.logging.level)
            if new.logging.format != old.logging.format:
                set_format(new.logging.format)
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        for name in old_sources.keys() - new_sources.keys():
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            log.info("config: source %s removed (a pass in flight finishes)", name)
        for name, source in new_sources.items():
            before = old_sources.get(name)
            if before is None:
                self._add_job(source)
                log.info("config: source %s added", name)
            elif _schedule_key(before) != _schedule_key(source) or new.timezone != old.timezone:
                self.scheduler.reschedule_job(name, trigger=trigger_for(source, new.tz))
                log.info("config: source %s rescheduled", name)
            elif before != source:
                log.info("config: source %s changed (from its next pass on)", name)
        self._sync_channel_loops()
        self.wake_deliveries(channels_changed=new.channels != old.channels)
        self._count_matches(changed_watchlists(old.watchlists, new.watchlists))
        log.info(
            "config reloaded: %d source(s), %d watchlist(s), %d channel(s)",
            len(new.sources),
            len(new.watchlists),
            len(new.channels),
        )

    def _count_matches(self, watchlists: Sequence[WatchlistConfig]) -> None:
        """Log, in the background, what new or changed watchlists would have matched."""
        if watchlists:
            store = self.runtime.store
            self._spawn(
                asyncio.to_thread(log_would_have_matched, store, list(watchlists)),
                name="would-have-matched",
            )

    def _retire_fetcher(self, old: Fetcher) -> None:
        """Close a replaced Fetcher once the passes that use it have finished."""
        using = [task for task in self._passes.values() if not task.done()]

        async def close_later() -> None:
            if using:
                await asyncio.wait(using)
            await old.aclose()

        self._spawn(close_later(), name="retire-fetcher")

    async def _move_health(self, new: Config) -> None:
        status = new.http_status
        if self.health is not None:
            await self.health.stop()
            self.health = None
        if status.port:
            health = HealthServer(cast("Daemon", self), host=status.host, port=status.port)
            await health.start()
            self.health = health
