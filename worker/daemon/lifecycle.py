"""`Daemon`: the parts it owns, and its lifecycle read top to bottom: start, serve, shut down.

The parts, each with its own state: `SourceJobs` (the scheduler and the passes it starts),
`ChannelLoops` (one delivery loop per channel), `ConfigWatcher` (the file, validated into a
Config handed to `Daemon.apply`) and the `HealthServer` (given functions to call, not the
daemon). `apply` is the one place that swaps the matcher, the notifier and the HTTP client.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.config import Config, SourceConfig, WatchlistConfig
from worker.daemon.collector import collector_paused, keep_out_of_full_collections
from worker.daemon.deliveries import ChannelLoops
from worker.daemon.fleet import FleetJobs, replica_id
from worker.daemon.jobs import Jobs, Passes, SourceJobs
from worker.daemon.snapshot import HEALTH_PUBLISH, HealthSnapshot, LoopState
from worker.daemon.tasks import Tasks, wait_any
from worker.daemon.watcher import ConfigWatcher
from worker.fetch import Fetcher
from worker.health import HealthServer, Metrics, feed_page, metrics_text
from worker.logs import set_format
from worker.pipeline import PassReport, Prepared, Runtime
from worker.search import changed_watchlists, log_would_have_matched

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds running passes and rounds get to finish after SIGTERM


class Daemon:
    """The long-lived daemon: scheduled passes, delivery loops and live config in one loop."""

    def __init__(
        self,
        runtime: Runtime,
        config_path: str | Path,
        *,
        stopping: asyncio.Event | None = None,
        config_digest: bytes | None = None,
    ) -> None:
        self.runtime = runtime
        self.config_path = Path(config_path)
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.hurry = asyncio.Event()  # a second stop signal: cancel now
        self.metrics = Metrics()
        self.tasks = Tasks()
        passes = Passes(runtime, self.tasks, self.stopping, self._on_pass)
        self.replica = replica_id(runtime.config.fleet.replica)
        self.metrics.replica.labels(replica=self.replica).set(1)
        # on PostgreSQL the daemon is a replica of a fleet sharing the sources' schedule; on
        # SQLite (one process per database file) it schedules them itself
        self.fleet = runtime.store.dialect == "postgresql" and runtime.config.fleet.enabled
        self.jobs: Jobs = (
            FleetJobs(passes, self.replica, on_start=self.metrics.lateness.observe)
            if self.fleet
            else SourceJobs(passes, on_start=self.metrics.lateness.observe)
        )
        self.channels = ChannelLoops(runtime, self.tasks, self.metrics, self.stopping)
        self.watcher = ConfigWatcher(
            self.config_path, self.apply, self.metrics, self.stopping, digest=config_digest
        )
        self.health: HealthServer | None = None
        # publish()'s view of the config: (config, names, sources with active hours)
        self._published: tuple[Config | None, list[str], list[SourceConfig]] = (None, [], [])
        # what /healthz answers, kept in memory (the loop's part and the database's part)
        self.snapshot = HealthSnapshot(
            runtime.store,
            replica=self.replica,
            fleet=self.fleet,
            live_replicas=self.jobs.replicas_now if isinstance(self.jobs, FleetJobs) else None,
            config=lambda: {"file": str(self.config_path), **self.metrics.last_reload},
        )

    # --- the lifecycle -------------------------------------------------------------------------

    async def serve(self, *, on_ready: Callable[[], Awaitable[None] | None] | None = None) -> None:
        """Run until `stop()` (SIGTERM/SIGINT), then shut down; signals are handled here."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: self.tasks.spawn(self.reload(), name="reload:SIGHUP")
        )
        try:
            if not self.stopping.is_set():
                await self.startup()
                if on_ready is not None:
                    result = on_ready()
                    if result is not None:
                        await result
            await self.stopping.wait()  # the main loop: the parts run as tasks until the stop
        finally:
            await self.shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def startup(self) -> None:
        config = self.runtime.config
        self.publish()
        self.snapshot.start()
        await self._start_health(config)
        await self.jobs.start()
        self.publish()
        self.tasks.spawn(self._publish_loop(), name="health-publish")
        self.channels.sync()
        self.watcher.task = self.tasks.spawn(self.watcher.watch(), name="config-watch")
        self._count_matches(config.watchlists)
        # what start-up built (modules, the config, the matcher) lives as long as the process:
        # out of the collector's full passes, which otherwise pause the loop for longer the more
        # watchlists there are (a reload's build in its thread too); garbage collected first
        gc.collect()
        gc.freeze()
        log.info(
            "worker running: %d source(s), %d watchlist(s), %d channel(s); config %s",
            len(config.sources),
            len(config.watchlists),
            len(config.channels),
            self.config_path,
        )

    def stop(self) -> None:
        """Stop new work; a second call cancels what still runs without waiting."""
        if not self.stopping.is_set():
            log.info("stopping: no new passes; running ones get up to %.0fs", SHUTDOWN_GRACE)
            self.stopping.set()
        elif not self.hurry.is_set():
            log.info("stopping now: cancelling what still runs")
            self.hurry.set()

    async def shutdown(self) -> None:
        started = time.monotonic()
        self.jobs.stop()
        self.stopping.set()
        self.publish()  # /healthz: stopped
        if self.watcher.task is not None:
            self.watcher.task.cancel()
        # running passes and delivery rounds get the grace time; then they are cancelled
        work: set[asyncio.Task[Any]] = {*self.jobs.in_flight(), *self.channels.in_flight()}
        if work:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SHUTDOWN_GRACE
            hurry = asyncio.ensure_future(self.hurry.wait())
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
        leftovers = [t for t in self.tasks.running if not t.done()]
        for task in leftovers:
            if not task.get_name().startswith("retire-"):
                task.cancel()
        if leftovers:
            await asyncio.wait(leftovers, timeout=SHUTDOWN_GRACE)
        await self.jobs.close()
        if self.health is not None:
            await self.health.stop()
        await asyncio.to_thread(self.snapshot.stop, SHUTDOWN_GRACE)
        self.runtime.close_notifier()
        log.info("stopped in %.1fs", time.monotonic() - started)

    # --- live config ---------------------------------------------------------------------------

    async def reload(self, data: bytes | None = None) -> bool:
        """Validate the config file (or `data`, its content) and apply it (see ConfigWatcher)."""
        return await self.watcher.reload(data)

    async def apply(self, new: Config) -> None:
        """Switch to a valid new config: the one place where the parts get what changed."""
        runtime = self.runtime
        old = runtime.config
        # comparing two configs of 10,000 watchlists (~35 ms), the changed ones (~50 ms) and the
        # new matcher and routes (seconds): in a thread, while the loop goes on with the old ones
        built = await asyncio.to_thread(self._build, old, new)
        if built is None:
            log.info("config file changed; nothing to apply")
            return
        prepared, changed = built
        if new.database != old.database:
            log.warning("config: `database` changed; restart the worker to use the new one")
            new = new.model_copy(update={"database": old.database})
        if new.fleet != old.fleet:
            log.warning("config: [fleet] changed; restart the worker to apply it")
            new = new.model_copy(update={"fleet": old.fleet})
        if new.http_status != old.http_status:
            await self._move_health(new)
        # the matcher, the notifier and the HTTP client: passes and rounds in flight finish
        # with the ones they started with; the new matcher and routes swap in at once
        old_notifier, old_fetcher = runtime.notifier, runtime.fetcher
        runtime.apply(new, prepared)
        if runtime.notifier is not old_notifier:
            self.channels.retire(old_notifier)
        if new.http != old.http:
            runtime.fetcher = Fetcher(new.http)
            self._retire_fetcher(old_fetcher)
            log.info("config: [http] changed; new passes use a new HTTP client")
        if new.logging != old.logging:
            logging.getLogger().setLevel(new.logging.level)
            if new.logging.format != old.logging.format:
                set_format(new.logging.format)
        await self.jobs.apply(old, new)
        self.publish()
        self.snapshot.poke()
        self.channels.sync()
        self.channels.wake(channels_changed=new.channels != old.channels)
        self._count_matches(changed)
        log.info(
            "config reloaded: %d source(s), %d watchlist(s), %d channel(s)",
            len(new.sources),
            len(new.watchlists),
            len(new.channels),
        )

    @staticmethod
    def _build(old: Config, new: Config) -> tuple[Prepared, list[WatchlistConfig]] | None:
        """In a thread: None when `new` is `old`, else the new matcher and routes, and the
        watchlists that are new or changed; with the collector paused, and what was built kept
        out of its full passes (collector.py: they would pause the loop)."""
        with collector_paused():
            if new == old:
                return None
            built = Runtime.prepare(new), changed_watchlists(old.watchlists, new.watchlists)
        keep_out_of_full_collections()
        return built

    def _retire_fetcher(self, old: Fetcher) -> None:
        """Close a replaced Fetcher once the passes that use it have finished."""
        using = list(self.jobs.in_flight())

        async def close_later() -> None:
            if using:
                await asyncio.wait(using)
            await old.aclose()

        self.tasks.spawn(close_later(), name="retire-fetcher")

    def _count_matches(self, watchlists: Sequence[WatchlistConfig]) -> None:
        """Log, in the background, what new or changed watchlists would have matched."""
        if watchlists:
            store = self.runtime.store
            self.tasks.spawn(
                asyncio.to_thread(log_would_have_matched, store, list(watchlists)),
                name="would-have-matched",
            )

    def _on_pass(self, report: PassReport) -> None:
        self.metrics.observe_pass(report)
        self.snapshot.observe_pass(report)
        self.snapshot.poke()  # what the pass wrote (its incidents too) read soon
        if report.crawl.alerts:
            self.channels.wake()

    # --- the health listener -------------------------------------------------------------------

    async def _start_health(self, config: Config) -> None:
        status = config.http_status
        if status.port:
            health = HealthServer(
                host=status.host,
                port=status.port,
                status=self.health_status,
                metrics=self.metrics_text,
                feed=self.feed,
            )
            await health.start()
            self.health = health

    async def _move_health(self, new: Config) -> None:
        if self.health is not None:
            await self.health.stop()
            self.health = None
        await self._start_health(new)

    def metrics_text(self) -> bytes:
        self.metrics.observe_walks(self.snapshot.walks_missing())
        return metrics_text(self.metrics, self.runtime.store)

    def feed(self, name: str) -> tuple[int, str, bytes]:
        runtime = self.runtime
        return feed_page(runtime.store, {w.name for w in runtime.config.watchlists}, name)

    def health_status(self, detail: bool) -> dict[str, Any]:
        """/healthz, from the snapshot (called in the listener's threads)."""
        return self.snapshot.compose(detail=detail)

    # --- what /healthz shows -------------------------------------------------------------------

    def publish(self) -> None:
        """Hand the snapshot what only the loop knows: the scheduler, the passes running, the
        next runs, the breakers and the last reload."""
        runtime, config = self.runtime, self.runtime.config
        jobs = self.jobs
        running = jobs.running and not self.stopping.is_set()
        if self._published[0] is not config:  # the names and the sources with active hours
            names = [s.name for s in config.sources]
            self._published = (config, names, [s for s in config.sources if s.active])
        _, names, windowed = self._published
        now = datetime.now(UTC)
        self.snapshot.publish(
            LoopState(
                running=running,
                sources=names,
                active={s.name: s.is_active(now, config.timezone) for s in windowed},
                passing={n for n, t in jobs.passes.running.items() if not t.done()},
                # the jobs themselves: /healthz?detail=sources reads their next run time (an
                # attribute: safe from the listener's thread), the summary does not need it
                jobs=jobs.scheduler.get_jobs() if isinstance(jobs, SourceJobs) and running else [],
                breakers={n: b.until for n, b in runtime.breakers.items() if b.until is not None},
                claimed=sorted(jobs.claimed) if isinstance(jobs, FleetJobs) else [],
            )
        )

    async def _publish_loop(self) -> None:
        while not self.stopping.is_set():
            await wait_any((self.stopping,), seconds=HEALTH_PUBLISH)
            self.publish()

    async def status(self) -> dict[str, Any]:
        """What /healthz?detail=sources reports, read now: the scheduler, the database, and each
        source's last pass."""
        self.publish()
        await asyncio.to_thread(self.snapshot.refresh)
        return self.snapshot.compose(detail=True)
