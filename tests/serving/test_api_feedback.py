"""``POST /cases/{case_id}/feedback``: strict input, nothing stored on refusal, abuse.

Bad money (negative, NaN and infinity as strings or as raw JSON tokens, numbers beyond 10^13
or beyond float range, booleans, strings), unknown outcomes and measures, bounded notes, wrong
types, unknown fields: 422 and the feedback, actions and cases tables unchanged. A case whose
state does not take feedback: 409, also unchanged. Oversized bodies: 413 JSON. SQL-ish and
``<script>`` notes: stored verbatim, returned inside JSON with ``<``/``>`` escaped.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import Seeded
from taxrisk.serving.api.main import MAX_BODY_SIZE, create_app
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

GOOD: dict[str, Any] = {
    "outcome": "adjusted",
    "measure_taken": "assessment",
    "tax_recovered": 86000.0,
    "late_fees": 4300,
    "penalties": 0,
    "notes": "核实少计收入,已补税",
    "covers_from": "2025-01",
    "covers_to": "2025-12",
}


@pytest.fixture
def api(seeded: Seeded, workspace: Path) -> Iterator[TestClient]:
    app = create_app(
        get_settings(workspace=workspace), engine=seeded.engine, web=False, freshness=0
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def auth(seeded: Seeded, who: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.info.tokens[who]}"}


def tables(engine: Engine) -> tuple[list[Any], ...]:
    with engine.connect() as conn:
        return (
            [tuple(r) for r in conn.execute(select(Feedback).order_by(Feedback.feedback_id))],
            [tuple(r) for r in conn.execute(select(Action.seq, Action.hash).order_by(Action.seq))],
            [
                tuple(r)
                for r in conn.execute(
                    select(Case.case_id, Case.status, Case.updated_at).order_by(Case.case_id)
                )
            ],
        )


def open_case(seeded: Seeded) -> str:
    return seeded.info.first("new", "U01")


def with_(**changes: Any) -> dict[str, Any]:
    out = {**GOOD, **changes}
    return {k: v for k, v in out.items() if v is not ...}


BAD_BODIES = {
    "negative tax": with_(tax_recovered=-1.0),
    "negative fees": with_(late_fees=-0.01),
    "negative penalties": with_(penalties=-5),
    "NaN as a string": with_(tax_recovered="NaN"),
    "Infinity as a string": with_(late_fees="Infinity"),
    "-Infinity as a string": with_(penalties="-Infinity"),
    "a number as a string": with_(tax_recovered="1000"),
    "beyond 10^13 yuan": with_(tax_recovered=1e14),
    "a huge integer": with_(tax_recovered=10**30),
    "a boolean": with_(tax_recovered=False),
    "null money": with_(tax_recovered=None),
    "a list": with_(tax_recovered=[1]),
    "an object": with_(late_fees={"yuan": 1}),
    "unknown outcome": with_(outcome="maybe"),
    "outcome in capitals": with_(outcome="ADJUSTED"),
    "outcome as a number": with_(outcome=1),
    "dropped is not a response outcome": with_(outcome="dropped"),
    "unknown measure": with_(measure_taken="torture"),
    "missing outcome": with_(outcome=...),
    "missing measure": with_(measure_taken=...),
    "notes too long": with_(notes="x" * 4001),
    "notes as a number": with_(notes=123),
    "NUL in notes": with_(notes="ok\u0000bad"),
    "bad month": with_(covers_from="2025-13"),
    "month without zero": with_(covers_to="2025-1"),
    "month with a slash": with_(covers_to="2025/12"),
    "period backwards": with_(covers_from="2025-12", covers_to="2025-01"),
    "unknown field": with_(approved_by="me"),
    "a list body": [GOOD],
    "a string body": "adjusted",
    "an empty object": {},
}

RAW_BODIES = {
    "NaN token": '{"outcome": "adjusted", "measure_taken": "audit", "tax_recovered": NaN}',
    "Infinity token": '{"outcome": "adjusted", "measure_taken": "audit", "late_fees": Infinity}',
    "-Infinity token": '{"outcome": "adjusted", "measure_taken": "audit", "penalties": -Infinity}',
    "1e400 (inf as a float)": '{"outcome": "adjusted", "measure_taken": "audit", "tax_recovered": 1e400}',
    "a 5000-digit integer": '{"outcome": "adjusted", "measure_taken": "audit", "tax_recovered": '
    + "9" * 5000
    + "}",
    "lone surrogate in notes": '{"outcome": "adjusted", "measure_taken": "audit", "notes": "\\ud800"}',
    "not JSON": "outcome=adjusted&measure_taken=audit",
    "truncated JSON": '{"outcome": "adjusted", ',
    "empty": "",
}


@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)
def test_bad_feedback_is_refused_and_stores_nothing(seeded: Seeded, api: TestClient) -> None:
    case_id = open_case(seeded)
    url = f"/api/v1/cases/{case_id}/feedback"
    before = tables(seeded.engine)
    problems = []
    for what, body in BAD_BODIES.items():
        r = api.post(url, json=body, headers=auth(seeded))
        if r.status_code != 422 or not isinstance(r.json().get("detail"), list | str):
            problems.append(f"{what}: {r.status_code} {r.text[:150]}")
    for what, raw in RAW_BODIES.items():
        r = api.post(url, content=raw, headers={**auth(seeded), "Content-Type": "application/json"})
        if r.status_code not in (400, 422) or "detail" not in r.json():
            problems.append(f"{what}: {r.status_code} {r.text[:150]}")
    r = api.post(
        url, content=json.dumps(GOOD), headers={**auth(seeded), "Content-Type": "text/plain"}
    )
    if r.status_code != 422:
        problems.append(f"text/plain body: {r.status_code}")
    assert not problems, "\n".join(problems)
    assert tables(seeded.engine) == before
    # and the same case then takes good feedback
    r = api.post(url, json=GOOD, headers=auth(seeded))
    assert r.status_code == 201, r.text


def test_validation_errors_say_where_and_echo_nothing(seeded: Seeded, api: TestClient) -> None:
    r = api.post(
        f"/api/v1/cases/{open_case(seeded)}/feedback",
        json=with_(tax_recovered=-1.0, notes="secret-token-123"),
        headers=auth(seeded),
    )
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "tax_recovered"]
    assert set(detail[0]) == {"loc", "msg", "type"}
    assert "secret-token-123" not in r.text


@pytest.mark.parametrize("status", ["closed", "review", "superseded", "returned"])
def test_a_case_that_does_not_take_feedback_is_409(
    seeded: Seeded, api: TestClient, status: str
) -> None:
    case_id = seeded.info.first(status)
    before = tables(seeded.engine)
    r = api.post(f"/api/v1/cases/{case_id}/feedback", json=GOOD, headers=auth(seeded))
    assert r.status_code == 409, r.text
    assert status in r.json()["detail"]
    assert tables(seeded.engine) == before


def test_unknown_case_is_404_and_stores_nothing(seeded: Seeded, api: TestClient) -> None:
    before = tables(seeded.engine)
    r = api.post("/api/v1/cases/C-NOPE/feedback", json=GOOD, headers=auth(seeded))
    assert r.status_code == 404
    assert r.json() == {"detail": "case not found"}
    assert tables(seeded.engine) == before


def test_good_feedback_closes_and_is_logged(seeded: Seeded, api: TestClient) -> None:
    case_id = open_case(seeded)
    r = api.post(f"/api/v1/cases/{case_id}/feedback", json=GOOD, headers=auth(seeded, "sel_u01"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["status"] == "closed"
    assert out["approval_required"] is False
    assert out["feedback"]["tax_recovered"] == 86000.0
    assert out["feedback"]["submitted_by"] == "sel_u01"
    assert out["feedback"]["status"] == "accepted"
    with seeded.engine.connect() as conn:
        last = conn.execute(select(Action).order_by(Action.seq.desc()).limit(1)).one()
    assert (last.actor, last.role, last.action, last.case_id) == (
        "sel_u01",
        "selector",
        "case.feedback",
        case_id,
    )
    # the case's detail shows it
    detail = api.get(f"/api/v1/cases/{case_id}", headers=auth(seeded)).json()
    assert detail["status"] == "closed"
    assert detail["feedback"][-1]["notes"] == GOOD["notes"]
    assert detail["history"][-1]["action"] == "case.feedback"


def test_large_feedback_needs_approval(seeded: Seeded, api: TestClient) -> None:
    case_id = open_case(seeded)
    big = with_(tax_recovered=seeded.info.approval_line)
    r = api.post(f"/api/v1/cases/{case_id}/feedback", json=big, headers=auth(seeded, "sel_u01"))
    assert r.status_code == 201
    out = r.json()
    assert (out["status"], out["approval_required"]) == ("review", True)
    assert "approval" in out["detail"]
    assert out["feedback"]["status"] == "pending"
    own = api.post(f"/api/v1/cases/{case_id}/approve", headers=auth(seeded, "sel_u01"))
    assert own.status_code == 409
    ok = api.post(f"/api/v1/cases/{case_id}/approve", headers=auth(seeded, "admin"))
    assert ok.status_code == 200
    assert ok.json()["status"] == "closed"


# --- abuse ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)
def test_oversized_bodies_are_413_json(seeded: Seeded, api: TestClient) -> None:
    url = f"/api/v1/cases/{open_case(seeded)}/feedback"
    before = tables(seeded.engine)
    huge = json.dumps(with_(notes="x" * (MAX_BODY_SIZE + 10)))
    r = api.post(url, content=huge, headers={**auth(seeded), "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/json")
    assert "detail" in r.json()

    def chunks() -> Iterator[bytes]:  # no content-length: the limit counts streamed bytes
        data = huge.encode()
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    r = api.post(
        url, content=chunks(), headers={**auth(seeded), "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert "detail" in r.json()
    # a lying content-length
    r = api.post(
        "/api/v1/units/U01/cases",
        content=b"{}",
        headers={**auth(seeded), "Content-Type": "application/json", "Content-Length": "999999999"},
    )
    assert r.status_code in (400, 413)
    assert tables(seeded.engine) == before


HOSTILE = [
    "'; DROP TABLE cases; --",
    '" OR 1=1 --',
    "<script>alert('x')</script>",
    "</textarea><img src=x onerror=alert(1)>",
    "Robert'); DELETE FROM feedback WHERE ('1'='1",
    "{{ 7*7 }} ${7*7} %s %(x)s",
    "税款 \u202e 反向 \t tab \n newline",
]


def test_hostile_notes_are_stored_verbatim_and_returned_escaped(
    seeded: Seeded, api: TestClient
) -> None:
    open_ids = [c for c in seeded.info.by_status["new"]] + seeded.info.by_status["assigned"]
    for notes, case_id in zip(HOSTILE, open_ids, strict=False):
        r = api.post(
            f"/api/v1/cases/{case_id}/feedback", json=with_(notes=notes), headers=auth(seeded)
        )
        assert r.status_code == 201, (notes, r.text)
        assert r.headers["content-type"] == "application/json"
        assert r.json()["feedback"]["notes"] == notes
        assert b"<" not in r.content and b">" not in r.content  # \u003c / \u003e escapes
        with seeded.engine.connect() as conn:
            stored = conn.execute(
                select(Feedback.notes).where(Feedback.case_id == case_id)
            ).scalar_one()
        assert stored == notes
        detail = api.get(f"/api/v1/cases/{case_id}", headers=auth(seeded))
        assert detail.json()["feedback"][-1]["notes"] == notes
        assert b"<script>" not in detail.content
    with seeded.engine.connect() as conn:  # the tables are all still there
        assert conn.execute(select(Case.case_id)).first() is not None
        assert conn.execute(select(Feedback.feedback_id)).first() is not None


def test_hostile_path_and_query_strings(seeded: Seeded, api: TestClient) -> None:
    h = auth(seeded)
    for cid in ("' OR '1'='1", "C-1%00", "..%2F..%2Fetc%2Fpasswd", "<script>", "x" * 500):
        r = api.get(f"/api/v1/cases/{cid}", headers=h)
        assert r.status_code in (404, 422), (cid, r.status_code)
        assert b"<script>" not in r.content
    for q in (
        "status=' OR 1=1 --",
        "industry=%00",
        "industry=' OR '1'='1",
        "limit=0",
        "limit=201",
        "offset=-1",
        "limit=abc",
        "risk_level=extreme",
    ):
        r = api.get(f"/api/v1/units/U01/cases?{q}", headers=h)
        if "industry='" in q:
            assert r.status_code == 200 and r.json()["total"] == 0
        else:
            assert r.status_code == 422, (q, r.status_code, r.text)
