"""What /healthz answers, kept in memory: the request never waits on the database or the loop.

Three writers, one lock. The event loop publishes what only it knows (the scheduler, the passes
running, next runs, breakers, the last reload) every HEALTH_PUBLISH seconds and at once after
each pass (from its report). A thread of its own reads what the database knows (its ping, the
sources' rows, the open incidents, a fleet's live replicas and next due times) every
HEALTH_REFRESH seconds. The health listener's thread composes the answer from these parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.report import PassReport
from worker.store import SourceStatus, Store, StoreError

log = logging.getLogger(__name__)

HEALTH_PUBLISH = 1.0  # seconds between two publications of the loop's state
HEALTH_REFRESH = 2.0  # seconds between two reads of the database's state
HEALTH_POKED = 0.5  # seconds a read asked for by a pass waits (for the passes ending with it)
HEALTH_READ_SHARE = 0.1  # of the refresh thread's time, at most this share spent reading
# each read of the sources' rows turns them all into objects (125 ms of CPU at 10,000 sources,
# 8-10 % of the interpreter lock's time there); between two full reads, only the rows of the
# passes recorded since the last read began (417 rows: 6.6 ms), less a margin for a pass
# recorded as its read began (a row missed so shows at the next full read)
HEALTH_FULL = 30.0  # seconds between two reads of every row
HEALTH_MARGIN = 5.0  # seconds
HEALTH_STALE = 30.0  # a database read older than this: the database counts as unreachable
LOOP_STALE = 120.0  # the loop's state older than this: the daemon counts as stuck
# the walk over every source an answer takes (4-9 ms of CPU at 10,000 sources, 55-90 ms with
# each source's detail; 13 % of the process's time when /healthz was polled every 0.1 s there) is
# reused while nothing changed, and when it cost over COMPOSE_FREE, for up to COMPOSE_FOR
# seconds (the loop's part is published once a second anyway) or COMPOSE_REUSE times its cost
COMPOSE_FREE = 0.001  # seconds of CPU: a cheaper walk (under ~2,000 sources) is always redone
COMPOSE_FOR = 1.0  # seconds
COMPOSE_REUSE = 10.0


@dataclass
class LoopState:
    """What the event loop knows, as of `at` (time.monotonic())."""

    at: float = 0.0
    running: bool = False
    sources: list[str] = field(default_factory=list)
    active: dict[str, bool] = field(default_factory=dict)
    passing: set[str] = field(default_factory=set)
    jobs: list[Any] = field(default_factory=list)  # the scheduler's jobs (id, next_run_time)
    breakers: dict[str, datetime] = field(default_factory=dict)  # open: until then
    claimed: list[str] = field(default_factory=list)


@dataclass
class DbState:
    """What the database says, as of `at` (time.monotonic(); 0: never read)."""

    at: float = 0.0
    ok: bool = False
    rows: dict[str, SourceStatus] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    replicas: list[dict[str, Any]] | None = None  # a fleet's live replicas
    next_due: dict[str, datetime] = field(default_factory=dict)  # a fleet's schedule


class HealthSnapshot:
    """The state /healthz is composed from; `compose()` is safe from any thread."""

    def __init__(
        self,
        store: Store,
        *,
        replica: str,
        fleet: bool,
        live_replicas: Callable[[], list[dict[str, Any]]] | None = None,
        config: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.store = store
        self.replica = replica
        self.fleet = fleet
        self.live_replicas = live_replicas  # read in the refresh thread (a fleet's)
        self.config = config  # the last reload's outcome (a dict replaced whole: thread-safe)
        self.lock = threading.Lock()
        self.loop = LoopState()
        self.db = DbState()
        self.passed: dict[str, dict[str, Any]] = {}  # from the last pass reports, by source
        self._generation = 0  # moves with every write (under the lock)
        self._read_from: datetime | None = None  # the next read of what changed: rows since
        self._full_at = -HEALTH_FULL  # time.monotonic() of the last read of every row
        self._composed: dict[bool, _Composed] = {}  # the last walk, with detail and without
        self._stop = threading.Event()
        self._poked = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the writers -----------------------------------------------------------------------------

    def publish(self, state: LoopState) -> None:
        state.at = time.monotonic()
        with self.lock:
            self.loop = state
            self._generation += 1

    def observe_pass(self, report: PassReport) -> None:
        """A pass ended: what its report says shows at once (the database read catches up)."""
        c = report.crawl
        now = datetime.now(UTC)
        with self.lock:
            self._generation += 1
            before = self.passed.get(report.source, {})
            row = self.db.rows.get(report.source)
            self.passed[report.source] = {
                "last_pass": now,
                "ok": report.ok,
                "last_error": None if report.ok else (report.error or "failed"),
                "last_success": now
                if report.ok
                else before.get("last_success", row.last_success_at if row else None),
                "last_pages": c.pages,
                "last_new": c.new,
                "last_duration": c.duration,
                "failures": report.failures,
                "baselined": report.ok
                or bool(before.get("baselined"))
                or bool(row and row.baselined_at),
            }
            if report.held_until is not None:
                self.loop.breakers[report.source] = report.held_until

    def refresh(self, *, changed_only: bool = False) -> None:
        """Read the database's part (in the refresh thread; or once, by `Daemon.status()`).

        With `changed_only`, after a read that worked: only the rows of sources whose last pass
        was recorded since that read began (less HEALTH_MARGIN), merged into what it read."""
        with self.lock:
            names = list(self.loop.sources)
            before = self.db
        since = self._read_from if changed_only and before.ok else None
        started = datetime.now(UTC)
        state = DbState()
        read: list[SourceStatus] = []
        try:
            state.ok = self.store.ping()
            if state.ok:
                read = self.store.source_status(passed_since=since)
                fresh = {row.name: row for row in read}
                state.rows = fresh if since is None else {**before.rows, **fresh}
                state.incidents = self.store.open_incidents()
                if self.fleet:
                    state.next_due = self.store.next_due(names)
                    if self.live_replicas is not None:
                        state.replicas = self.live_replicas()
        except StoreError as exc:
            log.debug("health: the database could not be read: %s", exc)
            state.ok = False
        except Exception:
            if not self._stop.is_set():  # the store may be closing under a stop
                log.exception("health: reading the database's state failed")
            state.ok = False
        state.at = time.monotonic()
        if state.ok:
            self._read_from = started - timedelta(seconds=HEALTH_MARGIN)
            if since is None:
                self._full_at = state.at
        with self.lock:
            self.db = state
            self._generation += 1
            for row in read:
                passed = self.passed.get(row.name)
                if passed is not None and row.last_pass_at is not None:
                    if row.last_pass_at > passed["last_pass"] + timedelta(seconds=1):
                        del self.passed[row.name]  # a later pass (another replica's) is in the row

    def start(self) -> None:
        """The refresh thread (a daemon thread: it never holds up the exit)."""
        self._thread = threading.Thread(target=self._run, name="health-refresh", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """End the refresh thread; with `wait`, let a read in progress finish (the store is
        closed next) for up to that many seconds."""
        self._stop.set()
        self._poked.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def walks_missing(self) -> dict[str, int]:
        """Per configured source with a recorded walk: the listed articles its last complete walk
        did not see, as the database last said (whichever process walked it)."""
        with self.lock:
            names, rows = list(self.loop.sources), self.db.rows
        return {
            name: missing
            for name in names
            if (row := rows.get(name)) is not None and (missing := row.walk_missing) is not None
        }

    def poke(self) -> None:
        """Read the database's part soon (a pass ended, the config changed)."""
        self._poked.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poked.clear()
            started = time.thread_time()
            self.refresh(changed_only=time.monotonic() - self._full_at < HEALTH_FULL)
            spent = time.thread_time() - started
            # a read holds the interpreter lock the event loop needs for as long as it turns
            # rows into objects (~0.13 s of CPU at 3,000 sources, two reads a second when passes
            # end all the time: a quarter of a core): at most HEALTH_READ_SHARE of the time
            # reading; what a pass reports shows at once anyway (observe_pass)
            if self._stop.wait(spent / HEALTH_READ_SHARE - spent):
                break
            if self._poked.wait(HEALTH_REFRESH):
                self._stop.wait(HEALTH_POKED)  # many passes ending: one read for them all

    # --- the reader ------------------------------------------------------------------------------

    def compose(self, *, detail: bool = False) -> dict[str, Any]:
        """The /healthz answer: a summary, and with `detail` each source's last pass."""
        now = time.monotonic()
        with self.lock:
            loop, db, generation = self.loop, self.db, self._generation
            cached = self._composed.get(detail)
            if cached is not None and (
                cached.generation == generation
                or (
                    cached.cost > COMPOSE_FREE
                    and now - cached.at < max(COMPOSE_FOR, cached.cost * COMPOSE_REUSE)
                )
            ):
                passed = None
            else:
                passed = dict(self.passed)
        if cached is None or passed is not None:
            started = time.thread_time()
            by_source = _by_source(loop, db, passed or {}, detail=detail, fleet=self.fleet)
            cached = _Composed(now, generation, time.thread_time() - started, by_source)
            with self.lock:
                self._composed[detail] = cached
        sources = cached.sources
        db_ok = db.ok and now - db.at < HEALTH_STALE
        loop_age = now - loop.at if loop.at else None
        running = loop.running and loop_age is not None and loop_age < LOOP_STALE
        status: dict[str, Any] = {
            "status": "ok" if running and db_ok else "unhealthy",
            "scheduler": "running" if running else "stopped",
            "replica": self.replica,
            # "fleet": the schedule is shared in PostgreSQL; "alone": this process schedules it
            "schedule": "fleet" if self.fleet else "alone",
        }
        if self.fleet and db_ok:
            status["replicas"] = db.replicas or []
            status["claimed"] = sorted(loop.claimed)
        status.update(
            {
                "database": "ok" if db_ok else "unreachable",
                "failing_sources": list(sources.failing),
                "incomplete_walks": list(sources.incomplete) if db_ok else [],
                "source_counts": dict(sources.counts),
                "incidents": db.incidents if db_ok else [],  # the watchdog's open incidents
                # the last reload: {"reload": null | "applied" | "refused", "at", "problems"}
                "config": self.config(),
                # how old (seconds) the parts of this answer are
                "age": {
                    "loop": None if loop_age is None else round(loop_age, 1),
                    "database": round(now - db.at, 1) if db.at else None,
                },
            }
        )
        if detail:  # (copies: the reused entries stay as composed)
            status["sources"] = {
                name: {**entry, "next_run": entry["next_run"] if running else None}
                for name, entry in sources.detail.items()
            }
        return status


@dataclass(frozen=True)
class BySource:
    """The part of /healthz that walks every source (the costly part, reused a while)."""

    counts: dict[str, int]
    failing: list[str]
    incomplete: list[str]  # the last complete walk saw fewer articles than the counter
    detail: dict[str, dict[str, Any]]  # with `detail` only: each source's entry


@dataclass(frozen=True)
class _Composed:
    at: float  # time.monotonic() when composed
    generation: int  # of the snapshot's state it was composed from
    cost: float  # seconds of CPU it took
    sources: BySource


def _by_source(
    loop: LoopState,
    db: DbState,
    passed: dict[str, dict[str, Any]],
    *,
    detail: bool,
    fleet: bool,
) -> BySource:
    next_runs: dict[str, datetime] = {}
    if detail:
        next_runs = (
            db.next_due
            if fleet
            else {job.id: job.next_run_time for job in loop.jobs if job.next_run_time}
        )
    entries: dict[str, dict[str, Any]] = {}
    counts = {"total": 0, "ok": 0, "failing": 0, "never_passed": 0, "running": 0}
    counts["breaker_open"] = 0
    failing: list[str] = []
    incomplete: list[str] = []
    rows, breakers, passing = db.rows, loop.breakers, loop.passing
    for name in loop.sources:
        row = rows.get(name)
        if row is not None and row.walk_missing:
            incomplete.append(name)
        mine = passed.get(name)
        last_pass = row.last_pass_at if row else None
        newer = mine is not None and (last_pass is None or mine["last_pass"] >= last_pass)
        if newer:
            ok = mine["ok"]  # type: ignore[index]
        else:
            ok = None if last_pass is None else row.last_error is None  # type: ignore[union-attr]
        until = breakers.get(name)
        if ok is None:
            counts["never_passed"] += 1
        elif ok:
            counts["ok"] += 1
        else:
            counts["failing"] += 1
            failing.append(name)
        if until is not None:
            counts["breaker_open"] += 1
        if name in passing:
            counts["running"] += 1
        if detail:
            entry = _entry(name, row, mine if newer else None, until, loop)
            entry["next_run"] = _iso(next_runs.get(name))
            entries[name] = entry
    counts["total"] = len(loop.sources)
    failing.sort()
    incomplete.sort()
    return BySource(counts, failing, incomplete, entries)


def _entry(
    name: str,
    row: SourceStatus | None,
    mine: dict[str, Any] | None,
    until: datetime | None,
    loop: LoopState,
) -> dict[str, Any]:
    """One source in /healthz?detail=sources: its row, the last pass's report over it."""
    last_pass = row.last_pass_at if row else None
    error = row.last_error if row else None
    entry: dict[str, Any] = {
        "ok": None if last_pass is None else error is None,
        "last_pass": _iso(last_pass),
        "last_success": _iso(row.last_success_at if row else None),
        "last_error": error,
        "last_pages": row.last_pages if row else None,
        "last_new": row.last_new if row else None,
        "last_duration": row.last_duration if row else None,
        "baselined": bool(row and row.baselined_at),
        "failures": row.failures if row else 0,  # failed passes in a row
    }
    if mine is not None:
        entry.update({k: _iso(v) if isinstance(v, datetime) else v for k, v in mine.items()})
    entry.update(
        {
            "last_walk": _iso(row.walked_at if row else None),
            "walk_seen": row.walk_seen if row else None,
            "walk_total": row.walk_total if row else None,
            "walk_incomplete": bool(row and row.walk_missing),
            "running": name in loop.passing,
            "next_run": None,  # set by the caller
            # "open": passes spaced out until `breaker_until`
            "breaker": "open" if until is not None else "closed",
            "breaker_until": _iso(until),
            "active": loop.active.get(name, True),
        }
    )
    return entry


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None
