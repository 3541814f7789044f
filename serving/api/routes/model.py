"""The model in service (analyst, admin): ``GET /model`` and its plots."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from taxrisk.serving.modelinfo import model_plot
from taxrisk.serving.store import cases

from .. import views
from ..deps import Oversight, SessionDep, StateDep
from ..schemas import ModelOut, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/model", tags=["model"])


@router.get(
    "",
    response_model=ModelOut,
    summary="The champion model, its training metrics and plots; or 'no model in service'",
    responses=error_responses(401, 403),
)
def read_model(user: Oversight, session: SessionDep, state: StateDep) -> ModelOut:
    info = state.models.get()
    data = asdict(info)
    return ModelOut(
        **{**data, "metrics": dict(info.metrics), "plots": list(info.plots)},
        in_service=info.in_service,
        current_run=views.current_run(cases.current_run(session)),
    )


@router.get(
    "/plots/{name}",
    summary="One plot of the champion's training run (PNG)",
    response_class=Response,
    responses={
        200: {"description": "the plot", "content": {"image/png": {}}},
        **error_responses(401, 403, 404, 422),
    },
)
def read_plot(
    user: Oversight,
    name: Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.\-]+$")],
    state: StateDep,
) -> Response:
    content = model_plot(state.settings, state.models.get(), name)
    if content is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plot {name!r} for the model in service")
    return Response(content, media_type="image/png")
