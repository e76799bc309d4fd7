"""The watchdog: messages about the worker itself (issue #11).

It watches each pass (a source failing `failing_passes` passes in a row, a source that brought
nothing new for `stale_after`) and each delivery round (a channel whose deliveries failed for
good), records incidents in the database (worker.store: one row per incident), and sends one
message when an incident opens and one when it recovers, to `[watchdog] channels`. A message is
marked sent in the database once every watchdog channel took it; one that failed is tried again
after the next pass or round, so a restart neither repeats nor forgets one.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker.config import Config
from worker.notify import DeliveryReport, Message, Notifier
from worker.notify.render import FIELD_MAX, clean, escape_html, escape_markdown, inert
from worker.store import Notice, Store

if TYPE_CHECKING:
    from worker.report import PassReport

log = logging.getLogger(__name__)

NOTICE_LEASE = 30.0  # seconds a process holds a message it sends (plus the send timeout)

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


async def send_notices(store: Store, notifier: Notifier, config: Config) -> int:
    """Send the watchdog messages owed; how many went out."""
    watchdog = config.watchdog
    if watchdog is None:
        return 0
    notices = await asyncio.to_thread(store.pending_notices)
    sent = 0
    for notice in notices:
        now = datetime.now(UTC)
        if notice.event == "skip":
            await asyncio.to_thread(store.mark_notice_sent, notice.id, "skip", at=now)
            continue
        # held while it is sent: of several processes (a fleet's replicas) one sends it
        lease = NOTICE_LEASE + notifier.timeout
        if not await asyncio.to_thread(
            store.claim_notice, notice.id, notice.event, now=now, lease=lease
        ):
            continue
        message = notice_message(notice, config)
        results = await asyncio.gather(*(notifier.send(c, message) for c in watchdog.channels))
        if all(r.ok for r in results):
            await asyncio.to_thread(store.mark_notice_sent, notice.id, notice.event, at=now)
            sent += 1
            log.warning(
                "watchdog: %s %s %s",
                notice.kind,
                notice.subject,
                "opened" if notice.event == "open" else "recovered",
            )
        else:
            errors = "; ".join(r.error or "failed" for r in results if not r.ok)
            log.warning("watchdog message not sent (retried later): %s", errors)
            await asyncio.to_thread(store.release_notice, notice.id)
            break
    return sent
