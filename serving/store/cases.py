"""The case service: the state machine of a case and every action on it.

States (``models.CASE_STATES``)::

    new ──assign──> assigned ──start──> in_progress ──feedback──> closed
     │                 │                    │   └─feedback above the approval line─> review
     │                 │                    │                      review ──approve (another user)──> closed
     │                 │                    │                      review ──reject──> in_progress
     ├──escalate──> escalated (unit = parent unit; then assign/start/feedback as from new)
     ├──return────> returned (the unit hands it back to the city bureau with a reason;
     │                        the city re-routes it: reroute -> new at another unit)
     └──supersede─> superseded (a later run replaced it while still new; scoring runs only)

In full (every other pair is :class:`InvalidTransition`, HTTP 409):

=================  ==============================================  ========================
action             from                                            to
=================  ==============================================  ========================
assign (officer)   new, escalated, assigned (re-assign)            assigned
start              assigned                                        in_progress
escalate (reason)  new, assigned, in_progress, escalated           escalated, parent unit
return (reason)    new, assigned, in_progress, escalated           returned, the root unit
reroute (reason)   returned, new                                   new, the given unit
feedback           new, assigned, in_progress, escalated           closed, or review
approve            review (by another user than the submitter)     closed
reject (reason)    review                                          in_progress
drop (reason)      new, assigned, in_progress, escalated, returned closed (outcome dropped)
supersede          the config's ``[supersede].states`` (new)       superseded
=================  ==============================================  ========================

Escalating, returning and re-routing clear the officer. Feedback is accepted from new,
assigned, in_progress and escalated (an officer may respond to a case directly); from any
other state it raises :class:`InvalidTransition` (HTTP 409).
Every change appends to the action log (who, role, when, what, why) in the same transaction
(action names ``case.assigned``, ``case.started``, ``case.escalated``, ``case.returned``,
``case.rerouted``, ``case.feedback``, ``case.approved``, ``case.rejected``, ``case.dropped``,
``case.added``, ``case.superseded``; ``detail`` holds ``from`` and ``to`` states and what
changed). Nothing is committed here: the caller commits. Inputs are checked before anything
is written, so an error leaves the session unchanged.
Dropping (``drop``) or adding (``add``) a taxpayer needs a non-empty reason
(:class:`InvalidAction`, HTTP 422, otherwise). Feedback whose
recovered total (tax + late fees + penalties) or whose case's expected yield is at or over
``approval.yield_line`` goes to ``review`` and needs a second, different user's
:func:`approve` (集体审议). A dropped case gets a feedback row with outcome ``dropped``,
measure ``none`` and the reason as notes (it is not an audit outcome: training skips it).

Visibility: a selector sees the cases of its unit and of the units below it; any other case is
:class:`CaseNotFound` (existence must not leak). Analysts read everything and write nothing
(:class:`Forbidden`); admins (and ``system``, the scoring runs) do everything. A state change
is a guarded ``UPDATE ... WHERE status = <the state read>`` (the row is also read ``FOR
UPDATE`` on PostgreSQL), so two concurrent changes of one case cannot both succeed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select, and_, func, not_, select, update
from sqlalchemy.orm import Session, selectinload

from ..config import MEASURES
from ..errors import (
    ApprovalRequired,
    CaseNotFound,
    Forbidden,
    InvalidFeedback,
    InvalidTransition,
    RunNotFound,
)
from . import action_log
from .action_log import Actor
from .models import OPEN_STATES, Case, Feedback, ScoringRun, Unit

__all__ = [
    "FEEDBACK_FROM",
    "NOTES_MAX",
    "OUTCOMES",
    "CaseFilter",
    "FeedbackIn",
    "InvalidAction",
    "add_taxpayer",
    "approve",
    "assign",
    "can_see",
    "check_feedback",
    "current_run",
    "drop",
    "escalate",
    "get_case",
    "is_overdue",
    "list_cases",
    "pending_feedback",
    "record_feedback",
    "reject",
    "reroute",
    "return_case",
    "start",
    "supersede",
    "units_below",
]

OUTCOMES = ("no_change", "adjusted")
NOTES_MAX = 4000  # characters
FEEDBACK_FROM = ("new", "assigned", "in_progress", "escalated")
WRITERS = ("admin", "selector", "system")
READ_ALL = ("admin", "analyst", "system")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class InvalidAction(InvalidFeedback):
    """An action's input breaks a rule: a reason, an officer or a unit is missing or unknown
    (HTTP 422, like :class:`InvalidFeedback`)."""


@dataclass(frozen=True)
class FeedbackIn:
    """A response result (CONTRACT ``POST /cases/{id}/feedback``); money in yuan, >= 0."""

    outcome: str  # no_change / adjusted
    measure_taken: str  # one of MEASURES
    tax_recovered: float = 0.0
    late_fees: float = 0.0
    penalties: float = 0.0
    notes: str = ""
    covers_from: str | None = None  # YYYY-MM
    covers_to: str | None = None

    @property
    def total(self) -> float:
        """Tax + late fees + penalties, yuan."""
        return float(self.tax_recovered) + float(self.late_fees) + float(self.penalties)


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None
    industry: str | None = None
    risk_level: str | None = None
    selection: str | None = None
    overdue: bool | None = None


# --- time, units, visibility ------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _tree(session: Session) -> dict[str, str | None]:
    return {u: p for u, p in session.execute(select(Unit.unit_id, Unit.parent_id))}


def units_below(session: Session, unit_id: str) -> set[str]:
    """``unit_id`` and every unit under it (from the ``units`` table)."""
    children: dict[str, list[str]] = {}
    for uid, parent in _tree(session).items():
        if parent is not None:
            children.setdefault(parent, []).append(uid)
    out = {unit_id}
    todo = [unit_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:  # a cycle in bad data must not loop
                out.add(child)
                todo.append(child)
    return out


def _root_of(session: Session, unit_id: str) -> str:
    tree = _tree(session)
    seen = {unit_id}
    cur = unit_id
    while (parent := tree.get(cur)) is not None and parent not in seen:
        seen.add(parent)
        cur = parent
    return cur


def _visible_units(session: Session, actor: Actor) -> set[str] | None:
    """The units whose cases ``actor`` may see; None = all of them."""
    if actor.role in READ_ALL:
        return None
    if actor.role == "selector" and actor.unit_id:
        return units_below(session, actor.unit_id)
    return set()


def can_see(session: Session, actor: Actor, case: Case) -> bool:
    """Whether ``actor`` may see ``case`` (selectors: their unit and the units below it)."""
    units = _visible_units(session, actor)
    return units is None or case.unit_id in units


def _not_found(case_id: str) -> CaseNotFound:
    return CaseNotFound(f"no case {case_id!r}")


def get_case(session: Session, actor: Actor, case_id: str) -> Case:
    """The case, or :class:`CaseNotFound` if it does not exist or the actor may not see it.

    Its ``indicators`` (by position) and ``feedback`` are loaded with it.
    """
    case = session.scalar(
        select(Case)
        .where(Case.case_id == case_id)
        .options(selectinload(Case.indicators), selectinload(Case.feedback))
    )
    if case is None or not can_see(session, actor, case):
        raise _not_found(case_id)
    return case


def is_overdue(case: Case, today: dt.date | None = None) -> bool:
    """Open (``OPEN_STATES``) and ``due_on`` before ``today`` (default: today)."""
    return case.status in OPEN_STATES and case.due_on < (today or dt.date.today())


def current_run(session: Session) -> ScoringRun | None:
    """The latest published scoring run, or None."""
    return session.scalar(
        select(ScoringRun).order_by(ScoringRun.published_at.desc(), ScoringRun.run_id.desc())
    )


def pending_feedback(case: Case) -> Feedback | None:
    """The case's feedback waiting for approval (``status == "pending"``), if any."""
    pending = [f for f in case.feedback if f.status == "pending"]
    return max(pending, key=lambda f: f.feedback_id) if pending else None


def list_cases(
    session: Session,
    actor: Actor,
    unit_id: str,
    flt: CaseFilter | None = None,
    *,
    limit: int = 50,
    offset: int = 0,
    include_below: bool = True,
    today: dt.date | None = None,
) -> tuple[list[Case], int]:
    """Cases of ``unit_id`` (and the units below it), best first (expected yield, then rank);
    returns the page and the total count. A unit the actor may not see is CaseNotFound-like
    :class:`~taxrisk.serving.errors.Forbidden` (the same message whether it exists or not).

    ``flt.overdue``: True = open and ``due_on < today``; False = the others. An unknown unit
    has no cases. ``limit`` >= 0 and ``offset`` >= 0 (ValueError otherwise).
    """
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
    visible = _visible_units(session, actor)
    if visible is not None and unit_id not in visible:
        raise Forbidden(f"unit {unit_id!r} is outside the units of {actor.name!r}")
    units = units_below(session, unit_id) if include_below else {unit_id}
    stmt: Select[Case] = select(Case).where(Case.unit_id.in_(sorted(units)))
    flt = flt or CaseFilter()
    for column, wanted in (
        (Case.status, flt.status),
        (Case.industry, flt.industry),
        (Case.risk_level, flt.risk_level),
        (Case.selection, flt.selection),
    ):
        if wanted is not None:
            stmt = stmt.where(column == wanted)
    if flt.overdue is not None:
        late = and_(Case.status.in_(OPEN_STATES), Case.due_on < (today or dt.date.today()))
        stmt = stmt.where(late if flt.overdue else not_(late))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    page = session.scalars(
        stmt.order_by(Case.expected_yield.desc(), Case.rank, Case.case_id)
        .limit(limit)
        .offset(offset)
        .options(selectinload(Case.indicators))
    ).all()
    return list(page), int(total)


# --- writing ----------------------------------------------------------------------------


def _writer(actor: Actor) -> None:
    if actor.role not in WRITERS:
        raise Forbidden(f"{actor.role} {actor.name!r} may not change cases")
    if actor.role == "selector" and not actor.unit_id:
        raise Forbidden(f"selector {actor.name!r} has no unit")


def _load(session: Session, actor: Actor, case_id: str) -> Case:
    """The case, locked FOR UPDATE on PostgreSQL, refreshed, visible to ``actor``."""
    _writer(actor)
    case = session.scalar(
        select(Case)
        .where(Case.case_id == case_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if case is None or not can_see(session, actor, case):
        raise _not_found(case_id)
    return case


def _reason(reason: str, action: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidAction(f"{action} needs a reason (got an empty one)")
    return text


def _allowed(case: Case, action: str, states: Iterable[str]) -> None:
    states = tuple(states)
    if case.status not in states:
        raise InvalidTransition(
            f"case {case.case_id!r} is {case.status}: cannot {action} "
            f"(only from {', '.join(states)})"
        )


def _move(
    session: Session,
    actor: Actor,
    case: Case,
    to: str,
    action: str,
    *,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    **values: Any,
) -> Case:
    """Change the state (guarded by the state read) and log it."""
    now = now or _now()
    before = case.status
    if to == "closed":
        values.setdefault("closed_at", now)
    changed = session.execute(
        update(Case)
        .where(Case.case_id == case.case_id, Case.status == before)
        .values(status=to, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition(f"case {case.case_id!r} was changed meanwhile: try again")
    session.refresh(case)
    action_log.append(
        session,
        actor,
        action,
        case_id=case.case_id,
        run_id=case.run_id,
        reason=reason,
        detail={"from": before, "to": to, **(detail or {})},
        at=now,
    )
    return case


def assign(session: Session, actor: Actor, case_id: str, officer: str, reason: str = "") -> Case:
    """Give the case to an officer (from new, escalated, or assigned to re-assign)."""
    case = _load(session, actor, case_id)
    who = (officer or "").strip()
    if not who or len(who) > 100:
        raise InvalidAction(f"assign needs an officer name of 1 to 100 characters, got {officer!r}")
    _allowed(case, "assign", ("new", "escalated", "assigned"))
    return _move(
        session,
        actor,
        case,
        "assigned",
        "case.assigned",
        reason=reason.strip(),
        detail={"officer": who, "previous_officer": case.officer},
        officer=who,
    )


def start(session: Session, actor: Actor, case_id: str) -> Case:
    """The officer starts work (assigned -> in_progress)."""
    case = _load(session, actor, case_id)
    _allowed(case, "start", ("assigned",))
    return _move(session, actor, case, "in_progress", "case.started")


def escalate(session: Session, actor: Actor, case_id: str, reason: str) -> Case:
    """Raise a complex case to the parent unit (needs a reason; the top unit cannot)."""
    case = _load(session, actor, case_id)
    why = _reason(reason, "escalate")
    _allowed(case, "escalate", ("new", "assigned", "in_progress", "escalated"))
    parent = _tree(session).get(case.unit_id)
    if parent is None:
        raise InvalidTransition(f"case {case_id!r} is at the top unit: it cannot be escalated")
    return _move(
        session,
        actor,
        case,
        "escalated",
        "case.escalated",
        reason=why,
        detail={"unit_from": case.unit_id, "unit_to": parent},
        unit_id=parent,
        officer=None,
    )


def return_case(session: Session, actor: Actor, case_id: str, reason: str) -> Case:
    """Hand the case back to the city bureau (the root of the unit tree); needs a reason."""
    case = _load(session, actor, case_id)
    why = _reason(reason, "return")
    _allowed(case, "return", ("new", "assigned", "in_progress", "escalated"))
    root = _root_of(session, case.unit_id)
    return _move(
        session,
        actor,
        case,
        "returned",
        "case.returned",
        reason=why,
        detail={"unit_from": case.unit_id, "unit_to": root},
        unit_id=root,
        officer=None,
    )


def reroute(session: Session, actor: Actor, case_id: str, unit_id: str, reason: str) -> Case:
    """Send a returned (or new) case to another unit, as new; needs a reason.

    The unit must exist and, for a selector, be one of its units (:class:`InvalidAction`
    otherwise: the same message for both).
    """
    case = _load(session, actor, case_id)
    why = _reason(reason, "reroute")
    visible = _visible_units(session, actor)
    if session.get(Unit, unit_id) is None or (visible is not None and unit_id not in visible):
        raise InvalidAction(f"cannot reroute to unit {unit_id!r}: no such unit among yours")
    _allowed(case, "reroute", ("returned", "new"))
    if case.status == "new" and unit_id == case.unit_id:
        raise InvalidTransition(f"case {case_id!r} is already new at {unit_id!r}")
    return _move(
        session,
        actor,
        case,
        "new",
        "case.rerouted",
        reason=why,
        detail={"unit_from": case.unit_id, "unit_to": unit_id},
        unit_id=unit_id,
        officer=None,
    )


def _money(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFeedback(f"{name} must be a number of yuan, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise InvalidFeedback(f"{name} must be finite and >= 0 yuan, got {value!r}")
    return float(value)


def check_feedback(feedback: FeedbackIn) -> None:
    """:class:`InvalidFeedback` naming the first rule ``feedback`` breaks.

    outcome in OUTCOMES; measure_taken in MEASURES; tax_recovered, late_fees and penalties
    finite numbers >= 0 (yuan); notes a string of at most NOTES_MAX characters; covers_from
    and covers_to ``YYYY-MM`` (either may be absent) with from <= to.
    """
    if feedback.outcome not in OUTCOMES:
        raise InvalidFeedback(
            f"outcome must be one of {', '.join(OUTCOMES)}, got {feedback.outcome!r}"
        )
    if feedback.measure_taken not in MEASURES:
        raise InvalidFeedback(
            f"measure_taken must be one of {', '.join(MEASURES)}, got {feedback.measure_taken!r}"
        )
    for name in ("tax_recovered", "late_fees", "penalties"):
        _money(name, getattr(feedback, name))
    if not isinstance(feedback.notes, str):
        raise InvalidFeedback(f"notes must be text, got {type(feedback.notes).__name__}")
    if len(feedback.notes) > NOTES_MAX:
        raise InvalidFeedback(
            f"notes must be at most {NOTES_MAX} characters, got {len(feedback.notes)}"
        )
    for name in ("covers_from", "covers_to"):
        value = getattr(feedback, name)
        if value is not None and (not isinstance(value, str) or not _MONTH.match(value)):
            raise InvalidFeedback(f"{name} must be a month YYYY-MM, got {value!r}")
    if feedback.covers_from and feedback.covers_to and feedback.covers_from > feedback.covers_to:
        raise InvalidFeedback(
            f"covers_from {feedback.covers_from} is after covers_to {feedback.covers_to}"
        )


def record_feedback(
    session: Session,
    actor: Actor,
    case_id: str,
    feedback: FeedbackIn,
    *,
    approval_line: float,
    now: dt.datetime | None = None,
) -> Feedback:
    """Validate and store the feedback, move the case to closed (or review), log it.

    ``approval_line``: yuan; when the recovered total or the case's expected yield is at or
    over it, the case goes to review (feedback ``pending``) instead of closed (``accepted``).
    Errors, before anything is written: :class:`Forbidden` (analyst), :class:`CaseNotFound`,
    :class:`InvalidFeedback`, :class:`InvalidTransition` (not in FEEDBACK_FROM).
    """
    case = _load(session, actor, case_id)
    check_feedback(feedback)
    _allowed(case, "take feedback", FEEDBACK_FROM)
    now = now or _now()
    total = feedback.total
    needs_review = total >= approval_line or case.expected_yield >= approval_line
    row = Feedback(
        case_id=case.case_id,
        outcome=feedback.outcome,
        measure_taken=feedback.measure_taken,
        tax_recovered=float(feedback.tax_recovered),
        late_fees=float(feedback.late_fees),
        penalties=float(feedback.penalties),
        notes=feedback.notes,
        covers_from=feedback.covers_from,
        covers_to=feedback.covers_to,
        submitted_by=actor.name,
        submitted_at=now,
        status="pending" if needs_review else "accepted",
    )
    session.add(row)
    session.flush()
    _move(
        session,
        actor,
        case,
        "review" if needs_review else "closed",
        "case.feedback",
        detail={
            **asdict(feedback),
            "total": total,
            "feedback_id": row.feedback_id,
            "approval_line": approval_line,
        },
        now=now,
    )
    return row


def approve(session: Session, actor: Actor, case_id: str, reason: str = "") -> Case:
    """Second person's approval of a case in review: closes it. The submitter cannot approve
    (:class:`ApprovalRequired`)."""
    case = _load(session, actor, case_id)
    _allowed(case, "approve", ("review",))
    session.refresh(case, ["feedback"])
    fb = pending_feedback(case)
    if fb is None:
        raise InvalidTransition(f"case {case_id!r} has no feedback waiting for approval")
    if fb.submitted_by == actor.name:
        raise ApprovalRequired(
            f"case {case_id!r}: {actor.name!r} submitted the feedback and cannot approve it; "
            "a second person must"
        )
    now = _now()
    fb.status, fb.approved_by, fb.approved_at = "approved", actor.name, now
    session.flush()
    return _move(
        session,
        actor,
        case,
        "closed",
        "case.approved",
        reason=reason.strip(),
        detail={"feedback_id": fb.feedback_id, "submitted_by": fb.submitted_by},
        now=now,
    )


def reject(session: Session, actor: Actor, case_id: str, reason: str) -> Case:
    """Send a case in review back to work (review -> in_progress); needs a reason."""
    case = _load(session, actor, case_id)
    why = _reason(reason, "reject")
    _allowed(case, "reject", ("review",))
    session.refresh(case, ["feedback"])
    fb = pending_feedback(case)
    if fb is not None:
        fb.status = "rejected"
        session.flush()
    return _move(
        session,
        actor,
        case,
        "in_progress",
        "case.rejected",
        reason=why,
        detail={"feedback_id": fb.feedback_id if fb else None},
    )


def drop(session: Session, actor: Actor, case_id: str, reason: str) -> Case:
    """Take a taxpayer off the list (closed with outcome ``dropped``); needs a reason."""
    case = _load(session, actor, case_id)
    why = _reason(reason, "drop")
    _allowed(case, "drop", ("new", "assigned", "in_progress", "escalated", "returned"))
    now = _now()
    row = Feedback(
        case_id=case.case_id,
        outcome="dropped",
        measure_taken="none",
        tax_recovered=0.0,
        late_fees=0.0,
        penalties=0.0,
        notes=why,
        submitted_by=actor.name,
        submitted_at=now,
        status="accepted",
    )
    session.add(row)
    session.flush()
    return _move(
        session,
        actor,
        case,
        "closed",
        "case.dropped",
        reason=why,
        detail={"feedback_id": row.feedback_id, "taxpayer_id": case.taxpayer_id},
        now=now,
    )


def supersede(
    session: Session,
    actor: Actor,
    case_id: str,
    *,
    run_id: str,
    reason: str = "",
    states: Iterable[str] = ("new",),
) -> Case:
    """A later run replaces the case (only admins and ``system``; only from ``states``)."""
    if actor.role not in ("admin", "system"):
        raise Forbidden(f"{actor.role} {actor.name!r} may not supersede cases")
    case = _load(session, actor, case_id)
    _allowed(case, "supersede", states)
    return _move(
        session,
        actor,
        case,
        "superseded",
        "case.superseded",
        reason=reason.strip() or f"superseded by run {run_id}",
        detail={"by_run": run_id},
    )


def add_taxpayer(
    session: Session,
    actor: Actor,
    taxpayer_id: str,
    unit_id: str,
    reason: str,
    *,
    measure: str = "assessment",
    detail: dict[str, Any] | None = None,
    time_limits: Mapping[str, int] | None = None,
    now: dt.datetime | None = None,
) -> Case:
    """Add a taxpayer the run did not select (selection ``manual``); needs a reason.

    The case belongs to the current run (:class:`RunNotFound` if none), with model version
    ``manual``, status ``new`` at ``unit_id`` and a due date ``time_limits[measure]`` days
    from today (default: the serving config's). ``detail`` may give ``taxpayer_name``,
    ``industry``, ``taxpayer_type``, ``rank``, ``risk_score``, ``expected_amount``,
    ``expected_yield`` (yuan), ``risk_level``; the name otherwise comes from the taxpayer's
    latest case, else the id. :class:`InvalidTransition` if the taxpayer has an open case or
    was already added to this run; :class:`InvalidAction` for an empty reason, an unknown
    measure, or a unit that does not exist or is not the selector's (same message).
    """
    _writer(actor)
    why = _reason(reason, "add")
    extra = dict(detail or {})
    tp = (taxpayer_id or "").strip()
    if not tp or len(tp) > 64:
        raise InvalidAction(f"add needs a taxpayer id of 1 to 64 characters, got {taxpayer_id!r}")
    if measure not in MEASURES:
        raise InvalidAction(f"measure must be one of {', '.join(MEASURES)}, got {measure!r}")
    visible = _visible_units(session, actor)
    if session.get(Unit, unit_id) is None or (visible is not None and unit_id not in visible):
        raise InvalidAction(f"cannot add to unit {unit_id!r}: no such unit among yours")
    run = current_run(session)
    if run is None:
        raise RunNotFound("no scoring run has been published: nothing to add a taxpayer to")
    open_case = session.scalar(
        select(Case.case_id).where(Case.taxpayer_id == tp, Case.status.in_(OPEN_STATES))
    )
    if open_case is not None:
        raise InvalidTransition(f"taxpayer {tp!r} already has an open case")
    case_id = f"M-{run.as_of:%Y%m%d}-{tp}"
    if session.get(Case, case_id) is not None or session.scalar(
        select(Case.case_id).where(
            Case.taxpayer_id == tp, Case.as_of == run.as_of, Case.model_version == "manual"
        )
    ):
        raise InvalidTransition(f"taxpayer {tp!r} was already added to run {run.run_id!r}")
    if time_limits is None:
        from ..config import load_config

        time_limits = {str(k): int(v) for k, v in load_config().time_limits.items()}
    previous = session.scalar(
        select(Case).where(Case.taxpayer_id == tp).order_by(Case.created_at.desc())
    )
    now = now or _now()
    try:
        numbers = {
            "rank": int(extra.get("rank", 0)),
            "risk_score": float(extra.get("risk_score", 0.0)),
            "expected_amount": float(extra.get("expected_amount", 0.0)),
            "expected_yield": float(extra.get("expected_yield", 0.0)),
        }
    except (TypeError, ValueError) as exc:
        raise InvalidAction(f"add: a score in detail is not a number: {exc}") from exc
    if not all(math.isfinite(v) for v in numbers.values()):
        raise InvalidAction("add: the scores in detail must be finite numbers")
    case = Case(
        case_id=case_id,
        run_id=run.run_id,
        as_of=run.as_of,
        model_version="manual",
        taxpayer_id=tp,
        taxpayer_name=str(
            extra.get("taxpayer_name") or (previous.taxpayer_name if previous else tp)
        ),
        industry=extra.get("industry", previous.industry if previous else None),
        taxpayer_type=extra.get("taxpayer_type", previous.taxpayer_type if previous else None),
        managing_unit_id=previous.managing_unit_id if previous else unit_id,
        unit_id=unit_id,
        route_reason="manual",
        selection="manual",
        selection_probability=None,
        risk_level=str(extra.get("risk_level", "minimal")),
        recommended_measure=measure,
        status="new",
        due_on=now.date() + dt.timedelta(days=int(time_limits[measure])),
        created_at=now,
        updated_at=now,
        **numbers,
    )
    session.add(case)
    session.flush()
    action_log.append(
        session,
        actor,
        "case.added",
        case_id=case_id,
        run_id=run.run_id,
        reason=why,
        detail={
            "from": None,
            "to": "new",
            "taxpayer_id": tp,
            "unit_id": unit_id,
            "measure": measure,
            **{k: v for k, v in extra.items() if k != "taxpayer_name"},
        },
        at=now,
    )
    return case
