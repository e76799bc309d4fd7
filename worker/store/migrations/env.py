"""Alembic environment for the worker store.

`Store.migrate()` runs this with an open connection in `config.attributes["connection"]` (inside a
transaction that already holds the migration lock). Run by hand (`alembic -c
worker/store/migrations/alembic.ini revision --autogenerate -m ...`), it connects to
`sqlalchemy.url` from the ini file or to $WORKER_DATABASE.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from worker.store.tables import include_object, metadata

config = context.config


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        transactional_ddl=True,
        compare_type=True,
        include_object=include_object(connection.dialect.name),
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = os.environ.get("WORKER_DATABASE") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or $WORKER_DATABASE")
    return url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
