"""A unit's case list, the API's hot path: one lean read, and a cache keyed by the store's
version.

:func:`case_page` answers what :func:`taxrisk.serving.store.cases.list_cases` answers (the
same units, filters and order: expected yield, then rank, then case id; the tests hold the two
to the same rows) with three Core queries and no ORM objects: the count, the page's columns,
and the page's fired indicators (one ``IN`` query, no N+1). The caller has checked the user's
right to the unit.

:class:`VersionedCache` keeps the finished JSON bodies (and the unit tree, the users of
tokens). Its keys carry the store's version, the action log's head ``seq``: every change to
cases, units, runs or users appends to the action log in its own transaction (the case
service, scoring runs, ``users add/revoke``), so a new version means "anything may have
changed" and older entries are never served again. The version is read before the page, so a
cached body is never older than its key. Bounded (LRU); concurrent misses of one key make one
fetch (:meth:`VersionedCache.get_or_fetch`).

:class:`StoreClock` remembers the version for a few milliseconds (``freshness``), so that a
busy server reads it a few times a second rather than on every request: a change committed
elsewhere shows within ``2 * freshness`` seconds, one committed by this process at once.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from taxrisk.serving.store.action_log import HEAD_ID
from taxrisk.serving.store.cases import CaseFilter, current_run
from taxrisk.serving.store.models import ActionLogHead, Case, CaseIndicator, RunUnit, Unit

from . import views
from .schemas import CasePageOut, CaseSummaryOut, ReasonOut

__all__ = [
    "StoreClock",
    "VersionedCache",
    "build_page_json",
    "case_page",
    "store_version",
    "unit_page_json",
    "unit_tree",
    "units_below",
]

_SUMMARY = (
    Case.case_id,
    Case.taxpayer_id,
    Case.taxpayer_name,
    Case.unit_id,
    Case.rank,
    Case.risk_score,
    Case.risk_level,
    Case.expected_yield,
    Case.recommended_measure,
    Case.status,
    Case.selection,
    Case.officer,
    Case.due_on,
)

PAGE_JSON = TypeAdapter(CasePageOut)


def store_version(session: Session) -> int:
    """The action log's head ``seq``: changes whenever anything in the store changes."""
    seq = session.scalar(select(ActionLogHead.seq).where(ActionLogHead.id == HEAD_ID))
    return int(seq or 0)


def unit_tree(session: Session) -> dict[str, str | None]:
    """unit_id -> parent_id, every unit."""
    return {u: p for u, p in session.execute(select(Unit.unit_id, Unit.parent_id))}


def units_below(tree: dict[str, str | None], unit_id: str) -> frozenset[str]:
    """``unit_id`` and every unit under it (as ``cases.units_below``; a cycle cannot loop)."""
    children: dict[str, list[str]] = {}
    for uid, parent in tree.items():
        if parent is not None:
            children.setdefault(parent, []).append(uid)
    out, todo = {unit_id}, [unit_id]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return frozenset(out)


def _fired(session: Session, case_ids: Sequence[str], per_case: int) -> dict[str, list[ReasonOut]]:
    out: dict[str, list[ReasonOut]] = {}
    if not case_ids:
        return out
    rows = session.execute(
        select(
            CaseIndicator.case_id,
            CaseIndicator.item,
            CaseIndicator.value,
            CaseIndicator.contribution,
        )
        .where(
            CaseIndicator.case_id.in_(case_ids),
            CaseIndicator.fired.is_(True),
            CaseIndicator.kind == "indicator",
        )
        .order_by(CaseIndicator.case_id, CaseIndicator.position)
    )
    for case_id, item, value, contribution in rows:
        bucket = out.setdefault(case_id, [])
        if len(bucket) < per_case:
            zh, en = views.names(item)
            bucket.append(
                ReasonOut(
                    indicator_id=item,
                    name_zh=zh,
                    name_en=en,
                    value=value,
                    contribution=contribution,
                )
            )
    return out


def _summary(row: Any, reasons: list[ReasonOut]) -> CaseSummaryOut:
    m = row._mapping
    return CaseSummaryOut(
        case_id=m["case_id"],
        taxpayer_id=m["taxpayer_id"],
        name=m["taxpayer_name"],
        unit_id=m["unit_id"],
        rank=m["rank"],
        risk_score=m["risk_score"],
        risk_level=m["risk_level"],
        expected_yield=m["expected_yield"],
        top_reasons=reasons,
        recommended_measure=m["recommended_measure"],
        status=m["status"],
        selection=m["selection"],
        officer=m["officer"],
        due_on=m["due_on"],
    )


def case_page(
    session: Session, units: Iterable[str], flt: CaseFilter, *, limit: int, offset: int
) -> tuple[list[CaseSummaryOut], int]:
    """The cases of ``units`` matching ``flt`` (status, industry, risk_level, selection), best
    first, one page; and the total count."""
    where = [Case.unit_id.in_(sorted(units))]
    for column, wanted in (
        (Case.status, flt.status),
        (Case.industry, flt.industry),
        (Case.risk_level, flt.risk_level),
        (Case.selection, flt.selection),
    ):
        if wanted is not None:
            where.append(column == wanted)
    total = session.scalar(select(func.count()).select_from(Case).where(*where)) or 0
    rows = session.execute(
        select(*_SUMMARY)
        .where(*where)
        .order_by(Case.expected_yield.desc(), Case.rank, Case.case_id)
        .limit(limit)
        .offset(offset)
    ).all()
    reasons = _fired(session, [r.case_id for r in rows], views.TOP_REASONS)
    return [_summary(r, reasons.get(r.case_id, [])) for r in rows], int(total)


class StoreClock:
    """The store version as last read, trusted for ``freshness`` seconds (thread-safe).

    A request reads the action log's head only when the last reading is older than that: under
    load a few queries a second instead of one per request. Between ``freshness`` and twice
    that, the last reading is still used while one refresh runs in the background (requests
    never queue behind it); beyond, the request waits for a fresh reading. So what another
    process commits (a scoring run, ``taxrisk users revoke``, another worker) is seen within
    ``2 * freshness`` seconds, and what this process commits at once (:meth:`expire` after each
    write). ``freshness=0`` reads the head on every request.
    """

    def __init__(self, freshness: float = 0.05) -> None:
        self.freshness = freshness
        self._lock = threading.Lock()
        self._version: int | None = None
        self._at = -math.inf
        self._pending: asyncio.Future[int] | None = None  # event loop only

    async def read(self, fetch: Callable[[], int]) -> int:
        """The version (see the class); ``fetch()`` runs in a worker thread, once for all the
        requests that need it at the same time."""
        with self._lock:
            version, age = self._version, time.monotonic() - self._at
        if version is not None and age <= self.freshness:
            return version
        pending = self._pending
        if pending is None:
            pending = self._pending = asyncio.ensure_future(run_in_threadpool(fetch))

            def settle(done: asyncio.Future[int]) -> None:
                self._pending = None
                if not done.cancelled() and done.exception() is None:
                    self.observe(done.result())

            pending.add_done_callback(settle)
        if version is not None and age <= 2 * self.freshness:
            return version  # the refresh runs meanwhile
        return int(await asyncio.shield(pending))

    def fresh(self) -> int | None:
        """The version, if read within ``freshness`` seconds; else None."""
        with self._lock:
            if self._version is None or time.monotonic() - self._at > self.freshness:
                return None
            return self._version

    def observe(self, version: int) -> None:
        with self._lock:
            self._version, self._at = version, time.monotonic()

    def expire(self) -> None:
        with self._lock:
            self._version = None


class VersionedCache:
    """Values by key (keys carry the store version), least recently used dropped beyond
    ``size`` (thread-safe)."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[Any, float]] = OrderedDict()
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}  # event loop only

    def get(self, key: Hashable) -> Any:
        """The value, or None (absent, or older than the ``ttl`` it was put with)."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            value, expires = found
            if expires < time.monotonic():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        expires = time.monotonic() + ttl if ttl is not None else math.inf
        with self._lock:
            self._items[key] = (value, expires)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    async def get_or_fetch(
        self,
        key: Hashable,
        fetch: Callable[..., Any],
        *args: Any,
        ttl: float | None = None,
    ) -> Any:
        """The cached value, else ``fetch(*args)`` in a worker thread, once: concurrent
        requests for the same missing key wait for the one fetch (no stampede), and a waiter
        that goes away (a client disconnecting) cancels nobody else's. Nothing is cached when
        the fetch raises (every waiter gets the error)."""
        value = self.get(key)
        if value is not None:
            return value
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(fetch, *args))
            self._pending[key] = pending

            def settle(done: asyncio.Future[Any]) -> None:
                self._pending.pop(key, None)
                if not done.cancelled() and done.exception() is None:
                    self.put(key, done.result(), ttl=ttl)

            pending.add_done_callback(settle)
        return await asyncio.shield(pending)


async def unit_page_json(
    sessions: sessionmaker[Session],
    cache: VersionedCache,
    version: int,
    units: frozenset[str],
    unit_id: str,
    flt: CaseFilter,
    *,
    limit: int,
    offset: int,
) -> bytes:
    """The JSON body of ``GET /units/{unit_id}/cases`` (:class:`CasePageOut`): the unit's
    cases and those of ``units`` (it and the units below it), with the unit's share of the
    current run. From the cache at this store version, else built in a worker thread in a
    session of its own."""
    key = ("cases", unit_id, flt, limit, offset, version)
    body: bytes | None = cache.get(key)
    if body is None:
        body = await run_in_threadpool(_build_once, sessions, units, unit_id, flt, limit, offset)
        cache.put(key, body)
    return body


def _build_once(
    sessions: sessionmaker[Session],
    units: frozenset[str],
    unit_id: str,
    flt: CaseFilter,
    limit: int,
    offset: int,
) -> bytes:
    with sessions() as session:
        return build_page_json(session, units, unit_id, flt, limit=limit, offset=offset)


def build_page_json(
    session: Session,
    units: frozenset[str],
    unit_id: str,
    flt: CaseFilter,
    *,
    limit: int,
    offset: int,
) -> bytes:
    """:func:`unit_page_json` without the cache."""
    items, total = case_page(session, units, flt, limit=limit, offset=offset)
    run = current_run(session)
    capacity = session.get(RunUnit, (run.run_id, unit_id)) if run is not None else None
    page = CasePageOut(
        unit_id=unit_id,
        total=total,
        limit=limit,
        offset=offset,
        capacity=views.unit_capacity(capacity),
        items=items,
    )
    return PAGE_JSON.dump_json(page)
