"""The case list's fast path (:mod:`taxrisk.serving.api.listing`): the same answer as the case
service, caches that never serve an older store version than they should, and no pool deadlock
when many clients hit a real server at once."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import Seeded
from taxrisk.serving.api import listing
from taxrisk.serving.api.main import create_app
from taxrisk.serving.store import cases, users
from taxrisk.serving.store.cases import CaseFilter

from taxrisk.settings import get_settings

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers httpx2; the lock has httpx (same API).
    warnings.filterwarnings(
        "ignore",
        message="Using `httpx` with `starlette.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from starlette.testclient import TestClient

SQLITE = pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)

FILTERS = [
    CaseFilter(),
    CaseFilter(status="new"),
    CaseFilter(status="closed"),
    CaseFilter(risk_level="medium"),
    CaseFilter(industry="3031"),
    CaseFilter(status="new", risk_level="low"),
    CaseFilter(selection="exploration"),
    CaseFilter(status="nonexistent"),
]


def test_fast_page_is_the_case_service_page(seeded: Seeded) -> None:
    session = seeded.session
    admin = seeded.info.actors["admin"]
    tree = listing.unit_tree(session)
    for unit in seeded.info.units:
        below = listing.units_below(tree, unit)
        assert below == cases.units_below(session, unit)
        for flt in FILTERS:
            for limit, offset in ((50, 0), (3, 0), (3, 3), (5, 17), (10, 100)):
                want, want_total = cases.list_cases(
                    session, admin, unit, flt, limit=limit, offset=offset
                )
                got, total = listing.case_page(session, below, flt, limit=limit, offset=offset)
                assert total == want_total, (unit, flt)
                assert [c.case_id for c in got] == [c.case_id for c in want], (unit, flt, offset)


def test_units_below_survives_a_cycle() -> None:
    tree = {"A": "B", "B": "A", "C": None}
    assert listing.units_below(tree, "A") == {"A", "B"}


def test_versioned_cache_ttl_and_size() -> None:
    cache = listing.VersionedCache(size=2)
    cache.put("a", 1)
    cache.put("b", 2, ttl=0.01)
    assert cache.get("a") == 1
    time.sleep(0.02)
    assert cache.get("b") is None
    cache.put("c", 3)
    cache.put("d", 4)  # "a" is the least recently used
    assert cache.get("a") is None
    assert (cache.get("c"), cache.get("d")) == (3, 4)


def test_one_fetch_for_many_waiters() -> None:
    cache = listing.VersionedCache()
    clock = listing.StoreClock(freshness=60)
    calls: list[int] = []

    def slow() -> int:
        calls.append(1)
        time.sleep(0.05)
        return 7

    async def many() -> tuple[list[Any], list[int]]:
        values = await asyncio.gather(*(cache.get_or_fetch("k", slow) for _ in range(20)))
        versions = await asyncio.gather(*(clock.read(slow) for _ in range(20)))
        return list(values), list(versions)

    values, versions = asyncio.run(many())
    assert values == [7] * 20 and versions == [7] * 20
    assert len(calls) == 2  # one for the cache, one for the clock
    clock.expire()
    assert clock.fresh() is None


def _client(seeded: Seeded, workspace: Path, freshness: float) -> TestClient:
    app = create_app(
        get_settings(workspace=workspace), engine=seeded.engine, web=False, freshness=freshness
    )
    return TestClient(app, raise_server_exceptions=False)


def _auth(seeded: Seeded, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.info.tokens[who]}"}


def _statuses(client: TestClient, seeded: Seeded, unit: str = "U01") -> dict[str, str]:
    page = client.get(f"/api/v1/units/{unit}/cases?limit=200", headers=_auth(seeded, "admin"))
    assert page.status_code == 200
    return {c["case_id"]: c["status"] for c in page.json()["items"]}


def test_a_write_through_the_api_shows_at_once(seeded: Seeded, workspace: Path) -> None:
    case_id = seeded.info.first("new", "U01")
    with _client(seeded, workspace, freshness=60) as client:  # the clock never goes stale here
        assert _statuses(client, seeded)[case_id] == "new"
        r = client.post(
            f"/api/v1/cases/{case_id}/assign",
            json={"officer": "王五"},
            headers=_auth(seeded, "admin"),
        )
        assert r.status_code == 200
        assert _statuses(client, seeded)[case_id] == "assigned"


@SQLITE
def test_a_write_elsewhere_shows_within_twice_freshness(seeded: Seeded, workspace: Path) -> None:
    case_id = seeded.info.first("new", "U01")
    admin = seeded.info.actors["admin"]
    with _client(seeded, workspace, freshness=0.2) as client:
        assert _statuses(client, seeded)[case_id] == "new"
        cases.assign(seeded.session, admin, case_id, "赵六")  # another process, say the CLI
        seeded.session.commit()
        time.sleep(0.45)
        assert _statuses(client, seeded)[case_id] == "assigned"


@SQLITE
def test_a_revocation_elsewhere_denies_within_twice_freshness(
    seeded: Seeded, workspace: Path
) -> None:
    h = _auth(seeded, "sel_u01")
    with _client(seeded, workspace, freshness=0.2) as client:
        assert client.get("/api/v1/units/U01/cases", headers=h).status_code == 200
        users.revoke_user(seeded.session, "sel_u01")  # `taxrisk users revoke sel_u01`
        seeded.session.commit()
        time.sleep(0.45)
        assert client.get("/api/v1/units/U01/cases", headers=h).status_code == 401
        assert (
            client.get(f"/api/v1/cases/{seeded.info.first('new', 'U01')}", headers=h).status_code
            == 401
        )


@pytest.mark.slow
@SQLITE
def test_many_clients_at_once_do_not_exhaust_the_pool(seeded: Seeded, workspace: Path) -> None:
    """64 concurrent clients on routes that hold a session (and on the cached list): all
    answered. Without the session limit the worker threads all wait on the engine's
    pool while the holders wait for a thread, until the pool times out (30 s)."""
    # a small pool makes the deadlock reachable from one test process; a short pool timeout
    # makes it fail fast
    engine = create_engine(seeded.engine.url, pool_size=2, max_overflow=0, pool_timeout=5)
    app = create_app(get_settings(workspace=workspace), engine=engine, web=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    h = _auth(seeded, "admin")
    paths = [f"/api/v1/cases/{c}" for c in seeded.info.case_ids] + ["/api/v1/units/U00/cases"] * 8

    async def hammer() -> list[int]:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=base, headers=h, limits=limits, timeout=20) as c:
            rs = await asyncio.gather(*(c.get(paths[i % len(paths)]) for i in range(256)))
        return [r.status_code for r in rs]

    try:
        t0 = time.monotonic()
        codes = asyncio.run(hammer())
        elapsed = time.monotonic() - t0
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        engine.dispose()
    assert codes == [200] * 256
    assert elapsed < 60  # a deadlock ends in 30 s pool timeouts (500s), not in slowness
