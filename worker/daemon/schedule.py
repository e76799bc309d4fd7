"""Schedules: the APScheduler trigger of a source and the job that starts its passes."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import SourceConfig
from worker.daemon.deliveries import DeliveryMixin
from worker.pipeline import PassReport

log = logging.getLogger(__name__)

INTERVAL_JITTER = 0.1  # share of an `every` interval added at random to each run
MAX_JITTER = 30.0  # seconds, whatever the interval
CRON_JITTER = 5.0  # seconds added at random to each cron run


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


def trigger_for(source: SourceConfig, tz: tzinfo = UTC) -> BaseTrigger:
    """The APScheduler trigger of a source: cron (in the config's `timezone`) or interval, each
    with a little jitter."""
    if source.cron is not None:
        minute, hour, day, month, dow = source.cron.split()
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=crontab_day_of_week(dow),
            timezone=tz,
            jitter=CRON_JITTER,
        )
    every = source.interval
    return IntervalTrigger(
        seconds=every, jitter=min(every * INTERVAL_JITTER, MAX_JITTER), timezone=UTC
    )


def _schedule_key(source: SourceConfig) -> tuple[Any, ...]:
    return (source.every, source.cron)


class ScheduleMixin(DeliveryMixin):
    """The daemon's scheduler jobs: one per source, each starting a pass."""

    def _add_job(self, source: SourceConfig) -> None:
        self.scheduler.add_job(
            self._start_pass,
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
        held = self.runtime.held(source)  # active hours, the breaker
        if held is not None:
            log.debug("source=%s no pass now: %s", name, held)
            return
        self._passes[name] = self._spawn(self._pass(source), name=f"pass:{name}")

    async def _pass(self, source: SourceConfig) -> PassReport:
        report = await self.runtime.run_pass(source)
        self.metrics.observe_pass(report)
        if report.crawl.alerts:
            self.wake_deliveries()
        self._explain_pass(report)
        return report

    def _explain_pass(self, report: PassReport) -> None:
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
            job = self.scheduler.get_job(report.source) if self.scheduler.running else None
            when = getattr(job, "next_run_time", None) if job is not None else None
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
