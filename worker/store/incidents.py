"""The watchdog's incidents (opened, closed) and the queue of messages about them.

An incident that opens or closes owes a message; `queue_notices` puts it on the queue, one row
per watchdog channel (`watchdog_messages`), in the transaction that records it was queued, so it
is queued once. Each row is then sent like a delivery: `claim_notice` leases a channel's oldest
pending message to one process (a channel's messages go out in order, one at a time, and a
channel that fails holds up no other), `mark_watchdog_sent` / `mark_watchdog_failed` record the
outcome (retried with backoff until `max_attempts`), and a process that dies mid-send leaves the
message to be claimed again when its lease ends.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _cut
from worker.store.tables import article_sources, incidents, watchdog_messages

KINDS = ("failing", "stale", "channel")


@dataclass(frozen=True, slots=True)
class Notice:
    """A message the watchdog owes: an incident opened ("open") or recovered ("close")."""

    id: int
    kind: str
    subject: str
    event: str
    detail: str | None
    opened_at: datetime | None
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoticeClaim:
    """A watchdog message leased for sending on one channel."""

    id: int
    channel: str
    attempts: int
    done_targets: tuple[int, ...]
    notice: Notice


class IncidentsMixin(StoreBase):
    def observe(
        self,
        kind: str,
        subject: str,
        *,
        bad: bool,
        detail: str | None,
        at: datetime,
        threshold: int = 1,
    ) -> None:
        """One observation of `subject`: bad (a failed pass, a stale source, a channel failing
        for good) or good. `threshold` bad observations in a row open an incident; a good one
        closes it (or forgets the count)."""
        at = _aware(at, "at")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        i = incidents
        with self._tx("recording an incident") as conn:
            if self.dialect == "postgresql":  # replicas observing one subject: one after another
                key = sa.func.hashtext(f"incident:{kind}:{subject}")
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            row = conn.execute(
                sa.select(i.c.id, i.c.status, i.c.streak)
                .where(i.c.kind == kind, i.c.subject == subject, i.c.status != "closed")
                .order_by(i.c.id.desc())
                .limit(1)
            ).first()
            if not bad:
                if row is None:
                    return
                if row.status == "suspect":
                    conn.execute(sa.delete(i).where(i.c.id == row.id))
                else:
                    conn.execute(
                        sa.update(i).where(i.c.id == row.id).values(status="closed", closed_at=at)
                    )
                return
            if row is None:
                streak = 1
                status = "open" if streak >= threshold else "suspect"
                conn.execute(
                    sa.insert(i).values(
                        kind=kind,
                        subject=subject,
                        status=status,
                        streak=streak,
                        detail=_cut(detail),
                        opened_at=at if status == "open" else None,
                    )
                )
                return
            streak = row.streak + 1
            values: dict[str, object] = {"streak": streak, "detail": _cut(detail)}
            if row.status == "suspect" and streak >= threshold:
                values |= {"status": "open", "opened_at": at}
            conn.execute(sa.update(i).where(i.c.id == row.id).values(**values))

    def pending_notices(self) -> list[Notice]:
        """The messages not queued yet: opened incidents, and closed ones whose opening was
        queued ("skip": closed before its opening was queued: neither is told)."""
        i = incidents
        with self._tx("reading incidents", write=False) as conn:
            rows = conn.execute(
                sa.select(i)
                .where(
                    sa.or_(
                        sa.and_(i.c.status != "suspect", i.c.open_sent_at.is_(None)),
                        sa.and_(
                            i.c.status == "closed",
                            i.c.open_sent_at.is_not(None),
                            i.c.close_sent_at.is_(None),
                        ),
                    )
                )
                .order_by(i.c.id)
            ).all()
        out = []
        for row in rows:
            if row.open_sent_at is None and row.status == "closed":
                out.append(self._notice(row, "skip"))  # over before it was told: tell neither
            elif row.open_sent_at is None:
                out.append(self._notice(row, "open"))
            else:
                out.append(self._notice(row, "close"))
        return out

    @staticmethod
    def _notice(row: sa.Row[tuple[object, ...]], event: str) -> Notice:
        m = row._mapping
        return Notice(
            m["id"], m["kind"], m["subject"], event, m["detail"], m["opened_at"], m["closed_at"]
        )

    def queue_notices(self, channels: Sequence[str], *, at: datetime) -> int:
        """Queue the messages the incidents owe, one per channel in `channels`; how many rows
        were queued. An opening not sent yet (nor being sent) when its incident closes is
        skipped, and so is the closing on that channel: neither is told."""
        at = _aware(at, "at")
        wanted = list(dict.fromkeys(channels))
        i, w = incidents, watchdog_messages
        queued = 0
        for notice in self.pending_notices():
            with self._tx("queuing a watchdog message") as conn:
                if notice.event == "skip":
                    conn.execute(
                        sa.update(i)
                        .where(i.c.id == notice.id, i.c.open_sent_at.is_(None))
                        .values(open_sent_at=at, close_sent_at=at)
                    )
                    continue
                column = i.c.open_sent_at if notice.event == "open" else i.c.close_sent_at
                took = conn.execute(
                    sa.update(i)
                    .where(i.c.id == notice.id, column.is_(None))
                    .values({column.name: at})
                ).rowcount
                if not took:  # another process queued it
                    continue
                targets = wanted
                if notice.event == "close":
                    targets = self._close_targets(conn, notice.id, wanted, at)
                for channel in targets:
                    conn.execute(
                        sa.insert(w).values(
                            incident_id=notice.id,
                            event=notice.event,
                            channel=channel,
                            done_targets=[],
                            created=at,
                        )
                    )
                queued += len(targets)
        return queued

    @staticmethod
    def _close_targets(
        conn: sa.Connection, incident_id: int, channels: Sequence[str], at: datetime
    ) -> list[str]:
        """The channels told of the incident's closing: those its opening was sent to or is
        being sent to (an unsent opening is skipped); all of them when no opening was queued
        here (an incident told before migration 0010)."""
        w = watchdog_messages
        openings = conn.execute(
            sa.select(w.c.id, w.c.channel, w.c.status, w.c.claimed_until).where(
                w.c.incident_id == incident_id, w.c.event == "open"
            )
        ).all()
        if not openings:
            return list(channels)
        unsent = [
            row.id
            for row in openings
            if row.status == "pending" and (row.claimed_until is None or row.claimed_until < at)
        ]
        if unsent:
            conn.execute(
                sa.update(w)
                .where(w.c.id.in_(unsent), w.c.status == "pending")
                .values(status="skipped", claimed_by=None, claimed_until=None)
            )
        told = {
            row.channel
            for row in openings
            if row.id not in unsent and row.status in ("sent", "pending")
        }
        return [channel for channel in channels if channel in told]

    def claim_notice(
        self, *, owner: str, channel: str, now: datetime, lease: float
    ) -> NoticeClaim | None:
        """Lease the oldest pending watchdog message of `channel` to `owner` for `lease`
        seconds, if it is due and no one holds it; None otherwise (messages of a channel go out
        in order)."""
        now = _aware(now, "now")
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease}")
        w, i = watchdog_messages, incidents
        first = (
            sa.select(w.c.id, w.c.next_attempt_at, w.c.claimed_until)
            .where(w.c.channel == channel, w.c.status == "pending")
            .order_by(w.c.id)
            .limit(1)
        )
        # a read first: most rounds find nothing due, and take no write lock for it
        with self._tx("reading the watchdog messages due", write=False) as conn:
            peek = conn.execute(first).first()
        if peek is None or (peek.next_attempt_at is not None and peek.next_attempt_at > now):
            return None
        if peek.claimed_until is not None and peek.claimed_until >= now:
            return None
        with self._tx("claiming a watchdog message") as conn:
            head = conn.execute(first).scalar()
            if head is None:
                return None
            took = conn.execute(
                sa.update(w)
                .where(
                    w.c.id == head,
                    w.c.status == "pending",
                    sa.or_(w.c.next_attempt_at.is_(None), w.c.next_attempt_at <= now),
                    sa.or_(w.c.claimed_until.is_(None), w.c.claimed_until < now),
                )
                .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease))
            ).rowcount
            if not took:
                return None
            row = conn.execute(
                sa.select(
                    w.c.id,
                    w.c.channel,
                    w.c.attempts,
                    w.c.done_targets,
                    w.c.event,
                    i.c.id.label("incident_id"),
                    i.c.kind,
                    i.c.subject,
                    i.c.detail,
                    i.c.opened_at,
                    i.c.closed_at,
                )
                .join(i, i.c.id == w.c.incident_id)
                .where(w.c.id == head)
            ).one()
        notice = Notice(
            row.incident_id,
            row.kind,
            row.subject,
            row.event,
            row.detail,
            row.opened_at,
            row.closed_at,
        )
        done = tuple(int(t) for t in row.done_targets or ())
        return NoticeClaim(row.id, row.channel, row.attempts, done, notice)

    def mark_watchdog_sent(self, message_id: int, *, at: datetime) -> None:
        """The watchdog message went out: it is never claimed again."""
        at = _aware(at, "at")
        w = watchdog_messages
        with self._tx("recording a sent watchdog message") as conn:
            conn.execute(
                sa.update(w)
                .where(w.c.id == message_id, w.c.status == "pending")
                .values(
                    status="sent",
                    attempts=w.c.attempts + 1,
                    sent_at=at,
                    next_attempt_at=None,
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    def mark_watchdog_failed(
        self,
        message_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        """A watchdog message's send failed: retried at `next_attempt_at`, or failed for good
        when None."""
        _aware(at, "at")
        retry_at = _aware(next_attempt_at, "next_attempt_at") if next_attempt_at else None
        w = watchdog_messages
        with self._tx("recording a failed watchdog message") as conn:
            conn.execute(
                sa.update(w)
                .where(w.c.id == message_id, w.c.status == "pending")
                .values(
                    status="pending" if retry_at is not None else "failed",
                    attempts=w.c.attempts + 1,
                    last_error=_cut(error),
                    done_targets=sorted({int(t) for t in done_targets}),
                    next_attempt_at=retry_at,
                    claimed_by=None,
                    claimed_until=None,
                )
            )

    def release_watchdog_claims(self, owner: str, *, keep: Collection[int] = ()) -> int:
        """Give back the watchdog messages `owner` claimed and is not sending (at a stop)."""
        w = watchdog_messages
        stmt = (
            sa.update(w)
            .where(w.c.claimed_by == owner, w.c.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        if keep:
            stmt = stmt.where(w.c.id.not_in(sorted(keep)))
        with self._tx("giving back claimed watchdog messages") as conn:
            return int(conn.execute(stmt).rowcount or 0)

    def list_watchdog_messages(self) -> list[dict[str, object]]:
        """Every watchdog message, oldest first."""
        w, i = watchdog_messages, incidents
        with self._tx("reading watchdog messages", write=False) as conn:
            rows = conn.execute(
                sa.select(
                    w.c.id,
                    w.c.channel,
                    w.c.event,
                    w.c.status,
                    w.c.attempts,
                    w.c.last_error,
                    w.c.sent_at,
                    i.c.kind,
                    i.c.subject,
                )
                .join(i, i.c.id == w.c.incident_id)
                .order_by(w.c.id)
            ).all()
        return [dict(row._mapping) for row in rows]

    def open_incidents(self) -> list[dict[str, object]]:
        """The open incidents, oldest first (for /healthz)."""
        i = incidents
        with self._tx("reading incidents", write=False) as conn:
            rows = conn.execute(
                sa.select(i.c.kind, i.c.subject, i.c.detail, i.c.opened_at, i.c.streak)
                .where(i.c.status == "open")
                .order_by(i.c.id)
            ).all()
        return [
            {
                "kind": r.kind,
                "subject": r.subject,
                "detail": r.detail,
                "since": r.opened_at.isoformat() if r.opened_at else None,
                "count": r.streak,
            }
            for r in rows
        ]

    def last_new_at(self, source: str) -> datetime | None:
        """When `source` last listed an article the store had not seen from it."""
        s = article_sources
        stmt = sa.select(sa.func.max(s.c.first_seen)).where(s.c.source == source)
        with self._tx("reading a source's last new article", write=False) as conn:
            value: datetime | None = conn.scalar(
                sa.select(sa.type_coerce(stmt.scalar_subquery(), s.c.first_seen.type))
            )
        return value
