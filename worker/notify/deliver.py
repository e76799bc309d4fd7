"""The delivery loop: claim due deliveries per channel, send them, record the outcome.

Each channel runs in its own task, so a slow or failing channel never delays another. Within a
channel, up to SEND_WINDOW deliveries are in flight at once, in id order, the alerts of one
article one after another (in order); the first claim of a round takes a single delivery (a
probe) and waits for its outcome, later claims take batches. After a failure the channel stops
for this round: the sends already in flight finish and are recorded; the deliveries it had
claimed but not tried are left untouched - no attempt is counted against them and their
next_attempt_at is kept - and become claimable again when their lease ends. (A failed attempt
would burn one of their `max_attempts` for a send that was never tried, and the channel has
just shown it is down: the failed delivery's own backoff paces the retries.) The probe-first
claim keeps that lease-held set small: a channel that is down leases one delivery per round,
not a batch. Sent alerts are recorded in batches (see _Window and MARK_BATCH for what a crash
may send twice); a failed attempt is recorded at once.

Store calls are synchronous (SQLAlchemy) and run in threads via asyncio.to_thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from worker.config import AlertsConfig
from worker.models import Delivery
from worker.notify.channels import SENDS_PER_URL, Notifier, SendResult
from worker.notify.pacing import Pacing
from worker.notify.render import Message, Rendering, alert_test_message

if TYPE_CHECKING:
    from worker.store import DigestClaim

log = logging.getLogger(__name__)

CLAIM_BATCH = 20  # deliveries claimed at once per channel after a successful probe
LEASE_MARGIN = 30.0  # seconds of lease kept free for recording an outcome
SEND_WINDOW = SENDS_PER_URL  # sends in flight per channel at most (4)
# Deliveries of one channel started and not yet recorded as sent, at most: those in flight and
# those sent and waiting for the transaction that records them. A crash at any moment leaves at
# most this many alerts sent (or maybe sent) while the database still has them pending; after
# their lease they are sent again. So a crash doubles at most one batch per channel - it was at
# most one alert when each send was recorded alone, at one transaction per alert.
MARK_BATCH = 2 * SEND_WINDOW


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
class BatchQueue(Protocol):
    """A queue that records several sent deliveries in one transaction (worker.store.Store);
    another DeliveryQueue gets one mark_sent each."""

    def mark_sent_many(self, sent: Sequence[tuple[int, datetime]]) -> None: ...


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
    window = _Window(queue, notifier, alerts, channel, clock, report, in_flight, rendering)
    # (hold_watchlists only when there are some: a DeliveryQueue may predate it)
    extra = {"hold_watchlists": hold_watchlists} if hold_watchlists else {}

    async def claim(want: int) -> tuple[float, list[Delivery]]:
        async with window.store_turn:
            claimed_at = time.monotonic()
            batch = await asyncio.to_thread(
                queue.claim_due,
                owner=owner,
                now=clock(),
                lease=lease,
                limit=want,
                channels=[channel],
                **extra,
            )
        return claimed_at, batch

    # The probe first, alone; then batches, the next one claimed while this one is sent (so
    # the window does not run dry during a claim). Every delivery claimed is started or
    # deferred; at most `limit` are claimed.
    want = min(1, limit)
    upcoming: asyncio.Future[tuple[float, list[Delivery]]] | None = None
    upcoming = asyncio.ensure_future(claim(want)) if want > 0 else None
    probe, claimed = True, 0
    try:
        while upcoming is not None:
            claimed_at, batch = await upcoming
            upcoming = None
            claimed += len(batch)
            if not batch:
                break
            more = len(batch) == want and claimed < limit
            if more and not probe:
                want = min(CLAIM_BATCH, limit - claimed)
                upcoming = asyncio.ensure_future(claim(want))
            why = None
            for k, delivery in enumerate(batch):
                await window.room_for(delivery)
                if window.stopped:
                    why = "the channel failed"
                # never start a send that could outlast the lease (another worker could claim it)
                elif time.monotonic() - claimed_at + send_time + LEASE_MARGIN > lease:
                    why = "time is up for this round"
                if why is not None:
                    _defer(report, channel, batch[k:], why)
                    break
                window.start(delivery)
            if why is not None:
                if upcoming is not None:  # claimed meanwhile, not tried either
                    _, rest = await upcoming
                    upcoming = None
                    _defer(report, channel, rest, why)
                break
            if probe:
                probe = False
                await window.drain()  # the probe's outcome first
                if more and not window.stopped:
                    want = min(CLAIM_BATCH, limit - claimed)
                    upcoming = asyncio.ensure_future(claim(want))
        await window.drain()
    except asyncio.CancelledError:
        if upcoming is not None:
            upcoming.cancel()
        await window.abandon()
        raise
    window.raise_error()


class _Window:
    """One channel's sends in flight this round, and the sent ones not yet recorded.

    At most SEND_WINDOW sends run at once, and at most MARK_BATCH deliveries are started and not
    yet recorded as sent (see MARK_BATCH). The sent ones are recorded in one transaction once a
    window's worth (SEND_WINDOW) waits, or nothing else is running, or the window cannot start
    another send until they are: a busy channel records several per transaction, a quiet one
    each at once. A delivery's id stays in `in_flight` from the start of its send until its
    outcome is stored."""

    def __init__(
        self,
        queue: DeliveryQueue,
        notifier: Notifier,
        alerts: AlertsConfig,
        channel: str,
        clock: Callable[[], datetime],
        report: DeliveryReport,
        in_flight: set[int] | None,
        rendering: Rendering,
    ) -> None:
        self.queue, self.notifier, self.alerts = queue, notifier, alerts
        self.channel, self.clock, self.report = channel, clock, report
        self.in_flight, self.rendering = in_flight, rendering
        self.running: dict[int, asyncio.Task[None]] = {}
        self.last_of_article: dict[str, asyncio.Task[None]] = {}
        self.sent: list[tuple[Delivery, datetime]] = []  # sent, waiting to be recorded
        self.recording = 0  # sent, in the transaction that records them
        self.recorder: asyncio.Task[None] | None = None
        self.failed = False
        self.error: BaseException | None = None  # a queue (store) error, raised at the end
        # the round's store writes one at a time: two at once from one process would make
        # SQLite's busy handler sleep (ms at a time) for its own write lock
        self.store_turn = asyncio.Lock()

    @property
    def stopped(self) -> bool:
        return self.failed or self.error is not None

    def _unrecorded(self) -> int:
        return len(self.running) + len(self.sent) + self.recording

    async def room_for(self, delivery: Delivery) -> None:
        """Wait until `delivery` may start: a free place in the window, under MARK_BATCH, and
        no earlier alert of its article still in flight (or the window stopped)."""
        while not self.stopped:
            before = self.last_of_article.get(delivery.article_url)
            if before is not None and not before.done():
                await asyncio.wait({before})
                continue
            free = len(self.running) < SEND_WINDOW
            if free and self._unrecorded() < MARK_BATCH:
                return
            self._record_soon(urgent=free)  # waiting on MARK_BATCH: record what was sent
            busy = self._tasks()
            if not busy:  # pragma: no cover - nothing to wait for: a place is free
                return
            await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)

    def start(self, delivery: Delivery) -> None:
        if self.in_flight is not None:
            self.in_flight.add(delivery.id)
        task = asyncio.ensure_future(self._send(delivery))
        self.running[delivery.id] = task
        self.last_of_article[delivery.article_url] = task

    async def _send(self, delivery: Delivery) -> None:
        try:
            result = await self.notifier.send(
                delivery.channel, _message(delivery, self.rendering), skip=delivery.done_targets
            )
            at = self.clock()
            if result.ok:
                self.sent.append((delivery, at))
                return
            self.failed = True
            async with self.store_turn:
                await _record_failure(self.queue, self.alerts, delivery, result, at, self.report)
            if self.in_flight is not None:
                self.in_flight.discard(delivery.id)
        except asyncio.CancelledError:
            raise  # (the id stays in in_flight: the send may still finish in its thread)
        except Exception as exc:  # the queue's: the round stops, the error is raised at its end
            self.error = self.error or exc
        finally:
            self.running.pop(delivery.id, None)
            if self.last_of_article.get(delivery.article_url) is asyncio.current_task():
                del self.last_of_article[delivery.article_url]
            self._record_soon()

    def _record_due(self, urgent: bool) -> bool:
        """Whether the sent ones waiting are to be recorded now: a window's worth, or nothing
        else running (no more will join them soon), or `urgent` (the window waits for it)."""
        return bool(self.sent) and (urgent or len(self.sent) >= SEND_WINDOW or not self.running)

    def _record_soon(self, *, urgent: bool = False) -> None:
        if self._record_due(urgent) and (self.recorder is None or self.recorder.done()):
            self.recorder = asyncio.ensure_future(self._record())

    async def _record(self) -> None:
        while self.sent and self.error is None:
            batch, self.sent = self.sent, []
            self.recording = len(batch)
            try:
                async with self.store_turn:
                    await _record_sent(self.queue, batch)
            except Exception as exc:  # the round stops; these stay in in_flight (they went out)
                self.error = self.error or exc
                return
            finally:
                self.recording = 0
            for delivery, _ in batch:
                if self.in_flight is not None:
                    self.in_flight.discard(delivery.id)
                attempt = delivery.attempts + 1
                log.info(
                    "alert sent: watchlist=%s channel=%s article=%s attempt=%d",
                    delivery.watchlist,
                    delivery.channel,
                    delivery.article_url,
                    attempt,
                    extra=_fields(delivery, attempt, "sent"),
                )
                self.report._count(delivery.channel, "sent")
            if not self._record_due(urgent=False):
                return

    async def drain(self) -> None:
        """Wait for every send started and for the record of every one sent."""
        while True:
            self._record_soon(urgent=True)
            waits = self._tasks()
            if not waits:
                return
            await asyncio.wait(waits)

    def _tasks(self) -> set[asyncio.Task[None]]:
        """The sends running and the recording transaction."""
        busy: set[asyncio.Task[None]] = set(self.running.values())
        if self.recorder is not None and not self.recorder.done():
            busy.add(self.recorder)
        return busy

    async def abandon(self) -> None:
        """At a cancel: stop the sends in flight (their ids stay in in_flight), record the ones
        already sent."""
        for task in list(self.running.values()):
            task.cancel()
        with contextlib.suppress(BaseException):
            if self.recorder is not None and not self.recorder.done():
                await asyncio.shield(self.recorder)
            if self.sent and self.error is None:
                await asyncio.shield(_record_sent(self.queue, list(self.sent)))
                for delivery, _ in self.sent:
                    if self.in_flight is not None:
                        self.in_flight.discard(delivery.id)
                self.sent = []

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


async def _record_sent(queue: DeliveryQueue, batch: Sequence[tuple[Delivery, datetime]]) -> None:
    sent = [(delivery.id, at) for delivery, at in batch]
    if isinstance(queue, BatchQueue):
        await asyncio.to_thread(queue.mark_sent_many, sent)
        return

    def one_by_one() -> None:
        for delivery_id, at in sent:
            queue.mark_sent(delivery_id, at=at)

    await asyncio.to_thread(one_by_one)


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


def _message(delivery: Delivery, rendering: Rendering) -> Message:
    try:
        return rendering.message(delivery)
    except Exception as exc:  # a template failing on this article (checked on a sample one)
        log.warning("template failed for delivery %d: %s; built-in layout used", delivery.id, exc)
        return Rendering(tz=rendering.tz).message(delivery)


async def _record_failure(
    queue: DeliveryQueue,
    alerts: AlertsConfig,
    delivery: Delivery,
    result: SendResult,
    at: datetime,
    report: DeliveryReport,
) -> None:
    attempt = delivery.attempts + 1
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
    report._count(delivery.channel, "failed" if final else "retrying")


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
