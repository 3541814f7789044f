"""The estimators: expected yield, feature-name checks, the monotone constraint, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import audits_frame
from taxrisk.training.baselines import LogisticYield, old_rules_scores
from taxrisk.training.config import RiskLevel, load_config
from taxrisk.training.evaluation import share_capture
from taxrisk.training.models import FeatureMismatch, NotFitted, YieldModel
from taxrisk.training.scoring import rank_predictions, risk_levels, score_matrix

PARAMS = {"n_estimators": 60, "num_leaves": 7}


@pytest.fixture(scope="module")
def fitted():
    X, ex = audits_frame()
    model = YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"])
    return model, X, ex


def test_expected_yield_is_probability_times_amount(fitted) -> None:
    model, X, ex = fitted
    pred = model.predict(X)
    assert list(pred.columns) == ["probability", "amount", "expected_yield"]
    np.testing.assert_allclose(pred["expected_yield"], pred["probability"] * pred["amount"])
    assert pred["probability"].between(0, 1).all() and (pred["amount"] > 0).all()
    # the planted signal is found: ranking by expected yield beats random by far
    assert (
        share_capture(pred["expected_yield"].to_numpy(), ex["tax_recovered"].to_numpy(), 0.2) > 0.6
    )
    assert model.feature_names_in_ == list(X.columns)
    assert model.categories_ == {"industry": ["A", "B", "C"]}


def test_feature_names_are_checked(fitted) -> None:
    model, X, _ = fitted
    bad = X.drop(columns=["ratio", "noise"]).assign(surprise=1.0)
    with pytest.raises(FeatureMismatch) as err:
        model.predict(bad)
    assert err.value.missing == ["ratio", "noise"] and err.value.unexpected == ["surprise"]
    assert "ratio, noise" in str(err.value) and "surprise" in str(err.value)
    # extra columns may be allowed explicitly; column order does not matter
    out = model.predict(X[X.columns[::-1]].assign(surprise=1.0), allow_extra=True)
    np.testing.assert_allclose(out["expected_yield"], model.predict(X)["expected_yield"])
    with pytest.raises(NotFitted):
        YieldModel().predict(X)


def test_fired_flag_never_lowers_probability(fitted) -> None:
    model, X, _ = fitted
    p0 = model.predict_proba(X.assign(a__fired=np.int8(0)))
    p1 = model.predict_proba(X.assign(a__fired=np.int8(1)))
    assert (p1 >= p0 - 1e-12).all() and (p1 > p0).mean() > 0.5


def test_fit_is_deterministic() -> None:
    X, ex = audits_frame(n=600, seed=3)
    a = YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"]).predict(X)
    b = YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"]).predict(X)
    pd.testing.assert_frame_equal(a, b)


def test_baselines(fitted) -> None:
    _, X, ex = fitted
    lg = LogisticYield().fit(X, ex["adjusted"], ex["tax_recovered"]).predict(X)
    assert lg["probability"].between(0, 1).all()
    m = pd.DataFrame({"sales_12": [5.0, 1.0, 3.0, 9.0]}, index=list("abcd"))
    # no classic indicator in this matrix: the size key alone orders it
    assert old_rules_scores(m).sort_values(ascending=False).index.tolist() == ["d", "a", "c", "b"]


def test_ranking_and_risk_levels() -> None:
    levels = (RiskLevel("high", 0.25, 0.5), RiskLevel("medium", 0.5, 0.0))
    ey = np.array([10.0, 40.0, 30.0, 20.0])
    p = np.array([0.9, 0.4, 0.8, 0.1])
    # positions by yield: 40 (p .4) -> 0.25 but p < .5 -> medium; 30 -> 0.5 medium; rest minimal
    assert risk_levels(ey, p, levels).tolist() == ["minimal", "medium", "medium", "minimal"]
    pred = pd.DataFrame({"probability": p, "expected_yield": ey}, index=["t1", "t2", "t3", "t4"])
    r = rank_predictions(pred, pd.Series(["U1", "U2", "U1", "U2"], index=pred.index), levels)
    assert r.columns.tolist() == [
        "taxpayer_id",
        "rank",
        "risk_score",
        "expected_yield",
        "risk_level",
        "unit_id",
    ]
    assert r["taxpayer_id"].tolist() == ["t2", "t3", "t4", "t1"] and r["rank"].tolist() == [
        1,
        2,
        3,
        4,
    ]
    assert [lv.name for lv in load_config().risk_levels] == ["high", "medium", "low"]


def test_score_matrix_names_bad_columns(fitted) -> None:
    model, X, _ = fitted
    matrix = X.assign(unit_id="U1").drop(columns=["ratio"])
    with pytest.raises(FeatureMismatch, match="ratio"):
        score_matrix(model, matrix, load_config().risk_levels)
