"""The seeded store: what the other serving tests build on."""

from __future__ import annotations

from sqlalchemy import func, select
from store_factories import Seeded
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.store import action_log
from taxrisk.serving.store.models import Case, CaseIndicator, Feedback, RunUnit, Unit, User


def test_seeded_store_is_complete(seeded: Seeded) -> None:
    s, info = seeded.session, seeded.info
    assert s.scalar(select(func.count()).select_from(Unit)) == 4
    assert s.scalar(select(func.count()).select_from(RunUnit)) == 4
    assert len(info.case_ids) == 20
    assert s.scalar(select(func.count()).select_from(Case)) == 20
    statuses = set(s.scalars(select(Case.status)))
    assert {"new", "assigned", "in_progress", "escalated", "returned", "review", "closed"} <= (
        statuses
    )
    items = s.scalars(select(CaseIndicator).where(CaseIndicator.kind == "indicator")).all()
    assert {i.item for i in items} <= set(CATALOG)
    assert any(i.fired for i in items) and any(not i.fired for i in items)
    closed = s.get(Case, info.first("closed"))
    assert closed is not None and closed.feedback and closed.feedback[0].status == "accepted"
    assert s.scalar(select(func.count()).select_from(Feedback)) == 3
    assert set(info.tokens) == {"admin", "analyst", "sel_u01", "sel_u02"}
    assert s.scalar(select(func.count()).select_from(User)) == 4
    assert info.overdue and all(c in info.case_ids for c in info.overdue)
    names = s.scalars(select(Case.taxpayer_name)).all()
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)
    result = action_log.verify(s)
    assert result.ok, result.message
    assert result.entries > 20
