"""Opening the database: engines for SQLite and PostgreSQL, transactions, migrations.

`StoreBase` holds one process's engines; the `Store` methods (pages, sources, delivery queue,
reading) are mixins on top of it that run their statements through `StoreBase._tx`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

# the newest migration in MIGRATIONS_DIR (tests check that it is Alembic's head)
SCHEMA_HEAD = "0011_i13fleet"
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a SQLite writer waits for the lock
PG_CONNECT_TIMEOUT = 10  # seconds (unless the URL sets connect_timeout)
PG_STATEMENT_TIMEOUT_MS = 120_000  # per statement (unless the URL sets options)
_MIGRATE_LOCK = 0x776F726B6572  # pg_advisory_xact_lock key ("worker") held while migrating
# Alembic's version table, as `alembic stamp` creates it
_ALEMBIC_VERSION = sa.Table(
    "alembic_version",
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_BEGIN = "worker_sqlite_begin"  # execution option: "IMMEDIATE" for SQLite write transactions


def dialect_insert(dialect: str) -> Callable[[sa.Table], Any]:
    """The INSERT construct with ON CONFLICT for `dialect` ("sqlite" or "postgresql").

    Each dialect's module is imported when first asked for: a worker on SQLite never loads
    the PostgreSQL dialects (40 ms at every start)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert
    from sqlalchemy.dialects import postgresql

    return postgresql.insert


class StoreError(Exception):
    """The database could not do what was asked (connection, lock timeout, schema, ...)."""


def _describe(exc: BaseException) -> str:
    """One line about a database error, without the SQL statement and its parameters."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return f"{type(orig if orig is not None else exc).__name__}: {line[:300]}"


class StoreBase:
    """The engines and the transaction helper every part of the `Store` runs on."""

    def __init__(self, url: str) -> None:
        try:
            sa_url = sa.engine.make_url(url)
        except (sa.exc.ArgumentError, ValueError):
            raise StoreError("invalid database URL (expected an SQLAlchemy URL)") from None
        backend = sa_url.get_backend_name()
        if backend in ("postgresql", "postgres") and sa_url.drivername in (
            "postgresql",
            "postgres",
        ):
            sa_url = sa_url.set(drivername="postgresql+psycopg")  # psycopg 3 is what we ship
            backend = "postgresql"
        self.dialect = backend  # "sqlite" or "postgresql"
        self._engine: sa.Engine
        self._write_engine: sa.Engine
        try:
            if backend == "sqlite":
                self._engine = _sqlite_engine(sa_url)
                self._write_engine = self._engine.execution_options(**{_BEGIN: "IMMEDIATE"})
            elif backend == "postgresql":
                self._engine = _pg_engine(sa_url)
                self._write_engine = self._engine
            else:
                raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")
        except SQLAlchemyError as exc:  # e.g. the driver is not installed
            raise StoreError(f"cannot open the database: {_describe(exc)}") from exc
        self._insert: Callable[[sa.Table], Any] = dialect_insert(backend)
        # SQLite has one writer at a time, and a writer that finds the lock taken polls for it,
        # sleeping up to 100 ms between tries: with the daemon's threads all writing, some waited
        # seconds while newcomers got in first (10,000 sources here: one pass start in ten waited
        # over 8.8 s for it, p99 10.7 s). Queued on a lock of this process instead, a
        # writer gets the database as soon as the one before it commits; another process (a
        # `worker` command beside the daemon) still meets SQLite's own wait
        self._writers = threading.RLock() if backend == "sqlite" else None

    def __repr__(self) -> str:
        return f"Store({self._engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def _tx(self, what: str, *, write: bool = True) -> Iterator[sa.Connection]:
        """One transaction; database errors come out as StoreError. SQLite writers BEGIN
        IMMEDIATE, one thread of this process at a time (`_writers`)."""
        if write and self._writers is not None:
            if not self._writers.acquire(timeout=SQLITE_BUSY_TIMEOUT):
                raise StoreError(f"{what}: database is locked (by this process, for too long)")
            try:
                with _transaction(what, self._write_engine) as conn:
                    yield conn
            finally:
                self._writers.release()
        else:
            with _transaction(what, self._write_engine if write else self._engine) as conn:
                yield conn

    # --- lifecycle ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (a no-op when it is there already).

        An empty database gets the tables of `tables.py` created directly and is stamped at
        SCHEMA_HEAD (Alembic's recipe for a new database: `create_all`, then `stamp head`; a test
        checks that the migrations build the same schema), without loading Alembic. A database
        at an older revision is upgraded by Alembic. Either runs in one transaction that first
        takes a lock (PostgreSQL: an advisory lock; SQLite: BEGIN IMMEDIATE), so several
        processes starting at once migrate one after the other.
        """
        revision = self.schema_revision()
        if revision == SCHEMA_HEAD:
            return  # current: no need to load Alembic (a fifth of a second at every start)
        if revision is None:
            if self._create_schema() or self.schema_revision() == SCHEMA_HEAD:
                return  # created here, or by another process meanwhile
        self._upgrade_with_alembic()

    def _lock_schema(self, conn: sa.Connection) -> None:
        if self.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATE_LOCK)))

    def _create_schema(self) -> bool:
        """Create every table at SCHEMA_HEAD if the database holds none of ours; False (nothing
        done) if it holds some, e.g. another process created them first."""
        from worker.store.tables import metadata

        with self._tx("creating the schema") as conn:
            self._lock_schema(conn)
            existing = set(sa.inspect(conn).get_table_names())
            if existing & ({_ALEMBIC_VERSION.name} | set(metadata.tables)):
                return False
            metadata.create_all(conn)
            _ALEMBIC_VERSION.create(conn)
            conn.execute(_ALEMBIC_VERSION.insert().values(version_num=SCHEMA_HEAD))
        log.info("created the database schema (revision %s)", SCHEMA_HEAD)
        return True

    def _upgrade_with_alembic(self) -> None:
        from alembic import command
        from alembic.config import Config as AlembicConfig
        from alembic.util import CommandError

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        try:
            with self._tx("migrating the schema") as conn:
                self._lock_schema(conn)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except CommandError as exc:
            raise StoreError(f"migrating the schema: {exc}") from exc

    def schema_revision(self) -> str | None:
        """The database's Alembic revision (None for an empty database)."""
        with self._tx("reading the schema version", write=False) as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.scalar(sa.text("SELECT version_num FROM alembic_version"))

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except SQLAlchemyError as exc:
            log.debug("database ping failed: %s", _describe(exc))
            return False


@contextmanager
def _transaction(what: str, engine: sa.Engine) -> Iterator[sa.Connection]:
    """`engine.begin()`, its database errors as StoreError."""
    try:
        with engine.begin() as conn:
            yield conn
    except SQLAlchemyError as exc:
        raise StoreError(f"{what}: {_describe(exc)}") from exc


# --- engines -------------------------------------------------------------------------------------


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    memory = url.database in (None, "", ":memory:") or "mode=memory" in str(url.query)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
        # one shared connection for an in-memory database (tests), else the default pool
        **({"poolclass": sa.pool.StaticPool} if memory else {}),
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy, not the sqlite3 module, emit BEGIN (see _on_begin): transactional DDL
        # and BEGIN IMMEDIATE for writers
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")  # WAL: fsync at checkpoints, not commits
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode=WAL`, retried while another connection holds the lock.

    The switch needs an exclusive lock, and SQLite answers "database is locked" at once, without
    waiting out the busy timeout, when connections opening a new database at the same moment
    would otherwise deadlock (14 of 200 first starts of three threads did before this retry, 0
    of 200 after). So retry with a short backoff within SQLITE_BUSY_TIMEOUT. Once a database is in WAL mode (a
    setting kept in the file) the statement is a no-op that takes no lock.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    delay = 0.002
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _pg_engine(url: sa.URL) -> sa.Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
    if "options" not in url.query:
        connect_args["options"] = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    # No server-side prepared statements: after 5 runs PostgreSQL may keep a generic plan made
    # while a table was still empty (a seq scan), and every later page then reads the whole table.
    connect_args["prepare_threshold"] = None
    return sa.create_engine(url, pool_pre_ping=True, connect_args=connect_args)
