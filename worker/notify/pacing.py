"""When a channel may be sent to: watchlist digests, quiet hours and rate limits (issue #11).

All of it is read from the config and the database at each delivery round, so a restart
changes nothing: what is held is marked in the database (deliveries.hold), what a digest carries
is recorded there (deliveries.digest_id), and a rate limit counts the messages the database
says were sent in the window.

`WORKER_CLOCK_OFFSET` (seconds, may be negative), read in `clock_offset` only, shifts the wall
clock that quiet hours and cron digests read: a test hook (the tests set it to be at 06:59:50
in New York, say, and watch quiet hours end ten seconds later) and a way to try a schedule. The
worker logs a warning when it is set; never set it in production.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.config import Config

log = logging.getLogger(__name__)

CLOCK_OFFSET_ENV = "WORKER_CLOCK_OFFSET"


def clock_offset(environ: Mapping[str, str] | None = None) -> timedelta:
    """The shift of the pacing's wall clock: `WORKER_CLOCK_OFFSET` seconds (a test hook)."""
    value = (os.environ if environ is None else environ).get(CLOCK_OFFSET_ENV, "").strip()
    return _parse_offset(value) if value else timedelta(0)


@functools.lru_cache(maxsize=8)
def _parse_offset(value: str) -> timedelta:
    try:
        offset = timedelta(seconds=float(value))
    except (ValueError, OverflowError):
        log.warning("%s=%r is not a number of seconds: ignored", CLOCK_OFFSET_ENV, value)
        return timedelta(0)
    log.warning(
        "%s=%s: quiet hours and cron digests read a clock shifted by %s (a test hook)",
        CLOCK_OFFSET_ENV,
        value,
        offset,
    )
    return offset


@dataclass(frozen=True, slots=True)
class ChannelRule:
    quiet_hours: tuple[int, int] | None = None  # minutes of the local day: start, end
    rate_limit: tuple[int, float] | None = None  # messages, window in seconds


@dataclass(frozen=True, slots=True)
class Pacing:
    tz: tzinfo = UTC
    channels: Mapping[str, ChannelRule] = field(default_factory=dict)
    digests: Mapping[str, str] = field(default_factory=dict)  # watchlist -> "0 8 * * *" / "1h"
    routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # watchlist -> channels
    offset: timedelta = timedelta(0)  # the wall clock's shift (WORKER_CLOCK_OFFSET, tests)

    @classmethod
    def from_config(cls, config: Config) -> Pacing:
        rules = {
            name: ChannelRule(t.quiet_hours, t.rate_limit)
            for name, t in config.channel_settings.items()
        }
        digests = {w.name: w.digest for w in config.watchlists if w.digest is not None}
        routes = {w.name: tuple(w.channels) for w in config.watchlists}
        return cls(config.tz, rules, digests, routes, clock_offset())

    @property
    def active(self) -> bool:
        """Whether any digest, quiet hours or rate limit is configured."""
        return bool(self.digests) or any(
            r.quiet_hours or r.rate_limit for r in self.channels.values()
        )

    def digest_watchlists(self, channel: str) -> list[str]:
        """The watchlists sent to `channel` in digests."""
        return sorted(w for w in self.digests if channel in self.routes.get(w, ()))

    def quiet(self, channel: str, now: datetime) -> bool:
        """Whether `now` is in the channel's quiet hours (local time; they may wrap midnight)."""
        rule = self.channels.get(channel)
        if rule is None or rule.quiet_hours is None:
            return False
        start, end = rule.quiet_hours
        local = (now + self.offset).astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        if start < end:
            return start <= minute < end
        return minute >= start or minute < end  # wraps midnight

    def rate_limit(self, channel: str) -> tuple[int, float] | None:
        rule = self.channels.get(channel)
        return rule.rate_limit if rule is not None else None

    def digest_due(self, watchlist: str, since: datetime, now: datetime) -> bool:
        """Whether the digest of `watchlist` whose period began at `since` is due at `now`."""
        schedule = self.digests[watchlist]
        if len(schedule.split()) == 5:
            fire = _cron(schedule, self.tz).get_next_fire_time(None, since + self.offset)
            return fire is not None and fire <= now + self.offset
        from worker.config.models import parse_duration

        return since + timedelta(seconds=parse_duration(schedule)) <= now


_DOW = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


@functools.lru_cache(maxsize=64)
def _cron(expression: str, tz: tzinfo) -> Any:
    """The trigger of a 5-field crontab line with cron's day numbers (0 or 7 = Sunday;
    APScheduler's own from_crontab counts 0 as Monday)."""
    import re

    from apscheduler.triggers.cron import CronTrigger

    minute, hour, day, month, dow = expression.split()
    dow = re.sub(r"(?<![*/])\b([0-7])\b", lambda m: _DOW[int(m.group(1))], dow)
    return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=tz)
