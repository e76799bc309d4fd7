"""The store: articles, matches and the alert delivery queue, on SQLite or PostgreSQL.

Every worker process opens its own `Store`; they coordinate through the database only:
unique keys with `INSERT .. ON CONFLICT DO NOTHING` make storing a page idempotent, and a lease
(`claimed_by`, `claimed_until`) on each delivery row lets several processes drain the queue without
sending one alert twice (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`
serialises writers, and the claim is one conditional `UPDATE .. RETURNING`).
"""

from __future__ import annotations

from worker.store.article_pages import ArticlePagesMixin, PendingPage
from worker.store.delivery_queue import QueueMixin
from worker.store.digests import DigestClaim, DigestMixin
from worker.store.engine import MIGRATIONS_DIR, StoreError
from worker.store.fleet import FleetMixin, Replica
from worker.store.incidents import IncidentsMixin, Notice, NoticeClaim
from worker.store.lookup import LookupMixin
from worker.store.matched import MatchedMixin, MatchRow
from worker.store.pages import PagesMixin
from worker.store.reading import ReadingMixin
from worker.store.rows import AlertRow, ArticleRow, SourceStatus
from worker.store.sources import SourcesMixin

__all__ = [
    "MIGRATIONS_DIR",
    "AlertRow",
    "ArticleRow",
    "DigestClaim",
    "MatchRow",
    "Notice",
    "NoticeClaim",
    "PendingPage",
    "Replica",
    "SourceStatus",
    "Store",
    "StoreError",
]


class Store(
    PagesMixin,
    SourcesMixin,
    QueueMixin,
    DigestMixin,
    ReadingMixin,
    LookupMixin,
    MatchedMixin,
    IncidentsMixin,
    ArticlePagesMixin,
    FleetMixin,
):
    """One process's handle on the database. Thread-safe (a connection pool underneath)."""
