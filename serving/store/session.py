"""Engines and sessions of the case store, built from the settings (never global).

* :func:`make_engine` (settings or URL): SQLite in the workspace by default
  (``sqlite:///<workspace>/cases.db``, foreign keys on, WAL, a busy timeout), PostgreSQL
  through ``TAXRISK_DATABASE_URL`` (``postgresql+psycopg://...``; a bare ``postgresql://``
  is taken as psycopg 3 too).
* :func:`upgrade` brings a database to the newest Alembic revision (from empty too). The
  migrations are packaged (``taxrisk.serving.store:migrations``): no ``alembic.ini`` is needed.
* :func:`session_factory` / :func:`open_store`: sessions; the caller commits.

On SQLite the driver begins a transaction at the first write, so a transaction's writes are
serialised by the database's write lock (waiting up to :data:`SQLITE_BUSY_TIMEOUT_MS`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

    from taxrisk.settings import Settings

__all__ = [
    "SCRIPT_LOCATION",
    "alembic_config",
    "current_revision",
    "head_revision",
    "make_engine",
    "open_store",
    "session_factory",
    "upgrade",
]

log = logging.getLogger(__name__)

#: where the migrations live, as a package resource (works from an installed wheel)
SCRIPT_LOCATION = "taxrisk.serving.store:migrations"
#: how long a SQLite writer waits for the write lock, milliseconds
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _normalise_url(url: str) -> str:
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def make_engine(url_or_settings: str | Settings) -> Engine:
    """An engine for the store (SQLite pragmas set on every connection).

    ``url_or_settings``: a SQLAlchemy URL, or the settings (``Settings.cases_url``). The folder
    of a SQLite file is created when missing.
    """
    raw = url_or_settings if isinstance(url_or_settings, str) else url_or_settings.cases_url
    url = make_url(_normalise_url(raw))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration built in code (``script_location`` = the packaged migrations).

    With ``engine``, ``sqlalchemy.url`` is set to its URL (for Alembic's own command line use).
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if engine is not None:
        cfg.set_main_option(
            "sqlalchemy.url",
            engine.url.render_as_string(hide_password=False).replace("%", "%%"),
        )
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the Alembic migrations up to ``revision`` (default head; idempotent)."""
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    log.info("case store at %s upgraded to %s", engine.url.render_as_string(), revision)


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine``; objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def open_store(settings: Settings) -> Iterator[Session]:
    """A session on an upgraded store; commits on success, rolls back on error.

    For commands (one engine per call, disposed at the end); the API keeps its own engine.
    """
    engine = make_engine(settings)
    try:
        upgrade(engine)
        with session_factory(engine)() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        engine.dispose()
