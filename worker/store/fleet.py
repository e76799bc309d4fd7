"""A fleet of replicas on one database: each source's next due time, claimed under a lease, and
the replicas' heartbeats.

A replica claims due sources with one `UPDATE .. WHERE source IN (SELECT .. FOR UPDATE SKIP
LOCKED)`: two replicas claiming at once get disjoint rows. The claim carries a lease
(`claimed_until`) that the replica renews while the pass runs; a replica that dies (even by
SIGKILL) stops renewing, and once the lease ends the source is due to the others again. Ending a
pass sets the next due time and clears the claim, only while the claim is still this replica's.
Times are the replicas' clocks (as for the delivery leases): keep them in sync (NTP).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _chunks
from worker.store.tables import replicas, source_schedule

REPLICA_ROWS_KEPT = timedelta(days=1)  # a replica silent for this long is forgotten


@dataclass(frozen=True, slots=True)
class Replica:
    id: str
    host: str
    pid: int
    started: datetime
    heartbeat: datetime


class FleetMixin(StoreBase):
    """The `Store` methods of the `source_schedule` and `replicas` tables."""

    # --- replicas --------------------------------------------------------------------------------

    def register_replica(self, replica: str, *, host: str, pid: int, at: datetime) -> None:
        """This replica is alive (its row created or refreshed); long-silent ones are forgotten."""
        at = _aware(at, "at")
        r = replicas
        stmt = self._insert(r).values(id=replica, host=host, pid=pid, started=at, heartbeat=at)
        stmt = stmt.on_conflict_do_update(
            index_elements=[r.c.id], set_={"host": host, "pid": pid, "started": at, "heartbeat": at}
        )
        with self._tx("registering this replica") as conn:
            conn.execute(stmt)
            conn.execute(sa.delete(r).where(r.c.heartbeat < at - REPLICA_ROWS_KEPT))

    def heartbeat(
        self,
        replica: str,
        *,
        at: datetime,
        lease: float,
        sources: Collection[str] = (),
        host: str = "?",
        pid: int = 0,
    ) -> None:
        """The replica's heartbeat, and the leases of the sources it is passing renewed."""
        at = _aware(at, "at")
        r, s = replicas, source_schedule
        with self._tx("renewing this replica's heartbeat and leases") as conn:
            beat = conn.execute(sa.update(r).where(r.c.id == replica).values(heartbeat=at))
            if not beat.rowcount:  # not registered (the database was down at start)
                conn.execute(
                    self._insert(r)
                    .values(id=replica, host=host, pid=pid, started=at, heartbeat=at)
                    .on_conflict_do_nothing()
                )
            for chunk in _chunks(sorted(sources)):
                conn.execute(
                    sa.update(s)
                    .where(s.c.claimed_by == replica, s.c.source.in_(chunk))
                    .values(claimed_until=at + timedelta(seconds=lease))
                )

    def live_replicas(self, *, since: datetime) -> list[Replica]:
        """The replicas whose heartbeat is `since` or later, by id."""
        since = _aware(since, "since")
        r = replicas
        with self._tx("reading the live replicas", write=False) as conn:
            rows = conn.execute(
                sa.select(r.c.id, r.c.host, r.c.pid, r.c.started, r.c.heartbeat)
                .where(r.c.heartbeat >= since)
                .order_by(r.c.id)
            ).all()
        return [Replica(*row) for row in rows]

    def leave_fleet(self, replica: str) -> int:
        """A clean stop: the replica's claims given back (due at once to the others) and its row
        deleted. Returns how many claims were given back."""
        r, s = replicas, source_schedule
        with self._tx("leaving the fleet") as conn:
            released = conn.execute(
                sa.update(s)
                .where(s.c.claimed_by == replica)
                .values(claimed_by=None, claimed_until=None)
            ).rowcount
            conn.execute(sa.delete(r).where(r.c.id == replica))
        return released

    # --- the schedule ----------------------------------------------------------------------------

    def schedule_sources(
        self, due: Mapping[str, datetime], *, reset_before: datetime | None = None
    ) -> None:
        """Give each source in `due` a row with that first due time (a row already there keeps
        its own); with `reset_before`, rows due later than it become due then (a fleet starting
        from nothing passes every source at start, as a lone daemon does)."""
        s = source_schedule
        rows = [{"source": name, "next_due": _aware(at, "due")} for name, at in sorted(due.items())]
        with self._tx("scheduling the sources") as conn:
            for chunk in _chunks(rows):
                conn.execute(self._insert(s).values(list(chunk)).on_conflict_do_nothing())
            if reset_before is not None:
                reset_before = _aware(reset_before, "reset_before")
                for names in _chunks(sorted(due)):
                    conn.execute(
                        sa.update(s)
                        .where(s.c.source.in_(names), s.c.next_due > reset_before)
                        .values(next_due=reset_before)
                    )

    def reschedule_source(self, source: str, *, next_due: datetime) -> None:
        """A source's schedule changed: it is next due then (unless a replica holds it now)."""
        s = source_schedule
        with self._tx("rescheduling a source") as conn:
            conn.execute(
                sa.update(s).where(s.c.source == source).values(next_due=_aware(next_due, "due"))
            )

    def claim_sources(
        self,
        replica: str,
        *,
        now: datetime,
        lease: float,
        limit: int,
        sources: Collection[str],
    ) -> list[tuple[str, datetime]]:
        """Lease up to `limit` of `sources` that are due and not claimed (or whose lease ran
        out) to `replica`, the most overdue first: [(source, when it was due)]."""
        now = _aware(now, "now")
        if limit <= 0 or not sources:
            return []
        s = source_schedule
        due = sa.and_(
            s.c.source.in_(sorted(sources)),
            s.c.next_due <= now,
            sa.or_(s.c.claimed_until.is_(None), s.c.claimed_until < now),
        )
        picked = (
            sa.select(s.c.source)
            .where(due)
            .order_by(s.c.next_due, s.c.source)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite holds the write lock instead
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        claim = (
            sa.update(s)
            .where(s.c.source.in_(sa.select(picked.c.source)), due)
            .values(claimed_by=replica, claimed_until=now + timedelta(seconds=lease))
            .returning(s.c.source, s.c.next_due)
        )
        with self._tx("claiming due sources") as conn:
            rows = conn.execute(claim).all()
        return sorted(((row.source, row.next_due) for row in rows), key=lambda r: (r[1], r[0]))

    def finish_claim(self, source: str, replica: str, *, next_due: datetime | None) -> bool:
        """The pass of a claimed source ended (or did not start): the claim is cleared and, with
        `next_due`, the source is next due then (None: it stays due, for another replica).
        False when the claim was no longer this replica's (its lease ran out)."""
        s = source_schedule
        values: dict[str, object] = {"claimed_by": None, "claimed_until": None}
        if next_due is not None:
            values["next_due"] = _aware(next_due, "next_due")
        with self._tx("ending a claimed pass") as conn:
            done = conn.execute(
                sa.update(s).where(s.c.source == source, s.c.claimed_by == replica).values(**values)
            ).rowcount
        return bool(done)

    def next_due(self, sources: Collection[str]) -> dict[str, datetime]:
        """Each source's next due time (as the fleet shares it)."""
        s = source_schedule
        out: dict[str, datetime] = {}
        with self._tx("reading the sources' schedule", write=False) as conn:
            for chunk in _chunks(sorted(sources)):
                for row in conn.execute(
                    sa.select(s.c.source, s.c.next_due).where(s.c.source.in_(chunk))
                ):
                    out[row.source] = row.next_due
        return out
