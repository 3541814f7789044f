"""Errors as HTTP: the one place where domain errors become status codes.

Every error response is JSON ``{"detail": ...}``: a string, or for request validation (422) a
list of ``{"loc", "msg", "type"}`` items. The mapping of :mod:`taxrisk.serving.errors`:

=====================  ======  ==========================================================
error                  status  when
=====================  ======  ==========================================================
CaseNotFound           404     no such case, or one the user may not see (nothing leaks)
RunNotFound            404     no such scoring run
Forbidden              403     outside the user's rights
InvalidTransition      409     the case's state does not allow the action
ApprovalRequired       409     a second, different person must approve
InvalidFeedback        422     feedback breaks a rule the schema cannot express
UserError              422     a user or a unit named in the request does not fit
NoChampion             503     no model version holds the alias champion
ScoringError           503     no run can be made or explained now
ServingError (other)   500     a configuration or integrity problem (ChainBroken, ...)
OperationalError       503     the case store cannot be reached (or is locked): retry
IntegrityError         409     a concurrent change got there first (a unique key): retry
=====================  ======  ==========================================================

Unexpected exceptions become 500 ``{"detail": "internal server error"}`` (logged, never
echoed). Validation errors never echo the input back (it may hold NaN, which JSON cannot
carry, or a secret pasted by mistake).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from taxrisk.serving.errors import (
    ApprovalRequired,
    CaseNotFound,
    Forbidden,
    InvalidFeedback,
    InvalidTransition,
    NoChampion,
    RunNotFound,
    ScoringError,
    ServingError,
    UserError,
)

from taxrisk.errors import TaxriskError

__all__ = ["CASE_NOT_FOUND", "STATUS_OF", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)

#: most specific first: the first class the error is an instance of decides
STATUS_OF: tuple[tuple[type[ServingError], int], ...] = (
    (CaseNotFound, 404),
    (RunNotFound, 404),
    (Forbidden, 403),
    (InvalidTransition, 409),
    (ApprovalRequired, 409),
    (InvalidFeedback, 422),
    (UserError, 422),
    (NoChampion, 503),
    (ScoringError, 503),
)


def status_of(error: BaseException) -> int:
    """The HTTP status of a domain error (500 for anything not in :data:`STATUS_OF`)."""
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return 500


def _validation_items(errors: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = [p if isinstance(p, int | str) else str(p) for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))})
    return out


#: the one answer for a case that does not exist or that the user may not see: it does not
#: even echo the id, so that no body tells an other unit's case apart from a made-up one
CASE_NOT_FOUND = "case not found"


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    headers = {"Retry-After": "60"} if status == 503 else None
    detail = CASE_NOT_FOUND if isinstance(exc, CaseNotFound) else str(exc)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _on_store_down(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: case store unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the case store is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


async def _on_store_conflict(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: integrity error: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "a concurrent change got there first; reload and try again"},
        status_code=409,
    )


async def _on_other_library_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s: library error", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _validation_items(exc.errors())}, status_code=422)


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into ``{"detail": ...}``."""
    app.add_exception_handler(ServingError, _on_domain_error)
    app.add_exception_handler(TaxriskError, _on_other_library_error)
    app.add_exception_handler(OperationalError, _on_store_down)
    app.add_exception_handler(IntegrityError, _on_store_conflict)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(Exception, _on_unexpected)
