"""API users: tokens shown once and stored as hashes, revocation, refusals."""

from __future__ import annotations

import hmac
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from store_factories import Seeded
from taxrisk.serving.errors import UserError
from taxrisk.serving.store import action_log, users
from taxrisk.serving.store.models import Action, Unit, User


def _all_text(engine: Engine) -> str:
    """Every value of every table, as one string (to search for a secret)."""
    with engine.connect() as conn:
        names = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    if engine.dialect.name == "sqlite"
                    else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            )
        ]
        return "\n".join(
            str(tuple(row)) for n in names for row in conn.execute(text(f"SELECT * FROM {n}"))
        )


@pytest.fixture
def units(store_session: Session) -> Session:
    store_session.add_all(
        [
            Unit(unit_id="U00", parent_id=None, level="city", name="市局", capacity=5),
            Unit(unit_id="U01", parent_id="U00", level="county", name="城东区税务局", capacity=5),
        ]
    )
    store_session.commit()
    return store_session


def test_token_is_shown_once_and_only_its_hash_stored(units: Session, store_engine: Engine) -> None:
    user, token = users.add_user(units, "张伟", "selector", "U01")
    units.commit()
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert user.token_hash == users.hash_token(token) and token not in user.token_hash
    dump = _all_text(store_engine)
    assert token not in dump
    assert users.hash_token(token) in dump
    entry = units.scalars(select(Action)).one()
    assert (entry.action, entry.actor, entry.detail["user"]) == ("user.added", "system", "张伟")
    assert action_log.verify(units).ok


def test_authenticate(units: Session) -> None:
    _, token = users.add_user(units, "admin", "admin")
    _, other = users.add_user(units, "analyst", "analyst")
    units.commit()
    got = users.authenticate(units, token)
    assert got is not None and got.name == "admin"
    assert users.authenticate(units, other).name == "analyst"  # type: ignore[union-attr]
    assert users.authenticate(units, token + "x") is None
    assert users.authenticate(units, "") is None
    assert users.actor_for(got) == action_log.Actor("admin", "admin", None)


def test_authenticate_compares_in_constant_time(
    units: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = users.add_user(units, "admin", "admin")
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(users.hmac, "compare_digest", spy)
    assert users.authenticate(units, token) is not None
    assert calls == [(users.hash_token(token), users.hash_token(token))]


def test_revoked_user_cannot_authenticate(units: Session) -> None:
    _, token = users.add_user(units, "sel", "selector", "U01")
    units.commit()
    revoked = users.revoke_user(units, "sel", actor=action_log.Actor("admin", "admin"))
    units.commit()
    assert revoked.revoked_at is not None
    assert users.authenticate(units, token) is None
    with pytest.raises(UserError, match="already revoked"):
        users.revoke_user(units, "sel")
    with pytest.raises(UserError, match="no user"):
        users.revoke_user(units, "nobody")
    assert [u.name for u in users.list_users(units)] == ["sel"]
    last = units.scalars(select(Action).order_by(Action.seq.desc())).first()
    assert last is not None and (last.action, last.actor) == ("user.revoked", "admin")


@pytest.mark.parametrize(
    ("name", "role", "unit", "match"),
    [
        ("x", "superuser", None, "unknown role"),
        ("x", "selector", None, "needs a unit"),
        ("x", "selector", "U99", "unknown unit"),
        ("x", "analyst", "U99", "unknown unit"),
        ("   ", "admin", None, "name"),
        ("a" * 101, "admin", None, "name"),
        ("dup", "admin", None, "already exists"),
    ],
)
def test_refusals_store_nothing(
    units: Session, store_engine: Engine, name: str, role: str, unit: str | None, match: str
) -> None:
    users.add_user(units, "dup", "analyst")
    units.commit()
    before = _all_text(store_engine)
    with pytest.raises(UserError, match=match):
        users.add_user(units, name, role, unit)
    units.commit()
    assert _all_text(store_engine) == before


def test_seeded_tokens_work(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    for name, token in info.tokens.items():
        user = users.authenticate(s, token)
        assert user is not None and user.name == name
        assert users.actor_for(user) == info.actors[name]
    assert {u.role for u in users.list_users(s)} == {"admin", "analyst", "selector"}
    assert s.scalar(select(User.unit_id).where(User.name == "sel_u02")) == "U02"
