"""The API's authorization matrix (CONTRACT section 3), on SQLite and PostgreSQL.

Every endpoint x every principal (admin, analyst, the selector of U01, no token, a malformed
header, an unknown token, a revoked token) x the unit of the target (U01 the selector's own,
U011 below it, U02 another county, U00 the city above it). Reads and refused writes run on one
seeded store (refused writes must change nothing); allowed writes walk the case state machine
on a fresh store per principal and unit (:func:`test_allowed_writes`). In every response to
the selector, no case id or taxpayer name of a unit outside its own appears.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import Seeded, SeedInfo
from taxrisk.serving.api.main import create_app
from taxrisk.serving.store import users
from taxrisk.serving.store.models import Action, Case, Feedback

from taxrisk.settings import get_settings

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers httpx2; the lock has httpx (same API).
    warnings.filterwarnings(
        "ignore",
        message="Using `httpx` with `starlette.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from starlette.testclient import TestClient

SCOPES = {"own": "U01", "child": "U011", "other": "U02", "parent": "U00"}
SELECTOR_UNITS = {"U01", "U011"}
ANONYMOUS = ("anon", "malformed", "unknown", "revoked")


def client_for(engine: Engine, workspace: Path) -> TestClient:
    settings = get_settings(workspace=workspace)
    app = create_app(settings, engine=engine, web=False, freshness=0)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def api(seeded: Seeded, workspace: Path) -> Iterator[TestClient]:
    with client_for(seeded.engine, workspace) as client:
        yield client


def headers_of(info: SeedInfo, who: str, revoked_token: str = "") -> dict[str, str]:
    if who == "anon":
        return {}
    if who == "malformed":
        return {"Authorization": f"Basic {info.tokens['admin']}"}
    if who == "unknown":
        return {"Authorization": "Bearer " + "x" * 43}
    if who == "revoked":
        return {"Authorization": f"Bearer {revoked_token}"}
    return {"Authorization": f"Bearer {info.tokens[who]}"}


def outside_secrets(seeded: Seeded) -> list[str]:
    """Case ids and taxpayer names of the cases the selector of U01 may not see."""
    with seeded.engine.connect() as conn:
        rows = conn.execute(
            select(Case.case_id, Case.taxpayer_name, Case.unit_id).where(
                Case.unit_id.not_in(sorted(SELECTOR_UNITS))
            )
        ).all()
    return [v for r in rows for v in (r.case_id, r.taxpayer_name)]


def assert_no_leak(body: bytes, secrets: list[str], where: str) -> None:
    text = body.decode("utf-8", errors="replace")
    with contextlib.suppress(ValueError):  # JSON may escape non-ASCII: check it decoded too
        text += json.dumps(json.loads(text), ensure_ascii=False)
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"{where}: leaked {leaked[:3]}"


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            "cases": [
                tuple(r)
                for r in conn.execute(
                    select(Case.case_id, Case.status, Case.unit_id, Case.officer).order_by(
                        Case.case_id
                    )
                )
            ],
            "feedback": [
                tuple(r)
                for r in conn.execute(
                    select(Feedback.feedback_id, Feedback.case_id, Feedback.status).order_by(
                        Feedback.feedback_id
                    )
                )
            ],
            "actions": [
                tuple(r) for r in conn.execute(select(Action.seq, Action.hash).order_by(Action.seq))
            ],
        }


def case_in(info: SeedInfo, unit: str) -> str:
    return info.by_unit[unit][0]


FEEDBACK = {"outcome": "adjusted", "measure_taken": "assessment", "tax_recovered": 1000.0}
REASON = {"reason": "核实需要"}
WRITES: dict[str, dict[str, Any] | None] = {
    "feedback": FEEDBACK,
    "assign": {"officer": "王五"},
    "start": None,
    "escalate": REASON,
    "return": REASON,
    "reroute": {"unit_id": "U011", "reason": "改派"},
    "approve": {},
    "reject": REASON,
    "drop": REASON,
}


def expected(who: str, kind: str, scope: str) -> int:
    """The status of a request by ``who`` to an endpoint of ``kind`` on a target in ``scope``."""
    if who in ANONYMOUS:
        return 401
    inside = scope in ("own", "child")
    if kind == "oversight":
        return 403 if who == "sel_u01" else 200
    if kind == "unit_list":
        return 200 if who != "sel_u01" or inside else 403
    if kind == "case_read":
        return 200 if who != "sel_u01" or inside else 404
    if kind == "unit_add":
        assert who != "admin" and not (who == "sel_u01" and inside)
        return 403
    if kind == "case_write":
        assert who != "admin" and not (who == "sel_u01" and inside)
        return 403 if who == "analyst" else 404
    raise AssertionError(kind)


def matrix(info: SeedInfo, who: str) -> Iterator[tuple[str, str, str, str, Any]]:
    """(kind, scope, method, path, json body) of every read and every refused write."""
    runs = [("oversight", "-", "GET", p, None) for p in ("/api/v1/runs", "/api/v1/model")]
    runs.append(("oversight", "-", "GET", f"/api/v1/runs/{info.run_id}", None))
    yield from runs
    for scope, unit in SCOPES.items():
        case = case_in(info, unit)
        with_case = f"/api/v1/cases/{case}"
        yield "unit_list", scope, "GET", f"/api/v1/units/{unit}/cases", None
        yield "unit_list", scope, "GET", f"/api/v1/units/{unit}/cases?status=new&limit=5", None
        yield "case_read", scope, "GET", with_case, None
        yield "case_read", scope, "GET", f"{with_case}/report", None
        tp = case.rsplit("-", 1)[1]
        yield "oversight", scope, "GET", f"/api/v1/taxpayers/{tp}/risk", None
        allowed_writer = who == "admin" or (who == "sel_u01" and scope in ("own", "child"))
        if allowed_writer:
            continue
        yield (
            "unit_add",
            scope,
            "POST",
            f"/api/v1/units/{unit}/cases",
            {
                "taxpayer_id": "TP99999",
                "reason": "举报线索",
            },
        )
        for action, body in WRITES.items():
            yield "case_write", scope, "POST", f"{with_case}/{action}", body


PRINCIPALS = ["admin", "analyst", "sel_u01", *ANONYMOUS]


def test_authorization_matrix(seeded: Seeded, api: TestClient) -> None:
    info = seeded.info
    _, revoked = users.add_user(seeded.session, "gone", "admin")
    users.revoke_user(seeded.session, "gone")
    seeded.session.commit()
    secrets = outside_secrets(seeded)
    before = snapshot(seeded.engine)
    problems = []
    for who in PRINCIPALS:
        h = headers_of(info, who, revoked)
        for kind, scope, method, path, body in matrix(info, who):
            r = api.request(method, path, headers=h, json=body)
            want = expected(who, kind, scope)
            if r.status_code != want:
                problems.append(
                    f"{who} {method} {path}: {r.status_code} (want {want}) {r.text[:120]}"
                )
            if r.status_code >= 400:
                assert r.headers["content-type"].startswith("application/json"), path
                assert "detail" in r.json(), path
            if r.status_code == 401:
                assert r.headers.get("www-authenticate") == "Bearer"
            if who != "admin" and who != "analyst":
                assert_no_leak(r.content, secrets, f"{who} {method} {path}")
    assert not problems, "\n".join(problems)
    assert snapshot(seeded.engine) == before, "a refused request changed the store"


def test_health_needs_no_token_and_everything_else_does(api: TestClient) -> None:
    assert api.get("/health").status_code == 200
    for path in ("/api/v1/runs", "/api/v1/model", "/api/v1/units/U01/cases"):
        r = api.get(path)
        assert r.status_code == 401
        assert r.json() == {"detail": "not authenticated"}


def test_other_units_case_is_indistinguishable_from_a_missing_one(
    seeded: Seeded, api: TestClient
) -> None:
    h = headers_of(seeded.info, "sel_u01")
    other = case_in(seeded.info, "U02")
    for suffix, method, body in (
        ("", "GET", None),
        ("/report", "GET", None),
        ("/assign", "POST", {"officer": "王五"}),
        ("/feedback", "POST", FEEDBACK),
    ):
        hidden = api.request(method, f"/api/v1/cases/{other}{suffix}", headers=h, json=body)
        missing = api.request(method, f"/api/v1/cases/C-NOPE{suffix}", headers=h, json=body)
        assert hidden.status_code == missing.status_code == 404
        assert hidden.content == missing.content
        assert other not in hidden.text


def test_unknown_ids(seeded: Seeded, api: TestClient) -> None:
    admin = headers_of(seeded.info, "admin")
    sel = headers_of(seeded.info, "sel_u01")
    assert api.get("/api/v1/cases/C-NOPE", headers=admin).status_code == 404
    assert api.get("/api/v1/units/NOPE/cases", headers=admin).status_code == 404
    assert api.get("/api/v1/units/NOPE/cases", headers=sel).status_code == 403  # no probing
    assert api.get("/api/v1/runs/NOPE", headers=admin).status_code == 404
    assert api.get("/api/v1/taxpayers/NOPE/risk", headers=admin).status_code == 404
    assert api.get("/api/v1/model/plots/nope.png", headers=admin).status_code == 404


def test_revoked_token_stops_working_at_once(seeded: Seeded, api: TestClient) -> None:
    h = headers_of(seeded.info, "sel_u01")
    assert api.get("/api/v1/units/U01/cases", headers=h).status_code == 200
    users.revoke_user(seeded.session, "sel_u01")
    seeded.session.commit()
    r = api.get("/api/v1/units/U01/cases", headers=h)
    assert r.status_code == 401
    assert r.json() == {"detail": "invalid or revoked token"}


def test_auth_check_that_errors_denies(
    seeded: Seeded, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(users, "authenticate", broken)
    r = api.get("/api/v1/units/U01/cases", headers=headers_of(seeded.info, "admin"))
    assert r.status_code == 401
    assert "fire" not in r.text


# --- allowed writes: the state machine walked by each writer in each unit it may act on ------

#: per unit: a new case (assign/start/feedback/review), one to escalate, one to return, one to
#: reroute then drop; and where the reroute sends it
WALK = {
    "U01": {"a": 5, "escalate": 14, "return": 11, "d": 17, "reroute_to": "U011"},
    "U011": {"a": 8, "escalate": 4, "return": 13, "d": 20, "reroute_to": "U01"},
    "U02": {"a": 3, "escalate": 10, "return": 6, "d": 15, "reroute_to": "U01"},
}


def _case_of_rank(info: SeedInfo, rank: int) -> str:
    return info.case_ids[rank - 1]


@pytest.mark.parametrize(
    ("who", "unit"),
    [
        ("admin", "U01"),
        ("admin", "U011"),
        ("admin", "U02"),
        ("sel_u01", "U01"),
        ("sel_u01", "U011"),
    ],
)
def test_allowed_writes(seeded: Seeded, api: TestClient, who: str, unit: str) -> None:
    info = seeded.info
    walk = WALK[unit]
    secrets = outside_secrets(seeded) if who == "sel_u01" else []
    a = _case_of_rank(info, walk["a"])
    second = "sel_u02" if unit == "U02" else ("admin" if who == "sel_u01" else "sel_u01")
    big = {**FEEDBACK, "tax_recovered": 1_200_000.0}
    steps: list[tuple[str, str, str, Any, int, str | None]] = [
        # (as, method, path, body, status, the case's status afterwards)
        (who, "POST", f"/cases/{a}/assign", {"officer": "王五"}, 200, "assigned"),
        (who, "POST", f"/cases/{a}/start", None, 200, "in_progress"),
        (who, "POST", f"/cases/{a}/start", None, 409, "in_progress"),
        (who, "POST", f"/cases/{a}/feedback", big, 201, "review"),
        (who, "POST", f"/cases/{a}/approve", {}, 409, "review"),  # not by the submitter
        (who, "POST", f"/cases/{a}/reject", REASON, 200, "in_progress"),
        (who, "POST", f"/cases/{a}/feedback", big, 201, "review"),
        (second, "POST", f"/cases/{a}/approve", {"reason": "集体审议通过"}, 200, "closed"),
        (who, "POST", f"/cases/{a}/feedback", FEEDBACK, 409, "closed"),
        (
            who,
            "POST",
            f"/cases/{_case_of_rank(info, walk['escalate'])}/escalate",
            REASON,
            200,
            "escalated",
        ),
        (
            who,
            "POST",
            f"/cases/{_case_of_rank(info, walk['return'])}/return",
            REASON,
            200,
            "returned",
        ),
        (
            who,
            "POST",
            f"/cases/{_case_of_rank(info, walk['d'])}/reroute",
            {"unit_id": walk["reroute_to"], "reason": "改派"},
            200,
            "new",
        ),
        (who, "POST", f"/cases/{_case_of_rank(info, walk['d'])}/drop", REASON, 200, "closed"),
        (
            who,
            "POST",
            f"/units/{unit}/cases",
            {"taxpayer_id": "TP99999", "reason": "举报线索"},
            201,
            "new",
        ),
    ]
    for actor, method, path, body, want, status in steps:
        r = api.request(method, "/api/v1" + path, headers=headers_of(info, actor), json=body)
        assert r.status_code == want, f"{actor} {path}: {r.status_code} {r.text[:200]}"
        if want < 300:
            data = r.json()
            assert data["status"] == status, path
        if actor == "sel_u01":
            assert_no_leak(r.content, secrets, path)
    # every write is in the log with the user and role
    with seeded.engine.connect() as conn:
        logged = conn.execute(
            select(Action.actor, Action.role, Action.action)
            .where(Action.case_id == a)
            .order_by(Action.seq)
        ).all()
    mine = [row for row in logged if row.actor == who]
    assert [row.action for row in mine] == [
        "case.assigned",
        "case.started",
        "case.feedback",
        "case.rejected",
        "case.feedback",
    ]
    assert {row.role for row in mine} == {"admin" if who == "admin" else "selector"}
    assert [(row.actor, row.action) for row in logged][-1] == (second, "case.approved")
