"""One module per resource; :data:`api_router` gathers those under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ..deps import no_unknown_query
from . import cases, model, runs, taxpayers, units

__all__ = ["api_router"]

api_router = APIRouter(dependencies=[Depends(no_unknown_query)])
for _module in (units, cases, taxpayers, runs, model):
    api_router.include_router(_module.router)
