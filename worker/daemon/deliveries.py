"""Deliveries: one loop per channel, so a slow or hanging channel never holds up another."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from worker.daemon.tasks import Tasks, wait_any
from worker.health import Metrics
from worker.notify import (
    DeliveryReport,
    Message,
    Notifier,
    SendResult,
    backoff,
    deliver_due,
)
from worker.pipeline import Runtime
from worker.store import StoreError

log = logging.getLogger(__name__)

DELIVERY_POLL = 30.0  # longest wait between two delivery rounds of a channel
DELIVERY_RECHECK = 5.0  # wait when something is due but this channel found nothing to send


class OneChannel:
    """A Notifier seen through one channel: `deliver_due` on it serves that channel only."""

    def __init__(self, notifier: Notifier, channel: str) -> None:
        self.notifier = notifier
        self.channels = (channel,)
        self.timeout = notifier.timeout

    async def send(
        self, channel: str, message: Message, *, skip: Collection[int] = ()
    ) -> SendResult:
        return await self.notifier.send(channel, message, skip=skip)


@dataclass(frozen=True, slots=True)
class ChannelLoop:
    task: asyncio.Task[None]
    wake: asyncio.Event  # run a round now (alerts were queued, the config changed)
    changed: asyncio.Event  # the channels changed: end a backoff pause too


class ChannelLoops:
    """The daemon's delivery loops, one per configured channel, and the rounds in flight."""

    def __init__(
        self, runtime: Runtime, tasks: Tasks, metrics: Metrics, stopping: asyncio.Event
    ) -> None:
        self.runtime = runtime
        self.tasks = tasks
        self.metrics = metrics
        self.stopping = stopping
        self.loops: dict[str, ChannelLoop] = {}
        self.rounds: dict[asyncio.Task[DeliveryReport], Notifier] = {}

    def wake(self, *, channels_changed: bool = False) -> None:
        """Run a delivery round on every channel now; a channel that looks down waits out its
        backoff unless the channels changed (a fixed URL is tried at once)."""
        for loop in self.loops.values():
            loop.wake.set()
            if channels_changed:
                loop.changed.set()

    def sync(self) -> None:
        """One delivery loop per configured channel: start new ones, stop removed ones."""
        wanted = set(self.runtime.notifier.channels)
        for name in list(self.loops):
            if name not in wanted:
                self.loops.pop(name).task.cancel()
        for name in sorted(wanted - self.loops.keys()):
            wake, changed = asyncio.Event(), asyncio.Event()
            task = self.tasks.spawn(self._loop(name, wake, changed), name=f"deliver:{name}")
            self.loops[name] = ChannelLoop(task, wake, changed)

    def in_flight(self) -> set[asyncio.Task[None]]:
        """The loops still running (the shutdown gives them the grace time)."""
        return {loop.task for loop in self.loops.values() if not loop.task.done()}

    def retire(self, old: Notifier) -> None:
        """Close a replaced Notifier once the rounds that use it have finished."""
        using = [task for task, notifier in self.rounds.items() if notifier is old]

        async def close_later() -> None:
            if using:
                await asyncio.wait(using)
            old.close()

        self.tasks.spawn(close_later(), name="retire-notifier")

    async def _loop(self, channel: str, wake: asyncio.Event, changed: asyncio.Event) -> None:
        runtime = self.runtime
        down = 0  # rounds in a row in which the channel failed and sent nothing
        while not self.stopping.is_set():
            wake.clear()
            changed.clear()
            notifier = runtime.notifier
            if channel not in notifier.channels:
                return
            report: DeliveryReport | None = None
            round_ = asyncio.ensure_future(
                deliver_due(
                    runtime.store,
                    cast(Notifier, OneChannel(notifier, channel)),
                    runtime.config.alerts,
                    owner=runtime.owner,
                    in_flight=runtime.sending,
                    rendering=runtime.rendering,
                    pacing=runtime.pacing,
                )
            )
            self.rounds[round_] = notifier
            try:
                report = await round_
                self.metrics.observe_delivery(report)
                await runtime.watch_delivery(report)
                next_due = await asyncio.to_thread(runtime.store.next_due_at)
                if runtime.pacing.active:  # digests, and alerts held by quiet hours/rate limit
                    held = await asyncio.to_thread(runtime.store.next_digest_due_at)
                    next_due = min((t for t in (next_due, held) if t is not None), default=None)
            except StoreError as exc:
                log.error("channel %s: delivery round failed: %s", channel, exc)
                next_due = None
            except Exception:
                log.exception("channel %s: delivery round failed", channel)
                next_due = None
            finally:
                self.rounds.pop(round_, None)
            if report is not None and report.sent == 0 and report.retrying + report.failed:
                # the channel looks down: probe it again after a backoff of its own (each
                # round tries one delivery first), not once per due delivery
                down += 1
                pause = backoff(down, runtime.config.alerts)
                log.debug("channel %s: down; next try in %.0fs", channel, pause)
                await wait_any((self.stopping, changed), seconds=pause)
                continue
            down = 0
            wait = DELIVERY_POLL
            if next_due is not None:
                delay = (next_due - datetime.now(UTC)).total_seconds()
                if delay > 0:
                    wait = min(wait, delay + 0.05)
                elif report is not None and (report.sent or report.deferred):
                    wait = 0.05  # more may be due at once (the round's limit)
                else:  # due, but not on this channel (or leased elsewhere)
                    wait = DELIVERY_RECHECK
            await wait_any((wake, self.stopping), seconds=wait)
