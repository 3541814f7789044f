"""Typed dependencies of the routes: the app's state, one session per request, the user.

* :data:`SessionDep`: a session from the engine built once by ``create_app``. It commits when
  the route returns and rolls back when it raises, *before* the response is sent (scope
  ``function``): a write the client sees acknowledged is stored. At most
  :data:`SESSION_CONCURRENCY` requests hold one at a time (the others wait without a thread).
* :data:`CurrentUser`: the authenticated :class:`~taxrisk.serving.store.action_log.Actor`
  (401 otherwise, fail closed), remembered for at most :data:`AUTH_TTL` seconds and only at
  one store version (adding or revoking a user moves it). :data:`CaseWriter` and
  :data:`Oversight` add a role check (403). :data:`VisibleUnit` is a ``unit_id`` path
  parameter the user may see: 403 for a selector outside its units, 404 for an unknown unit
  (for the roles that see every unit). :data:`StoreVersion`: the action log's head ``seq``.

The dependencies that only compute are ``async`` (no worker thread). The store version, the
user and the unit tree come from caches keyed by the store version; on a miss they are read
in a worker thread, each in a short session of its own (:func:`read_once`). A request served
from the caches (the case list's hot path) uses no thread and no database connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from taxrisk.serving.config import ServingConfig
from taxrisk.serving.modelinfo import ModelInfoCache
from taxrisk.serving.store.action_log import Actor
from taxrisk.serving.store.users import hash_token

from taxrisk.settings import Settings

from . import listing
from .security import CASE_WRITERS, OVERSIGHT, SELECTOR, actor_for_token, bearer, token_of

__all__ = [
    "ApiState",
    "CaseId",
    "CaseWriter",
    "CurrentUser",
    "Oversight",
    "SessionDep",
    "StateDep",
    "StoreVersion",
    "UnitScope",
    "Units",
    "VisibleUnit",
    "get_session",
    "no_unknown_query",
    "read_once",
    "require_roles",
]

T = TypeVar("T")

#: identifiers in paths: bounded, no control characters (PostgreSQL refuses NUL in text)
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"


@dataclass(frozen=True)
class ApiState:
    """What ``create_app`` builds once: settings, engine, session factory, config, caches."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    config: ServingConfig
    models: ModelInfoCache
    cache: listing.VersionedCache
    clock: listing.StoreClock


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


StateDep = Annotated[ApiState, Depends(get_state)]


def _finish(session: Session, ok: bool) -> None:
    try:
        if ok:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def get_session(request: Request) -> AsyncIterator[Session]:
    # Opening a session does no I/O; the commit (or rollback) and close run in one worker
    # thread at the end, and only if the session was used (a request answered from the caches
    # never touches the database). Sync dependencies and routes use the session from worker
    # threads, one at a time. (The state comes from the request, not StateDep: every
    # dependency node costs FastAPI time on every request.)
    state = _state(request)
    session = state.sessions()
    ok = False
    try:
        yield session
        ok = True
    finally:
        if session.in_transaction():
            await run_in_threadpool(_finish, session, ok)
            if ok and request.method not in ("GET", "HEAD"):
                state.clock.expire()  # read your own writes: the next request re-reads
        else:
            session.close()


#: requests holding a session at once. Waiting happens in the event loop, not in a worker
#: thread: without the limit, 64 clients fill the 40 worker threads with requests blocked on
#: the engine's pool (5 + 10 connections) while the requests holding the connections wait for
#: a thread to finish in -- a deadlock that ends in pool timeouts. One worker process gains
#: nothing from more concurrency than this (the GIL), and the pool always has room for it.
SESSION_CONCURRENCY = 4

SessionDep = Annotated[
    Session, Depends(get_session, scope="function", max_concurrency=SESSION_CONCURRENCY)
]


def read_once(sessions: sessionmaker[Session], read: Callable[..., T], *args: Any) -> T:
    """``read(session, *args)`` in a session of its own, opened and closed here (read only).

    What the caches fetch on a miss runs this way, in one worker thread: it never holds a
    connection while waiting for a thread, so it needs no share of SESSION_CONCURRENCY.
    """
    with sessions() as session:
        return read(session, *args)


async def get_store_version(request: Request) -> int:
    state = _state(request)
    return await state.clock.read(partial(read_once, state.sessions, listing.store_version))


#: the store's version (the action log's head), read at most ``freshness`` seconds ago (see
#: :class:`~taxrisk.serving.api.listing.StoreClock`), before anything the request reads
StoreVersion = Annotated[int, Depends(get_store_version)]

#: seconds an authenticated token is remembered (and only at the same store version: adding or
#: revoking a user appends to the action log, which moves the version)
AUTH_TTL = 5.0


async def get_current_user(
    request: Request,
    version: StoreVersion,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    token = token_of(credentials)
    state = _state(request)
    key = ("user", hash_token(token), version)
    actor: Actor = await state.cache.get_or_fetch(
        key, read_once, state.sessions, actor_for_token, token, ttl=AUTH_TTL
    )
    return actor


CurrentUser = Annotated[Actor, Depends(get_current_user)]


def require_roles(*roles: str) -> Callable[[Actor], Awaitable[Actor]]:
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> Actor:
        if user.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {user.role!r} may not do this (needs one of {', '.join(sorted(allowed))})",
            )
        return user

    return check


CaseWriter = Annotated[Actor, Depends(require_roles(*CASE_WRITERS))]
Oversight = Annotated[Actor, Depends(require_roles(*OVERSIGHT))]

CaseId = Annotated[
    str, Path(min_length=1, max_length=80, pattern=ID_PATTERN, description="A case id.")
]
UnitIdPath = Annotated[
    str, Path(min_length=1, max_length=64, pattern=ID_PATTERN, description="A unit id.")
]


@dataclass(frozen=True)
class UnitScope:
    """The units at the request's store version: the tree, and memoised subtrees."""

    tree: dict[str, str | None]
    version: int
    cache: listing.VersionedCache

    def below(self, unit_id: str) -> frozenset[str]:
        """``unit_id`` and every unit under it."""
        key = ("below", unit_id, self.version)
        found: frozenset[str] | None = self.cache.get(key)
        if found is None:
            found = listing.units_below(self.tree, unit_id)
            self.cache.put(key, found)
        return found


async def get_units(request: Request, version: StoreVersion) -> UnitScope:
    state = _state(request)
    tree: dict[str, str | None] = await state.cache.get_or_fetch(
        ("units", version), read_once, state.sessions, listing.unit_tree
    )
    return UnitScope(tree, version, state.cache)


#: the unit tree at the request's store version
Units = Annotated[UnitScope, Depends(get_units)]


async def visible_unit(unit_id: UnitIdPath, user: CurrentUser, units: Units) -> str:
    if user.role == SELECTOR:
        assert user.unit_id is not None  # security.actor_for_token refuses a selector without
        if unit_id not in units.below(user.unit_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this unit is outside your units")
    elif unit_id not in units.tree:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no unit {unit_id!r}")
    return unit_id


VisibleUnit = Annotated[str, Depends(visible_unit)]

_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> frozenset[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return frozenset(names)


async def no_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not declare: ``?stauts=new`` must not quietly
    return every case."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    allowed = _QUERY_NAMES.get(id(route))
    if allowed is None:
        allowed = _QUERY_NAMES[id(route)] = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name), "msg": "unknown parameter"}
                for name in unknown[:5]
            ]
        )
