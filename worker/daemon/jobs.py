"""Source jobs: the passes of the sources, started by a schedule.

`Passes` runs passes (never two of one source at once) and says what they did. What starts
them is a `Jobs`: `SourceJobs` (here: one APScheduler job per source, the daemon alone on its
database) or `FleetJobs` (fleet.py: sources claimed from the schedule shared in PostgreSQL).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from worker.config import Config, SourceConfig
from worker.daemon.schedule import schedule_key, start_wave, trigger_for
from worker.daemon.tasks import Tasks
from worker.pipeline import PassReport, Runtime

log = logging.getLogger(__name__)


class Jobs(Protocol):
    """What the daemon asks of the part that starts its passes."""

    passes: Passes

    async def start(self) -> None: ...

    def stop(self) -> None:
        """No new passes (the running ones are the daemon's to wait for or cancel)."""

    async def close(self) -> None:
        """After the last pass: give back what this process held."""

    @property
    def running(self) -> bool: ...

    def in_flight(self) -> set[asyncio.Task[Any]]: ...

    async def apply(self, old: Config, new: Config) -> None:
        """Sources added, removed or rescheduled (passes in flight finish)."""

    async def next_runs(self) -> dict[str, datetime]: ...

    async def status(self) -> dict[str, Any]:
        """What /healthz says about the replica and its fleet."""


class Passes:
    """The passes in flight, one per source at most; `on_report` hears of each one's end."""

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
        self.running: dict[str, asyncio.Task[PassReport]] = {}

    def is_passing(self, name: str) -> bool:
        task = self.running.get(name)
        return task is not None and not task.done()

    def in_flight(self) -> set[asyncio.Task[PassReport]]:
        return {task for task in self.running.values() if not task.done()}

    def start(self, name: str) -> asyncio.Task[PassReport] | None:
        """Start a pass of `name`, unless the daemon stops, the source's previous pass still
        runs, it is gone from the config or held (active hours, the breaker): then None."""
        if self.stopping.is_set():
            return None
        if self.is_passing(name):
            log.debug("source=%s previous pass still running; this run is skipped", name)
            return None
        try:
            source = self.runtime.config.source(name)
        except KeyError:  # removed by a reload a moment ago
            return None
        held = self.runtime.held(source)
        if held is not None:
            log.debug("source=%s no pass now: %s", name, held)
            return None
        task = self.tasks.spawn(self._pass(source), name=f"pass:{name}")
        self.running[name] = task
        task.add_done_callback(functools.partial(self._ended, name))
        return task

    def _ended(self, name: str, task: asyncio.Task[PassReport]) -> None:
        # only passes in flight are kept: what /healthz publishes each second is then the
        # passes running, not every source's last pass (10,000 a second at 10,000 sources)
        if self.running.get(name) is task:
            del self.running[name]

    async def _pass(self, source: SourceConfig) -> PassReport:
        report = await self.runtime.run_pass(source)
        self.on_report(report)
        return report

    def explain(self, report: PassReport, next_run: datetime | None) -> None:
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
        elif not report.ok and next_run is not None:
            wait = max(0.0, (next_run - datetime.now(UTC)).total_seconds())
            log.warning(
                "source=%s will be tried again at %s (in %.0fs)%s",
                report.source,
                next_run.astimezone(UTC).isoformat(timespec="seconds"),
                wait,
                "; what it stored stays stored, the next pass picks up" if c.pages else "",
                extra={"source": report.source, "next_try": next_run.astimezone(UTC).isoformat()},
            )


class SourceJobs:
    """One APScheduler job per source, the first run at start (a big wave of them paced, see
    `start_wave`), then on the source's spread grid; a job only *starts* a pass, and none while
    the source's previous pass still runs (missed runs are coalesced into one)."""

    def __init__(self, passes: Passes, on_start: Callable[[float], None] | None = None) -> None:
        self.passes = passes
        self.runtime = passes.runtime
        self.on_start = on_start  # hears how late (seconds) each pass started
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self._due: dict[str, datetime] = {}  # a job handed to the executor: when it was due
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)

    async def start(self) -> None:
        sources = self.runtime.config.sources
        first = start_wave([s.name for s in sources], datetime.now(UTC))
        for source in sources:
            self.add(source, first[source.name])
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    async def close(self) -> None:
        return None

    @property
    def running(self) -> bool:
        return self.scheduler.running

    def in_flight(self) -> set[asyncio.Task[Any]]:
        return set(self.passes.in_flight())

    def next_run(self, name: str) -> datetime | None:
        job = self.scheduler.get_job(name) if self.scheduler.running else None
        return getattr(job, "next_run_time", None) if job is not None else None

    async def next_runs(self) -> dict[str, datetime]:
        return {
            s.name: when
            for s in self.runtime.config.sources
            if (when := self.next_run(s.name)) is not None
        }

    async def status(self) -> dict[str, Any]:
        return {}

    def add(self, source: SourceConfig, first: datetime) -> None:
        self.scheduler.add_job(
            self.run_job,
            trigger_for(source, self.runtime.config.tz),
            args=[source.name],
            id=source.name,
            name=f"pass:{source.name}",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
            next_run_time=first,  # the first run: at start, or paced in a big wave
        )

    def _submitted(self, event: JobSubmissionEvent) -> None:
        self._due[event.job_id] = event.scheduled_run_times[-1]

    async def run_job(self, name: str) -> None:
        """The scheduler's job: start a pass (its end is explained when it comes)."""
        due = self._due.pop(name, None)
        task = self.passes.start(name)
        if task is not None:
            if self.on_start is not None and due is not None:
                self.on_start(max(0.0, (datetime.now(UTC) - due).total_seconds()))
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[PassReport]) -> None:
        if not task.cancelled() and task.exception() is None:
            report = task.result()
            self.passes.explain(report, None if report.ok else self.next_run(report.source))

    async def apply(self, old: Config, new: Config) -> None:
        old_sources = {s.name: s for s in old.sources}
        new_sources = {s.name: s for s in new.sources}
        added = [name for name in new_sources if name not in old_sources]
        first = start_wave(added, datetime.now(UTC))
        for name in old_sources.keys() - new_sources.keys():
            if self.scheduler.get_job(name) is not None:
                self.scheduler.remove_job(name)
            log.info("config: source %s removed (a pass in flight finishes)", name)
        for name, source in new_sources.items():
            before = old_sources.get(name)
            if before is None:
                self.add(source, first[name])
                log.info("config: source %s added", name)
            elif schedule_key(before) != schedule_key(source) or new.timezone != old.timezone:
                self.scheduler.reschedule_job(name, trigger=trigger_for(source, new.tz))
                log.info("config: source %s rescheduled", name)
            elif before != source:
                log.info("config: source %s changed (from its next pass on)", name)
