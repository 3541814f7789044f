"""Authentication and the roles' rights (CONTRACT section 3).

* A request authenticates with ``Authorization: Bearer TOKEN``; the token is checked by
  :func:`taxrisk.serving.store.users.authenticate` (only its hash is stored). No header, another
  scheme, an over-long token, an unknown or revoked token, or *any error while checking* is a
  401: the check fails closed.
* Roles: ``admin`` (everything), ``analyst`` (reads every unit, writes no case), ``selector``
  (reads and acts on the cases of its unit and the units below it; nothing else). A selector
  without a unit has no rights at all.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Final

from fastapi import HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from taxrisk.serving.store import users
from taxrisk.serving.store.action_log import Actor

__all__ = [
    "ADMIN",
    "ANALYST",
    "CASE_READERS",
    "CASE_WRITERS",
    "MAX_TOKEN_LENGTH",
    "OVERSIGHT",
    "SELECTOR",
    "actor_for_token",
    "bearer",
    "token_of",
    "unauthorized",
]

log = logging.getLogger(__name__)

ADMIN: Final = "admin"
ANALYST: Final = "analyst"
SELECTOR: Final = "selector"

#: who may read cases (a selector only within its units)
CASE_READERS: Final = frozenset({ADMIN, ANALYST, SELECTOR})
#: who may act on cases (a selector only within its units)
CASE_WRITERS: Final = frozenset({ADMIN, SELECTOR})
#: runs, the model, any taxpayer's risk: the bureau-wide views
OVERSIGHT: Final = frozenset({ADMIN, ANALYST})

#: tokens are 43 characters (``secrets.token_urlsafe(32)``); anything this long is not one
MAX_TOKEN_LENGTH: Final = 256

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="The API token printed once by `taxrisk users add NAME --role ROLE`.",
)


def unauthorized(detail: str = "not authenticated") -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


def token_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The bearer token of a request, or a 401 :class:`HTTPException` (nothing looked up)."""
    if credentials is None:
        raise unauthorized()
    token = credentials.credentials.strip()
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise unauthorized("invalid token")
    return token


def actor_for_token(session: Session, token: str) -> Actor:
    """The user holding ``token``, or a 401 :class:`HTTPException` (fail closed): unknown,
    revoked, or any error while checking. 403 for a user with no rights (a selector without a
    unit, an unknown role)."""
    try:
        user = users.authenticate(session, token)
        if user is None:
            raise unauthorized("invalid or revoked token")
        actor = Actor(name=user.name, role=user.role, unit_id=user.unit_id)
    except HTTPException:
        raise
    except Exception:  # an auth check that errors denies
        log.exception("authentication failed with an error: denied")
        with contextlib.suppress(Exception):
            session.rollback()
        raise unauthorized("authentication unavailable") from None
    if actor.role not in CASE_READERS or (actor.role == SELECTOR and not actor.unit_id):
        log.warning(
            "user %r has role %r and unit %r: denied", actor.name, actor.role, actor.unit_id
        )
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this user has no rights")
    return actor
