"""Source jobs: the scheduler (one job per source), the passes it starts, and what they report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.config import Config, SourceConfig
from worker.daemon.schedule import schedule_key, trigger_for
from worker.daemon.tasks import Tasks
from worker.pipeline import PassReport, Runtime

log = logging.getLogger(__name__)


class SourceJobs:
    """One APScheduler job per source; a job only *starts* a pass task, and never a second one
    while the source's previous pass still runs. `on_report` hears of each finished pass."""

    def __init__(
        self,
        runtime: Runtime,
        tasks: Tasks,
        stopping: asyncio.Event,
        on_report: Callable[[PassReport], None],
    ) -> None:
        self.runtime = runtime
        self.tasks = tasks
        self.stopping = stopping
        self.on_report = on_report
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.passes: dict[str, asyncio.Task[PassReport]] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for source in self.runtime.config.sources:
            self.add(source)
        self.scheduler.start()

    def shutdown(self) -> None:
        """No new passes (the running ones are the daemon's to wait for or cancel)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def in_flight(self) -> set[asyncio.Task[PassReport]]:
        return {task for task in self.passes.values() if not task.done()}

    # --- what /healthz shows -------------------------------------------------------------------

    def is_passing(self, name: str) -> bool:
        task = self.passes.get(name)
        return task is not None and not task.done()

    def next_run(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(name) if self.scheduler.running else None
        return getattr(job, "next_run_time", None) if job is not None else None

    # --- jobs ----------------------------------------------------------------------------------

    def add(self, source: SourceConfig) -> None:
        self.scheduler.add_job(
            self.start_pass,
            trigger_for(source, self.runtime.config.tz),
            args=[source.name],
            id=source.name,
            name=f"pass:{source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
            next_run_time=datetime.now(UTC),  # the first run at start
        )

    def apply(self, old: Config, new: Config) -> None:
        """Sources added, removed or rescheduled between two configs (passes in flight finish)."""
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        for name in old_sources.keys() - new_sources.keys():
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            log.info("config: source %s removed (a pass in flight finishes)", name)
        for name, source in new_sources.items():
            before = old_sources.get(name)
            if before is None:
                self.add(source)
                log.info("config: source %s added", name)
            elif schedule_key(before) != schedule_key(source) or new.timezone != old.timezone:
                self.scheduler.reschedule_job(name, trigger=trigger_for(source, new.tz))
                log.info("config: source %s rescheduled", name)
            elif before != source:
                log.info("config: source %s changed (from its next pass on)", name)

    async def start_pass(self, name: str) -> None:
        """The scheduler's job: start a pass unless this source's previous one still runs."""
        if self.stopping.is_set():
            return
        if self.is_passing(name):
            log.debug("source=%s previous pass still running; this run is skipped", name)
            return
        try:
            source = self.runtime.config.source(name)
        except KeyError:  # removed by a reload a moment ago
            return
        held = self.runtime.held(source)  # active hours, the breaker
        if held is not None:
            log.debug("source=%s no pass now: %s", name, held)
            return
        self.passes[name] = self.tasks.spawn(self._pass(source), name=f"pass:{name}")

    async def _pass(self, source: SourceConfig) -> PassReport:
        report = await self.runtime.run_pass(source)
        self.on_report(report)
        self._explain(report)
        return report

    def _explain(self, report: PassReport) -> None:
        """Say what an operator would otherwise wonder about: a first pass that alerted nothing
        on purpose, and when a failing source is tried again."""
        c = report.crawl
        if report.ok and c.silent:
            would = ", ".join(f"{w}={n}" for w, n in sorted(c.would_alert.items())) or "none"
            log.info(
                "source=%s first pass was a silent baseline: %d article(s) stored without "
                "alerts (would have alerted: %s); new matching articles are alerted from now on",
                report.source,
                c.new,
                would,
                extra={"source": report.source, "baseline": True, "new": c.new},
            )
        elif not report.ok:
            when = self.next_run(report.source)
            if when is None:
                return
            wait = max(0.0, (when - datetime.now(UTC)).total_seconds())
            log.warning(
                "source=%s will be tried again at %s (in %.0fs)%s",
                report.source,
                when.astimezone(UTC).isoformat(timespec="seconds"),
                wait,
                "; what it stored stays stored, the next pass picks up" if c.pages else "",
                extra={"source": report.source, "next_try": when.astimezone(UTC).isoformat()},
            )
