"""The case service: states, visibility, feedback rules, approval, drop/add, on both engines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from store_factories import Seeded
from taxrisk.serving.errors import (
    ApprovalRequired,
    CaseNotFound,
    Forbidden,
    InvalidFeedback,
    InvalidTransition,
)
from taxrisk.serving.store import action_log, cases
from taxrisk.serving.store.cases import CaseFilter, FeedbackIn, InvalidAction
from taxrisk.serving.store.models import Action, Case, Feedback
from taxrisk.serving.store.session import session_factory

TABLES = ("cases", "feedback", "actions", "action_log_head", "users", "case_indicators")
GOOD = FeedbackIn(
    outcome="adjusted",
    measure_taken="assessment",
    tax_recovered=52_000.0,
    late_fees=2_600.0,
    penalties=0.0,
    notes="补缴增值税及滞纳金",
    covers_from="2025-01",
    covers_to="2025-12",
)


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the store's tables, as text, in a stable order (a fresh connection)."""
    out = {}
    with engine.connect() as conn:
        for table in TABLES:
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            out[table] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def _log_tail(seeded: Seeded, n: int = 1) -> list[Action]:
    s = seeded.session
    return list(reversed(s.scalars(select(Action).order_by(Action.seq.desc()).limit(n)).all()))


@pytest.fixture
def line(seeded: Seeded) -> float:
    return seeded.info.approval_line


# --- the happy paths ----------------------------------------------------------------------


def test_lifecycle_new_to_closed(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    cid = info.first("new", "U011")
    c = cases.assign(s, sel, cid, "李明", reason="熟悉面粉行业")
    assert (c.status, c.officer) == ("assigned", "李明")
    assert cases.start(s, sel, cid).status == "in_progress"
    fb = cases.record_feedback(s, sel, cid, GOOD, approval_line=line)
    s.commit()
    c = cases.get_case(s, sel, cid)
    assert c.status == "closed" and c.closed_at is not None
    assert (fb.status, fb.submitted_by, fb.tax_recovered) == ("accepted", "sel_u01", 52_000.0)
    log = action_log.history(s, cid)
    assert [e.action for e in log] == [
        "case.dispatched",
        "case.assigned",
        "case.started",
        "case.feedback",
    ]
    assert log[1].reason == "熟悉面粉行业" and log[1].actor == "sel_u01"
    assert log[1].role == "selector"
    assert (log[3].detail["from"], log[3].detail["to"]) == ("in_progress", "closed")
    assert log[3].detail["total"] == 54_600.0
    assert action_log.verify(s).ok


def test_feedback_directly_from_new_and_escalated(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    admin = info.actors["admin"]
    for cid in (info.first("new", "U02"), info.first("escalated")):
        cases.record_feedback(s, admin, cid, dataclasses.replace(GOOD), approval_line=line)
        assert s.get(Case, cid).status == "closed"  # type: ignore[union-attr]


def test_reassign_and_officer_required(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    admin = info.actors["admin"]
    cid = info.first("assigned", "U02")
    assert cases.assign(s, admin, cid, "孙丽").officer == "孙丽"
    with pytest.raises(InvalidAction, match="officer"):
        cases.assign(s, admin, cid, "  ")


def test_large_feedback_needs_a_second_person(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    sel, admin = info.actors["sel_u01"], info.actors["admin"]
    cid = info.first("in_progress", "U011")  # a small case: the recovered total decides
    assert s.get(Case, cid).expected_yield < line  # type: ignore[union-attr]
    big = dataclasses.replace(GOOD, tax_recovered=line - 1.0, late_fees=1.0)  # total == line
    fb = cases.record_feedback(s, sel, cid, big, approval_line=line)
    assert (fb.status, s.get(Case, cid).status) == ("pending", "review")  # type: ignore[union-attr]
    with pytest.raises(ApprovalRequired, match="second person"):
        cases.approve(s, sel, cid)
    s.commit()
    c = cases.approve(s, admin, cid, reason="集体审议通过")
    s.commit()
    assert c.status == "closed" and c.closed_at is not None
    got = s.get(Feedback, fb.feedback_id)
    assert got is not None and got.approved_at is not None
    assert (got.status, got.approved_by) == ("approved", "admin")
    tail = _log_tail(seeded)[0]
    assert (tail.action, tail.actor, tail.reason) == ("case.approved", "admin", "集体审议通过")


def test_high_expected_yield_needs_review_even_for_small_feedback(
    seeded: Seeded, line: float
) -> None:
    s, info = seeded.session, seeded.info
    cid = info.case_ids[0]  # rank 1: expected yield over the line
    fb = cases.record_feedback(
        s, info.actors["admin"], cid, FeedbackIn("no_change", "assessment"), approval_line=line
    )
    assert fb.status == "pending" and s.get(Case, cid).status == "review"  # type: ignore[union-attr]


def test_reject_sends_back_to_work(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    admin = info.actors["admin"]
    cid = info.first("review")
    with pytest.raises(InvalidAction, match="reason"):
        cases.reject(s, admin, cid, "")
    c = cases.reject(s, admin, cid, reason="补税金额与账簿不符,请复核")
    assert c.status == "in_progress"
    assert [f.status for f in c.feedback] == ["rejected"]
    cases.record_feedback(s, info.actors["sel_u01"], cid, GOOD, approval_line=line)
    s.commit()
    c = cases.get_case(s, admin, cid)  # expected yield over the line: review again
    assert c.status == "review"
    assert sorted(f.status for f in c.feedback) == ["pending", "rejected"]
    assert cases.pending_feedback(c) is not None


def test_escalate_moves_to_the_parent_unit(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    cid = info.first("assigned", "U011")
    c = cases.escalate(s, sel, cid, reason="涉及跨区县关联交易")
    assert (c.status, c.unit_id, c.officer) == ("escalated", "U01", None)
    c = cases.escalate(s, sel, cid, reason="需市局统筹")
    assert (c.status, c.unit_id) == ("escalated", "U00")
    with pytest.raises(CaseNotFound):  # U00 is above sel_u01: no longer visible
        cases.get_case(s, sel, cid)
    with pytest.raises(InvalidTransition, match="top unit"):
        cases.escalate(s, info.actors["admin"], cid, reason="再上报")
    assert cases.assign(s, info.actors["admin"], cid, "王强").status == "assigned"


def test_return_and_reroute(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel, admin = info.actors["sel_u02"], info.actors["admin"]
    cid = info.first("in_progress", "U02")
    c = cases.return_case(s, sel, cid, reason="纳税人实际经营地在城东区")
    assert (c.status, c.unit_id, c.officer) == ("returned", "U00", None)
    with pytest.raises(CaseNotFound):
        cases.get_case(s, sel, cid)
    with pytest.raises(InvalidAction, match="no such unit"):
        cases.reroute(s, admin, cid, "U99", reason="改派")
    c = cases.reroute(s, admin, cid, "U011", reason="改派至实际经营地")
    assert (c.status, c.unit_id) == ("new", "U011")
    assert cases.get_case(s, info.actors["sel_u01"], cid).unit_id == "U011"
    entry = _log_tail(seeded)[0]
    assert entry.detail == {"from": "returned", "to": "new", "unit_from": "U00", "unit_to": "U011"}


def test_reroute_by_selector_only_within_its_units(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    cid = info.first("new", "U01")
    with pytest.raises(InvalidAction, match="no such unit among yours"):
        cases.reroute(s, sel, cid, "U02", reason="改派")
    assert cases.reroute(s, sel, cid, "U011", reason="由税务所应对").unit_id == "U011"


def test_drop_needs_a_reason_and_leaves_a_trace(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    cid = info.first("new", "U01")
    before = snapshot(seeded.engine)
    for empty in ("", "   "):
        with pytest.raises(InvalidAction, match="reason"):
            cases.drop(s, sel, cid, empty)
    s.commit()
    assert snapshot(seeded.engine) == before
    c = cases.drop(s, sel, cid, reason="纳税人已于上月注销")
    s.commit()
    assert c.status == "closed"
    (fb,) = c.feedback
    assert (fb.outcome, fb.measure_taken, fb.notes) == ("dropped", "none", "纳税人已于上月注销")
    entry = _log_tail(seeded)[0]
    assert (entry.action, entry.reason, entry.actor) == (
        "case.dropped",
        "纳税人已于上月注销",
        "sel_u01",
    )


def test_add_taxpayer_needs_a_reason(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    with pytest.raises(InvalidAction, match="reason"):
        cases.add_taxpayer(s, sel, "TP90001", "U011", "")
    c = cases.add_taxpayer(
        s,
        sel,
        "TP90001",
        "U011",
        "群众举报:账外销售",
        detail={"taxpayer_name": "兴旺粮油加工厂", "industry": "1311"},
    )
    s.commit()
    assert (c.status, c.selection, c.model_version, c.unit_id) == (
        "new",
        "manual",
        "manual",
        "U011",
    )
    assert c.taxpayer_name == "兴旺粮油加工厂" and c.run_id == info.run_id
    assert c.due_on == dt.date.today() + dt.timedelta(days=60)
    entry = _log_tail(seeded)[0]
    assert (entry.action, entry.reason, entry.case_id) == (
        "case.added",
        "群众举报:账外销售",
        c.case_id,
    )
    with pytest.raises(InvalidTransition, match="open case"):
        cases.add_taxpayer(s, sel, "TP90001", "U011", "再次添加")
    with pytest.raises(InvalidTransition, match="open case"):
        cases.add_taxpayer(s, sel, "TP00003", "U01", "已有案件")  # seeded, new at U02
    with pytest.raises(InvalidAction, match="among yours"):
        cases.add_taxpayer(s, sel, "TP90002", "U02", "别的区")
    with pytest.raises(InvalidAction, match="measure"):
        cases.add_taxpayer(s, sel, "TP90002", "U01", "理由", measure="raid")


def test_supersede_only_new_cases_by_runs(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    with pytest.raises(Forbidden):
        cases.supersede(s, info.actors["sel_u01"], info.first("new", "U01"), run_id="r2")
    system = action_log.Actor("system", "system")
    assert cases.supersede(s, system, info.first("new", "U01"), run_id="r2").status == "superseded"
    with pytest.raises(InvalidTransition):
        cases.supersede(s, system, info.first("assigned", "U01"), run_id="r2")


# --- refusals ------------------------------------------------------------------------------

_TRANSITIONS = {
    "closed": ["assign", "start", "escalate", "return", "feedback", "approve", "drop"],
    "superseded": ["assign", "start", "feedback", "drop", "reroute"],
    "review": ["assign", "start", "escalate", "feedback", "drop"],
    "returned": ["assign", "start", "feedback", "escalate"],
    "new": ["start", "approve", "reject"],
    "in_progress": ["assign", "start", "reroute", "approve"],
}


def _do(s: Any, actor: Any, action: str, cid: str, line: float) -> Any:
    calls = {
        "assign": lambda: cases.assign(s, actor, cid, "王强"),
        "start": lambda: cases.start(s, actor, cid),
        "escalate": lambda: cases.escalate(s, actor, cid, "理由"),
        "return": lambda: cases.return_case(s, actor, cid, "理由"),
        "reroute": lambda: cases.reroute(s, actor, cid, "U01", "理由"),
        "feedback": lambda: cases.record_feedback(s, actor, cid, GOOD, approval_line=line),
        "approve": lambda: cases.approve(s, actor, cid),
        "reject": lambda: cases.reject(s, actor, cid, "理由"),
        "drop": lambda: cases.drop(s, actor, cid, "理由"),
    }
    return calls[action]()


@pytest.mark.parametrize("state", sorted(_TRANSITIONS))
def test_invalid_transitions_change_nothing(seeded: Seeded, line: float, state: str) -> None:
    s, info = seeded.session, seeded.info
    admin = info.actors["admin"]
    cid = info.first(state)
    before = snapshot(seeded.engine)
    for action in _TRANSITIONS[state]:
        with pytest.raises(InvalidTransition, match=state):
            _do(s, admin, action, cid, line)
        assert not s.new and not s.dirty
    s.commit()
    assert snapshot(seeded.engine) == before


_BAD_FEEDBACK: list[tuple[str, dict[str, Any]]] = [
    ("outcome", {"outcome": "dropped"}),
    ("outcome", {"outcome": ""}),
    ("measure_taken", {"measure_taken": "raid"}),
    ("tax_recovered", {"tax_recovered": -1.0}),
    ("late_fees", {"late_fees": math.nan}),
    ("penalties", {"penalties": math.inf}),
    ("tax_recovered", {"tax_recovered": "100"}),
    ("tax_recovered", {"tax_recovered": True}),
    ("notes", {"notes": "长" * 4001}),
    ("covers_from", {"covers_from": "2025-13"}),
    ("covers_to", {"covers_to": "2025-1"}),
    ("covers_from", {"covers_from": "2025/01"}),
    ("after covers_to", {"covers_from": "2025-06", "covers_to": "2025-05"}),
]


@pytest.mark.parametrize(("field", "change"), _BAD_FEEDBACK, ids=[str(c) for _, c in _BAD_FEEDBACK])
def test_bad_feedback_is_refused_and_nothing_stored(
    seeded: Seeded, line: float, field: str, change: dict[str, Any]
) -> None:
    s, info = seeded.session, seeded.info
    cid = info.first("in_progress", "U02")
    before = snapshot(seeded.engine)
    with pytest.raises(InvalidFeedback, match=field):
        cases.record_feedback(
            s, info.actors["sel_u02"], cid, dataclasses.replace(GOOD, **change), approval_line=line
        )
    assert not s.new and not s.dirty
    s.commit()
    assert snapshot(seeded.engine) == before


def test_feedback_edges_accepted(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    ok = dataclasses.replace(
        GOOD, notes="长" * 4000, covers_from="2025-05", covers_to="2025-05", tax_recovered=0
    )
    fb = cases.record_feedback(
        s, info.actors["sel_u02"], info.first("new", "U02"), ok, approval_line=line
    )
    assert fb.status == "accepted" and len(fb.notes) == 4000


def test_unknown_case_and_other_units_case_look_the_same(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    other = info.first("in_progress", "U02")
    before = snapshot(seeded.engine)
    messages = []
    for cid in ("C-NOPE", other):
        with pytest.raises(CaseNotFound) as err:
            cases.get_case(s, sel, cid)
        messages.append(str(err.value).replace(cid, "ID"))
        for action in ("assign", "start", "escalate", "feedback", "drop"):
            with pytest.raises(CaseNotFound) as err2:
                _do(s, sel, action, cid, line)
            messages.append(str(err2.value).replace(cid, "ID"))
    assert len(set(messages)) == 1
    s.commit()
    assert snapshot(seeded.engine) == before


def test_selector_sees_its_subtree_only(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel01, sel02 = info.actors["sel_u01"], info.actors["sel_u02"]
    for cid in info.by_unit["U011"] + info.by_unit["U01"]:
        assert cases.get_case(s, sel01, cid).case_id == cid
    for cid in info.by_unit["U02"] + info.by_unit["U00"]:
        with pytest.raises(CaseNotFound):
            cases.get_case(s, sel01, cid)
        assert not cases.can_see(s, sel01, s.get(Case, cid))  # type: ignore[arg-type]
    assert all(cases.can_see(s, sel02, s.get(Case, c)) for c in info.by_unit["U02"])  # type: ignore[arg-type]
    assert cases.units_below(s, "U01") == {"U01", "U011"}
    assert cases.units_below(s, "U00") == {"U00", "U01", "U02", "U011"}


def test_analyst_reads_everything_and_writes_nothing(seeded: Seeded, line: float) -> None:
    s, info = seeded.session, seeded.info
    analyst = info.actors["analyst"]
    for cid in info.case_ids:
        cases.get_case(s, analyst, cid)
    before = snapshot(seeded.engine)
    for state, action in [
        ("new", "assign"),
        ("assigned", "start"),
        ("new", "escalate"),
        ("new", "return"),
        ("returned", "reroute"),
        ("in_progress", "feedback"),
        ("review", "approve"),
        ("review", "reject"),
        ("new", "drop"),
    ]:
        with pytest.raises(Forbidden):
            _do(s, analyst, action, info.first(state), line)
    with pytest.raises(Forbidden):
        _do(s, analyst, "assign", "C-NOPE", line)
    with pytest.raises(Forbidden):
        cases.add_taxpayer(s, analyst, "TP1", "U01", "理由")
    s.commit()
    assert snapshot(seeded.engine) == before


def test_rolled_back_action_leaves_no_trace(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    before = snapshot(seeded.engine)
    cases.assign(s, info.actors["admin"], info.first("new", "U02"), "王强")
    s.rollback()
    assert snapshot(seeded.engine) == before
    assert action_log.verify(s).ok


def test_a_stale_state_cannot_be_changed(seeded: Seeded) -> None:
    """Two sessions read the same assigned case; the second change is refused (the guarded
    UPDATE finds the state changed, on SQLite where nothing was locked, and on PostgreSQL)."""
    info = seeded.info
    cid = info.first("assigned", "U02")
    factory = session_factory(seeded.engine)
    with factory() as a, factory() as b:
        stale = b.get(Case, cid)
        assert stale is not None and stale.status == "assigned"
        cases.start(a, info.actors["admin"], cid)
        a.commit()
        with pytest.raises(InvalidTransition, match="changed meanwhile"):
            cases._move(b, info.actors["admin"], stale, "in_progress", "case.started")
        b.rollback()
    with factory() as c:
        assert [e.action for e in action_log.history(c, cid)][-1] == "case.started"
        assert sum(e.action == "case.started" for e in action_log.history(c, cid)) == 1


# --- lists ---------------------------------------------------------------------------------


def test_list_cases_best_first_with_total(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    page, total = cases.list_cases(s, info.actors["admin"], "U00", limit=5)
    assert total == len(info.case_ids) and len(page) == 5
    everything, _ = cases.list_cases(s, info.actors["admin"], "U00", limit=100)
    yields = [c.expected_yield for c in everything]
    assert yields == sorted(yields, reverse=True)
    assert [c.case_id for c in everything[:5]] == [c.case_id for c in page]
    second, _ = cases.list_cases(s, info.actors["admin"], "U00", limit=5, offset=5)
    assert [c.case_id for c in second] == [c.case_id for c in everything[5:10]]
    own, n_own = cases.list_cases(s, info.actors["admin"], "U00", include_below=False)
    assert n_own == len(info.by_unit["U00"]) and {c.unit_id for c in own} == {"U00"}


def test_list_cases_filters(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    admin = info.actors["admin"]
    _, n_new = cases.list_cases(s, admin, "U00", CaseFilter(status="new"))
    assert n_new == len(info.by_status["new"])
    late, n_late = cases.list_cases(s, admin, "U00", CaseFilter(overdue=True), today=info.today)
    assert sorted(c.case_id for c in late) == sorted(info.overdue) and n_late == 3
    assert all(cases.is_overdue(c, info.today) for c in late)
    _, n_ontime = cases.list_cases(s, admin, "U00", CaseFilter(overdue=False), today=info.today)
    assert n_ontime + n_late == len(info.case_ids)
    explo, _ = cases.list_cases(s, admin, "U00", CaseFilter(selection="exploration"))
    assert explo and all(c.selection == "exploration" for c in explo)
    high, _ = cases.list_cases(s, admin, "U00", CaseFilter(risk_level="high"))
    assert {c.rank for c in high} == {1, 2}
    ind, _ = cases.list_cases(s, admin, "U00", CaseFilter(industry="1311"))
    assert ind and all(c.industry == "1311" for c in ind)


def test_closed_case_is_not_overdue(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    c = s.get(Case, info.first("closed"))
    assert c is not None
    assert not cases.is_overdue(c, c.due_on + dt.timedelta(days=365))


def test_list_cases_scoped_for_selectors(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    sel = info.actors["sel_u01"]
    page, total = cases.list_cases(s, sel, "U01", limit=100)
    assert total == len(info.by_unit["U01"]) + len(info.by_unit["U011"])
    assert {c.unit_id for c in page} == {"U01", "U011"}
    for unit in ("U02", "U00", "U99"):
        with pytest.raises(Forbidden, match="outside"):
            cases.list_cases(s, sel, unit)
    _, n = cases.list_cases(s, info.actors["analyst"], "U02")
    assert n == len(info.by_unit["U02"])
