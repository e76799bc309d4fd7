"""The watchdog's incidents: opened, closed, and whether each message about them went out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from worker.store.engine import StoreBase
from worker.store.helpers import _aware, _cut
from worker.store.tables import article_sources, incidents

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
        """The messages not sent yet: opened incidents, and closed ones whose opening was told."""
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

    def mark_notice_sent(self, incident_id: int, event: str, *, at: datetime) -> None:
        at = _aware(at, "at")
        i = incidents
        values: dict[str, datetime | None] = (
            {"open_sent_at": at}
            if event == "open"
            else {"close_sent_at": at}
            if event == "close"
            else {"open_sent_at": at, "close_sent_at": at}
        )
        values["notice_claimed_until"] = None  # sent: the claim (claim_notice) ends too
        with self._tx("recording a watchdog message") as conn:
            conn.execute(sa.update(i).where(i.c.id == incident_id).values(**values))

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
