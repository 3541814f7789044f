"""The action log: chained appends, canonical hashes, and tampering caught with raw SQL."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session
from store_factories import Seeded
from taxrisk.serving.store import action_log
from taxrisk.serving.store.action_log import GENESIS, Actor, canonical, entry_hash, verify
from taxrisk.serving.store.models import Action
from taxrisk.serving.store.session import session_factory

ADMIN = Actor("admin", "admin")


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Action)).scalar_one())


def _tamper(engine: Engine, sql: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _fresh_verify(engine: Engine) -> action_log.VerifyResult:
    with session_factory(engine)() as s:
        return verify(s)


def test_empty_log_verifies(store_session: Session) -> None:
    result = verify(store_session)
    assert result.ok and result.entries == 0 and result.head_hash == GENESIS


def test_append_chains_entries(store_session: Session) -> None:
    a = action_log.append(store_session, ADMIN, "case.assigned", case_id="C1", reason="派给王强")
    b = action_log.append(
        store_session, ADMIN, "case.started", case_id="C1", detail={"amount": 0.1 + 0.2}
    )
    store_session.commit()
    assert (a.seq, b.seq) == (1, 2)
    assert a.prev_hash == GENESIS and b.prev_hash == a.hash
    result = verify(store_session)
    assert result.ok and result.entries == 2
    assert (result.head_seq, result.head_hash) == (2, b.hash)
    assert [e.seq for e in action_log.history(store_session, "C1")] == [1, 2]


def test_append_many_is_the_same_chain_as_appends(store_session: Session) -> None:
    at = dt.datetime(2025, 12, 31, 8, 0, tzinfo=dt.UTC)
    action_log.append(store_session, ADMIN, "run.started", run_id="R1", at=at)
    entries = [
        action_log.Entry("case.dispatched", case_id=f"C{i}", run_id="R1", detail={"n": i})
        for i in range(5)
    ]
    last = action_log.append_many(store_session, ADMIN, entries, at=at)
    action_log.append(store_session, ADMIN, "run.published", run_id="R1", at=at)
    store_session.commit()
    assert last == 6
    rows = store_session.scalars(select(Action).order_by(Action.seq)).all()
    assert [r.seq for r in rows] == list(range(1, 8))
    for prev, row in itertools.pairwise(rows):
        assert row.prev_hash == prev.hash
    # each bulk entry hashes exactly as a single append of the same content would
    r = rows[3]
    content = canonical(seq=r.seq, at=at, actor="admin", role="admin", action=r.action,
                        case_id=r.case_id, run_id="R1", reason="", detail={"n": 2})  # fmt: skip
    assert r.hash == entry_hash(rows[2].hash, content)
    assert verify(store_session).ok


def test_hash_is_recomputed_identically_from_the_database(store_engine: Engine) -> None:
    """Floats (repr), CJK text, nested detail and microsecond instants survive the round trip."""
    at = dt.datetime(2026, 12, 1, 8, 0, 0, 654321, tzinfo=dt.UTC)
    detail = {
        "z": [1, 2.5, None, True],
        "a": {"yuan": 1234567.891, "tiny": 1e-300, "third": 1 / 3},
        "名称": "华北面粉有限公司",
        "on": dt.date(2026, 1, 31),
    }
    with session_factory(store_engine)() as s:
        entry = action_log.append(s, ADMIN, "case.feedback", detail=detail, at=at, reason="补税")
        s.commit()
        stored = entry.hash
    content = canonical(
        seq=1,
        at=at,
        actor="admin",
        role="admin",
        action="case.feedback",
        case_id=None,
        run_id=None,
        reason="补税",
        detail=detail,
    )
    assert entry_hash(GENESIS, content) == stored
    assert '"on":"2026-01-31"' in content and '"at":"2026-12-01T08:00:00.654321Z"' in content
    with session_factory(store_engine)() as s:
        row = s.scalars(select(Action)).one()
        assert row.detail["a"]["third"] == 1 / 3
        assert row.at == at
    assert _fresh_verify(store_engine).ok


def test_detail_must_be_json(store_session: Session) -> None:
    with pytest.raises(ValueError, match="finite"):
        action_log.append(store_session, ADMIN, "x", detail={"v": float("nan")})
    with pytest.raises(ValueError, match="cannot store"):
        action_log.append(store_session, ADMIN, "x", detail={"v": object()})


# --- tampering, with raw SQL on the real database ---------------------------------------


def test_edited_reason_is_caught(seeded: Seeded) -> None:
    n = _count(seeded.engine)
    _tamper(seeded.engine, "UPDATE actions SET reason = :r WHERE seq = 7", r="无")
    result = _fresh_verify(seeded.engine)
    assert not result.ok
    assert (result.first_bad_seq, result.problem) == (7, "edited")
    assert result.entries == 6 and n > 7


def test_edited_detail_is_caught(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        seq = conn.execute(
            text("SELECT min(seq) FROM actions WHERE action = 'case.feedback'")
        ).scalar_one()
    _tamper(
        seeded.engine,
        "UPDATE actions SET detail = :d WHERE seq = :s",
        d='{"from": "in_progress", "to": "closed", "outcome": "no_change", "total": 0.0}',
        s=seq,
    )
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, seq, "edited")


def test_deleted_middle_entry_is_caught(seeded: Seeded) -> None:
    _tamper(seeded.engine, "DELETE FROM actions WHERE seq = 10")
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 10, "deleted")
    assert result.entries == 9


def test_forged_entry_with_recomputed_hash_is_caught(seeded: Seeded) -> None:
    """An entry appended behind the service's back, self-consistent but linked wrongly."""
    n = _count(seeded.engine)
    at = dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    fields = {
        "seq": n + 1,
        "at": at,
        "actor": "sel_u01",
        "role": "selector",
        "action": "case.dropped",
        "case_id": seeded.info.case_ids[0],
        "run_id": None,
        "reason": "经核实无风险",
        "detail": {"from": "in_progress", "to": "closed"},
    }
    wrong_prev = "f" * 64
    digest = entry_hash(wrong_prev, canonical(**fields))  # type: ignore[arg-type]
    with seeded.engine.begin() as conn:
        conn.execute(insert(Action.__table__).values(**fields, prev_hash=wrong_prev, hash=digest))
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, n + 1, "inserted")


def test_forged_entry_with_right_link_is_caught_by_the_head(seeded: Seeded) -> None:
    """Even correctly linked, an entry that did not go through append() is caught."""
    with seeded.engine.connect() as conn:
        n, last = conn.execute(text("SELECT seq, hash FROM actions ORDER BY seq DESC")).first()  # type: ignore[misc]
    fields = {
        "seq": n + 1,
        "at": dt.datetime(2026, 12, 2, tzinfo=dt.UTC),
        "actor": "admin",
        "role": "admin",
        "action": "case.added",
        "case_id": None,
        "run_id": None,
        "reason": "x",
        "detail": {},
    }
    digest = entry_hash(last, canonical(**fields))  # type: ignore[arg-type]
    with seeded.engine.begin() as conn:
        conn.execute(insert(Action.__table__).values(**fields, prev_hash=last, hash=digest))
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, n + 1, "inserted")


def test_rewritten_and_rehashed_entry_is_caught_at_the_next(seeded: Seeded) -> None:
    with seeded.engine.connect() as conn:
        row = conn.execute(text("SELECT prev_hash, at FROM actions WHERE seq = 5")).one()
    with session_factory(seeded.engine)() as s:
        e = s.get(Action, 5)
        assert e is not None
        fields = {
            "seq": 5,
            "at": e.at,
            "actor": e.actor,
            "role": e.role,
            "action": e.action,
            "case_id": e.case_id,
            "run_id": e.run_id,
            "reason": "改过",
            "detail": e.detail,
        }
    digest = entry_hash(row.prev_hash, canonical(**fields))  # type: ignore[arg-type]
    _tamper(seeded.engine, "UPDATE actions SET reason = '改过', hash = :h WHERE seq = 5", h=digest)
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, 6, "inserted")
    assert "entry 5 was rewritten" in result.message


def test_deleted_last_entry_is_caught_by_the_head_row(seeded: Seeded) -> None:
    n = _count(seeded.engine)
    _tamper(seeded.engine, "DELETE FROM actions WHERE seq = :s", s=n)
    result = _fresh_verify(seeded.engine)
    assert (result.ok, result.first_bad_seq, result.problem) == (False, n, "deleted")


def test_truncated_tail_with_head_rewritten_needs_an_anchor(seeded: Seeded) -> None:
    """The documented limit: cut the tail and rewrite the head row -> only an anchor helps."""
    before = _fresh_verify(seeded.engine)
    n = before.head_seq
    with seeded.engine.connect() as conn:
        prev = conn.execute(text("SELECT hash FROM actions WHERE seq = :s"), {"s": n - 1}).one()[0]
    _tamper(seeded.engine, "DELETE FROM actions WHERE seq = :s", s=n)
    _tamper(seeded.engine, "UPDATE action_log_head SET seq = :s, hash = :h", s=n - 1, h=prev)
    assert _fresh_verify(seeded.engine).ok  # undetectable from inside the database
    with session_factory(seeded.engine)() as s:
        anchored = verify(s, anchor=(before.head_seq, before.head_hash))
    assert (anchored.ok, anchored.first_bad_seq, anchored.problem) == (False, n, "deleted")


def test_anchor_passes_on_an_intact_log(seeded: Seeded) -> None:
    before = _fresh_verify(seeded.engine)
    with session_factory(seeded.engine)() as s:
        action_log.append(s, ADMIN, "case.started")
        s.commit()
        later = verify(s, anchor=(before.head_seq, before.head_hash))
        wrong = verify(s, anchor=(before.head_seq, "0" * 64))
    assert later.ok and later.entries == before.entries + 1
    assert (wrong.ok, wrong.first_bad_seq, wrong.problem) == (False, before.head_seq, "edited")


def test_rolled_back_append_leaves_no_trace(store_engine: Engine) -> None:
    with session_factory(store_engine)() as s:
        action_log.append(s, ADMIN, "case.started")
        s.rollback()
        action_log.append(s, ADMIN, "case.assigned")
        s.commit()
        assert verify(s).ok and verify(s).entries == 1


def test_concurrent_appends_are_serialised(store_engine: Engine) -> None:
    """Two writers, each committing entry by entry: no duplicate seq, the chain holds."""
    factory = session_factory(store_engine)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with factory() as s:
                    action_log.append(s, Actor(name, "admin"), "case.started", detail={"i": i})
                    s.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    result = _fresh_verify(store_engine)
    assert result.ok and result.entries == 30
