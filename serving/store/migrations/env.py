"""Alembic environment of the case store.

Run by :func:`taxrisk.serving.store.session.upgrade`, which passes an open connection in
``config.attributes["connection"]``; otherwise (Alembic's own command line) the URL comes from
``sqlalchemy.url`` or ``TAXRISK_DATABASE_URL`` / the settings. SQLite migrations run in batch
mode (SQLite cannot alter most constraints in place).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from taxrisk.serving.store.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from taxrisk.serving.store.session import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from taxrisk.settings import get_settings

        url = get_settings().cases_url
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
