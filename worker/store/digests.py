"""Digest messages on the delivery queue: several deliveries sent as one message.

A digest is cut in one transaction: a `digests` row is inserted and every delivery it carries
gets its id (`deliveries.digest_id`), so a delivery is in one digest only, and a delivery
queued a moment later waits for the next one. The digest is then claimed under a lease, sent
and marked like a single delivery (`claim_digests`, `mark_digest_sent`,
`mark_digest_failed`): a failed digest is retried as a whole, with the same deliveries, and a
process that dies mid-send leaves it to be claimed again when the lease ends. Marking it sent
marks its deliveries sent in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from worker.models import Delivery
from worker.store.delivery_queue import load_deliveries
from worker.store.engine import StoreBase, StoreError
from worker.store.helpers import _aware, _cut
from worker.store.tables import deliveries, digests

HOLDS = ("quiet", "rate")  # why a channel holds a delivery (its quiet hours, its rate limit)


@dataclass(frozen=True, slots=True)
class DigestClaim:
    id: int
    channel: str
    kind: str  # "digest" (a watchlist's) or "held" (what the channel held)
    watchlist: str | None
    attempts: int
    done_targets: tuple[int, ...]
    items: tuple[Delivery, ...]


def _waiting(channel: str) -> sa.ColumnElement[bool]:
    d = deliveries
    return sa.and_(d.c.channel == channel, d.c.status == "pending", d.c.digest_id.is_(None))


class DigestMixin(StoreBase):
    """The `Store` methods behind digests, quiet hours and rate limits."""

    def hold_channel(
        self, channel: str, reason: str, *, exclude_watchlists: Sequence[str] = ()
    ) -> int:
        """Hold the channel's pending deliveries (not yet in a digest) for `reason`; how many
        were newly held. The watchlists in `exclude_watchlists` wait for their own digests."""
        if reason not in HOLDS:
            raise ValueError(f"reason must be one of {HOLDS}")
        d = deliveries
        where = sa.and_(_waiting(channel), d.c.hold.is_(None))
        if exclude_watchlists:
            where = sa.and_(where, d.c.watchlist.not_in(sorted(exclude_watchlists)))
        with self._tx("holding a channel's alerts") as conn:
            return int(conn.execute(sa.update(d).where(where).values(hold=reason)).rowcount or 0)

    def cut_digest(
        self,
        channel: str,
        *,
        watchlist: str | None,
        at: datetime,
        last: datetime | None = None,
    ) -> int | None:
        """Put every waiting delivery of `watchlist` on `channel` (or, with None, every one the
        channel held) in a new digest; its id, or None when there was none to put.

        `last` is the last digest's time the caller saw (`last_digest_at`) when it found the
        digest due: if another process cut one since, nothing is cut (replicas of a fleet
        deciding at once cut one digest, not two)."""
        at = _aware(at, "at")
        d, g = deliveries, digests
        where = _waiting(channel)
        if watchlist is not None:
            where = sa.and_(where, d.c.watchlist == watchlist)
        else:
            where = sa.and_(where, d.c.hold.is_not(None))
        kind = "digest" if watchlist is not None else "held"
        with self._tx("cutting a digest") as conn:
            if watchlist is not None:
                if self.dialect == "postgresql":  # one cut of a watchlist's digest at a time
                    key = sa.func.hashtext(f"digest:{channel}:{watchlist}")
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
                newest = conn.scalar(
                    sa.select(
                        sa.type_coerce(
                            sa.select(sa.func.max(g.c.created))
                            .where(
                                g.c.channel == channel,
                                g.c.watchlist == watchlist,
                                g.c.kind == "digest",
                            )
                            .scalar_subquery(),
                            g.c.created.type,
                        )
                    )
                )
                if newest != last:
                    return None  # cut by another process since the caller looked
            digest_id = conn.execute(
                sa.insert(g)
                .values(
                    channel=channel, kind=kind, watchlist=watchlist, done_targets=[], created=at
                )
                .returning(g.c.id)
            ).scalar_one()
            taken = conn.execute(sa.update(d).where(where).values(digest_id=digest_id)).rowcount
            if not taken:
                conn.execute(sa.delete(g).where(g.c.id == digest_id))
                return None
        return int(digest_id)

    def last_digest_at(self, channel: str, watchlist: str) -> datetime | None:
        """When the last digest of `watchlist` on `channel` was cut."""
        g = digests
        stmt = sa.select(sa.func.max(g.c.created)).where(
            g.c.channel == channel, g.c.watchlist == watchlist, g.c.kind == "digest"
        )
        with self._tx("reading digests", write=False) as conn:
            value = conn.scalar(sa.select(sa.type_coerce(stmt.scalar_subquery(), g.c.created.type)))
        return value

    def first_waiting_at(self, channel: str, watchlist: str | None) -> datetime | None:
        """When the oldest delivery waiting for a digest of `watchlist` (None: held by the
        channel) was queued; None when none waits."""
        d = deliveries
        where = _waiting(channel)
        where = sa.and_(
            where, d.c.watchlist == watchlist if watchlist is not None else d.c.hold.is_not(None)
        )
        stmt = sa.select(sa.func.min(d.c.created)).where(where)
        with self._tx("reading held alerts", write=False) as conn:
            value = conn.scalar(sa.select(sa.type_coerce(stmt.scalar_subquery(), d.c.created.type)))
        return value

    def sent_since(self, channel: str, since: datetime) -> int:
        """Messages sent on `channel` since `since`: single alerts and digests (each one)."""
        since = _aware(since, "since")
        d, g = deliveries, digests
        singles = sa.select(sa.func.count()).where(
            d.c.channel == channel,
            d.c.status == "sent",
            d.c.digest_id.is_(None),
            d.c.sent_at >= since,
        )
        folded = sa.select(sa.func.count()).where(
            g.c.channel == channel, g.c.status == "sent", g.c.sent_at >= since
        )
        with self._tx("counting sent alerts", write=False) as conn:
            return int(conn.scalar(singles) or 0) + int(conn.scalar(folded) or 0)

    def claim_digests(
        self, *, owner: str, channel: str, now: datetime, lease: float, limit: int
    ) -> list[DigestClaim]:
        """Lease up to `limit` due pending digests of `channel` to `owner`, oldest first."""
        now = _aware(now, "now")
        g = digests
        due = sa.and_(
            g.c.channel == channel,
            g.c.status == "pending",
            sa.or_(g.c.next_attempt_at.is_(None), g.c.next_attempt_at <= now),
            sa.or_(g.c.claimed_until.is_(None), g.c.claimed_until < now),
        )
        picked = (
            sa.select(g.c.id)
            .where(due)
            .order_by(g.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        claim = (
            sa.update(g)
            .where(g.c.id.in_(sa.select(picked.c.id)), due)
            .values(claimed_by=owner, claimed_until=now + timedelta(seconds=lease))
            .returning(g.c.id)
        )
        out = []
        with self._tx("claiming due digests") as conn:
            ids = sorted(conn.execute(claim).scalars())
            for row in conn.execute(sa.select(g).where(g.c.id.in_(ids)).order_by(g.c.id)).all():
                item_ids = sorted(
                    conn.execute(
                        sa.select(deliveries.c.id).where(deliveries.c.digest_id == row.id)
                    ).scalars()
                )
                out.append(
                    DigestClaim(
                        id=row.id,
                        channel=row.channel,
                        kind=row.kind,
                        watchlist=row.watchlist,
                        attempts=row.attempts,
                        done_targets=tuple(int(i) for i in row.done_targets or ()),
                        items=tuple(load_deliveries(conn, item_ids)),
                    )
                )
        return out

    def mark_digest_sent(self, digest_id: int, *, at: datetime) -> None:
        """The digest went out: it and every delivery it carries are sent."""
        at = _aware(at, "at")
        g, d = digests, deliveries
        with self._tx("recording a sent digest") as conn:
            done = conn.execute(
                sa.update(g)
                .where(g.c.id == digest_id, g.c.status != "sent")
                .values(
                    status="sent",
                    attempts=g.c.attempts + 1,
                    sent_at=at,
                    next_attempt_at=None,
                    claimed_by=None,
                    claimed_until=None,
                )
            ).rowcount
            if not done and conn.scalar(sa.select(g.c.id).where(g.c.id == digest_id)) is None:
                raise StoreError(f"no digest with id {digest_id}")
            conn.execute(
                sa.update(d)
                .where(d.c.digest_id == digest_id, d.c.status != "sent")
                .values(status="sent", attempts=d.c.attempts + 1, sent_at=at)
            )

    def mark_digest_failed(
        self,
        digest_id: int,
        *,
        error: str,
        done_targets: Sequence[int],
        next_attempt_at: datetime | None,
        at: datetime,
    ) -> None:
        """A digest's send failed: retried whole at `next_attempt_at`, or failed for good."""
        _aware(at, "at")
        retry_at = _aware(next_attempt_at, "next_attempt_at") if next_attempt_at else None
        g, d = digests, deliveries
        status = "pending" if retry_at is not None else "failed"
        with self._tx("recording a failed digest") as conn:
            conn.execute(
                sa.update(g)
                .where(g.c.id == digest_id, g.c.status == "pending")
                .values(
                    status=status,
                    attempts=g.c.attempts + 1,
                    last_error=_cut(error),
                    done_targets=sorted({int(i) for i in done_targets}),
                    next_attempt_at=retry_at,
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            conn.execute(
                sa.update(d)
                .where(d.c.digest_id == digest_id, d.c.status == "pending")
                .values(attempts=d.c.attempts + 1, last_error=_cut(error), status=status)
            )

    def next_digest_due_at(self) -> datetime | None:
        """When the earliest pending digest is due, or, when a delivery waits for a digest or is
        held by its channel, the time it was queued (the channel decides); None if neither."""
        g, d = digests, deliveries
        due = sa.func.coalesce(g.c.next_attempt_at, g.c.created)
        effective = sa.case(
            (sa.and_(g.c.claimed_until.is_not(None), g.c.claimed_until > due), g.c.claimed_until),
            else_=due,
        )
        with self._tx("reading the digest queue", write=False) as conn:
            first: datetime | None = conn.scalar(
                sa.select(sa.type_coerce(sa.func.min(effective), g.c.created.type)).where(
                    g.c.status == "pending"
                )
            )
            waiting: datetime | None = conn.scalar(
                sa.select(sa.type_coerce(sa.func.min(d.c.created), d.c.created.type)).where(
                    d.c.status == "pending",
                    d.c.digest_id.is_(None),
                    d.c.hold.is_not(None),
                )
            )
        times = [t for t in (first, waiting) if t is not None]
        return min(times) if times else None
