"""The watchdog: messages about the worker itself (issue #11).

It watches each pass (a source failing `failing_passes` passes in a row, a source that brought
nothing new for `stale_after`) and each delivery round (a channel whose deliveries failed for
good), records incidents in the database (worker.store: one row per incident), and sends one
message when an incident opens and one when it recovers, to `[watchdog] channels`. The messages
are durable like alerts: queued in the database (one row per message and channel, in the
transaction that records the incident was told), leased to one process while it sends, marked
sent once the channel took it, retried with the alerts' backoff (`[alerts] retry_base`,
`max_attempts`) after a failure, at the next pass or delivery round that finds them due. So a
restart neither repeats nor forgets one, and a failing watchdog channel holds up no other.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from worker.config import Config
from worker.notify import DeliveryReport, Message, Notifier, backoff
from worker.notify.render import FIELD_MAX, clean, escape_html, escape_markdown, inert
from worker.store import Notice, Store

if TYPE_CHECKING:
    from worker.report import PassReport

log = logging.getLogger(__name__)

ERROR_SHOWN = 400  # characters of a source's last error in a message


async def after_pass(store: Store, config: Config, report: PassReport) -> None:
    """Count a pass of the source towards (or out of) its incidents."""
    watchdog = config.watchdog
    if watchdog is None:
        return
    now = datetime.now(UTC)
    await asyncio.to_thread(
        store.observe,
        "failing",
        report.source,
        bad=not report.ok,
        detail=report.error,
        at=now,
        threshold=watchdog.failing_passes,
    )
    if watchdog.stale_after is not None and report.ok:
        last = await asyncio.to_thread(store.last_new_at, report.source)
        stale = last is not None and (now - last).total_seconds() > watchdog.stale_after
        since = last.isoformat(timespec="seconds") if last else "never"
        await asyncio.to_thread(
            store.observe,
            "stale",
            report.source,
            bad=stale,
            detail=f"nothing new since {since}",
            at=now,
        )


async def after_delivery(store: Store, config: Config, report: DeliveryReport) -> None:
    """A channel with a delivery failed for good opens an incident; one that sent closes it."""
    if config.watchdog is None:
        return
    now = datetime.now(UTC)
    for channel, stats in report.by_channel.items():
        if stats.get("failed") or stats.get("sent"):
            await asyncio.to_thread(
                store.observe,
                "channel",
                channel,
                bad=bool(stats.get("failed")) and not stats.get("sent"),
                detail=f"{stats.get('failed', 0)} alert(s) failed for good",
                at=now,
            )


def notice_message(notice: Notice, config: Config) -> Message:
    """The message about one incident opening or recovering."""
    subject = clean(notice.subject, FIELD_MAX)
    detail = clean(notice.detail or "", ERROR_SHOWN)
    noun = "channel" if notice.kind == "channel" else "source"
    what = {
        "failing": "is failing",
        "stale": "has brought nothing new",
        "channel": "cannot deliver",
    }[notice.kind]
    when = (
        notice.opened_at.astimezone(config.tz).isoformat(timespec="minutes")
        if notice.opened_at
        else "unknown"
    )
    if notice.event == "open":
        title = f"[worker] {noun} {subject} {what}"
        first = f"Since {when}."
        if notice.kind == "failing" and config.watchdog is not None:
            first = f"{config.watchdog.failing_passes} passes in a row failed, since {when}."
        lines = [first, f"Last error: {detail}" if detail else ""]
    else:
        title = f"[worker] {noun} {subject} recovered"
        lines = [f"Recovered; the incident ({what}) began {when}."]
    lines = [line for line in lines if line]
    text = "\n".join(lines)
    return Message(
        title=title,
        markdown="\n\n".join(escape_markdown(inert(line)) for line in lines),
        html="".join(f"<p>{escape_html(line)}</p>" for line in lines),
        text=text,
    )


LEASE_MARGIN = 30.0  # seconds of a watchdog message's lease kept for recording the outcome


async def send_notices(
    store: Store,
    notifier: Notifier,
    config: Config,
    *,
    owner: str,
    in_flight: set[int] | None = None,
) -> int:
    """Queue the watchdog messages the incidents owe, then send what is due on each watchdog
    channel (each in a task of its own, so a failing channel holds up no other); how many went
    out. `in_flight` holds the id of each message from the start of its send until its outcome
    is stored (kept claimed at a stop: the send may still finish)."""
    watchdog = config.watchdog
    if watchdog is None:
        return 0
    await asyncio.to_thread(store.queue_notices, watchdog.channels, at=datetime.now(UTC))
    channels = [c for c in watchdog.channels if c in notifier.channels]
    results = await asyncio.gather(
        *(_send_channel(store, notifier, config, c, owner, in_flight) for c in channels),
        return_exceptions=True,
    )
    sent = 0
    for channel, result in zip(channels, results, strict=True):
        if isinstance(result, BaseException):
            log.error("watchdog: channel %s: messages not sent: %s", channel, result)
        else:
            sent += result
    return sent


async def _send_channel(
    store: Store,
    notifier: Notifier,
    config: Config,
    channel: str,
    owner: str,
    in_flight: set[int] | None,
) -> int:
    """Send the channel's due watchdog messages in order; stop at the first failure."""
    alerts = config.alerts
    lease = max(alerts.send_timeout, notifier.timeout) * 2 + LEASE_MARGIN
    sent = 0
    while True:
        claim = await asyncio.to_thread(
            store.claim_notice, owner=owner, channel=channel, now=datetime.now(UTC), lease=lease
        )
        if claim is None:
            return sent
        notice = claim.notice
        if in_flight is not None:
            in_flight.add(claim.id)
        result = await notifier.send(
            channel, notice_message(notice, config), skip=claim.done_targets
        )
        at = datetime.now(UTC)
        attempt = claim.attempts + 1
        what = "opened" if notice.event == "open" else "recovered"
        if result.ok:
            await asyncio.to_thread(store.mark_watchdog_sent, claim.id, at=at)
            if in_flight is not None:
                in_flight.discard(claim.id)
            sent += 1
            log.warning(
                "watchdog: %s %s %s (message sent: channel=%s attempt=%d)",
                notice.kind,
                notice.subject,
                what,
                channel,
                attempt,
            )
            continue
        final = attempt >= alerts.max_attempts
        next_at = None if final else at + timedelta(seconds=backoff(attempt, alerts))
        error = result.error or "send failed"
        await asyncio.to_thread(
            store.mark_watchdog_failed,
            claim.id,
            error=error,
            done_targets=result.done,
            next_attempt_at=next_at,
            at=at,
        )
        if in_flight is not None:
            in_flight.discard(claim.id)
        log.warning(
            "watchdog message %s: channel=%s %s %s %s attempt=%d/%d error=%s",
            "failed for good" if final else "not sent (retried later)",
            channel,
            notice.kind,
            notice.subject,
            what,
            attempt,
            alerts.max_attempts,
            error,
        )
        return sent
