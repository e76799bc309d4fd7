"""`worker run`: the long-lived daemon.

- Schedule: one APScheduler job per source (its `every` or `cron`), the first run at start, a
  little jitter (10% of the interval, at most 30 s; 5 s for cron). The job only *starts* a pass
  task; a source whose previous pass still runs skips the run (never two passes of one source at
  once), and runs missed while the loop was busy are coalesced into one.
- Deliveries: one loop per channel, so a slow or hanging channel never holds up another. A loop
  runs a round when a pass queued alerts, when the earliest pending delivery is due (retries go
  out on their own, not only after a crawl), and at least every 30 s.
- Live config: the file's content is checked every second (edits in place and by rename look the
  same) and on SIGHUP. A valid edit is applied as a difference: sources added, removed or
  rescheduled; watchlists and channels swapped for the next pages and rounds; `[http]` gets a
  new HTTP client; `[http_status]` moves the listener; `[logging] level` applies. Passes and
  rounds in flight finish with what they started with. An invalid edit is logged with the same
  messages `worker check` prints and the last good config stays.
- Stop: SIGTERM/SIGINT stop new work; running passes and delivery rounds get SHUTDOWN_GRACE
  seconds to finish (a second signal cuts that short), the rest is cancelled (what was stored
  stays stored, undelivered alerts stay queued), then the listener, the HTTP client(s) and the
  database are closed and `run_daemon` returns 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import signal
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Config, ConfigError, SourceConfig, parse_config
from worker.fetch import Fetcher
from worker.health import HealthServer, Metrics
from worker.notify import (
    DeliveryReport,
    Message,
    Notifier,
    SendResult,
    backoff,
    deliver_due,
)
from worker.pipeline import PassReport, Runtime
from worker.store import Store, StoreError

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 5.0  # seconds running passes and rounds get to finish after SIGTERM
DELIVERY_POLL = 30.0  # longest wait between two delivery rounds of a channel
DELIVERY_RECHECK = 5.0  # wait when something is due but this channel found nothing to send
CONFIG_POLL = 1.0  # seconds between two checks of the config file's content
CONFIG_SETTLE = 0.2  # a changed file is read again after this, until two reads agree
CONFIG_SETTLE_MAX = 5  # ... at most this many times (a file rewritten without pause)
INTERVAL_JITTER = 0.1  # share of an `every` interval added at random to each run
MAX_JITTER = 30.0  # seconds, whatever the interval
CRON_JITTER = 5.0  # seconds added at random to each cron run


# --- schedules ---------------------------------------------------------------------------------

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DOW_PART = re.compile(r"^(?:(\*)|(\d)(?:-(\d))?)(?:/(\d+))?$")


def crontab_day_of_week(field: str) -> str:
    """A crontab day-of-week field with cron's numbering (0 or 7 = Sunday) as weekday names.

    APScheduler 3 numbers weekdays from Monday = 0, so `1-5` would mean Tuesday to Saturday;
    names mean the same to both. Fields with names (or `*`) are returned unchanged.
    """
    if field == "*" or re.search(r"[A-Za-z?]", field):
        return field
    days: list[int] = []
    for part in field.split(","):
        m = _DOW_PART.match(part)
        if m is None:
            return field  # let APScheduler judge (the config check already accepted it)
        star, first, last, step = m.groups()
        lo, hi = (0, 6) if star else (int(first), int(last or first))
        if step is not None and not star and last is None:
            hi = 7  # "a/n": from a to the end of the week
        if hi > 7 or lo > hi:
            return field
        for day in range(lo, hi + 1, int(step or 1)):
            day %= 7
            if day not in days:
                days.append(day)
    days.sort(key=lambda d: (d + 6) % 7)  # Monday first, as APScheduler lists them
    return ",".join(_DOW_NAMES[d] for d in days)


def trigger_for(source: SourceConfig) -> BaseTrigger:
    """The APScheduler trigger of a source: cron (UTC) or interval, each with a little jitter."""
    if source.cron is not None:
        minute, hour, day, month, dow = source.cron.split()
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_day_of_week(dow),
            timezone=UTC,
            jitter=CRON_JITTER,
        )
    every = source.interval
    return IntervalTrigger(
        seconds=every, jitter=min(every * INTERVAL_JITTER, MAX_JITTER), timezone=UTC
    )


def _schedule_key(source: SourceConfig) -> tuple[Any, ...]:
    return (source.every, source.cron)


# --- one channel of a Notifier -----------------------------------------------------------------


class _OneChannel:
    """A Notifier seen through one channel: `deliver_due` on it serves that channel only."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self._notifier = notifier
        self.channels = (channel,)
        self.timeout = notifier.timeout

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        return await self._notifier.send(channel, message, skip=skip)


@dataclass(frozen=True, slots=True)
class _ChannelLoop:
    task: asyncio.Task[None]
    wake: asyncio.Event  # run a round now (alerts were queued, the config changed)
    changed: asyncio.Event  # the channels changed: end a backoff pause too


# --- the daemon --------------------------------------------------------------------------------


class Daemon:
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
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.metrics = Metrics()
        self.stopping = stopping if stopping is not None else asyncio.Event()
        self.health: HealthServer | None = None
        self._hurry = asyncio.Event()  # a second stop signal: cancel now
        self.cut_short = False  # the stop cancelled passes or sends still running
        self._passes: dict[str, asyncio.Task[PassReport]] = {}
        self._channel_loops: dict[str, _ChannelLoop] = {}
        self._rounds: dict[asyncio.Task[DeliveryReport], Notifier] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._config_digest = config_digest if config_digest is not None else self._digest()
        self._missing_logged = False

    # --- sources ------------------------------------------------------------------------------

    def _add_job(self, source: SourceConfig) -> None:
        self.scheduler.add_job(
            self._start_pass,
            trigger_for(source),
            args=[source.name],
            id=source.name,
            name=f"pass:{source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
            next_run_time=datetime.now(UTC),  # the first run at start
        )

    async def _start_pass(self, name: str) -> None:
        """The scheduler's job: start a pass unless this source's previous one still runs."""
        if self.stopping.is_set():
            return
        running = self._passes.get(name)
        if running is not None and not running.done():
            log.debug("source=%s previous pass still running; this run is skipped", name)
            return
        try:
            source = self.runtime.config.source(name)
        except KeyError:  # removed by a reload a moment ago
            return
        self._passes[name] = self._spawn(self._pass(source), name=f"pass:{name}")

    async def _pass(self, source: SourceConfig) -> PassReport:
        report = await self.runtime.run_pass(source)
        self.metrics.observe_pass(report)
        if report.crawl.alerts:
            self.wake_deliveries()
        return report

    # --- deliveries -------------------------------------------------------------------------

    def wake_deliveries(self, *, channels_changed: bool = False) -> None:
        """Run a delivery round on every channel now; a channel that looks down waits out its
        backoff unless the channels changed (a fixed URL is tried at once)."""
        for loop in self._channel_loops.values():
            loop.wake.set()
            if channels_changed:
                loop.changed.set()

    def _sync_channel_loops(self) -> None:
        """One delivery loop per configured channel: start new ones, stop removed ones."""
        wanted = set(self.runtime.notifier.channels)
        for name in list(self._channel_loops):
            if name not in wanted:
                self._channel_loops.pop(name).task.cancel()
        for name in sorted(wanted - self._channel_loops.keys()):
            wake, changed = asyncio.Event(), asyncio.Event()
            task = self._spawn(self._channel_loop(name, wake, changed), name=f"deliver:{name}")
            self._channel_loops[name] = _ChannelLoop(task, wake, changed)

    async def _channel_loop(
        self, channel: str, wake: asyncio.Event, changed: asyncio.Event
    ) -> None:
        runtime = self.runtime
        down = 0  # rounds in a row in which the channel failed and sent nothing
        while not self.stopping.is_set():
            wake.clear()
            changed.clear()
            notifier = runtime.notifier
            if channel not in notifier.channels:
                return
            report: DeliveryReport | None = None
            round_ = asyncio.ensure_future(
                deliver_due(
                    runtime.store,
                    cast(Notifier, _OneChannel(notifier, channel)),
                    runtime.config.alerts,
                    owner=runtime.owner,
                )
            )
            self._rounds[round_] = notifier
            try:
                report = await round_
                self.metrics.observe_delivery(report)
                next_due = await asyncio.to_thread(runtime.store.next_due_at)
            except StoreError as exc:
                log.error("channel %s: delivery round failed: %s", channel, exc)
                next_due = None
            except Exception:
                log.exception("channel %s: delivery round failed", channel)
                next_due = None
            finally:
                self._rounds.pop(round_, None)
            if report is not None and report.sent == 0 and report.retrying + report.failed:
                # the channel looks down: probe it again after a backoff of its own (each
                # round tries one delivery first), not once per due delivery
                down += 1
                pause = backoff(down, runtime.config.alerts)
                log.debug("channel %s: down; next try in %.0fs", channel, pause)
                await _wait_any((self.stopping, changed), seconds=pause)
                continue
            down = 0
            wait = DELIVERY_POLL
            if next_due is not None:
                delay = (next_due - datetime.now(UTC)).total_seconds()
                if delay > 0:
                    wait = min(wait, delay + 0.05)
                elif report is not None and (report.sent or report.deferred):
                    wait = 0.05  # more may be due at once (the round's limit)
                else:  # due, but not on this channel (or leased elsewhere)
                    wait = DELIVERY_RECHECK
            await _wait_any((wake, self.stopping), seconds=wait)

    def _retire_notifier(self, old: Notifier) -> None:
        """Close a replaced Notifier once the rounds that use it have finished."""
        using = [task for task, notifier in self._rounds.items() if notifier is old]

        async def close_later() -> None:
            if using:
                await asyncio.wait(using)
            old.close()

        self._spawn(close_later(), name="retire-notifier")

    # --- live config --------------------------------------------------------------------------

    def _read(self) -> bytes | None:
        try:
            return self.config_path.read_bytes()
        except OSError:
            return None

    def _digest(self) -> bytes | None:
        return _file_digest(self.config_path)

    async def _watch_config(self) -> None:
        """Reload when the file's content changes (in place or by rename) within ~1.5 s."""
        while not self.stopping.is_set():
            await _wait_any((self.stopping,), seconds=CONFIG_POLL)
            if self.stopping.is_set():
                return
            data = await asyncio.to_thread(self._read)
            if data is None:
                if not self._missing_logged:
                    log.warning(
                        "config file %s cannot be read; keeping the last good config",
                        self.config_path,
                    )
                    self._missing_logged = True
                continue
            self._missing_logged = False
            if hashlib.sha256(data).digest() == self._config_digest:
                continue
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
                self.metrics.config_reloads.labels(outcome="invalid").inc()
                return False
            try:
                await self._apply(new)
            except Exception as exc:  # e.g. the new [http_status] port is taken
                log.error("config reload failed while applying it: %s", exc)
                self.metrics.config_reloads.labels(outcome="invalid").inc()
                return False
            self.metrics.config_reloads.labels(outcome="applied").inc()
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
            elif _schedule_key(before) != _schedule_key(source):
                self.scheduler.reschedule_job(name, trigger=trigger_for(source))
                log.info("config: source %s rescheduled", name)
            elif before != source:
                log.info("config: source %s changed (from its next pass on)", name)
        self._sync_channel_loops()
        self.wake_deliveries(channels_changed=new.channels != old.channels)
        log.info(
            "config reloaded: %d source(s), %d watchlist(s), %d channel(s)",
            len(new.sources),
            len(new.watchlists),
            len(new.channels),
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
            health = HealthServer(self, host=status.host, port=status.port)
            await health.start()
            self.health = health

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop new work; a second call cancels what still runs without waiting."""
        if not self.stopping.is_set():
            log.info("stopping: no new passes; running ones get up to %.0fs", SHUTDOWN_GRACE)
            self.stopping.set()
        elif not self._hurry.is_set():
            log.info("stopping now: cancelling what still runs")
            self._hurry.set()

    def _spawn(self, coro: Awaitable[Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)

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
            self.cut_short = bool(work)
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
        self.runtime.notifier.close()
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
        known = {row.name: row for row in rows}
        running = self.scheduler.running and not self.stopping.is_set()
        sources: dict[str, dict[str, Any]] = {}
        for source in self.runtime.config.sources:
            row = known.get(source.name)
            job = self.scheduler.get_job(source.name) if running else None
            task = self._passes.get(source.name)
            last_pass = row.last_pass_at if row else None
            error = row.last_error if row else None
            sources[source.name] = {
                "ok": None if last_pass is None else error is None,
                "last_pass": _iso(last_pass),
                "last_success": _iso(row.last_success_at if row else None),
                "last_error": error,
                "last_pages": row.last_pages if row else None,
                "last_new": row.last_new if row else None,
                "last_duration": row.last_duration if row else None,
                "baselined": bool(row and row.baselined_at),
                "running": task is not None and not task.done(),
                "next_run": _iso(job.next_run_time) if job is not None else None,
            }
        return {
            "status": "ok" if running and db_ok else "unhealthy",
            "scheduler": "running" if running else "stopped",
            "database": "ok" if db_ok else "unreachable",
            "failing_sources": sorted(n for n, s in sources.items() if s["ok"] is False),
            "sources": sources,
        }


def _file_digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


async def _wait_any(events: Iterable[asyncio.Event], *, seconds: float) -> None:
    """Wait until one of `events` is set or `seconds` have passed."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


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
    digest = await asyncio.to_thread(_file_digest, Path(config_path))
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
        if not daemon.cut_short:  # no send was cancelled mid-way: give back untried claims
            await asyncio.to_thread(store.release_claims, runtime.owner)
    finally:
        await runtime.fetcher.aclose()
        if runtime.fetcher is not fetcher:
            await fetcher.aclose()
        store.close()
    return 0
