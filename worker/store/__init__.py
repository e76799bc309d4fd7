"""The store: SQLAlchemy Core tables, Alembic migrations, the article store and delivery queue."""

from worker.store.store import (
    AlertRow,
    ArticleRow,
    DigestClaim,
    MatchRow,
    Notice,
    NoticeClaim,
    PendingPage,
    Replica,
    SourceStatus,
    Store,
    StoreError,
)

__all__ = [
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
