"""The pages' routes (``/web/...``): server-rendered HTML over the same services as the API.

=========================================  ===============================================
``GET  /web/``                             home: the user's queue, or the sign-in page
``GET/POST /web/signin``, ``POST /web/signout``   an API token -> a session cookie; sign out
``GET  /web/lang/{zh|en}?next=``           switch the language
``GET  /web/units/{unit}/cases``           the unit's queue (status, industry, risk level)
``GET  /web/cases/{case}``                 one case; ``POST .../feedback|approve|reject``
``GET  /web/cases/{case}/report.{html|pdf}``  the explanation report
``GET  /web/units/{unit}/progress``        open/closed/overdue/recovered down the tree
``GET  /web/runs``, ``/web/runs/{run}``    scoring runs and their monitoring (oversight)
``GET  /web/model``                        the model in service (oversight)
=========================================  ===============================================

Rights follow the API: a selector sees its unit and the units below (any other unit or case
is a 404 page), analysts read everything and write nothing, admins do everything. Every POST
carries the session's CSRF token (403 without it).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..api import queries
from ..config import MEASURES
from ..errors import (
    ApprovalRequired,
    CaseNotFound,
    Forbidden,
    InvalidFeedback,
    InvalidTransition,
    ServingError,
)
from ..reports.render import render_report
from ..reports.view import case_view, item_name
from ..store import cases as case_service
from ..store import users
from ..store.action_log import append as log_action
from ..store.models import CASE_STATES, OPEN_STATES, Case, Unit
from .i18n import LANGS, translator
from .progress import unit_progress
from .security import FormTooLarge, csrf_ok, parse_form, safe_next
from .state import (
    DbDep,
    MaybeViewer,
    OversightDep,
    PageError,
    SessionCookie,
    StateDep,
    Viewer,
    ViewerDep,
    redirect,
    render,
)

__all__ = ["FEEDBACK_STATES", "router"]

router = APIRouter(prefix="/web", include_in_schema=False)

#: states from which the case service accepts feedback
FEEDBACK_STATES = ("new", "assigned", "in_progress", "escalated")
OUTCOMES = ("adjusted", "no_change")
LEVELS = ("high", "medium", "low", "minimal")
PAGE_SIZE = 50
MAX_NOTES = 4000
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_MONEY_FIELDS = ("tax_recovered", "late_fees", "penalties")


async def checked_form(request: Request, ws: SessionCookie) -> dict[str, str]:
    """The POSTed form, after the CSRF check (403 without the session's token)."""
    try:
        form = await parse_form(request)
    except FormTooLarge:
        raise PageError(413, "errors.too_large") from None
    if not csrf_ok(ws, form):
        raise PageError(403, "errors.csrf")
    return form


FormDep = Annotated[dict[str, str], Depends(checked_form)]


# --- helpers --------------------------------------------------------------------------------


def _visible_units(db: Session, viewer: Viewer) -> set[str] | None:
    """The units the viewer may see (None: all)."""
    if viewer.role == "selector":
        assert viewer.unit_id is not None
        return case_service.units_below(db, viewer.unit_id)
    return None


def _id_ok(value: str, max_len: int) -> bool:
    """Ids in paths: bounded, no control characters (PostgreSQL refuses NUL in text)."""
    return 0 < len(value) <= max_len and all(ch.isprintable() for ch in value)


def _unit_or_404(db: Session, viewer: Viewer, unit_id: str) -> Unit:
    unit = db.get(Unit, unit_id) if _id_ok(unit_id, 64) else None
    visible = _visible_units(db, viewer)
    if unit is None or (visible is not None and unit_id not in visible):
        raise PageError(404, "errors.unit_not_found")
    return unit


def _home_unit(db: Session, viewer: Viewer) -> str | None:
    if viewer.role == "selector":
        return viewer.unit_id
    root = db.scalars(select(Unit.unit_id).where(Unit.parent_id.is_(None)).order_by(Unit.unit_id))
    return root.first()


def _case_or_404(db: Session, viewer: Viewer, case_id: str) -> Case:
    if not _id_ok(case_id, 80):
        raise PageError(404, "errors.case_not_found")
    try:
        return case_service.get_case(db, viewer.actor, case_id)
    except (CaseNotFound, Forbidden):
        raise PageError(404, "errors.case_not_found") from None


def _breadcrumbs(db: Session, viewer: Viewer, unit_id: str) -> list[Unit]:
    """The unit's ancestors the viewer may see, root first, and the unit."""
    visible = _visible_units(db, viewer)
    chain: list[Unit] = []
    seen: set[str] = set()
    current = db.get(Unit, unit_id)
    while current is not None and current.unit_id not in seen:
        seen.add(current.unit_id)
        if visible is None or current.unit_id in visible:
            chain.append(current)
        current = db.get(Unit, current.parent_id) if current.parent_id else None
    return list(reversed(chain))


def _children(db: Session, unit_id: str) -> list[Unit]:
    return list(db.scalars(select(Unit).where(Unit.parent_id == unit_id).order_by(Unit.unit_id)))


# --- sign-in --------------------------------------------------------------------------------


@router.get("/", name="web_home")
def home(request: Request, state: StateDep, ws: SessionCookie, viewer: MaybeViewer, db: DbDep):
    if viewer is None:
        return redirect(state, ws, "/web/signin")
    unit = _home_unit(db, viewer)
    if unit is None:
        return render(request, state, ws, "empty.html", viewer=viewer)
    return redirect(state, ws, f"/web/units/{unit}/cases")


@router.get("/signin", name="web_signin")
def signin_page(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: MaybeViewer,
    next: str | None = None,
):
    return render(
        request,
        state,
        ws,
        "signin.html",
        viewer=viewer,
        next_url=safe_next(next, "/web/"),
        error=None,
    )


@router.post("/signin")
def signin(request: Request, state: StateDep, ws: SessionCookie, form: FormDep, db: DbDep):
    token = form.get("token", "").strip()
    next_url = safe_next(form.get("next"), "/web/")
    user = users.authenticate(db, token) if 0 < len(token) <= 512 else None
    if user is None or (user.role == "selector" and not user.unit_id):
        return render(
            request,
            state,
            ws,
            "signin.html",
            status=400,
            next_url=next_url,
            error="signin.invalid",
        )
    ws.sign_in(user.user_id)
    viewer = Viewer(user.user_id, user.name, user.role, user.unit_id)
    log_action(db, viewer.actor, "user.signed_in", detail={"via": "web"})
    db.commit()
    return redirect(state, ws, next_url)


@router.post("/signout")
def signout(state: StateDep, ws: SessionCookie, form: FormDep):
    ws.sign_out()
    return redirect(state, ws, "/web/signin?signed_out=1")


@router.get("/lang/{lang}")
def switch_language(state: StateDep, ws: SessionCookie, lang: str, next: str | None = None):
    if lang not in LANGS:
        raise PageError(404, "errors.not_found")
    ws.set_lang(lang)
    return redirect(state, ws, safe_next(next, "/web/"))


# --- the queue ------------------------------------------------------------------------------


@router.get("/queue")
def my_queue(state: StateDep, ws: SessionCookie, viewer: ViewerDep, db: DbDep):
    unit = _home_unit(db, viewer)
    return redirect(state, ws, f"/web/units/{unit}/cases" if unit else "/web/")


def _page(value: str | None) -> int:
    """A page number from the query (1 when absent or not a number; at most 100,000)."""
    try:
        return min(max(int(value or "1"), 1), 100_000)
    except ValueError:
        return 1


def _opt(value: str | None, allowed: tuple[str, ...] | None = None) -> str | None:
    value = (value or "").strip() or None
    if value is not None and allowed is not None and value not in allowed:
        return None
    return value


@router.get("/units/{unit_id}/cases", name="web_queue")
def queue(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: ViewerDep,
    db: DbDep,
    unit_id: str,
    status: str | None = None,
    industry: str | None = None,
    risk_level: str | None = None,
    below: str | None = None,
    page: str | None = None,
):
    unit = _unit_or_404(db, viewer, unit_id)
    include_below = below != "0"
    page_no = _page(page)
    flt = case_service.CaseFilter(
        status=_opt(status, CASE_STATES),
        industry=_opt(industry),
        risk_level=_opt(risk_level, LEVELS),
    )
    try:
        rows, total = case_service.list_cases(
            db,
            viewer.actor,
            unit_id,
            flt,
            limit=PAGE_SIZE,
            offset=(page_no - 1) * PAGE_SIZE,
            include_below=include_below,
        )
    except (Forbidden, CaseNotFound):
        raise PageError(404, "errors.unit_not_found") from None
    scope = case_service.units_below(db, unit_id) if include_below else {unit_id}
    industries = sorted(
        i for i in db.scalars(select(Case.industry).where(Case.unit_id.in_(scope)).distinct()) if i
    )
    t = translator(ws.lang)
    reasons = {
        cid: [item_name(ci.item, t) for ci in items]
        for cid, items in queries.fired_indicators(db, [c.case_id for c in rows], 3).items()
    }
    run = queries.current_run(db)
    capacity = queries.unit_capacity(db, run.run_id, unit_id) if run else None
    cfg = state.config(request)
    in_work = (
        db.scalar(
            select(func.count()).where(
                Case.unit_id == unit_id,
                Case.status.in_(OPEN_STATES),
                Case.recommended_measure.in_(cfg.measures.needs_officer),
            )
        )
        or 0
    )
    names = {uid: name for uid, name in db.execute(select(Unit.unit_id, Unit.name))}
    params = {
        k: v
        for k, v in (
            ("status", flt.status),
            ("industry", flt.industry),
            ("risk_level", flt.risk_level),
            ("below", None if include_below else "0"),
        )
        if v
    }
    pages = max(1, math.ceil(total / PAGE_SIZE))

    def page_url(n: int) -> str:
        return f"/web/units/{unit_id}/cases?" + urlencode({**params, "page": n})

    return render(
        request,
        state,
        ws,
        "queue.html",
        viewer=viewer,
        unit=unit,
        crumbs=_breadcrumbs(db, viewer, unit_id),
        children=_children(db, unit_id),
        cases=rows,
        total=total,
        page=page_no,
        pages=pages,
        prev_url=page_url(page_no - 1) if page_no > 1 else None,
        next_url=page_url(page_no + 1) if page_no < pages else None,
        flt=flt,
        below=include_below,
        industries=industries,
        statuses=CASE_STATES,
        levels=LEVELS,
        reasons=reasons,
        run=run,
        capacity=capacity,
        in_work=in_work,
        unit_names=names,
        today=dt.date.today(),
        open_states=OPEN_STATES,
    )


# --- one case -------------------------------------------------------------------------------


def _case_page(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: Viewer,
    db: Session,
    case: Case,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    message: str | None = None,
) -> Response:
    t = translator(ws.lang)
    view = case_view(db, case, t, state.settings)
    pending = next((f for f in case.feedback if f.status == "pending"), None)
    can_write = viewer.writes_cases
    defaults = {
        "outcome": "",
        "measure_taken": case.recommended_measure,
        "tax_recovered": "",
        "late_fees": "",
        "penalties": "",
        "notes": "",
        "covers_from": "",
        "covers_to": "",
    }
    return render(
        request,
        state,
        ws,
        "case.html",
        viewer=viewer,
        status=status,
        v=view,
        c=case,
        crumbs=_breadcrumbs(db, viewer, case.unit_id),
        show_form=can_write and case.status in FEEDBACK_STATES,
        can_approve=can_write
        and case.status == "review"
        and (pending is None or pending.submitted_by != viewer.name),
        pending=pending,
        values={**defaults, **(values or {})},
        errors=errors or {},
        outcomes=OUTCOMES,
        measures=MEASURES,
        notice=notice or request.query_params.get("done"),
        message=message,
        today=dt.date.today(),
        open_states=OPEN_STATES,
        approval_line=state.config(request).approval.yield_line,
    )


@router.get("/cases/{case_id}", name="web_case")
def case_page(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: ViewerDep,
    db: DbDep,
    case_id: str,
):
    case = _case_or_404(db, viewer, case_id)
    return _case_page(request, state, ws, viewer, db, case)


def _parse_feedback(form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Typed values and ``{field: message key}`` for what does not parse."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    outcome = form.get("outcome", "")
    if outcome not in OUTCOMES:
        errors["outcome"] = "feedback.err_outcome"
    out["outcome"] = outcome
    measure = form.get("measure_taken", "")
    if measure not in MEASURES:
        errors["measure_taken"] = "feedback.err_measure"
    out["measure_taken"] = measure
    for name in _MONEY_FIELDS:
        raw = form.get(name, "").strip().replace(",", "")
        try:
            value = float(raw) if raw else 0.0
        except ValueError:
            errors[name] = "feedback.err_number"
            continue
        if not math.isfinite(value) or value < 0:
            errors[name] = "feedback.err_negative"
        out[name] = value
    notes = form.get("notes", "")
    if len(notes) > MAX_NOTES:
        errors["notes"] = "feedback.err_notes"
    out["notes"] = notes
    for name in ("covers_from", "covers_to"):
        raw = form.get(name, "").strip()
        if raw and not _MONTH.match(raw):
            errors[name] = "feedback.err_month"
        out[name] = raw or None
    if (
        "covers_from" not in errors
        and "covers_to" not in errors
        and out["covers_from"]
        and out["covers_to"]
        and out["covers_from"] > out["covers_to"]
    ):
        errors["covers_to"] = "feedback.err_months_order"
    return out, errors


_FIELDS = (
    "outcome",
    "measure_taken",
    *_MONEY_FIELDS,
    "notes",
    "covers_from",
    "covers_to",
)


def _field_of(message: str) -> str | None:
    """Which form field a service error names (the longest match), if any."""
    hits = [f for f in _FIELDS if f in message]
    return max(hits, key=len) if hits else None


@router.post("/cases/{case_id}/feedback")
def submit_feedback(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    form: FormDep,
    viewer: ViewerDep,
    db: DbDep,
    case_id: str,
):
    case = _case_or_404(db, viewer, case_id)
    if not viewer.writes_cases:
        raise PageError(403, "errors.forbidden")
    values = {k: form.get(k, "") for k in _FIELDS}
    parsed, errors = _parse_feedback(form)
    if errors:
        return _case_page(
            request, state, ws, viewer, db, case, status=422, values=values, errors=errors
        )
    try:
        fb = case_service.record_feedback(
            db,
            viewer.actor,
            case_id,
            case_service.FeedbackIn(**parsed),
            approval_line=state.config(request).approval.yield_line,
        )
        db.commit()
    except InvalidFeedback as exc:
        db.rollback()
        field = _field_of(str(exc)) or "_form"
        return _case_page(
            request,
            state,
            ws,
            viewer,
            db,
            case,
            status=422,
            values=values,
            errors={field: str(exc)},
        )
    except (InvalidTransition, ApprovalRequired) as exc:
        db.rollback()
        db.refresh(case)
        return _case_page(request, state, ws, viewer, db, case, status=409, message=str(exc))
    except Forbidden:
        db.rollback()
        raise PageError(403, "errors.forbidden") from None
    done = "review" if fb.status == "pending" else "closed"
    return redirect(state, ws, f"/web/cases/{case_id}?done={done}")


@router.post("/cases/{case_id}/approve")
def approve_case(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    form: FormDep,
    viewer: ViewerDep,
    db: DbDep,
    case_id: str,
):
    case = _case_or_404(db, viewer, case_id)
    if not viewer.writes_cases:
        raise PageError(403, "errors.forbidden")
    try:
        case_service.approve(db, viewer.actor, case_id, form.get("reason", "")[:MAX_NOTES])
        db.commit()
    except (InvalidTransition, ApprovalRequired, Forbidden) as exc:
        db.rollback()
        db.refresh(case)
        return _case_page(request, state, ws, viewer, db, case, status=409, message=str(exc))
    return redirect(state, ws, f"/web/cases/{case_id}?done=approved")


@router.post("/cases/{case_id}/reject")
def reject_case(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    form: FormDep,
    viewer: ViewerDep,
    db: DbDep,
    case_id: str,
):
    case = _case_or_404(db, viewer, case_id)
    if not viewer.writes_cases:
        raise PageError(403, "errors.forbidden")
    reason = form.get("reason", "").strip()[:MAX_NOTES]
    if not reason:
        return _case_page(
            request,
            state,
            ws,
            viewer,
            db,
            case,
            status=422,
            errors={"reason": "feedback.err_reason"},
        )
    try:
        case_service.reject(db, viewer.actor, case_id, reason)
        db.commit()
    except (InvalidTransition, ApprovalRequired, Forbidden, ServingError) as exc:
        db.rollback()
        db.refresh(case)
        return _case_page(request, state, ws, viewer, db, case, status=409, message=str(exc))
    return redirect(state, ws, f"/web/cases/{case_id}?done=rejected")


#: the report is a self-contained document with its own inline stylesheet
_REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@router.get("/cases/{case_id}/report.{fmt}", name="web_report")
def report(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: ViewerDep,
    db: DbDep,
    case_id: str,
    fmt: str,
):
    if fmt not in ("html", "pdf"):
        raise PageError(404, "errors.not_found")
    _case_or_404(db, viewer, case_id)
    try:
        body = render_report(db, viewer.actor, case_id, state.settings, fmt, lang=ws.lang)  # type: ignore[arg-type]
    except (CaseNotFound, Forbidden):
        raise PageError(404, "errors.case_not_found") from None
    media = "application/pdf" if fmt == "pdf" else "text/html; charset=utf-8"
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "_", case_id)
    headers = {
        **_REPORT_HEADERS,
        "Content-Disposition": f'inline; filename="report-{safe_id}.{fmt}"',
    }
    return Response(body, media_type=media, headers=headers)


# --- progress -------------------------------------------------------------------------------


@router.get("/progress")
def my_progress(state: StateDep, ws: SessionCookie, viewer: ViewerDep, db: DbDep):
    unit = _home_unit(db, viewer)
    return redirect(state, ws, f"/web/units/{unit}/progress" if unit else "/web/")


@router.get("/units/{unit_id}/progress", name="web_progress")
def progress(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: ViewerDep,
    db: DbDep,
    unit_id: str,
):
    unit = _unit_or_404(db, viewer, unit_id)
    today = dt.date.today()
    rows = unit_progress(db, unit_id, today)
    return render(
        request,
        state,
        ws,
        "progress.html",
        viewer=viewer,
        unit=unit,
        crumbs=_breadcrumbs(db, viewer, unit_id),
        rows=rows,
        today=today,
    )


# --- runs and model (analysts, admins) ------------------------------------------------------


@router.get("/runs", name="web_runs")
def runs(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: OversightDep,
    db: DbDep,
    page: str | None = None,
):
    page_no = _page(page)
    items, total = queries.list_runs(db, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return render(
        request,
        state,
        ws,
        "runs.html",
        viewer=viewer,
        runs=items,
        total=total,
        page=page_no,
        prev_url=f"/web/runs?page={page_no - 1}" if page_no > 1 else None,
        next_url=f"/web/runs?page={page_no + 1}" if page_no < pages else None,
    )


@router.get("/runs/{run_id}", name="web_run")
def run_page(
    request: Request,
    state: StateDep,
    ws: SessionCookie,
    viewer: OversightDep,
    db: DbDep,
    run_id: str,
):
    from .monitoring_view import monitoring_view

    run = queries.get_run(db, run_id) if _id_ok(run_id, 64) else None
    if run is None:
        raise PageError(404, "errors.run_not_found")
    names = {uid: name for uid, name in db.execute(select(Unit.unit_id, Unit.name))}
    return render(
        request,
        state,
        ws,
        "run.html",
        viewer=viewer,
        run=run,
        units=queries.run_units(db, run_id),
        unit_names=names,
        mon=monitoring_view(run.monitoring or {}),
    )


@router.get("/model", name="web_model")
def model_page(request: Request, state: StateDep, ws: SessionCookie, viewer: OversightDep):
    info = state.models(request).get()
    from .monitoring_view import model_metrics

    return render(
        request,
        state,
        ws,
        "model.html",
        viewer=viewer,
        info=info,
        metrics=model_metrics(info.metrics),
        plots=sorted(info.plots, key=_plot_order),
    )


_PLOT_FIRST = ("yield_curve", "backtest", "calibration")


def _plot_order(path: str) -> tuple[int, str]:
    name = path.rsplit("/", 1)[-1]
    rank = next((i for i, p in enumerate(_PLOT_FIRST) if name.startswith(p)), len(_PLOT_FIRST))
    return rank, path


@router.get("/model/plots/{name:path}", name="web_model_plot")
def model_plot(request: Request, state: StateDep, viewer: OversightDep, name: str):
    from ..modelinfo import model_plot as read_plot

    info = state.models(request).get()
    data = read_plot(state.settings, info, name)
    if data is None:
        raise PageError(404, "errors.not_found")
    return Response(
        data,
        media_type="image/png",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=60"},
    )
