"""The daemon's lifecycle: start, serve until a stop signal, shut down; and its status."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from worker.daemon.reload import ReloadMixin
from worker.health import HealthServer
from worker.store import StoreError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds running passes and rounds get to finish after SIGTERM


class Daemon(ReloadMixin):
    """The long-lived daemon: scheduled passes, delivery loops and live config in one loop."""

    def stop(self) -> None:
        """Stop new work; a second call cancels what still runs without waiting."""
        if not self.stopping.is_set():
            log.info("stopping: no new passes; running ones get up to %.0fs", SHUTDOWN_GRACE)
            self.stopping.set()
        elif not self._hurry.is_set():
            log.info("stopping now: cancelling what still runs")
            self._hurry.set()

    async def serve(self, *, on_ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """Run until `stop()` (SIGTERM/SIGINT), then shut down; signals are handled here."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: self._spawn(self.reload(), name="reload:SIGHUP")
        )
        try:
            if not self.stopping.is_set():
                await self._start()
                if on_ready is not None:
                    result = on_ready()
                    if result is not None:
                        await result
            await self.stopping.wait()
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        config = self.runtime.config
        if config.http_status.port:
            self.health = HealthServer(
                self, host=config.http_status.host, port=config.http_status.port
            )
            await self.health.start()
        for source in config.sources:
            self._add_job(source)
        self.scheduler.start()
        self._sync_channel_loops()
        self._watcher = self._spawn(self._watch_config(), name="config-watch")
        self._count_matches(config.watchlists)
        log.info(
            "worker running: %d source(s), %d watchlist(s), %d channel(s); config %s",
            len(config.sources),
            len(config.watchlists),
            len(config.channels),
            self.config_path,
        )

    async def _shutdown(self) -> None:
        started = time.monotonic()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
        # running passes and delivery rounds get the grace time; then they are cancelled
        work: set[asyncio.Task[Any]] = {t for t in self._passes.values() if not t.done()}
        work |= {loop.task for loop in self._channel_loops.values() if not loop.task.done()}
        if work:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SHUTDOWN_GRACE
            hurry = asyncio.ensure_future(self._hurry.wait())
            while work and not hurry.done() and (left := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait(
                    [*work, hurry], timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                work -= done
            hurry.cancel()
            for task in work:
                task.cancel()
            if work:
                log.warning(
                    "cancelled %d task(s) still running: %s",
                    len(work),
                    ", ".join(sorted(t.get_name() for t in work)),
                )
        leftovers = [t for t in self._background if not t.done()]
        for task in leftovers:
            if not task.get_name().startswith("retire-"):
                task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=SHUTDOWN_GRACE)
        if self.health is not None:
            await self.health.stop()
        self.runtime.close_notifier()
        log.info("stopped in %.1fs", time.monotonic() - started)

    async def status(self) -> dict[str, Any]:
        """What /healthz reports: the scheduler, the database, and each source's last pass."""
        store = self.runtime.store

        def read_db() -> tuple[bool, list[Any]]:
            if not store.ping():
                return False, []
            try:
                return True, store.source_status()
            except StoreError:
                return False, []

        db_ok, rows = await asyncio.to_thread(read_db)
        open_incidents: list[dict[str, Any]] = []
        if db_ok:
            try:
                open_incidents = await asyncio.to_thread(store.open_incidents)
            except StoreError:
                pass
        known = {row.name: row for row in rows}
        running = self.scheduler.running and not self.stopping.is_set()
        sources: dict[str, dict[str, Any]] = {}
        for source in self.runtime.config.sources:
            row = known.get(source.name)
            job = self.scheduler.get_job(source.name) if running else None
            task = self._passes.get(source.name)
            last_pass = row.last_pass_at if row else None
            error = row.last_error if row else None
            breaker = self.runtime.breakers.get(source.name)
            until = breaker.until if breaker is not None else None
            sources[source.name] = {
                "ok": None if last_pass is None else error is None,
                "last_pass": _iso(last_pass),
                "last_success": _iso(row.last_success_at if row else None),
                "last_error": error,
                "last_pages": row.last_pages if row else None,
                "last_new": row.last_new if row else None,
                "last_duration": row.last_duration if row else None,
                "baselined": bool(row and row.baselined_at),
                "last_walk": _iso(row.walked_at if row else None),
                "walk_seen": row.walk_seen if row else None,
                "walk_total": row.walk_total if row else None,
                "walk_incomplete": bool(row and row.walk_missing),
                "running": task is not None and not task.done(),
                "next_run": _iso(job.next_run_time) if job is not None else None,
                "failures": row.failures if row else 0,  # failed passes in a row
                # "open": passes spaced out until `breaker_until` (after `[http] breaker_after`)
                "breaker": "open" if until is not None else "closed",
                "breaker_until": _iso(until),
                "active": source.is_active(datetime.now(UTC), self.runtime.config.timezone),
            }
        return {
            "status": "ok" if running and db_ok else "unhealthy",
            "scheduler": "running" if running else "stopped",
            "database": "ok" if db_ok else "unreachable",
            "failing_sources": sorted(n for n, s in sources.items() if s["ok"] is False),
            "sources": sources,
            "incidents": open_incidents,  # the watchdog's open incidents (issue #11)
            # the last reload: {"reload": null | "applied" | "refused", "at", "problems"}
            "config": {"file": str(self.config_path), **self.metrics.last_reload},
        }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None
