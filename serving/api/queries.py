"""Read-only lookups the API needs beside the case service: units, runs, a taxpayer's case.

Each takes a session and returns rows or plain values; none writes, none knows about HTTP.
Visibility is the caller's business (routes reach these only after the role and unit checks,
and case-scoped reads only after :func:`taxrisk.serving.store.cases.get_case` succeeded).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from taxrisk.serving.store import action_log, cases
from taxrisk.serving.store.models import Action, Case, CaseIndicator, RunUnit, ScoringRun, Unit

__all__ = [
    "case_history",
    "current_run",
    "fired_indicators",
    "get_run",
    "latest_case_of_taxpayer",
    "list_runs",
    "run_units",
    "unit_capacity",
    "unit_exists",
]


def unit_exists(session: Session, unit_id: str) -> bool:
    return session.get(Unit, unit_id) is not None


def current_run(session: Session) -> ScoringRun | None:
    """The latest published scoring run (the case service's definition)."""
    return cases.current_run(session)


def fired_indicators(
    session: Session, case_ids: Iterable[str], per_case: int | None = None
) -> dict[str, list[CaseIndicator]]:
    """The fired catalog indicators of each case, largest |contribution| first (one query)."""
    ids = list(dict.fromkeys(case_ids))
    out: dict[str, list[CaseIndicator]] = defaultdict(list)
    if not ids:
        return out
    rows = session.scalars(
        select(CaseIndicator)
        .where(
            CaseIndicator.case_id.in_(ids),
            CaseIndicator.fired.is_(True),
            CaseIndicator.kind == "indicator",
        )
        .order_by(CaseIndicator.case_id, CaseIndicator.position)
    )
    for row in rows:
        bucket = out[row.case_id]
        if per_case is None or len(bucket) < per_case:
            bucket.append(row)
    return out


def case_history(session: Session, case_id: str) -> Sequence[Action]:
    """The action-log entries of a case, oldest first."""
    return action_log.history(session, case_id)


def unit_capacity(session: Session, run_id: str, unit_id: str) -> RunUnit | None:
    return session.get(RunUnit, (run_id, unit_id))


def latest_case_of_taxpayer(session: Session, taxpayer_id: str) -> Case | None:
    """The taxpayer's case from the latest as-of (then the latest created)."""
    return session.scalars(
        select(Case)
        .where(Case.taxpayer_id == taxpayer_id)
        .order_by(Case.as_of.desc(), Case.created_at.desc(), Case.case_id.desc())
        .limit(1)
    ).first()


def list_runs(session: Session, limit: int, offset: int) -> tuple[Sequence[ScoringRun], int]:
    """Published runs, newest first, and their total count."""
    total = session.scalar(select(func.count()).select_from(ScoringRun)) or 0
    runs = session.scalars(
        select(ScoringRun)
        .order_by(ScoringRun.published_at.desc(), ScoringRun.run_id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return runs, int(total)


def get_run(session: Session, run_id: str) -> ScoringRun | None:
    return session.get(ScoringRun, run_id)


def run_units(session: Session, run_id: str) -> Sequence[RunUnit]:
    return session.scalars(
        select(RunUnit).where(RunUnit.run_id == run_id).order_by(RunUnit.unit_id)
    ).all()
