"""What `worker check` can tell about the `database` URL without opening it (nor importing
SQLAlchemy, a tenth of a second): a dialect the store supports, a URL that parses, a driver
that is installed."""

from __future__ import annotations

import importlib.util
import re
from urllib.parse import urlsplit

# dialect[+driver] the store opens (worker/store/engine.py): psycopg 3 for PostgreSQL (a bare
# "postgresql://" gets it), the standard library's sqlite3 for SQLite
SUPPORTED = {
    "sqlite": None,
    "sqlite+pysqlite": None,
    "postgresql": "psycopg",
    "postgres": "psycopg",
    "postgresql+psycopg": "psycopg",
}
POSTGRES_EXTRA = "pip install 'news-listing-worker[postgres]'"
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def check_database_url(url: str) -> str | None:
    """None when the store can open `url`, else what is wrong (the URL's password masked)."""
    match = _SCHEME_RE.match(url)
    if match is None:
        return (
            "not a database URL: expected e.g. 'sqlite:///worker.db' or "
            "'postgresql+psycopg://user:${PGPASSWORD}@host/db'"
        )
    scheme = match.group(1).lower()
    if scheme not in SUPPORTED:
        dialect = scheme.partition("+")[0]
        if dialect in ("sqlite", "postgresql", "postgres"):
            drivers = ", ".join(s for s in SUPPORTED if s.startswith(dialect))
            return f"unsupported driver {scheme!r}: use {drivers}"
        return f"unsupported database {dialect!r}: use sqlite or postgresql"
    if scheme.startswith("postgres"):
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  (raises ValueError when the port is not a number)
        except ValueError:  # not the parser's message: it quotes a piece of the password
            return (
                "not a valid URL: the port is not a number, or a password with '@', ':', '/' or "
                "'#' is not percent-encoded ('${VAR}' values are encoded for you)"
            )
        if parts.fragment or parts.netloc.count("@") > 1:
            return (
                "not a valid URL: a password with '@', ':', '/' or '#' must be "
                "percent-encoded ('${VAR}' values are encoded for you)"
            )
    driver = SUPPORTED[scheme]
    if driver is not None and importlib.util.find_spec(driver) is None:
        return f"PostgreSQL needs the {driver} driver, which is not installed: {POSTGRES_EXTRA}"
    return None
