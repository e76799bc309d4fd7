"""Schedules: the APScheduler trigger of a source (its `every` or `cron`, a little jitter)."""

from __future__ import annotations

import re
from datetime import UTC, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import SourceConfig

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


def schedule_key(source: SourceConfig) -> tuple[Any, ...]:
    """What decides a source's trigger: a source is rescheduled when this changes."""
    return (source.every, source.cron)
