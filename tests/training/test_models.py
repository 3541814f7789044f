"""The estimators: expected yield, feature-name checks, the monotone constraint, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import audits_frame
from taxrisk.training.baselines import LogisticYield, old_rules_scores
from taxrisk.training.metrics import share_capture
from taxrisk.training.models import FeatureMismatch, NotFitted, YieldModel

PARAMS = {"n_estimators": 60, "num_leaves": 7}


@pytest.fixture(scope="module")
def fitted():
    X, ex = audits_frame()
    model = YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"])
    return model, X, ex


def test_expected_yield_is_probability_times_amount(fitted) -> None:
    model, X, _ = fitted
    pred = model.predict(X)
    assert list(pred.columns) == ["probability", "amount", "expected_yield"]
    np.testing.assert_allclose(pred["expected_yield"], pred["probability"] * pred["amount"])
    assert pred["probability"].between(0, 1).all() and (pred["amount"] > 0).all()
    assert model.feature_names_in_ == list(X.columns)
    assert model.categories_ == {"industry": ["A", "B", "C"]}


def test_planted_signal_holds_on_rows_it_was_not_fitted_on(fitted) -> None:
    """Capture of the top 20% on a fresh draw of the same process, not on the training rows.

    On the training rows even a model fitted on shuffled labels reaches ~0.58 (it memorises);
    on unseen rows it falls to ~0.32, about random (~0.27), while the real model keeps ~0.8.
    """
    model, _, _ = fitted
    Xh, exh = audits_frame(n=1500, seed=11)
    value = exh["tax_recovered"].to_numpy()
    assert share_capture(model.predict(Xh)["expected_yield"].to_numpy(), value, 0.2) > 0.6
    Xs, exs = audits_frame(shuffle_labels=True)
    blind = YieldModel(PARAMS, PARAMS).fit(Xs, exs["adjusted"], exs["tax_recovered"])
    assert share_capture(blind.predict(Xh)["expected_yield"].to_numpy(), value, 0.2) < 0.45


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
