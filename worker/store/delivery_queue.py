"""The delivery queue: claim due deliveries under a lease, record the outcome, retry, release."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from worker.models import Delivery
from worker.store.engine import StoreBase, StoreError
from worker.store.helpers import _aware, _cut
from worker.store.tables import (
    UTCDateTime,
    article_sources,
    articles,
    deliveries,
    digests,
    matches,
    watchdog_messages,
)

log = logging.getLogger(__name__)


def _text_for(row: Any, listings: Sequence[Any]) -> Any:
    """The text a delivery shows: that of the source that queued it, unless that listing is on
    another host than the article and the article's own site listed it too (then the site's).
    Rows from before migration 0003 have no listing text: the article's text, first source."""
    queued = next((x for x in listings if x.source == row.queued_by), None)
    if queued is None or not queued.own:
        queued = next((x for x in listings if x.own), queued)
    if queued is None or queued.title is None:
        return row
    return queued


def load_deliveries(conn: sa.Connection, ids: Sequence[int]) -> list[Delivery]:
    """The deliveries `ids` with their article's text, in id order."""
    d = deliveries
    m, a = matches, articles
    query = (
        sa.select(
            d.c.id,
            d.c.watchlist,
            d.c.channel,
            d.c.attempts,
            d.c.done_targets,
            a.c.url,
            a.c.title,
            a.c.summary,
            a.c.published,
            a.c.source,
            a.c.id.label("article_id"),
            d.c.source.label("queued_by"),
            m.c.keywords,
            a.c.body,
        )
        .join(a, a.c.id == d.c.article_id)
        .outerjoin(m, sa.and_(m.c.article_id == d.c.article_id, m.c.watchlist == d.c.watchlist))
        .where(d.c.id.in_(ids))
        .order_by(d.c.id)
    )
    rows = conn.execute(query).all()
    s = article_sources
    listings: dict[int, list[Any]] = {}
    for listing in conn.execute(
        sa.select(s.c.article_id, s.c.source, s.c.title, s.c.summary, s.c.published, s.c.own)
        .where(s.c.article_id.in_(sorted({row.article_id for row in rows})))
        .order_by(s.c.article_id, s.c.first_seen, s.c.source)
    ):
        listings.setdefault(listing.article_id, []).append(listing)
    deliveries_out = []
    for row in rows:
        text = _text_for(row, listings.get(row.article_id, []))
        deliveries_out.append(
            Delivery(
                id=row.id,
                watchlist=row.watchlist,
                channel=row.channel,
                attempts=row.attempts,
                article_url=row.url,
                title=text.title,
                summary=text.summary,
                published=text.published,
                source=text.source,
                keywords=tuple(row.keywords or ()),
                done_targets=tuple(int(i) for i in row.done_targets or ()),
                body=row.body or "",  # the alert quotes it around a match found only there
            )
        )
    return deliveries_out


class QueueMixin(StoreBase):
    """The `Store` methods that drain the `deliveries` table."""

    def claim_due(
        self,
        *,
        owner: str,
        now: datetime,
        lease: float,
        limit: int,
        channels: Collection[str] | None = None,
        hold_watchlists: Collection[str] = (),
    ) -> list[Delivery]:
        """Lease up to `limit` due pending deliveries to `owner` for `lease` seconds, oldest first.

        Two processes claiming at once get disjoint rows. A row whose lease ran out (its owner
        died mid-send) is due again.
        """
        now = _aware(now, "now")
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease}")
        wanted = sorted(set(channels)) if channels is not None else None
        if limit <= 0 or wanted == []:
            return []
        d = deliveries
        due = sa.and_(
            d.c.status == "pending",
            sa.or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now),
            sa.or_(d.c.claimed_until.is_(None), d.c.claimed_until < now),
            # held by its channel, or carried by a digest message: not sent on its own
            d.c.hold.is_(None),
            d.c.digest_id.is_(None),
        )
        if hold_watchlists:  # the watchlists whose matches go out in digests
            due = sa.and_(due, d.c.watchlist.not_in(sorted(hold_watchlists)))
        if wanted is not None:
            due = sa.and_(due, d.c.channel.in_(wanted))
        # A MATERIALIZED CTE runs once: a plain `id IN (SELECT .. LIMIT n FOR UPDATE SKIP LOCKED)`
        # may be rescanned by PostgreSQL within the UPDATE and then claim more than n rows.
        picked = (
            sa.select(d.c.id)
            .where(due)
            .order_by(d.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite holds the write lock instead
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        claim = (
            sa.update(d)
            .where(d.c.id.in_(sa.select(picked.c.id)), due)
            .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease))
            .returning(d.c.id)
        )
        with self._tx("claiming due alerts") as conn:
            ids = sorted(conn.execute(claim).scalars())
            if not ids:
                return []
            return load_deliveries(conn, ids)

    def mark_sent(self, delivery_id: int, *, at: datetime) -> None:
        """The delivery went out: it is never claimed again. A second call changes nothing."""
        at = _aware(at, "at")
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.id == delivery_id, d.c.status != "sent")
            .values(
                status="sent",
                attempts=d.c.attempts + 1,
                sent_at=at,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("recording a sent alert") as conn:
            if conn.execute(stmt).rowcount == 0:
                self._require_delivery(conn, delivery_id)
                log.debug("delivery %d was already marked sent", delivery_id)

    def mark_sent_many(self, sent: Sequence[tuple[int, datetime]]) -> None:
        """Several deliveries went out, each at its time: `mark_sent` for each, in one
        transaction (the delivery loop records a channel's sends in batches; the bound this
        puts on the alerts a crash sends twice is in worker.notify.deliver, MARK_BATCH)."""
        if not sent:
            return
        rows = [{"b_id": int(i), "b_at": _aware(at, "at")} for i, at in sent]
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.id == sa.bindparam("b_id"), d.c.status != "sent")
            .values(
                status="sent",
                attempts=d.c.attempts + 1,
                sent_at=sa.bindparam("b_at", type_=d.c.sent_at.type),
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        ids = sorted({int(i) for i, _ in sent})
        with self._tx("recording sent alerts") as conn:
            changed = conn.execute(stmt, rows).rowcount
            if changed is None or changed < 0 or changed < len(rows):
                known = set(conn.scalars(sa.select(d.c.id).where(d.c.id.in_(ids))))
                missing = [i for i in ids if i not in known]
                if missing:
                    raise StoreError(f"no delivery with id {missing[0]}")

    def mark_attempt_failed(
        self,
        delivery_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        """A send attempt failed: retry at `next_attempt_at`, or give up ('failed') when None.

        `done_targets` are the channel URLs (by index) already delivered to, kept for the retry.
        Only a pending delivery changes: one another process marked sent stays sent.
        """
        _aware(at, "at")
        retry_at = _aware(next_attempt_at, "next_attempt_at") if next_attempt_at else None
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.id == delivery_id, d.c.status == "pending")
            .values(
                status="pending" if retry_at is not None else "failed",
                attempts=d.c.attempts + 1,
                last_error=_cut(error),
                done_targets=sorted({int(i) for i in done_targets}),
                next_attempt_at=retry_at,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("recording a failed send") as conn:
            if conn.execute(stmt).rowcount == 0:
                status = self._require_delivery(conn, delivery_id)
                log.warning(
                    "delivery %d is %s already; failed attempt not recorded", delivery_id, status
                )

    @staticmethod
    def _require_delivery(conn: sa.Connection, delivery_id: int) -> str:
        status = conn.scalar(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id))
        if status is None:
            raise StoreError(f"no delivery with id {delivery_id}")
        return str(status)

    def release_claims(self, owner: str, *, keep: Collection[int] = ()) -> int:
        """Give back the pending deliveries `owner` claimed but did not try (at a stop), so that
        the next process sends them now rather than when the lease runs out. The ids in `keep`
        (sends that may still be running) stay claimed until their lease ends."""
        stmt = (
            sa.update(deliveries)
            .where(deliveries.c.claimed_by == owner, deliveries.c.status == "pending")
            .values(claimed_by=None, claimed_until=None)
        )
        if keep:
            stmt = stmt.where(deliveries.c.id.not_in(sorted(keep)))
        with self._tx("giving back claimed alerts") as conn:
            return conn.execute(stmt).rowcount or 0

    def retry_failed(self) -> int:
        """Put every failed delivery back in the queue (attempts 0, due now); returns how many."""
        d = deliveries
        stmt = (
            sa.update(d)
            .where(d.c.status == "failed")
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        with self._tx("requeuing failed alerts") as conn:
            count = int(conn.execute(stmt).rowcount)
            # a failed digest is retried whole, with the deliveries it carries
            g = digests
            conn.execute(
                sa.update(g)
                .where(g.c.status == "failed")
                .values(status="pending", attempts=0, next_attempt_at=None, claimed_by=None)
            )
            # and so is a watchdog message that failed for good
            w = watchdog_messages
            conn.execute(
                sa.update(w)
                .where(w.c.status == "failed")
                .values(status="pending", attempts=0, next_attempt_at=None, claimed_by=None)
            )
            return count

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery is due (a past time = now); None when none pends.

        A leased row counts from the end of its lease.
        """
        d = deliveries
        due = sa.func.coalesce(d.c.next_attempt_at, d.c.created)
        effective = sa.case(
            (sa.and_(d.c.claimed_until.is_not(None), d.c.claimed_until > due), d.c.claimed_until),
            else_=due,
        )
        stmt = sa.select(sa.type_coerce(sa.func.min(effective), UTCDateTime())).where(
            d.c.status == "pending"
        )
        with self._tx("reading the alert queue", write=False) as conn:
            value: datetime | None = conn.scalar(stmt)
        return value
