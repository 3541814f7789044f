"""A unit's cases: ``GET /units/{unit_id}/cases`` (the list, best first) and
``POST /units/{unit_id}/cases`` (add a taxpayer the run did not select, with a reason)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from taxrisk.serving.store import cases
from taxrisk.serving.store.cases import CaseFilter

from .. import listing, views
from ..deps import (
    ID_PATTERN,
    CaseWriter,
    SessionDep,
    StateDep,
    StoreVersion,
    Units,
    VisibleUnit,
)
from ..schemas import (
    AddTaxpayerIn,
    CasePageOut,
    CaseStatus,
    CaseSummaryOut,
    RiskLevelName,
    error_responses,
)

__all__ = ["router"]

router = APIRouter(prefix="/units", tags=["units"])

#: deepest page offset accepted (keeps OFFSET within every database's integer range)
MAX_OFFSET = 1_000_000_000


@router.get(
    "/{unit_id}/cases",
    response_model=CasePageOut,
    summary="The unit's cases (and those of the units below it), best first",
    responses=error_responses(401, 403, 404, 422),
)
async def list_unit_cases(
    unit_id: VisibleUnit,
    state: StateDep,
    version: StoreVersion,
    units: Units,
    limit: Annotated[int, Query(ge=1, le=200, description="page size")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    status: CaseStatus | None = None,
    industry: Annotated[str | None, Query(min_length=1, max_length=64, pattern=ID_PATTERN)] = None,
    risk_level: RiskLevelName | None = None,
) -> Response:
    flt = CaseFilter(status=status, industry=industry, risk_level=risk_level)
    body = await listing.unit_page_json(
        state.sessions,
        state.cache,
        version,
        units.below(unit_id),
        unit_id,
        flt,
        limit=limit,
        offset=offset,
    )
    return Response(body, media_type="application/json")


@router.post(
    "/{unit_id}/cases",
    response_model=CaseSummaryOut,
    status_code=status.HTTP_201_CREATED,
    summary="Add a taxpayer to the unit's cases (a reason is required; logged)",
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)
def add_case(
    user: CaseWriter, unit_id: VisibleUnit, body: AddTaxpayerIn, session: SessionDep
) -> CaseSummaryOut:
    case = cases.add_taxpayer(
        session, user, body.taxpayer_id, unit_id, body.reason, measure=body.measure
    )
    return views.case_summary(case)
