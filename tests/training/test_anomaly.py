"""The tail prior: industry-relative surprise, a monotone probability, and the weight rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from taxrisk.training.anomaly import MAX_SURPRISE, TailPrior, choose_weight, surprise, tail_score


def test_surprise_is_oriented_by_the_risk_direction() -> None:
    m = pd.DataFrame({"a__pct": [0.5, 0.99, 0.01, np.nan], "b__pct": [0.5, 0.01, 0.99, 0.5]})
    s = surprise(m, {"a": "high", "b": "low", "absent": "high"})
    assert list(s.columns) == ["a", "b"]
    np.testing.assert_allclose(s.loc[0], [np.log(2), np.log(2)])
    # the top of a "high" indicator and the bottom of a "low" one are the surprising ends
    assert s.loc[1, "a"] == pytest.approx(-np.log(0.01))
    assert s.loc[1, "b"] == pytest.approx(-np.log(0.01))
    assert s.loc[2, "a"] == pytest.approx(-np.log(0.99))
    assert s.loc[2, "b"] == pytest.approx(-np.log(0.99))
    assert s.loc[3, "a"] == 0.0  # missing is not surprising
    top = surprise(pd.DataFrame({"a__pct": [1.0]}), {"a": "high"})
    assert top.loc[0, "a"] == pytest.approx(MAX_SURPRISE)


def test_tail_score_averages_the_most_surprising_indicators() -> None:
    s = pd.DataFrame({"a": [4.0, 1.0], "b": [0.0, 1.0], "c": [0.0, 1.0], "d": [0.0, 1.0]})
    t = tail_score(s, top=3)
    # one extreme tail against three moderate ones
    np.testing.assert_allclose(t, [4.0 / 3, 1.0])
    assert tail_score(s.iloc[:, :0]).eq(0).all()


def test_the_prior_is_a_non_decreasing_probability_of_the_tail_score() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    pct = rng.random((n, 4))
    m = pd.DataFrame(pct, columns=[f"i{k}__pct" for k in range(4)])
    directions = {f"i{k}": "high" for k in range(4)}
    score = tail_score(surprise(m, directions)).to_numpy()
    adjusted = rng.random(n) < 1 / (1 + np.exp(-(score - 2.0) * 2))
    prior = TailPrior(directions).fit(m, adjusted)
    p = prior.predict_proba(m)
    order = np.argsort(score)
    assert np.all(np.diff(p[order]) >= -1e-12)
    assert p.min() >= 0.0 and p.max() <= 1.0
    # it carries the signal: top decile of the score adjusts far more often than the bottom
    top, bottom = order[-n // 10 :], order[: n // 10]
    assert p[top].mean() > 3 * p[bottom].mean()


def _capture(scores: np.ndarray, rows: np.ndarray, rec: np.ndarray) -> float:
    s, r = scores[rows], rec[rows]
    k = max(1, len(rows) // 5)
    top = np.argsort(-s, kind="stable")[:k]
    return float(r[top].sum() / max(np.sort(r)[::-1][:k].sum(), 1e-9))


def test_the_weight_is_the_largest_that_costs_nothing_measurable() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    rec = rng.lognormal(8, 1, n) * (rng.random(n) < 0.3)
    good = rec + rng.normal(0, 200, n)  # a ranking that knows the yield
    noise = rng.random(n)  # one that knows nothing
    resamples = [rng.integers(0, n, n) for _ in range(200)]

    def metric(s: np.ndarray, rows: np.ndarray) -> float:
        return _capture(s, rows, rec)

    def ranking(w: float) -> np.ndarray:
        return (1 - w) * good / good.max() + w * noise

    choice = choose_weight(metric, {w: ranking(w) for w in (0.0, 0.001, 0.5)}, resamples)
    # a weight of 0.001 changes nothing measurable; 0.5 of noise clearly costs capture
    assert choice.weight == 0.001
    assert choice.candidates[0.5][1] < -0.01
    with pytest.raises(ValueError, match=r"weight 0\.0"):
        choose_weight(metric, {0.1: good}, resamples)


def test_the_prior_calibrates_on_the_random_stratum_when_it_has_enough() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    m = pd.DataFrame({"i__pct": rng.random(n)})
    score = tail_score(surprise(m, {"i": "high"})).to_numpy()
    random = rng.random(n) < 0.1
    # rule-selected audits adjust regardless of the tail; random ones follow it
    adjusted = np.where(random, rng.random(n) < np.clip(score / 4, 0, 1), rng.random(n) < 0.5)
    prior = TailPrior({"i": "high"}).fit(m, adjusted, random_stratum=random)
    assert prior.calibrated_on_ == "random stratum" and prior.n_calibration_ == random.sum()
    p = prior.predict_proba(m)
    assert p[score > 2].mean() > 2 * p[score < 0.5].mean()
    few = TailPrior({"i": "high"}).fit(m, adjusted, random_stratum=random & (np.arange(n) < 100))
    assert few.calibrated_on_ == "all audits"
