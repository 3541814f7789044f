"""The application around the routes: health, OpenAPI and docs, errors as JSON everywhere,
the error mapping, response headers, ``create_app`` from settings, and the model in service
(:mod:`taxrisk.serving.modelinfo`, with a real MLflow registry)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from starlette.exceptions import StarletteDeprecationWarning
from store_factories import Seeded
from taxrisk.serving import errors as E
from taxrisk.serving.api.errors import status_of
from taxrisk.serving.api.main import create_app
from taxrisk.serving.modelinfo import ModelInfoCache, model_info
from taxrisk.serving.store import cases

from taxrisk.settings import Settings, get_settings

with warnings.catch_warnings():
    # Starlette 1.x warns at import that it prefers httpx2; the lock has httpx (same API).
    warnings.filterwarnings(
        "ignore",
        message="Using `httpx` with `starlette.testclient` is deprecated",
        category=StarletteDeprecationWarning,
    )
    from starlette.testclient import TestClient

SQLITE = pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)

CONTRACT_PATHS = {
    ("get", "/health"),
    ("get", "/api/v1/units/{unit_id}/cases"),
    ("post", "/api/v1/units/{unit_id}/cases"),
    ("get", "/api/v1/cases/{case_id}"),
    ("get", "/api/v1/cases/{case_id}/report"),
    *(
        ("post", f"/api/v1/cases/{{case_id}}/{a}")
        for a in ("feedback", "approve", "assign", "escalate", "return", "drop")
    ),
    ("get", "/api/v1/taxpayers/{taxpayer_id}/risk"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{run_id}"),
    ("get", "/api/v1/model"),
}


@pytest.fixture
def api(seeded: Seeded, workspace: Path) -> Iterator[TestClient]:
    app = create_app(
        get_settings(workspace=workspace), engine=seeded.engine, web=False, freshness=0
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def admin(seeded: Seeded) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.info.tokens['admin']}"}


@SQLITE
def test_health(seeded: Seeded, api: TestClient) -> None:
    r = api.get("/health")
    assert r.status_code == 200
    assert r.json() == {
        "status": "ok",
        "model_version": "3",
        "run": {
            "run_id": seeded.info.run_id,
            "as_of": "2026-12-01",
            "published_at": r.json()["run"]["published_at"],
            "model_version": "3",
        },
    }
    assert r.headers["x-content-type-options"] == "nosniff"


def test_health_says_unavailable_when_the_store_is_down(workspace: Path) -> None:
    broken = create_engine(f"sqlite:///{workspace}/no/such/dir/cases.db")
    app = create_app(get_settings(workspace=workspace), engine=broken, web=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        # and a request needing the store is refused, saying why (never served)
        r = client.get("/api/v1/runs", headers={"Authorization": "Bearer " + "x" * 43})
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert r.json() == {"detail": "the case store is unavailable; try again shortly"}
    broken.dispose()


@SQLITE
def test_openapi_and_docs(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    ops = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert ops >= CONTRACT_PATHS
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    for method, path in ops - {("get", "/health")}:
        op = spec["paths"][path][method]
        assert op.get("security"), f"{method} {path} is not marked as needing a token"
        assert "401" in op["responses"], f"{method} {path} does not document 401"
    feedback = spec["components"]["schemas"]["FeedbackIn"]
    assert feedback["additionalProperties"] is False
    assert feedback["properties"]["tax_recovered"]["minimum"] == 0
    docs = api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@SQLITE
def test_errors_are_json_everywhere(seeded: Seeded, api: TestClient) -> None:
    for method, path, want in (
        ("GET", "/nope", 404),
        ("GET", "/api/v1/nope", 404),
        ("GET", "/api/v2/runs", 404),
        ("DELETE", "/api/v1/runs", 405),
        ("PUT", f"/api/v1/cases/{seeded.info.case_ids[0]}", 405),
        ("GET", f"/api/v1/cases/{seeded.info.case_ids[0]}/feedback", 405),
        ("POST", "/api/v1/runs", 405),
    ):
        r = api.request(method, path, headers=admin(seeded))
        assert r.status_code == want, (method, path)
        assert r.headers["content-type"] == "application/json"
        assert isinstance(r.json()["detail"], str)
    r = api.get("/api/v1/runs", headers=admin(seeded))
    assert r.headers["cache-control"] == "no-store"


@SQLITE
def test_an_unexpected_error_is_a_json_500_that_tells_nothing(
    seeded: Seeded, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/secret")

    monkeypatch.setattr(cases, "get_case", boom)
    r = api.get(f"/api/v1/cases/{seeded.info.case_ids[0]}", headers=admin(seeded))
    assert r.status_code == 500
    assert r.json() == {"detail": "internal server error"}


def test_error_mapping() -> None:
    assert status_of(E.CaseNotFound("x")) == 404
    assert status_of(E.RunNotFound("x")) == 404
    assert status_of(E.Forbidden("x")) == 403
    assert status_of(E.InvalidTransition("x")) == 409
    assert status_of(E.ApprovalRequired("x")) == 409
    assert status_of(E.InvalidFeedback("x")) == 422
    assert status_of(cases.InvalidAction("x")) == 422
    assert status_of(E.UserError("x")) == 422
    assert status_of(E.NoChampion("x")) == 503
    assert status_of(E.ScoringError("x")) == 503
    assert status_of(E.ChainBroken("x")) == 500
    assert status_of(ValueError("x")) == 500


def test_create_app_from_settings_builds_and_migrates_the_store(workspace: Path) -> None:
    settings = get_settings()
    app = create_app(settings)
    with TestClient(app) as client:
        r = client.get("/health")
        assert r.json() == {"status": "ok", "model_version": None, "run": None}
        assert client.get("/").status_code in (200, 307)  # the pages are mounted
    assert (settings.root / "cases.db").exists()


# --- the model in service ------------------------------------------------------------------


def test_no_model_in_service(workspace: Path) -> None:
    settings = get_settings()
    info = model_info(settings)
    assert (info.status, info.in_service, info.version) == ("no_model", False, None)
    assert "no model in service" in info.detail
    assert not (settings.root / "mlflow.db").exists()  # looking did not create a store


def test_an_unreachable_registry_is_reported_not_raised(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    settings = get_settings(mlflow_tracking_uri="http://127.0.0.1:9/")
    info = model_info(settings)
    assert info.status == "unavailable"
    assert not info.in_service


def _register_champion(settings: Settings, tmp: Path) -> str:
    """A registered model version with alias champion, its run's metrics and a plot."""
    import mlflow
    from mlflow import MlflowClient
    from taxrisk.training.tracking import configure

    configure(settings)
    png = tmp / "yield_curve.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 64)
    with mlflow.start_run() as run:
        mlflow.log_metrics({"yield_capture_at_k": 0.61, "hit_rate_at_k": 0.42})
        mlflow.log_metric("nan_metric", float("nan"))
        mlflow.log_artifact(str(png))
        (tmp / "model_card.md").write_text("card", encoding="utf-8")
        mlflow.log_artifact(str(tmp / "model_card.md"))
    client = MlflowClient()
    client.create_registered_model(settings.registered_model)
    mv = client.create_model_version(
        settings.registered_model, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    client.set_model_version_tag(settings.registered_model, mv.version, "train_as_of", "2026-11-30")
    client.set_registered_model_alias(settings.registered_model, "champion", mv.version)
    return str(run.info.run_id)


@pytest.mark.slow
@SQLITE
def test_model_in_service(seeded: Seeded, workspace: Path, tmp_path: Path) -> None:
    settings = get_settings()
    run_id = _register_champion(settings, tmp_path)
    info = model_info(settings)
    assert (info.status, info.version, info.run_id) == ("in_service", "1", run_id)
    assert info.metrics["yield_capture_at_k"] == pytest.approx(0.61)
    assert info.metrics["nan_metric"] is None
    assert info.plots == ("yield_curve.png",)
    assert info.train_as_of == "2026-11-30"
    cache = ModelInfoCache(settings, ttl=60)
    assert cache.get() is cache.get()
    app = create_app(settings, engine=seeded.engine, web=False, freshness=0)
    with TestClient(app) as client:
        out = client.get("/api/v1/model", headers=admin(seeded)).json()
        assert (out["status"], out["version"], out["in_service"]) == ("in_service", "1", True)
        assert out["current_run"]["run_id"] == seeded.info.run_id
        plot = client.get("/api/v1/model/plots/yield_curve.png", headers=admin(seeded))
        assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
        assert plot.content.startswith(b"\x89PNG")
        for name in ("model_card.md", "..%2Fmlflow.db", "nope.png"):
            r = client.get(f"/api/v1/model/plots/{name}", headers=admin(seeded))
            assert r.status_code in (404, 422), name
        sel = {"Authorization": f"Bearer {seeded.info.tokens['sel_u01']}"}
        assert client.get("/api/v1/model", headers=sel).status_code == 403
