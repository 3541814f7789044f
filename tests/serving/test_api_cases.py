"""What the case endpoints answer: a unit's list (order, filters, pages, envelope), one case
(indicators, contributions, guide, history), the report, actions' errors, adding a taxpayer,
a taxpayer's risk, the runs."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import Seeded
from taxrisk.features.catalog import CATALOG
from taxrisk.serving import runs
from taxrisk.serving.api.main import create_app
from taxrisk.serving.store.models import Action, Case, CaseIndicator, RunUnit

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


@pytest.fixture
def api(seeded: Seeded, workspace: Path) -> Iterator[TestClient]:
    app = create_app(
        get_settings(workspace=workspace), engine=seeded.engine, web=False, freshness=0
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def auth(seeded: Seeded, who: str = "admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.info.tokens[who]}"}


def get(api: TestClient, seeded: Seeded, path: str, who: str = "admin") -> Any:
    r = api.get("/api/v1" + path, headers=auth(seeded, who))
    assert r.status_code == 200, r.text
    return r.json()


def test_unit_list_is_best_first_with_its_envelope(seeded: Seeded, api: TestClient) -> None:
    page = get(api, seeded, "/units/U01/cases")
    below = seeded.info.by_unit["U01"] + seeded.info.by_unit["U011"]
    assert page["total"] == len(below)
    assert (page["limit"], page["offset"], page["unit_id"]) == (50, 0, "U01")
    ids = [c["case_id"] for c in page["items"]]
    assert sorted(ids) == sorted(below)
    yields = [c["expected_yield"] for c in page["items"]]
    assert yields == sorted(yields, reverse=True)
    with seeded.engine.connect() as conn:
        ru = conn.execute(
            select(RunUnit).where(RunUnit.run_id == seeded.info.run_id, RunUnit.unit_id == "U01")
        ).one()
    assert page["capacity"] == {
        "run_id": seeded.info.run_id,
        "capacity": ru.capacity,
        "assigned": ru.assigned,
        "exploration": ru.exploration,
        "overflow": ru.overflow,
        "expected_yield": ru.expected_yield,
        "shadow_price": ru.shadow_price,
    }
    first = page["items"][0]
    assert set(first) >= {
        "case_id",
        "taxpayer_id",
        "name",
        "rank",
        "risk_score",
        "risk_level",
        "expected_yield",
        "top_reasons",
        "recommended_measure",
        "status",
    }


def test_top_reasons_are_the_largest_fired_indicators_with_names(
    seeded: Seeded, api: TestClient
) -> None:
    page = get(api, seeded, "/units/U00/cases?limit=200")
    with seeded.engine.connect() as conn:
        rows = conn.execute(
            select(CaseIndicator).order_by(CaseIndicator.case_id, CaseIndicator.position)
        ).all()
    fired: dict[str, list[str]] = {}
    for r in rows:
        if r.fired and r.kind == "indicator":
            fired.setdefault(r.case_id, []).append(r.item)
    assert page["total"] == len(seeded.info.case_ids)
    for case in page["items"]:
        reasons = case["top_reasons"]
        assert [x["indicator_id"] for x in reasons] == fired.get(case["case_id"], [])[:3]
        for x in reasons:
            entry = CATALOG[x["indicator_id"]]
            assert (x["name_zh"], x["name_en"]) == (entry.name_zh, entry.name_en)


@SQLITE
def test_pages_filters_and_limits(seeded: Seeded, api: TestClient) -> None:
    everything = get(api, seeded, "/units/U00/cases?limit=200")["items"]
    pages = [get(api, seeded, f"/units/U00/cases?limit=7&offset={o}")["items"] for o in (0, 7, 14)]
    assert [c["case_id"] for p in pages for c in p] == [c["case_id"] for c in everything]
    assert get(api, seeded, "/units/U00/cases?offset=1000")["items"] == []
    new = get(api, seeded, "/units/U00/cases?status=new")
    assert new["total"] == len(seeded.info.by_status["new"])
    assert {c["status"] for c in new["items"]} == {"new"}
    high = get(api, seeded, "/units/U00/cases?risk_level=high")
    assert {c["risk_level"] for c in high["items"]} == {"high"}
    some = everything[0]
    with seeded.engine.connect() as conn:
        industry = conn.execute(
            select(Case.industry).where(Case.case_id == some["case_id"])
        ).scalar_one()
    by_industry = get(api, seeded, f"/units/U00/cases?industry={industry}&status={some['status']}")
    assert some["case_id"] in [c["case_id"] for c in by_industry["items"]]
    for bad in ("limit=0", "limit=201", "offset=-1", "status=open", "risk_level=extreme"):
        r = api.get(f"/api/v1/units/U00/cases?{bad}", headers=auth(seeded))
        assert r.status_code == 422, bad
    assert len(get(api, seeded, "/units/U00/cases?limit=200")["items"]) == 20


def test_case_detail(seeded: Seeded, api: TestClient) -> None:
    case_id = seeded.info.first("review")
    d = get(api, seeded, f"/cases/{case_id}")
    with seeded.engine.connect() as conn:
        case = conn.execute(select(Case).where(Case.case_id == case_id)).one()
        items = conn.execute(
            select(CaseIndicator)
            .where(CaseIndicator.case_id == case_id)
            .order_by(CaseIndicator.position)
        ).all()
        log = conn.execute(
            select(Action.seq, Action.action).where(Action.case_id == case_id).order_by(Action.seq)
        ).all()
    assert d["taxpayer"]["name"] == case.taxpayer_name
    assert d["taxpayer"]["taxpayer_id"] == case.taxpayer_id
    assert d["scores"]["expected_yield"] == case.expected_yield
    assert d["recommended_measure"] == case.recommended_measure
    fired = [r for r in items if r.fired and r.kind == "indicator"]
    assert [i["item"] for i in d["indicators"]] == [r.item for r in fired]
    for out, row in zip(d["indicators"], fired, strict=True):
        assert (out["value"], out["percentile"], out["contribution"]) == (
            row.value,
            row.percentile,
            row.contribution,
        )
    assert [c["item"] for c in d["contributions"]] == [
        r.item for r in items if r.contribution is not None
    ]
    assert "registered_capital" in [c["item"] for c in d["contributions"]]  # a raw feature
    assert [g["indicator_id"] for g in d["guide"]] == [r.item for r in fired]
    assert d["guide"][0]["guide_zh"] == CATALOG[fired[0].item].guide_zh
    assert [(h["seq"], h["action"]) for h in d["history"]] == [tuple(r) for r in log]
    assert d["feedback"][0]["status"] == "pending"


def test_report_html(seeded: Seeded, api: TestClient) -> None:
    case_id = seeded.info.case_ids[0]
    r = api.get(f"/api/v1/cases/{case_id}/report", headers=auth(seeded, "analyst"))
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    with seeded.engine.connect() as conn:
        name = conn.execute(select(Case.taxpayer_name).where(Case.case_id == case_id)).scalar_one()
    assert name in r.text
    assert (
        api.get(f"/api/v1/cases/{case_id}/report?format=doc", headers=auth(seeded)).status_code
        == 422
    )


@pytest.mark.slow
@SQLITE
def test_report_pdf(seeded: Seeded, api: TestClient) -> None:
    case_id = seeded.info.case_ids[0]
    r = api.get(f"/api/v1/cases/{case_id}/report?format=pdf", headers=auth(seeded, "sel_u01"))
    assert r.status_code == 404  # rank 1 is the city's
    mine = seeded.info.by_unit["U01"][0]
    r = api.get(f"/api/v1/cases/{mine}/report?format=pdf&lang=en", headers=auth(seeded, "sel_u01"))
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF")


def post(
    api: TestClient, seeded: Seeded, path: str, body: Any = None, who: str = "admin"
) -> tuple[int, Any]:
    r = api.post("/api/v1" + path, json=body, headers=auth(seeded, who))
    return r.status_code, r.json()


@SQLITE
def test_action_refusals(seeded: Seeded, api: TestClient) -> None:
    info = seeded.info
    top = info.first("new", "U00")
    assert post(api, seeded, f"/cases/{top}/escalate", {"reason": "x"})[0] == 409  # no parent
    new = info.first("new", "U01")
    for action, body in (
        ("escalate", {}),
        ("escalate", {"reason": ""}),
        ("escalate", {"reason": "   \n"}),
        ("return", {"reason": 5}),
        ("drop", None),
        ("assign", {"officer": ""}),
        ("assign", {"officer": "x" * 101}),
        ("reroute", {"unit_id": "U01"}),
        ("reject", {"reason": "x", "extra": 1}),
    ):
        code, out = post(api, seeded, f"/cases/{new}/{action}", body)
        assert code == 422, (action, body, out)
    # reroute to a unit outside the selector's: refused, whatever exists
    code, out = post(
        api, seeded, f"/cases/{new}/reroute", {"unit_id": "U02", "reason": "x"}, "sel_u01"
    )
    assert code == 422, out
    code, out2 = post(
        api, seeded, f"/cases/{new}/reroute", {"unit_id": "NOPE", "reason": "x"}, "sel_u01"
    )
    assert code == 422 and out["detail"].replace("U02", "NOPE") == out2["detail"]
    # approve only from review; start only from assigned
    assert post(api, seeded, f"/cases/{new}/approve")[0] == 409
    assert post(api, seeded, f"/cases/{new}/start")[0] == 409
    closed = info.first("closed")
    assert post(api, seeded, f"/cases/{closed}/drop", {"reason": "x"})[0] == 409


@SQLITE
def test_add_taxpayer(seeded: Seeded, api: TestClient) -> None:
    code, out = post(
        api,
        seeded,
        "/units/U011/cases",
        {"taxpayer_id": "TP77777", "reason": "举报线索"},
        "sel_u01",
    )
    assert code == 201, out
    assert (out["status"], out["selection"], out["unit_id"]) == ("new", "manual", "U011")
    with seeded.engine.connect() as conn:
        last = conn.execute(select(Action).order_by(Action.seq.desc()).limit(1)).one()
    assert (last.action, last.actor, last.reason) == ("case.added", "sel_u01", "举报线索")
    # again: the taxpayer has an open case now
    code, _ = post(api, seeded, "/units/U011/cases", {"taxpayer_id": "TP77777", "reason": "x"})
    assert code == 409
    # a taxpayer with an open case from the run
    busy = seeded.info.first("new", "U01").rsplit("-", 1)[1]
    assert post(api, seeded, "/units/U01/cases", {"taxpayer_id": busy, "reason": "x"})[0] == 409
    for body in (
        {"taxpayer_id": "TP1"},
        {"taxpayer_id": "TP1", "reason": " "},
        {"taxpayer_id": "", "reason": "x"},
        {"taxpayer_id": "TP1", "reason": "x", "measure": "jail"},
        {"taxpayer_id": "TP\u0000", "reason": "x"},
    ):
        assert post(api, seeded, "/units/U01/cases", body)[0] == 422, body


def test_taxpayer_risk_from_the_store(seeded: Seeded, api: TestClient) -> None:
    case_id = seeded.info.case_ids[3]
    tp = case_id.rsplit("-", 1)[1]
    out = get(api, seeded, f"/taxpayers/{tp}/risk", "analyst")
    assert out["source"] == "case"  # the seeded run has no ranking files
    assert (out["taxpayer_id"], out["case_id"], out["rank"]) == (tp, case_id, 4)
    assert out["indicators"] and out["guide"]


@SQLITE
def test_taxpayer_risk_from_the_run(
    seeded: Seeded, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = next(iter(CATALOG))

    def explain(session: object, settings: object, taxpayer_id: str) -> dict[str, Any]:
        if taxpayer_id == "GHOST":
            raise KeyError(taxpayer_id)
        return {
            "taxpayer_id": taxpayer_id,
            "run_id": seeded.info.run_id,
            "as_of": "2026-12-01",
            "model_version": "3",
            "score": {
                "taxpayer_id": taxpayer_id,
                "rank": 1234,
                "risk_score": 0.12,
                "expected_yield": 3000.0,
                "risk_level": "low",
                "unit_id": "U02",
                "expected_amount": 25000.0,
                "recommended_measure": "guidance",
            },
            "base_yield": 1200.0,
            "expected_yield": 3000.0,
            "indicators": [
                {
                    "indicator": item,
                    "name_zh": "甲",
                    "name_en": "A",
                    "value": None,
                    "percentile": 0.97,
                    "fired": True,
                    "yuan": 800.5,
                    "measure": "notice",
                },
            ],
        }

    monkeypatch.setattr(runs, "explain_taxpayer", explain)
    out = get(api, seeded, "/taxpayers/TP55555/risk")
    assert out["source"] == "run"
    assert (out["rank"], out["risk_level"], out["unit_id"], out["case_id"]) == (
        1234,
        "low",
        "U02",
        None,
    )
    assert out["indicators"][0]["contribution"] == 800.5
    assert out["guide"][0]["indicator_id"] == item
    assert api.get("/api/v1/taxpayers/GHOST/risk", headers=auth(seeded)).status_code == 404
    assert (
        api.get("/api/v1/taxpayers/GHOST/risk", headers=auth(seeded, "sel_u01")).status_code == 403
    )


def test_runs(seeded: Seeded, api: TestClient) -> None:
    page = get(api, seeded, "/runs", "analyst")
    assert page["total"] == 1
    run = page["items"][0]
    assert run["run_id"] == seeded.info.run_id
    assert run["counts"]["cases"] == len(seeded.info.case_ids)
    assert "load" in run["timings"] and "psi_max" in run["monitoring"]
    detail = get(api, seeded, f"/runs/{seeded.info.run_id}")
    assert {u["unit_id"] for u in detail["units"]} == set(seeded.info.units)
    assert get(api, seeded, "/runs?offset=5")["items"] == []
