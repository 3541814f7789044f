"""Engines, migrations and sessions of the case store, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from taxrisk.serving.store.models import ActionLogHead, Base, Unit
from taxrisk.serving.store.session import (
    current_revision,
    head_revision,
    make_engine,
    open_store,
    session_factory,
    upgrade,
)

from taxrisk.settings import get_settings

TABLES = {
    "action_log_head",
    "actions",
    "case_indicators",
    "cases",
    "feedback",
    "run_units",
    "scoring_runs",
    "units",
    "users",
}


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_from_empty_creates_every_table(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) is None
    assert not set(inspect(empty_engine).get_table_names())
    upgrade(empty_engine)
    assert set(inspect(empty_engine).get_table_names()) == TABLES | {"alembic_version"}
    assert current_revision(empty_engine) == head_revision()
    with session_factory(empty_engine)() as s:
        head = s.get(ActionLogHead, 1)
        assert head is not None and (head.seq, head.hash) == (0, "0" * 64)


def test_models_and_migrations_agree(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _diff(empty_engine) == []


def test_upgrade_is_idempotent(store_engine: Engine) -> None:
    with session_factory(store_engine)() as s:
        s.add(Unit(unit_id="U00", parent_id=None, level="city", name="市局", capacity=3))
        s.commit()
    upgrade(store_engine)
    upgrade(store_engine)
    assert current_revision(store_engine) == head_revision()
    with session_factory(store_engine)() as s:
        assert s.scalars(select(Unit.name)).all() == ["市局"]
        assert s.scalar(select(ActionLogHead.seq)) == 0
    assert _diff(store_engine) == []


def test_instants_come_back_aware_utc(store_engine: Engine) -> None:
    from taxrisk.serving.store.models import User

    local = dt.datetime(2026, 12, 1, 16, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with session_factory(store_engine)() as s:
        s.add(User(name="u", role="admin", token_hash="x" * 64, created_at=local))
        s.commit()
    with session_factory(store_engine)() as s:
        got = s.scalar(select(User.created_at))
    assert got is not None and got.tzinfo is not None and got.utcoffset() == dt.timedelta(0)
    assert got == local and got.hour == 8 and got.microsecond == 123456


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'cases.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert (tmp_path / "sub" / "cases.db").is_file()
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(store_engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with store_engine.connect() as conn, pytest.raises(IntegrityError):
        conn.execute(
            text(
                "INSERT INTO run_units (run_id, unit_id, capacity, assigned, exploration, "
                "overflow, expected_yield, shadow_price) VALUES ('nope', 'U1', 1, 0, 0, 0, 0, 0)"
            )
        )


def test_postgres_url_without_driver_uses_psycopg() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_open_store_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.delenv("TAXRISK_DATABASE_URL", raising=False)
    settings = get_settings()
    with open_store(settings) as s:
        s.add(Unit(unit_id="U00", parent_id=None, level="city", name="市局", capacity=1))
    assert (tmp_path / "ws" / "cases.db").is_file()
    with pytest.raises(RuntimeError), open_store(settings) as s:
        s.add(Unit(unit_id="U01", parent_id="U00", level="county", name="县局", capacity=1))
        raise RuntimeError("boom")
    with open_store(settings) as s:
        assert s.scalars(select(Unit.unit_id)).all() == ["U00"]


@pytest.mark.slow
def test_open_store_on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAXRISK_DATABASE_URL", postgres_url)
    with open_store(get_settings()) as s:
        assert s.scalar(select(ActionLogHead.seq)) is not None
    engine = make_engine(postgres_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
