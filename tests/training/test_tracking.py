"""The champion gate against a real MLflow registry (SQLite in a temp workspace)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from synthetic import audits_frame
from taxrisk.training import tracking
from taxrisk.training.models import YieldModel
from taxrisk.training.validation import metric_on_rows

from taxrisk.settings import get_settings

PARAMS = {"n_estimators": 40, "num_leaves": 7}


def _fit(shuffle: bool) -> YieldModel:
    X, ex = audits_frame(n=1200, seed=1, shuffle_labels=shuffle)
    return YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"])


def test_champion_moves_only_to_a_better_model(workspace) -> None:
    settings = get_settings()
    exp = tracking.configure(settings)
    client = MlflowClient()
    name = settings.registered_model
    Xv, exv = audits_frame(n=800, seed=2)  # the validation audits, same for every model

    metric = metric_on_rows("all_yield_capture", exv, 0.2)  # f(scores, rows): rows may repeat

    def run(model: YieldModel):
        with mlflow.start_run(experiment_id=exp) as r:
            scores = model.predict(Xv)["expected_yield"].to_numpy()
            decision, _ = tracking.gate(
                client, name, "capture", metric, scores, Xv, exv["selected_on"], 30
            )
            # trained (on other audits) before every validation audit: all unseen by it
            version = tracking.log_and_register(
                model, Xv, name, r.info.run_id, "2022-12-31", decision
            )
        return version, decision

    bad, good = _fit(shuffle=True), _fit(shuffle=False)
    v1, d1 = run(bad)
    assert d1.promote and "no champion" in d1.reason
    assert tracking.current_champion(client, name) == v1
    v2, d2 = run(good)
    assert d2.promote and d2.champion_version == v1 and "beats" in d2.reason
    assert tracking.current_champion(client, name) == v2
    v3, d3 = run(bad)
    assert not d3.promote and "does not beat" in d3.reason
    assert tracking.current_champion(client, name) == v2
    assert client.get_model_version(name, v3).tags["champion_decision"] == d3.reason
    # the registered pyfunc scores a matrix straight: expected yield and probability
    pf = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    out = pf.predict(Xv.iloc[:10])
    np.testing.assert_allclose(out["expected_yield"], good.predict(Xv.iloc[:10])["expected_yield"])
    assert {"expected_yield", "probability"} <= set(out.columns)


def test_gate_decisions() -> None:
    d = tracking.champion_decision("m", 0.5, 0.5, "3")
    assert not d.promote and "does not beat" in d.reason  # a tie keeps the champion
    # an error keeps the champion (it used to replace it)
    assert not tracking.champion_decision("m", 0.2, None, "3", "missing column x").promote
    assert tracking.champion_decision("m", float("nan"), 0.1, "3").promote is False


def test_signature_frame_types() -> None:
    frame = pd.DataFrame({"c": pd.Categorical(["a", None]), "f": np.array([1, 0], dtype="int8")})
    out = tracking.signature_frame(frame)
    assert out["f"].dtype == "float64" and out["c"].tolist()[0] == "a"
    assert pytest.approx(out["f"].tolist()) == [1.0, 0.0]
