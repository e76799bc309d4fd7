"""Schedules: the APScheduler trigger of a source (its `every` or `cron`, a little jitter).

An `every` schedule is spread: each source has a stable offset within its interval (a hash of
its name), and its passes fall on the grid `k * interval + offset` (epoch seconds) plus a little
jitter that does not accumulate. A thousand sources every 60 s are so due about 17 a second, not
all at once; a restart or another replica of a fleet finds the same grid. The first passes at
start are paced (`start_wave`): a handful at once, as before, and a big wave at a bounded rate.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import SourceConfig

INTERVAL_JITTER = 0.1  # share of an `every` interval added at random to each run
MAX_JITTER = 30.0  # seconds, whatever the interval
CRON_JITTER = 5.0  # seconds added at random to each cron run
START_BURST = 20  # first passes started at once at start (a handful of sources: all at once)
START_RATE = 20.0  # first passes a second after the burst (faster only to fit START_SPREAD)
START_SPREAD = 60.0  # seconds the start-up wave lasts at most, however many sources


def spread_offset(name: str, interval: float) -> float:
    """A source's stable offset (seconds) within its interval: the same in every process."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64 * interval


def next_tick(name: str, interval: float, after: datetime) -> datetime:
    """The first point of the source's grid (`k * interval + offset`) strictly after `after`."""
    offset = spread_offset(name, interval)
    k = math.floor((after.timestamp() - offset) / interval) + 1
    return datetime.fromtimestamp(k * interval + offset, tz=UTC)


def start_wave(names: Sequence[str], now: datetime) -> dict[str, datetime]:
    """When each of `names` (in that order) has its first pass: START_BURST at `now`, the rest
    at START_RATE a second, or faster so that the wave ends within START_SPREAD seconds."""
    late = max(0, len(names) - START_BURST)
    rate = max(START_RATE, late / START_SPREAD)
    return {
        name: now + timedelta(seconds=max(0, i - START_BURST + 1) / rate)
        for i, name in enumerate(names)
    }


class SpreadTrigger(IntervalTrigger):
    """An interval on the source's grid: each run at the grid point after the previous run (at
    least half an interval later, so a paced first pass is not followed at once), plus up to
    `jitter` seconds; runs missed (a pass longer than the interval) are coalesced into one."""

    def __init__(self, name: str, seconds: float, jitter: float) -> None:
        super().__init__(seconds=seconds, jitter=jitter, timezone=UTC)
        self.source = name
        self.offset = spread_offset(name, self.interval_length)

    def next_after(self, previous: datetime | None, now: datetime) -> datetime:
        """The next grid point (no jitter): after `now`, and half an interval after `previous`."""
        after = now if previous is None else max(now, previous + self.interval / 2)
        return next_tick(self.source, self.interval_length, after)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        when = self.next_after(previous_fire_time, now)
        return self._apply_jitter(when, self.jitter, now)

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "source": self.source}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__({k: v for k, v in state.items() if k != "source"})
        self.source = state["source"]
        self.offset = spread_offset(self.source, self.interval_length)


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
    """The APScheduler trigger of a source: cron (in the config's `timezone`) or its spread
    interval (`SpreadTrigger`), each with a little jitter."""
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
    return SpreadTrigger(source.name, every, jitter=min(every * INTERVAL_JITTER, MAX_JITTER))


def schedule_key(source: SourceConfig) -> tuple[Any, ...]:
    """What decides a source's trigger: a source is rescheduled when this changes."""
    return (source.every, source.cron)
