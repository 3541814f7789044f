"""``GET /taxpayers/{taxpayer_id}/risk`` (analyst, admin): the latest score and explanation.

From the current scoring run (``taxrisk.serving.runs.explain_taxpayer``: its ranking row and an
on-demand TreeSHAP explanation); when the run cannot explain the taxpayer (no run, not scored,
its files gone), from the taxpayer's latest case in the store. 404 when neither knows it.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from taxrisk.serving import runs
from taxrisk.serving.errors import RunNotFound

from .. import queries, views
from ..deps import ID_PATTERN, Oversight, SessionDep, StateDep
from ..schemas import TaxpayerRiskOut, error_responses

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/taxpayers", tags=["taxpayers"])

TaxpayerIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)]


@router.get(
    "/{taxpayer_id}/risk",
    response_model=TaxpayerRiskOut,
    summary="A taxpayer's latest score and its explanation (analyst, admin)",
    responses=error_responses(401, 403, 404, 422, 503),
)
def taxpayer_risk(
    user: Oversight, taxpayer_id: TaxpayerIdPath, session: SessionDep, state: StateDep
) -> TaxpayerRiskOut:
    case = queries.latest_case_of_taxpayer(session, taxpayer_id)
    try:
        found = runs.explain_taxpayer(session, state.settings, taxpayer_id)
    except (RunNotFound, KeyError, FileNotFoundError) as exc:
        log.info("taxpayer %r: no explanation from the current run (%s)", taxpayer_id, exc)
    else:
        return views.risk_from_explanation(found, case)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no score for taxpayer {taxpayer_id!r}")
    return views.risk_from_case(case)
