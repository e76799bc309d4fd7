"""The delivery loop: claim due deliveries per channel, send them, record the outcome.

Each channel runs in its own task, so a slow or failing channel never delays another. Within a
channel, deliveries are sent one after another; the first claim of a round takes a single
delivery (a probe), later claims take batches. After a failure the channel stops for this round:
the deliveries it had claimed but not tried are left untouched - no attempt is counted against
them and their next_attempt_at is kept - and become claimable again when their lease ends. (A
failed attempt would burn one of their `max_attempts` for a send that was never tried, and the
channel has just shown it is down: the failed delivery's own backoff paces the retries.) The
probe-first claim keeps that lease-held set small: a channel that is down leases one delivery
per round, not a batch.

Store calls are synchronous (SQLAlchemy) and run in threads via asyncio.to_thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from worker.config import AlertsConfig
from worker.models import Delivery
from worker.notify.channels import Notifier, SendResult
from worker.notify.pacing import Pacing
from worker.notify.render import Message, Rendering, alert_test_message

if TYPE_CHECKING:
    from worker.store import DigestClaim

log = logging.getLogger(__name__)

CLAIM_BATCH = 20  # deliveries claimed at once per channel after a successful probe
LEASE_MARGIN = 30.0  # seconds of lease kept free for recording an outcome


class DeliveryQueue(Protocol):
    """The delivery queue (implemented by worker.store.Store)."""

    def claim_due(
        self,
        *,
        owner: str,
        now: datetime,
        lease: float,
        limit: int,
        channels: Collection[str] | None = None,
        hold_watchlists: Collection[str] = (),
    ) -> list[Delivery]: ...

    def mark_sent(self, delivery_id: int, *, at: datetime) -> None: ...

    def mark_attempt_failed(
        self,
        delivery_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None: ...


@runtime_checkable
class DigestQueue(DeliveryQueue, Protocol):
    """The queue's digest side (worker.store.Store): digests, held alerts, sent counts."""

    def last_digest_at(self, channel: str, watchlist: str) -> datetime | None: ...

    def first_waiting_at(self, channel: str, watchlist: str | None) -> datetime | None: ...

    def cut_digest(
        self,
        channel: str,
        *,
        watchlist: str | None,
        at: datetime,
        last: datetime | None = None,
    ) -> int | None: ...

    def hold_channel(
        self, channel: str, reason: str, *, exclude_watchlists: Sequence[str] = ()
    ) -> int: ...

    def sent_since(self, channel: str, since: datetime) -> int: ...

    def claim_digests(
        self, *, owner: str, channel: str, now: datetime, lease: float, limit: int
    ) -> list[DigestClaim]: ...

    def mark_digest_sent(self, digest_id: int, *, at: datetime) -> None: ...

    def mark_digest_failed(
        self,
        digest_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None: ...


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0  # failed this time, another attempt is scheduled
    failed: int = 0  # failed for good (max_attempts reached)
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    deferred: int = 0  # claimed but not tried this round (their channel failed or time ran out)

    def _count(self, channel: str, outcome: str, n: int = 1) -> None:
        stats = self.by_channel.setdefault(
            channel, {"sent": 0, "retrying": 0, "failed": 0, "deferred": 0}
        )
        stats[outcome] += n
        setattr(self, outcome, getattr(self, outcome) + n)


def backoff(attempts: int, alerts: AlertsConfig) -> float:
    """Seconds until the next try after `attempts` failed attempts: doubling, capped."""
    exponent = min(max(attempts, 1) - 1, 64)
    return float(min(alerts.retry_max, alerts.retry_base * 2**exponent))


def _send_time(alerts: AlertsConfig, notifier: Notifier) -> float:
    """The longest one send can take (the Notifier's deadline, normally alerts.send_timeout)."""
    return max(alerts.send_timeout, notifier.timeout)


async def deliver_due(
    queue: DeliveryQueue,
    notifier: Notifier,
    alerts: AlertsConfig,
    *,
    owner: str,
    now: datetime | None = None,
    limit: int = 500,
    in_flight: set[int] | None = None,
    rendering: Rendering | None = None,
    pacing: Pacing | None = None,
) -> DeliveryReport:
    """Send the deliveries that are due on the notifier's channels; at most `limit` tries per
    channel this round. A queue (store) error is raised once every channel has finished.

    `in_flight`, when given, holds the id of each delivery from the start of its send until its
    outcome is stored. A round cancelled mid-send leaves that id there: the send may still finish
    in its thread, so at a stop that claim must be kept, while the other claims this round took
    and did not try can be given back (`release_claims(owner, keep=in_flight)`)."""
    report = DeliveryReport()
    rendering = rendering or Rendering()
    pacing = pacing or Pacing()

    def clock() -> datetime:
        return now if now is not None else datetime.now(UTC)

    results = await asyncio.gather(
        *(
            _paced_round(
                queue,
                notifier,
                alerts,
                channel,
                owner,
                clock,
                limit,
                report,
                in_flight,
                rendering,
                pacing,
            )
            for channel in notifier.channels
        ),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return report


async def _paced_round(
    queue: DeliveryQueue,
    notifier: Notifier,
    alerts: AlertsConfig,
    channel: str,
    owner: str,
    clock: Callable[[], datetime],
    limit: int,
    report: DeliveryReport,
    in_flight: set[int] | None,
    rendering: Rendering,
    pacing: Pacing,
) -> None:
    """One channel's round under its pacing: cut the watchlist digests that are due; in quiet
    hours hold everything; beyond the rate limit hold everything; else send what was held as
    one message, then the digests, then single alerts, each message counted against the limit."""
    digest_watchlists = pacing.digest_watchlists(channel)
    if not pacing.active or not isinstance(queue, DigestQueue):
        await _channel_round(
            queue, notifier, alerts, channel, owner, clock, limit, report, in_flight, rendering
        )
        return
    now = clock()
    for watchlist in digest_watchlists:
        last = await asyncio.to_thread(queue.last_digest_at, channel, watchlist)
        since = last or await asyncio.to_thread(queue.first_waiting_at, channel, watchlist)
        if since is not None and pacing.digest_due(watchlist, since, now):
            cut = await asyncio.to_thread(
                queue.cut_digest, channel, watchlist=watchlist, at=now, last=last
            )
            if cut is not None:
                log.info("channel %s: digest %d of watchlist %s cut", channel, cut, watchlist)
    if pacing.quiet(channel, now):
        held = await asyncio.to_thread(
            queue.hold_channel, channel, "quiet", exclude_watchlists=digest_watchlists
        )
        if held:
            log.info("channel %s: quiet hours: %d alert(s) held", channel, held)
        return
    budget = limit
    rate = pacing.rate_limit(channel)
    if rate is not None:
        count, window = rate
        sent = await asyncio.to_thread(queue.sent_since, channel, now - timedelta(seconds=window))
        budget = min(limit, count - sent)
        if budget <= 0:
            held = await asyncio.to_thread(
                queue.hold_channel, channel, "rate", exclude_watchlists=digest_watchlists
            )
            if held:
                log.info("channel %s: rate limit reached: %d alert(s) held", channel, held)
            return
    if await asyncio.to_thread(queue.first_waiting_at, channel, None) is not None:
        await asyncio.to_thread(queue.cut_digest, channel, watchlist=None, at=now)
    if rate is not None:
        notifier = cast(Notifier, _ThrottleWatch(notifier))
    sent_digests, ok = await _send_digests(
        queue, notifier, alerts, channel, owner, clock, budget, report, rendering
    )
    budget -= sent_digests
    if ok and budget > 0:
        await _channel_round(
            queue,
            notifier,
            alerts,
            channel,
            owner,
            clock,
            budget,
            report,
            in_flight,
            rendering,
            hold_watchlists=digest_watchlists,
        )
    if rate is not None:  # the limit reached: what is left waits for one folded message
        count, window = rate
        sent = await asyncio.to_thread(
            queue.sent_since, channel, clock() - timedelta(seconds=window)
        )
        throttled = isinstance(notifier, _ThrottleWatch) and notifier.throttled
        if throttled:  # the service said 429: what waits (the refused one too) is folded
            log.info("channel %s: the service answered 429: alerts held", channel)
        if sent >= count or throttled:
            await asyncio.to_thread(
                queue.hold_channel, channel, "rate", exclude_watchlists=digest_watchlists
            )


class _ThrottleWatch:
    """A Notifier that notes whether the service answered 429 (Too Many Requests)."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        self.channels = notifier.channels
        self.timeout = notifier.timeout
        self.throttled = False

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        result = await self._notifier.send(channel, message, skip=skip)
        if not result.ok and _THROTTLED_RE.search(result.error or ""):
            self.throttled = True
        return result


# how apprise reports a 429: "...: Too Many Requests., error=429."
_THROTTLED_RE = re.compile(r"error=429\b|too many requests", re.IGNORECASE)


async def _send_digests(
    queue: DigestQueue,
    notifier: Notifier,
    alerts: AlertsConfig,
    channel: str,
    owner: str,
    clock: Callable[[], datetime],
    budget: int,
    report: DeliveryReport,
    rendering: Rendering,
) -> tuple[int, bool]:
    """Send the channel's due digests, at most `budget`; (how many went out, no failure)."""
    lease = _send_time(alerts, notifier) * 2 + LEASE_MARGIN
    sent = 0
    while sent < budget:
        claims = await asyncio.to_thread(
            queue.claim_digests, owner=owner, channel=channel, now=clock(), lease=lease, limit=1
        )
        if not claims:
            return sent, True
        claim = claims[0]
        message = rendering.digest(f"digest {claim.id} {channel}", claim.items)
        result = await notifier.send(channel, message, skip=claim.done_targets)
        at = clock()
        attempt = claim.attempts + 1
        if result.ok:
            await asyncio.to_thread(queue.mark_digest_sent, claim.id, at=at)
            sent += 1
            report._count(channel, "sent", len(claim.items))
            log.info(
                "digest sent: channel=%s digest=%d alerts=%d attempt=%d",
                channel,
                claim.id,
                len(claim.items),
                attempt,
            )
            continue
        final = attempt >= alerts.max_attempts
        next_at = None if final else at + timedelta(seconds=backoff(attempt, alerts))
        await asyncio.to_thread(
            queue.mark_digest_failed,
            claim.id,
            error=result.error or "send failed",
            done_targets=result.done,
            next_attempt_at=next_at,
            at=at,
        )
        report._count(channel, "failed" if final else "retrying", len(claim.items))
        log.warning(
            "digest not sent: channel=%s digest=%d attempt=%d/%d error=%s",
            channel,
            claim.id,
            attempt,
            alerts.max_attempts,
            result.error,
        )
        return sent, False
    return sent, True


async def _channel_round(
    queue: DeliveryQueue,
    notifier: Notifier,
    alerts: AlertsConfig,
    channel: str,
    owner: str,
    clock: Callable[[], datetime],
    limit: int,
    report: DeliveryReport,
    in_flight: set[int] | None,
    rendering: Rendering,
    *,
    hold_watchlists: Collection[str] = (),
) -> None:
    send_time = _send_time(alerts, notifier)
    lease = send_time * 2 + LEASE_MARGIN
    tried = 0
    batch_size = 1  # probe first
    while tried < limit:
        want = min(batch_size, limit - tried)
        claimed_at = time.monotonic()
        # (hold_watchlists only when there are some: a DeliveryQueue may predate it)
        extra = {"hold_watchlists": hold_watchlists} if hold_watchlists else {}
        batch = await asyncio.to_thread(
            queue.claim_due,
            owner=owner,
            now=clock(),
            lease=lease,
            limit=want,
            channels=[channel],
            **extra,
        )
        if not batch:
            return
        for k, delivery in enumerate(batch):
            # never start a send that could outlast the lease (another worker could claim it)
            if time.monotonic() - claimed_at + send_time + LEASE_MARGIN > lease:
                _defer(report, channel, batch[k:], "time is up for this round")
                return
            if in_flight is not None:
                in_flight.add(delivery.id)
            ok = await _deliver_one(queue, notifier, alerts, delivery, clock, report, rendering)
            if in_flight is not None:  # (not reached when cancelled: the id stays)
                in_flight.discard(delivery.id)
            tried += 1
            if not ok:
                _defer(report, channel, batch[k + 1 :], "the channel failed")
                return
        if len(batch) < want:
            return
        batch_size = CLAIM_BATCH


def _defer(report: DeliveryReport, channel: str, rest: Sequence[Delivery], why: str) -> None:
    if rest:
        report._count(channel, "deferred", len(rest))
        log.info(
            "channel %s: %d claimed alert(s) left for a later round (%s)", channel, len(rest), why
        )


def _fields(delivery: Delivery, attempt: int, outcome: str) -> dict[str, object]:
    """A delivery log line's fields, as keys of their own in JSON logs (worker.logs)."""
    return {
        "watchlist": delivery.watchlist,
        "channel": delivery.channel,
        "article": delivery.article_url,
        "attempt": attempt,
        "outcome": outcome,
    }


async def _deliver_one(
    queue: DeliveryQueue,
    notifier: Notifier,
    alerts: AlertsConfig,
    delivery: Delivery,
    clock: Callable[[], datetime],
    report: DeliveryReport,
    rendering: Rendering,
) -> bool:
    attempt = delivery.attempts + 1
    try:
        message = rendering.message(delivery)
    except Exception as exc:  # a template failing on this article (checked on a sample one)
        log.warning("template failed for delivery %d: %s; built-in layout used", delivery.id, exc)
        message = Rendering(tz=rendering.tz).message(delivery)
    result = await notifier.send(delivery.channel, message, skip=delivery.done_targets)
    at = clock()
    if result.ok:
        await asyncio.to_thread(queue.mark_sent, delivery.id, at=at)
        report_outcome = "sent"
        log.info(
            "alert sent: watchlist=%s channel=%s article=%s attempt=%d",
            delivery.watchlist,
            delivery.channel,
            delivery.article_url,
            attempt,
            extra=_fields(delivery, attempt, "sent"),
        )
    else:
        final = attempt >= alerts.max_attempts
        next_at = None if final else at + timedelta(seconds=backoff(attempt, alerts))
        error = result.error or "send failed"
        await asyncio.to_thread(
            queue.mark_attempt_failed,
            delivery.id,
            error=error,
            done_targets=result.done,
            next_attempt_at=next_at,
            at=at,
        )
        report_outcome = "failed" if final else "retrying"
        log.warning(
            "alert %s: watchlist=%s channel=%s article=%s attempt=%d/%d error=%s%s",
            "failed for good" if final else "not sent",
            delivery.watchlist,
            delivery.channel,
            delivery.article_url,
            attempt,
            alerts.max_attempts,
            error,
            "" if next_at is None else f" next_try={next_at.isoformat(timespec='seconds')}",
            extra=_fields(delivery, attempt, "failed" if final else "retrying")
            | {"error": error, "next_try": next_at.isoformat() if next_at else None},
        )
    report._count(delivery.channel, report_outcome)
    return result.ok


async def test_alert(notifier: Notifier, channel: str | None = None) -> dict[str, SendResult]:
    """Send a test message to one channel or to all of them, at once; channel -> result."""
    if channel is not None and channel not in notifier.channels:
        known = ", ".join(notifier.channels) or "none defined"
        raise ValueError(f"unknown channel {channel!r} (channels: {known})")
    names = [channel] if channel is not None else list(notifier.channels)
    results = await asyncio.gather(*(notifier.send(n, alert_test_message(n)) for n in names))
    for name, result in zip(names, results, strict=True):
        if result.ok:
            log.info("test alert sent: channel=%s", name)
        else:
            log.warning("test alert failed: channel=%s error=%s", name, result.error)
    return dict(zip(names, results, strict=True))


test_alert.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
