"""Scoring runs (analyst, admin): ``GET /runs`` (newest first) and ``GET /runs/{run_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from taxrisk.serving.errors import RunNotFound

from .. import queries
from ..deps import ID_PATTERN, Oversight, SessionDep
from ..schemas import RunDetailOut, RunOut, RunPageOut, RunUnitOut, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/runs", tags=["runs"])


@router.get(
    "",
    response_model=RunPageOut,
    summary="Published scoring runs with counts, timings and monitoring, newest first",
    responses=error_responses(401, 403, 422),
)
def list_runs(
    user: Oversight,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> RunPageOut:
    runs, total = queries.list_runs(session, limit, offset)
    return RunPageOut(
        total=total,
        limit=limit,
        offset=offset,
        items=[RunOut.model_validate(r) for r in runs],
    )


@router.get(
    "/{run_id}",
    response_model=RunDetailOut,
    summary="One scoring run, with its per-unit allocation",
    responses=error_responses(401, 403, 404, 422),
)
def read_run(
    user: Oversight,
    run_id: Annotated[str, Path(min_length=1, max_length=64, pattern=ID_PATTERN)],
    session: SessionDep,
) -> RunDetailOut:
    run = queries.get_run(session, run_id)
    if run is None:
        raise RunNotFound(f"no scoring run {run_id!r}")
    base = RunOut.model_validate(run).model_dump()
    return RunDetailOut(
        **base,
        data_fingerprint=run.data_fingerprint,
        artifacts=run.artifacts,
        notes=run.notes,
        units=[RunUnitOut.model_validate(u) for u in queries.run_units(session, run.run_id)],
    )
