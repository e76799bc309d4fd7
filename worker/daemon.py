"""`worker run`: the long-lived daemon.

One APScheduler job per source (its `every` or `cron`, first run at start, a little jitter, never
two passes of one source at once, missed runs coalesced); a delivery loop that sends what is due
(woken after every pass, and at the next retry time); a config watcher that applies valid edits
live and keeps the last good config on a broken one; an optional health/metrics listener; and a
graceful stop on SIGTERM/SIGINT: no new work, running passes get a bounded time to finish, the
rest is cancelled (what was stored stays stored, pending alerts stay pending), then the HTTP
client and the database are closed and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Config, ConfigError, SourceConfig, load_config
from worker.fetch import Fetcher
from worker.health import HealthServer, Metrics
from worker.pipeline import PassReport, Runtime
from worker.store import Store

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds running passes get to finish after SIGTERM
DELIVERY_POLL = 30.0  # seconds between two delivery rounds when nothing wakes the loop
CONFIG_POLL = 1.0  # seconds between two checks of the config file's content


def _trigger(source: SourceConfig) -> IntervalTrigger | CronTrigger:
    if source.cron is not None:
        return CronTrigger.from_crontab(source.cron, timezone=UTC)
    every = source.interval
    return IntervalTrigger(seconds=every, jitter=min(every * 0.1, 30.0), timezone=UTC)


def _schedule_key(source: SourceConfig) -> tuple[Any, ...]:
    return (source.every, source.cron)


class Daemon:
    def __init__(self, runtime: Runtime, config_path: str | Path) -> None:
        self.runtime = runtime
        self.config_path = Path(config_path)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self._wake_delivery = asyncio.Event()
        self._passes: dict[str, asyncio.Task[PassReport]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._config_digest = self._digest()
        self.health: HealthServer | None = None

    # --- sources ------------------------------------------------------------------------------

    def _add_job(self, source: SourceConfig, *, first_run: bool = True) -> None:
        self.scheduler.add_job(
            self._start_pass,
            _trigger(source),
            args=[source.name],
            id=source.name,
            name=f"pass:{source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
            next_run_time=datetime.now(UTC) if first_run else None,
        )

    async def _start_pass(self, name: str) -> None:
        """The scheduler's job: start a pass unless one of this source is still running."""
        if self.stopping.is_set():
            return
        running = self._passes.get(name)
        if running is not None and not running.done():
            log.info("source=%s previous pass still running; skipping this run", name)
            return
        try:
            source = self.runtime.config.source(name)
        except KeyError:
            return
        task = asyncio.create_task(self._pass(source), name=f"pass:{name}")
        self._passes[name] = task

    async def _pass(self, source: SourceConfig) -> PassReport:
        report = await self.runtime.run_pass(source)
        self.metrics.observe_pass(report)
        if report.crawl.alerts:
            self._wake_delivery.set()
        return report

    # --- deliveries -------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        while not self.stopping.is_set():
            self._wake_delivery.clear()
            try:
                report = await self.runtime.deliver()
                self.metrics.observe_delivery(report)
                next_due = await asyncio.to_thread(self.runtime.store.next_due_at)
            except Exception:
                log.exception("delivery round failed; retrying in %.0fs", DELIVERY_POLL)
                next_due = None
            wait = DELIVERY_POLL
            if next_due is not None:
                wait = min(wait, max(0.2, (next_due - datetime.now(UTC)).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await _first(self._wake_delivery.wait(), self.stopping.wait())

    # --- live config --------------------------------------------------------------------------

    def _digest(self) -> bytes | None:
        try:
            return hashlib.sha256(self.config_path.read_bytes()).digest()
        except OSError:
            return None

    async def _watch_config(self) -> None:
        """Reload when the file's content changes (in place or by rename), within ~1 s."""
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CONFIG_POLL):
                    await self.stopping.wait()
            digest = await asyncio.to_thread(self._digest)
            if digest is not None and digest != self._config_digest:
                self._config_digest = digest
                self.reload()

    def reload(self) -> bool:
        """Validate the config file and apply the difference; keep the old one when invalid."""
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error(
                    "config reload refused, keeping the last good config: %s: %s", exc.path, problem
                )
            self.metrics.config_reloads.labels(outcome="invalid").inc()
            return False
        old = self.runtime.config
        for key in ("database", "http"):
            if getattr(new, key) != getattr(old, key):
                log.warning("config: [%s] changed; restart the worker to apply it", key)
        try:
            self.runtime.apply(new)
        except Exception as exc:
            log.error("config reload refused, keeping the last good config: %s", exc)
            self.metrics.config_reloads.labels(outcome="invalid").inc()
            return False
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        for name in old_sources.keys() - new_sources.keys():
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(name)
            log.info("config: source %s removed", name)
        for name, source in new_sources.items():
            before = old_sources.get(name)
            if before is None:
                self._add_job(source)
                log.info("config: source %s added", name)
            elif _schedule_key(before) != _schedule_key(source):
                self.scheduler.reschedule_job(name, trigger=_trigger(source))
                log.info("config: source %s rescheduled", name)
        log.info(
            "config reloaded: %d source(s), %d watchlist(s), %d channel(s)",
            len(new.sources),
            len(new.watchlists),
            len(new.channels),
        )
        self.metrics.config_reloads.labels(outcome="applied").inc()
        self._wake_delivery.set()
        return True

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        if not self.stopping.is_set():
            log.info(
                "stopping: no new passes; waiting up to %.0fs for running ones", SHUTDOWN_GRACE
            )
            self.stopping.set()

    async def serve(self, *, on_ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload() and None)
        config = self.runtime.config
        status = config.http_status
        if status.port:
            self.health = HealthServer(self, host=status.host, port=status.port)
            await self.health.start()
        for source in config.sources:
            self._add_job(source)
        self.scheduler.start()
        self._tasks = [
            asyncio.create_task(self._delivery_loop(), name="deliveries"),
            asyncio.create_task(self._watch_config(), name="config-watch"),
        ]
        log.info(
            "worker running: %d source(s), %d watchlist(s), %d channel(s); config %s",
            len(config.sources),
            len(config.watchlists),
            len(config.channels),
            self.config_path,
        )
        if on_ready is not None:
            result = on_ready()
            if result is not None:
                await result
        try:
            await self.stopping.wait()
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _shutdown(self) -> None:
        started = time.monotonic()
        self.scheduler.shutdown(wait=False)
        running = [t for t in self._passes.values() if not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("cancelled %d pass(es) still running at shutdown", len(pending))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.health is not None:
            await self.health.stop()
        log.info("stopped in %.1fs", time.monotonic() - started)

    def status(self) -> dict[str, Any]:
        """What /healthz reports."""
        db_ok = self.runtime.store.ping()
        sources = {}
        if db_ok:
            for s in self.runtime.store.source_status():
                sources[s.name] = {
                    "last_pass": _iso(s.last_pass_at),
                    "last_success": _iso(s.last_success_at),
                    "last_error": s.last_error,
                    "baselined": s.baselined_at is not None,
                }
        for source in self.runtime.config.sources:
            sources.setdefault(
                source.name,
                {"last_pass": None, "last_success": None, "last_error": None, "baselined": False},
            )
            job = self.scheduler.get_job(source.name) if self.scheduler.running else None
            sources[source.name]["next_run"] = _iso(job.next_run_time) if job else None
        running = self.scheduler.running and not self.stopping.is_set()
        return {
            "status": "ok" if running and db_ok else "unhealthy",
            "scheduler": "running" if running else "stopped",
            "database": "ok" if db_ok else "unreachable",
            "sources": sources,
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


async def _first(*aws: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_daemon(
    config_path: str | Path,
    config: Config,
    *,
    on_ready: Callable[[Daemon], Awaitable[None] | None] | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or `daemon.stop()`); return the exit code."""
    store = Store(config.database)
    try:
        await asyncio.to_thread(store.migrate)
        async with Fetcher(config.http) as fetcher:
            runtime = Runtime(config, store=store, fetcher=fetcher)
            daemon = Daemon(runtime, config_path)
            await daemon.serve(on_ready=(lambda: on_ready(daemon)) if on_ready else None)
    finally:
        store.close()
    return 0
