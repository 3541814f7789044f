"""Progress of the response work per unit, down the tree (跟踪评价), read from the case store.

For a unit and every unit below it: cases open, overdue (open and past ``due_on``), in review,
closed; expected yield of all cases and of the closed ones; recovered (tax + late fees +
penalties of the closed cases' accepted or approved feedback). Each row carries its own
figures and the totals of its subtree (a county's row includes its branches). Superseded
cases are left out (a later run replaced them before anyone acted).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import case as sql_case
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..store.models import OPEN_STATES, Case, Feedback, Unit

__all__ = ["Figures", "ProgressRow", "unit_progress"]


@dataclass
class Figures:
    cases: int = 0
    open: int = 0
    overdue: int = 0
    review: int = 0
    closed: int = 0
    expected_yield: float = 0.0
    expected_closed: float = 0.0
    recovered: float = 0.0

    def add(self, other: Figures) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def recovery_rate(self) -> float | None:
        """Recovered / expected yield of the closed cases (None before any closes)."""
        return self.recovered / self.expected_closed if self.expected_closed > 0 else None


@dataclass
class ProgressRow:
    unit_id: str
    name: str
    level: str
    depth: int
    capacity: int
    own: Figures = field(default_factory=Figures)
    total: Figures = field(default_factory=Figures)


def unit_progress(session: Session, root: str, today: dt.date) -> list[ProgressRow]:
    """Rows for ``root`` and its descendants, depth-first (parents before children)."""
    units = {u.unit_id: u for u in session.scalars(select(Unit))}
    if root not in units:
        return []
    children: dict[str, list[str]] = {}
    for u in units.values():
        if u.parent_id is not None:
            children.setdefault(u.parent_id, []).append(u.unit_id)
    order: list[tuple[str, int]] = []
    stack = [(root, 0)]
    seen: set[str] = set()
    while stack:
        uid, depth = stack.pop()
        if uid in seen:  # a cycle in bad data must not loop forever
            continue
        seen.add(uid)
        order.append((uid, depth))
        stack.extend((c, depth + 1) for c in sorted(children.get(uid, []), reverse=True))
    ids = [uid for uid, _ in order]

    is_open = Case.status.in_(OPEN_STATES)
    rows = session.execute(
        select(
            Case.unit_id,
            func.count(),
            func.sum(sql_case((is_open, 1), else_=0)),
            func.sum(sql_case((is_open & (Case.due_on < today), 1), else_=0)),
            func.sum(sql_case((Case.status == "review", 1), else_=0)),
            func.sum(sql_case((Case.status == "closed", 1), else_=0)),
            func.sum(Case.expected_yield),
            func.sum(sql_case((Case.status == "closed", Case.expected_yield), else_=0.0)),
        )
        .where(Case.unit_id.in_(ids), Case.status != "superseded")
        .group_by(Case.unit_id)
    ).all()
    own: dict[str, Figures] = {}
    for uid, n, n_open, n_over, n_review, n_closed, ey, ey_closed in rows:
        own[uid] = Figures(
            cases=int(n),
            open=int(n_open or 0),
            overdue=int(n_over or 0),
            review=int(n_review or 0),
            closed=int(n_closed or 0),
            expected_yield=float(ey or 0.0),
            expected_closed=float(ey_closed or 0.0),
        )
    recovered = session.execute(
        select(
            Case.unit_id,
            func.sum(Feedback.tax_recovered + Feedback.late_fees + Feedback.penalties),
        )
        .join(Feedback, Feedback.case_id == Case.case_id)
        .where(
            Case.unit_id.in_(ids),
            Case.status == "closed",
            Feedback.status.in_(("accepted", "approved")),
        )
        .group_by(Case.unit_id)
    ).all()
    for uid, amount in recovered:
        own.setdefault(uid, Figures()).recovered = float(amount or 0.0)

    out = {
        uid: ProgressRow(
            unit_id=uid,
            name=units[uid].name,
            level=units[uid].level,
            depth=depth,
            capacity=units[uid].capacity,
            own=own.get(uid, Figures()),
        )
        for uid, depth in order
    }
    for uid, _ in reversed(order):  # children before parents
        row = out[uid]
        row.total.add(row.own)
        parent = units[uid].parent_id
        if uid != root and parent in out:
            out[parent].total.add(row.total)
    return [out[uid] for uid, _ in order]
