"""When a channel may be sent to: watchlist digests, quiet hours and rate limits (issue #11).

All of it is read from the config and the database at each delivery round, so a restart
changes nothing: what is held is marked in the database (deliveries.hold), what a digest carries
is recorded there (deliveries.digest_id), and a rate limit counts the messages the database
says were sent in the window.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.config import Config


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

    @classmethod
    def from_config(cls, config: Config) -> Pacing:
        rules = {
            name: ChannelRule(t.quiet_hours, t.rate_limit)
            for name, t in config.channel_settings.items()
        }
        digests = {w.name: w.digest for w in config.watchlists if w.digest is not None}
        routes = {w.name: tuple(w.channels) for w in config.watchlists}
        return cls(config.tz, rules, digests, routes)

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
        local = now.astimezone(self.tz)
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
            fire = _cron(schedule, self.tz).get_next_fire_time(None, since)
            return fire is not None and fire <= now
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
