"""One case: read it, its report, and every action on it (each through the case service,
which checks the user's rights and the case's state and writes the action log)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response, status
from taxrisk.serving.reports.render import render_report
from taxrisk.serving.store import action_log, cases
from taxrisk.serving.store.cases import FeedbackIn as FeedbackRecord
from taxrisk.serving.store.models import Case

from .. import views
from ..deps import CaseId, CaseWriter, CurrentUser, SessionDep, StateDep
from ..schemas import (
    ApproveIn,
    AssignIn,
    CaseDetailOut,
    CaseSummaryOut,
    FeedbackIn,
    FeedbackOut,
    FeedbackResultOut,
    ReasonIn,
    RerouteIn,
    error_responses,
)

__all__ = ["router"]

router = APIRouter(prefix="/cases", tags=["cases"])

_WRITE_ERRORS = error_responses(400, 401, 403, 404, 409, 413, 422)


@router.get(
    "/{case_id}",
    response_model=CaseDetailOut,
    summary="One case: taxpayer, scores, indicators, contributions, guide, history",
    responses=error_responses(401, 403, 404, 422),
)
def read_case(case_id: CaseId, session: SessionDep, user: CurrentUser) -> CaseDetailOut:
    case = cases.get_case(session, user, case_id)
    return views.case_detail(
        case, case.indicators, case.feedback, action_log.history(session, case.case_id)
    )


@router.get(
    "/{case_id}/report",
    summary="The explanation report of the case (HTML, or PDF with ?format=pdf)",
    response_class=Response,
    responses={
        200: {
            "description": "the report",
            "content": {"text/html": {"schema": {"type": "string"}}, "application/pdf": {}},
        },
        **error_responses(401, 403, 404, 422),
    },
)
def case_report(
    case_id: CaseId,
    session: SessionDep,
    user: CurrentUser,
    state: StateDep,
    format: Annotated[Literal["html", "pdf"], Query(description="html or pdf")] = "html",
    lang: Annotated[Literal["zh", "en"], Query(description="the report's language")] = "zh",
) -> Response:
    case = cases.get_case(session, user, case_id)  # 404 before anything is rendered
    content = render_report(session, user, case.case_id, state.settings, format, lang=lang)
    if format == "pdf":
        return Response(
            content,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{case.case_id}.pdf"'},
        )
    return Response(content, media_type="text/html; charset=utf-8")


@router.post(
    "/{case_id}/feedback",
    response_model=FeedbackResultOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record the response result; large cases go to review (集体审议)",
    responses=_WRITE_ERRORS,
)
def submit_feedback(
    user: CaseWriter, case_id: CaseId, body: FeedbackIn, session: SessionDep, state: StateDep
) -> FeedbackResultOut:
    record = FeedbackRecord(**body.model_dump())
    stored = cases.record_feedback(
        session, user, case_id, record, approval_line=state.config.approval.yield_line
    )
    session.flush()
    case = cases.get_case(session, user, case_id)
    review = case.status == "review"
    return FeedbackResultOut(
        case_id=case.case_id,
        status=case.status,
        approval_required=review,
        detail=(
            "recorded; the case needs a second person's approval (POST .../approve) to close"
            if review
            else f"recorded; the case is {case.status}"
        ),
        feedback=FeedbackOut.model_validate(stored),
    )


def _do(
    action: Callable[..., Case], session: SessionDep, user: CaseWriter, case_id: str, **kw: Any
) -> CaseSummaryOut:
    return views.case_summary(action(session, user, case_id, **kw))


@router.post(
    "/{case_id}/assign",
    response_model=CaseSummaryOut,
    summary="Assign the case to an officer",
    responses=_WRITE_ERRORS,
)
def assign_case(
    user: CaseWriter, case_id: CaseId, body: AssignIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.assign, session, user, case_id, officer=body.officer, reason=body.reason)


@router.post(
    "/{case_id}/start",
    response_model=CaseSummaryOut,
    summary="Start working on an assigned case",
    responses=_WRITE_ERRORS,
)
def start_case(user: CaseWriter, case_id: CaseId, session: SessionDep) -> CaseSummaryOut:
    return _do(cases.start, session, user, case_id)


@router.post(
    "/{case_id}/escalate",
    response_model=CaseSummaryOut,
    summary="Hand the case to the parent unit",
    responses=_WRITE_ERRORS,
)
def escalate_case(
    user: CaseWriter, case_id: CaseId, body: ReasonIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.escalate, session, user, case_id, reason=body.reason)


@router.post(
    "/{case_id}/return",
    response_model=CaseSummaryOut,
    summary="Return the case to the city bureau, with a reason",
    responses=_WRITE_ERRORS,
)
def return_case(
    user: CaseWriter, case_id: CaseId, body: ReasonIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.return_case, session, user, case_id, reason=body.reason)


@router.post(
    "/{case_id}/reroute",
    response_model=CaseSummaryOut,
    summary="Send a returned case to another unit",
    responses=_WRITE_ERRORS,
)
def reroute_case(
    user: CaseWriter, case_id: CaseId, body: RerouteIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.reroute, session, user, case_id, unit_id=body.unit_id, reason=body.reason)


@router.post(
    "/{case_id}/approve",
    response_model=CaseSummaryOut,
    summary="Approve a case in review (a second, different person); closes it",
    responses=_WRITE_ERRORS,
)
def approve_case(
    user: CaseWriter,
    case_id: CaseId,
    session: SessionDep,
    body: Annotated[ApproveIn | None, Body()] = None,
) -> CaseSummaryOut:
    return _do(cases.approve, session, user, case_id, reason=body.reason if body else "")


@router.post(
    "/{case_id}/reject",
    response_model=CaseSummaryOut,
    summary="Send a case in review back to work, with a reason",
    responses=_WRITE_ERRORS,
)
def reject_case(
    user: CaseWriter, case_id: CaseId, body: ReasonIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.reject, session, user, case_id, reason=body.reason)


@router.post(
    "/{case_id}/drop",
    response_model=CaseSummaryOut,
    summary="Take the taxpayer off the list, with a reason",
    responses=_WRITE_ERRORS,
)
def drop_case(
    user: CaseWriter, case_id: CaseId, body: ReasonIn, session: SessionDep
) -> CaseSummaryOut:
    return _do(cases.drop, session, user, case_id, reason=body.reason)
