"""``GET /health``: no authentication; the service, its current run and model version.

Answered from the caches at the store version (no thread, no query while the version is
fresh): load balancers may poll it often. 503 when the case store cannot be read.
"""

from __future__ import annotations

import logging
from functools import partial

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from taxrisk.serving.store import cases

from .. import listing, views
from ..deps import StateDep, read_once
from ..schemas import CurrentRunOut, HealthOut

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


def _current_run(session: Session) -> CurrentRunOut | None:
    return views.current_run(cases.current_run(session))


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Service status, current scoring run and model version",
    responses={503: {"model": HealthOut, "description": "the case store cannot be read"}},
)
async def health(state: StateDep) -> HealthOut | JSONResponse:
    try:
        version = await state.clock.read(partial(read_once, state.sessions, listing.store_version))
        run: CurrentRunOut | None = await state.cache.get_or_fetch(
            ("run", version), read_once, state.sessions, _current_run
        )
    except Exception as exc:  # the store is down: say so, with the right status
        log.warning("health: case store unavailable: %s", exc)
        body = HealthOut(status="unavailable", model_version=None, run=None)
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    return HealthOut(status="ok", model_version=run.model_version if run else None, run=run)
