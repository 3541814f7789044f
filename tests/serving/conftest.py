"""Fixtures of the case store, on SQLite and on a real PostgreSQL 15.

* ``postgres_url`` (session): starts a throw-away PostgreSQL cluster (STACK.md recipe: initdb
  as the ``postgres`` user when run as root, a free port, a temporary socket folder,
  ``fsync=off``), yields ``postgresql+psycopg://postgres@127.0.0.1:PORT/taxrisk_test`` and
  stops it at the end of the session, even after failures. Missing binaries fail the tests
  that need it (CI installs Debian's ``postgresql``: ``scripts/setup.sh --test``).
* ``empty_engine``: a fresh, empty database per test (``sqlite`` / ``postgresql`` params).
* ``store_engine``: a fresh store per test at the newest migration: on SQLite a copy of a file
  migrated once per session; on PostgreSQL one database migrated once per session whose
  tables are reset (TRUNCATE) before each test, other connections to it terminated.
* ``store_url``: that database's URL (for ``TAXRISK_DATABASE_URL`` / ``Settings``).
* ``store_session``: a session on ``store_engine`` (rolled back and closed at the end).
* ``seeded``: :class:`store_factories.Seeded` = (session, SeedInfo, engine): a fresh database
  holding :func:`store_factories.seed_store`'s store (committed), seeded once per session and
  copied back for each test (the same ids and tokens every time). A test using ``seeded`` uses
  ``seeded.engine``, not ``store_engine``.

The PostgreSQL params are marked ``slow`` (deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import copy
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from store_factories import Seeded, SeedInfo, seed_store
from taxrisk.serving.store.session import make_engine, session_factory, upgrade

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
PG_VERSION = "15"
_counter = itertools.count()


def _pg_bin() -> Path:
    candidates = [
        Path(os.environ["TAXRISK_PG_BIN"]) if os.environ.get("TAXRISK_PG_BIN") else None,
        Path(f"/usr/lib/postgresql/{PG_VERSION}/bin"),
    ]
    for c in candidates:
        if c is not None and (c / "initdb").is_file() and (c / "pg_ctl").is_file():
            return c
    pytest.fail(
        f"PostgreSQL {PG_VERSION} binaries not found (looked in "
        f"/usr/lib/postgresql/{PG_VERSION}/bin and $TAXRISK_PG_BIN): install Debian's "
        "`postgresql` (scripts/setup.sh --test) or deselect with -m 'not slow'",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_pg_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A running PostgreSQL 15 for this test session; its ``taxrisk_test`` database's URL."""
    pg_bin = _pg_bin()
    tmp = Path(tempfile.mkdtemp(prefix="pgtest."))
    data = tmp / "data"
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    port = _free_port()
    started = False
    try:
        _run(
            _as_pg_user(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",
                ]
            ),
            "initdb",
        )
        opts = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        _run(
            _as_pg_user(
                [
                    str(pg_bin / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(tmp / "server.log"),
                    "-w",
                    "-t",
                    "30",
                    "-o",
                    opts,
                    "start",
                ]
            ),
            "pg_ctl start",
        )
        started = True
        admin = create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
            isolation_level="AUTOCOMMIT",
        )
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE taxrisk_test"))
        admin.dispose()
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/taxrisk_test"
    finally:
        if started:
            subprocess.run(
                _as_pg_user([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                check=False,
                timeout=60,
            )
        shutil.rmtree(tmp, ignore_errors=True)


def _pg_admin(postgres_url: str, database: str = "postgres") -> Engine:
    url = make_url(postgres_url).set(database=database)
    return create_engine(url, isolation_level="AUTOCOMMIT")


#: the store's tables, parents before children (the order rows are copied back in)
STORE_TABLES = (
    "units",
    "scoring_runs",
    "run_units",
    "cases",
    "case_indicators",
    "feedback",
    "actions",
    "action_log_head",
    "users",
)
_SERIALS = (("feedback", "feedback_id"), ("users", "user_id"))


class _PgWork:
    """One migrated database per session on PostgreSQL, reset before each test.

    Creating a database per test costs 0.1-0.4 s on a busy machine; a reset is a TRUNCATE of
    the store's tables and, for ``seeded``, a copy back from schema ``seed`` (the seeded
    store, written once). Connections left over from the previous test are terminated first.
    """

    def __init__(self, postgres_url: str) -> None:
        self.name = "taxrisk_work"
        admin = _pg_admin(postgres_url)
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {self.name}"))
        admin.dispose()
        self.url = make_url(postgres_url).set(database=self.name).render_as_string(False)
        engine = make_engine(self.url)
        try:
            upgrade(engine)
            with session_factory(engine)() as session:
                self.info = seed_store(session)
                session.commit()
            with engine.begin() as conn:
                conn.execute(text("CREATE SCHEMA seed"))
                for t in STORE_TABLES:
                    conn.execute(text(f"CREATE TABLE seed.{t} AS TABLE public.{t}"))
        finally:
            engine.dispose()
        self.admin = _pg_admin(postgres_url, self.name)

    def reset(self, *, seeded: bool) -> None:
        with self.admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            conn.execute(text("SET lock_timeout = '20s'"))
            conn.execute(text(f"TRUNCATE {', '.join(STORE_TABLES)} RESTART IDENTITY CASCADE"))
            if seeded:
                for t in STORE_TABLES:
                    conn.execute(text(f"INSERT INTO public.{t} SELECT * FROM seed.{t}"))
                for t, col in _SERIALS:
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{t}', '{col}'), "
                            f"coalesce(max({col}), 0) + 1, false) FROM {t}"
                        )
                    )
            else:
                conn.execute(
                    text("INSERT INTO action_log_head (id, seq, hash) VALUES (1, 0, :h)"),
                    {"h": "0" * 64},
                )

    def close(self) -> None:
        self.admin.dispose()


@pytest.fixture(scope="session")
def _pg_work(postgres_url: str) -> Iterator[_PgWork]:
    work = _PgWork(postgres_url)
    try:
        yield work
    finally:
        work.close()


def _sqlite_file(path: Path, *, seeded: bool) -> SeedInfo | None:
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
        info = None
        if seeded:
            with session_factory(engine)() as session:
                info = seed_store(session)
                session.commit()
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    return info


@pytest.fixture(scope="session")
def _sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, SeedInfo]:
    """A migrated SQLite file and a seeded one (with its SeedInfo), copied for each test."""
    folder = tmp_path_factory.mktemp("sqlite_templates")
    _sqlite_file(folder / "migrated.db", seeded=False)
    info = _sqlite_file(folder / "seeded.db", seeded=True)
    assert info is not None
    return folder / "migrated.db", folder / "seeded.db", info


def _fresh_engine(
    request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool, seeded: bool = False
) -> Iterator[tuple[Engine, SeedInfo | None]]:
    """An engine on a database for one test (and the SeedInfo when ``seeded``)."""
    kind = request.param
    info: SeedInfo | None = None
    if kind == "sqlite":
        path = tmp_path / "cases.db"
        if migrated:
            migrated_file, seeded_file, seed_info = request.getfixturevalue("_sqlite_templates")
            shutil.copyfile(seeded_file if seeded else migrated_file, path)
            info = seed_info if seeded else None
        engine = make_engine(f"sqlite:///{path}")
        try:
            yield engine, info
        finally:
            engine.dispose()
        return
    postgres_url: str = request.getfixturevalue("postgres_url")
    if migrated:
        work: _PgWork = request.getfixturevalue("_pg_work")
        work.reset(seeded=seeded)
        engine = make_engine(work.url)
        try:
            yield engine, work.info if seeded else None
        finally:
            engine.dispose()
        return
    name = f"t_{os.getpid()}_{next(_counter)}"
    admin = _pg_admin(postgres_url)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE template0"))
    engine = make_engine(make_url(postgres_url).set(database=name).render_as_string(False))
    try:
        yield engine, None
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=ENGINES)
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh, empty database (no tables) on SQLite or PostgreSQL."""
    for engine, _ in _fresh_engine(request, tmp_path, migrated=False):
        yield engine


@pytest.fixture(params=ENGINES)
def store_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh database at the newest migration, on SQLite or PostgreSQL."""
    for engine, _ in _fresh_engine(request, tmp_path, migrated=True):
        yield engine


@pytest.fixture
def store_url(store_engine: Engine) -> str:
    """The URL of ``store_engine``'s database (password included, if any)."""
    return store_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def store_session(store_engine: Engine) -> Iterator[Session]:
    """A session on ``store_engine``; rolled back and closed after the test."""
    session = session_factory(store_engine)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture(params=ENGINES)
def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seeded]:
    """The seeded store (committed): ``seeded.session``, ``seeded.info``, ``seeded.engine``."""
    for engine, seed_info in _fresh_engine(request, tmp_path, migrated=True, seeded=True):
        info = copy.deepcopy(seed_info)
        assert info is not None
        session = session_factory(engine)()
        try:
            yield Seeded(session, info, engine)
        finally:
            session.rollback()
            session.close()
