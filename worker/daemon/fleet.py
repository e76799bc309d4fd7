"""A fleet: `worker run` replicas on one PostgreSQL, passing each source once per its schedule.

Each source's next due time lives in the database (`source_schedule`). Every replica runs the
same small loop: claim the sources that are due and unclaimed (`FOR UPDATE SKIP LOCKED`, so two
replicas never get one source), run their passes, then set each one's next due time from its
trigger (interval or cron, as APScheduler computes it) and clear the claim. A claim is a lease
of FLEET_LEASE seconds that the replica renews with its heartbeat while the pass runs; a replica
that dies, even by SIGKILL, stops renewing, and once its leases end the others pass its sources.
A replica that stops cleanly gives its claims back at once. There is no other coordinator.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import random
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from worker.config import Config, SourceConfig
from worker.daemon.jobs import Passes
from worker.daemon.schedule import SpreadTrigger, schedule_key, start_wave, trigger_for
from worker.daemon.tasks import wait_any
from worker.pipeline import PassReport
from worker.store import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

FLEET_LEASE = 10.0  # seconds a claim holds without a heartbeat: a dead replica's sources wait this
FLEET_HEARTBEAT = 2.0  # seconds between two heartbeats (each renews the leases of running passes)
FLEET_LIVE = 3 * FLEET_HEARTBEAT  # a replica is live when its last heartbeat is this recent
FLEET_POLL = 0.5  # seconds between two looks for due sources (a little jitter added)
FLEET_CLAIM_BATCH = 32  # sources claimed at most in one look
FLEET_MAX_PASSES = 64  # passes one replica runs at once (the others take the rest)


def replica_id(configured: str | None) -> str:
    """`[fleet] replica`, or host:pid."""
    return configured or f"{socket.gethostname()}:{os.getpid()}"


class FleetJobs:
    """Starts the passes of the sources this replica claims from the shared schedule."""

    def __init__(
        self, passes: Passes, replica: str, on_start: Callable[[float], None] | None = None
    ) -> None:
        self.passes = passes
        self.on_start = on_start  # hears how late (seconds) each claimed pass started
        self.runtime = passes.runtime
        self.store = passes.runtime.store
        self.tasks = passes.tasks
        self.replica = replica
        self.triggers: dict[str, BaseTrigger] = {}
        self.claimed: dict[str, asyncio.Task[None]] = {}  # a claimed source's pass, and its end
        self.halt = asyncio.Event()  # no new claims (the stop)
        self.unscheduled: dict[str, datetime] = {}  # sources added by a reload, rows not written
        self._loops: list[asyncio.Task[Any]] = []
        self._running = False
        # the heartbeat and the claims run in a thread of their own: passes' bookkeeping filling
        # the default executor must not delay a lease's renewal (another replica would take it)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fleet")

    async def _in_pool(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.runtime.config
        self.triggers = {s.name: trigger_for(s, config.tz) for s in config.sources}
        try:
            others = await self._join()
        except StoreError as exc:  # the claim loop writes the schedule once the database answers
            log.error("fleet: replica %s could not join yet: %s", self.replica, exc)
            self.unscheduled = start_wave(list(self.triggers), datetime.now(UTC))
        else:
            log.info(
                "fleet: replica %s joined (%d other live replica(s)); claims last %.0fs",
                self.replica,
                others,
                FLEET_LEASE,
            )
        self._running = True
        self._loops = [
            self.tasks.spawn(self._claim_loop(), name="fleet-claims"),
            self.tasks.spawn(self._heartbeat_loop(), name="fleet-heartbeat"),
        ]

    async def _join(self) -> int:
        """Register this replica and the sources' schedule rows; how many others are live."""
        now = datetime.now(UTC)
        await asyncio.to_thread(
            self.store.register_replica,
            self.replica,
            host=socket.gethostname(),
            pid=os.getpid(),
            at=now,
        )
        live = await asyncio.to_thread(
            self.store.live_replicas, since=now - timedelta(seconds=FLEET_LIVE)
        )
        others = [r for r in live if r.id != self.replica]
        # a new source is due at start (a big wave paced, see `start_wave`); a fleet starting
        # from nothing passes every source at start, as a lone daemon does (the same pacing,
        # in steps of a second); a replica joining a live fleet takes its schedule
        first = start_wave(list(self.triggers), now)
        if others:
            await asyncio.to_thread(self.store.schedule_sources, first)
        else:
            steps: dict[datetime, dict[str, datetime]] = {}
            for name, at in first.items():
                step = now + timedelta(seconds=math.ceil((at - now).total_seconds()))
                steps.setdefault(step, {})[name] = step
            for step, due in sorted(steps.items()):
                await asyncio.to_thread(self.store.schedule_sources, due, reset_before=step)
        return len(others)

    def stop(self) -> None:
        self.halt.set()
        self._running = False

    async def close(self) -> None:
        for loop in self._loops:
            loop.cancel()
        self._pool.shutdown(wait=False)
        try:
            released = await asyncio.to_thread(self.store.leave_fleet, self.replica)
        except StoreError as exc:
            log.error("fleet: could not leave cleanly (claims end with their lease): %s", exc)
            return
        log.info("fleet: replica %s left; %d claim(s) given back", self.replica, released)

    @property
    def running(self) -> bool:
        return self._running

    def in_flight(self) -> set[asyncio.Task[Any]]:
        return {task for task in self.claimed.values() if not task.done()}

    # --- the loops -----------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while not self.halt.is_set():
            claimed = 0
            limit = min(FLEET_CLAIM_BATCH, FLEET_MAX_PASSES - len(self.in_flight()))
            try:
                claimed = await self._claim(limit)
            except StoreError as exc:
                log.error("fleet: claiming due sources failed: %s", exc)
            except Exception:
                log.exception("fleet: claiming due sources failed")
            wait = 0.05 if claimed and claimed >= limit else FLEET_POLL * random.uniform(0.8, 1.2)
            await wait_any((self.halt,), seconds=wait)

    async def _claim(self, limit: int) -> int:
        if self.unscheduled:  # a reload's new sources (retried here if writing them failed)
            added = dict(self.unscheduled)
            await asyncio.to_thread(self.store.schedule_sources, added)
            for name in added:
                self.unscheduled.pop(name, None)
        if limit <= 0:
            return 0
        names = [name for name in self.triggers if name not in self.claimed]
        rows = await self._in_pool(
            functools.partial(
                self.store.claim_sources,
                self.replica,
                now=datetime.now(UTC),
                lease=FLEET_LEASE,
                limit=limit,
                sources=names,
            )
        )
        for name, due in rows:
            if self.halt.is_set():  # stopping: give it back, due, to the others
                await asyncio.to_thread(self.store.finish_claim, name, self.replica, next_due=None)
                continue
            task = self.tasks.spawn(self._run_claimed(name, due), name=f"claimed:{name}")
            self.claimed[name] = task
            task.add_done_callback(functools.partial(self._forget, name))
        return len(rows)

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self.claimed.get(name) is task:
            del self.claimed[name]

    async def _heartbeat_loop(self) -> None:
        """The heartbeat, renewing the leases of the sources this replica passes. It runs until
        `close()`: through the stop's grace time too, while passes finish."""
        while True:
            await asyncio.sleep(FLEET_HEARTBEAT)
            try:
                await self._in_pool(
                    functools.partial(
                        self.store.heartbeat,
                        self.replica,
                        at=datetime.now(UTC),
                        lease=FLEET_LEASE,
                        sources=list(self.claimed),
                        host=socket.gethostname(),
                        pid=os.getpid(),
                    )
                )
            except StoreError as exc:
                log.error("fleet: heartbeat failed: %s", exc)
            except Exception:
                log.exception("fleet: heartbeat failed")

    async def _run_claimed(self, name: str, due: datetime) -> None:
        """One claimed source: its pass (unless held), then its next due time, claim cleared."""
        trigger = self.triggers.get(name)
        if trigger is None:  # removed by a reload since the claim: for a replica that has it
            await asyncio.to_thread(self.store.finish_claim, name, self.replica, next_due=None)
            return
        report: PassReport | None = None
        task = self.passes.start(name)
        if task is None and self.passes.is_passing(name):
            return  # our own pass still runs (a lease renewed late): it ends the claim
        if task is not None:
            if self.on_start is not None:
                self.on_start(max(0.0, (datetime.now(UTC) - due).total_seconds()))
            report = await task
        next_due: datetime | None = self.next_due(trigger, due, report)
        if task is None and self.halt.is_set():
            next_due = None  # not passed because we stop: still due, for the others
        if report is not None:
            self.passes.explain(report, None if report.ok else next_due)
        if not await asyncio.to_thread(
            self.store.finish_claim, name, self.replica, next_due=next_due
        ):
            log.warning(
                "fleet: source=%s claim ran out during its pass (a heartbeat was late); another "
                "replica may pass it again",
                name,
            )

    def next_due(self, trigger: BaseTrigger, due: datetime, report: PassReport | None) -> datetime:
        """When the source is due next: for `every`, the next point of the source's spread grid
        after now (and half an interval after it was due; runs missed while the pass ran are
        coalesced into that one), with the trigger's jitter, so replicas keep the spread; for
        `cron`, the next fire time after now. Never before an open breaker's end."""
        now = datetime.now(UTC)
        when: datetime | None
        if isinstance(trigger, SpreadTrigger):
            jitter = random.uniform(0, trigger.jitter or 0)
            when = trigger.next_after(due, now) + timedelta(seconds=jitter)
        elif isinstance(trigger, IntervalTrigger):
            step = trigger.interval_length
            ticks = max(1, math.floor((now - due).total_seconds() / step) + 1)
            jitter = random.uniform(0, trigger.jitter or 0)
            when = due + timedelta(seconds=ticks * step + jitter)
        else:
            when = trigger.get_next_fire_time(None, now)
        if when is None:
            when = now + timedelta(days=365)  # a trigger that never fires again
        if report is not None and report.held_until is not None:
            when = max(when, report.held_until)
        return when

    # --- live config ---------------------------------------------------------------------------

    async def apply(self, old: Config, new: Config) -> None:
        old_sources = {s.name: s for s in old.sources}
        new_sources: dict[str, SourceConfig] = {s.name: s for s in new.sources}
        now = datetime.now(UTC)
        first = start_wave([name for name in new_sources if name not in old_sources], now)
        for name in old_sources.keys() - new_sources.keys():
            self.triggers.pop(name, None)
            self.unscheduled.pop(name, None)
            log.info("config: source %s removed (a pass in flight finishes)", name)
        for name, source in new_sources.items():
            before = old_sources.get(name)
            if before is None:
                self.triggers[name] = trigger_for(source, new.tz)
                self.unscheduled[name] = first[name]  # due at start: the claim loop writes it
                log.info("config: source %s added", name)
            elif schedule_key(before) != schedule_key(source) or new.timezone != old.timezone:
                trigger = self.triggers[name] = trigger_for(source, new.tz)
                when = trigger.get_next_fire_time(None, now)
                if when is not None:
                    try:
                        await asyncio.to_thread(self.store.reschedule_source, name, next_due=when)
                    except StoreError as exc:  # it keeps its due time; the new trigger after
                        log.error("fleet: source=%s not rescheduled now: %s", name, exc)
                log.info("config: source %s rescheduled", name)
            elif before != source:
                log.info("config: source %s changed (from its next pass on)", name)

    # --- what /healthz shows -------------------------------------------------------------------

    async def next_runs(self) -> dict[str, datetime]:
        try:
            return await asyncio.to_thread(self.store.next_due, list(self.triggers))
        except StoreError:
            return {}

    def replicas_now(self) -> list[dict[str, Any]]:
        """The live replicas (read in the health snapshot's thread)."""
        live = self.store.live_replicas(since=datetime.now(UTC) - timedelta(seconds=FLEET_LIVE))
        return [
            {
                "id": r.id,
                "host": r.host,
                "pid": r.pid,
                "started": r.started.isoformat(),
                "heartbeat": r.heartbeat.isoformat(),
            }
            for r in live
        ]

    async def status(self) -> dict[str, Any]:
        since = datetime.now(UTC) - timedelta(seconds=FLEET_LIVE)
        try:
            live = await asyncio.to_thread(self.store.live_replicas, since=since)
        except StoreError:
            live = []
        return {
            "replicas": [
                {
                    "id": r.id,
                    "host": r.host,
                    "pid": r.pid,
                    "started": r.started.isoformat(),
                    "heartbeat": r.heartbeat.isoformat(),
                }
                for r in live
            ],
            "claimed": sorted(self.claimed),
        }
