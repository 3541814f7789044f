"""Recency weighting of labels (issue 11, item 8): the weights, the config key, a model that
follows a flipped label rule only when recent audits count more, and every fit of ``train``
receiving the weights."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import drifting_audits
from taxrisk.training.config import ConfigError, load_config
from taxrisk.training.models import YieldModel
from taxrisk.training.recency import DAYS_PER_MONTH, combine_weights, recency_weights
from taxrisk.training.validation import weighted_auc

PARAMS = {"n_estimators": 80, "num_leaves": 7}
AS_OF = pd.Timestamp("2025-12-31")


def _months_before(m: float) -> pd.Timestamp:
    return AS_OF - pd.Timedelta(days=m * DAYS_PER_MONTH)


def test_weights_halve_at_each_half_life() -> None:
    sel = pd.Series([_months_before(m) for m in (0, 6, 12, 24, 36)])
    w = recency_weights(sel, AS_OF, 12)
    assert w is not None
    np.testing.assert_allclose(w, [1.0, 2**-0.5, 0.5, 0.25, 0.125], rtol=1e-12)
    # half-life 6: one year is two half-lives
    w6 = recency_weights(sel, AS_OF, 6)
    assert w6 is not None
    assert w6[2] == pytest.approx(0.25, rel=1e-12)


def test_off_is_none_and_the_age_is_never_negative() -> None:
    sel = pd.Series([AS_OF, AS_OF + pd.Timedelta(days=40)])
    assert recency_weights(sel, AS_OF, 0) is None
    w = recency_weights(sel, AS_OF.date(), 12)
    assert w is not None
    np.testing.assert_allclose(w, [1.0, 1.0])
    with pytest.raises(ValueError, match="half-life"):
        recency_weights(sel, AS_OF, -1)
    with pytest.raises(ValueError, match="selected_on"):
        recency_weights(pd.Series([AS_OF, pd.NaT]), AS_OF, 12)


def test_combined_with_bias_weights_and_rescaled_to_mean_one() -> None:
    ipw = np.array([2.0, 1.0, 1.0, 0.5])
    rec = np.array([1.0, 0.5, 0.25, 1.0])
    w = combine_weights(ipw, rec)
    assert w is not None
    assert w.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w / w[1], (ipw * rec) / (ipw[1] * rec[1]))
    np.testing.assert_allclose(combine_weights(None, rec), rec / rec.mean())
    # recency off: the bias weights (or no weights) exactly as before
    assert combine_weights(ipw, None) is ipw
    assert combine_weights(None, None) is None


def test_config_key_is_validated(tmp_path: Path) -> None:
    assert load_config().recency_half_life_months == 0  # off by default
    over = tmp_path / "over.toml"
    over.write_text("[training]\nrecency_half_life_months = 12\n")
    assert load_config(over).recency_half_life_months == 12
    over.write_text("[training]\nrecency_half_life_months = -3\n")
    with pytest.raises(ConfigError, match=r"training\.recency_half_life_months"):
        load_config(over)
    over.write_text('[training]\nrecency_half_life_months = "12"\n')
    with pytest.raises(ConfigError, match=r"training\.recency_half_life_months"):
        load_config(over)


def _fit(X: pd.DataFrame, ex: pd.DataFrame, w: np.ndarray | None) -> YieldModel:
    return YieldModel(PARAMS, PARAMS, seed=1).fit(
        X, ex["adjusted"], ex["tax_recovered"], sample_weight=w
    )


def test_a_short_half_life_ranks_by_the_new_rule() -> None:
    """The label rule flips in the last 12 of 36 months (high ratio evaded, now low ratio
    does). Unweighted, the two earlier years outvote the last one and the model ranks fresh
    audits of the new rule worse than random; with a 3-month half-life it follows the new
    rule. Judged on a fresh draw of the last year (rows it was not fitted on)."""
    X, ex, as_of = drifting_audits(n=3000, seed=5)
    Xh, exh, _ = drifting_audits(n=6000, seed=6)
    new = exh["new_rule"].to_numpy()
    Xh, exh = Xh[new], exh[new]

    def auc(model: YieldModel) -> float:
        score = model.predict(Xh)["expected_yield"].to_numpy()
        return weighted_auc(score, exh["adjusted"].to_numpy())

    plain = auc(_fit(X, ex, None))
    recent = auc(_fit(X, ex, combine_weights(None, recency_weights(ex["selected_on"], as_of, 3))))
    assert plain < 0.5, plain
    assert recent > 0.75, recent


def test_the_fitter_weights_every_fit_by_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_Fitter`` (the validated variants, the bias choice's inner fits, the final refit):
    recency weights of the fitted rows, times the bias weights when the fit asks for them,
    rescaled to mean 1 over those rows; without recency the bias weights pass unchanged."""
    from taxrisk.training import pipeline

    X, ex, as_of = drifting_audits(n=200, seed=1)
    ipw = np.random.default_rng(0).uniform(0.2, 3.0, len(ex))
    rec = recency_weights(ex["selected_on"], as_of, 12)
    assert rec is not None
    got: list[np.ndarray | None] = []
    monkeypatch.setattr(pipeline, "_fit", lambda X, ex, c, r, mono, seed, w=None: got.append(w))
    rows = np.zeros(len(ex), dtype=bool)
    rows[50:150] = True
    pipeline._Fitter(X, ex, {"classifier": {}, "regressor": {}}, True, 0, ipw, rec)(rows)
    pipeline._Fitter(X, ex, {"classifier": {}, "regressor": {}}, True, 0, ipw, rec)(
        rows, weighted=True
    )
    pipeline._Fitter(X, ex, {"classifier": {}, "regressor": {}}, True, 0, ipw, None)(
        rows, weighted=True
    )
    plain, both, bias_only = got
    assert plain is not None and both is not None and bias_only is not None
    np.testing.assert_allclose(plain, rec[rows] / rec[rows].mean())
    np.testing.assert_allclose(both, ipw[rows] * rec[rows] / (ipw[rows] * rec[rows]).mean())
    np.testing.assert_array_equal(bias_only, ipw[rows])


@pytest.mark.slow
def test_train_weights_tuning_and_fits_by_recency(
    demo_world: Path, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``train`` with a half-life: the tuning of both models (folds and their early-stopping
    sets take the weights of their rows), the validated model and the final refit on every
    audit get the recency weights of their rows, rescaled to mean 1; the run logs it."""
    import mlflow
    from taxrisk.training import pipeline

    from taxrisk.settings import get_settings

    cfg = (
        load_config()
        .replace("training", recency_half_life_months=6.0)
        .replace("bias", method="none")
    )
    as_of = dt.date(2025, 12, 31)
    tuned: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    fits: list[tuple[np.ndarray, np.ndarray | None]] = []
    real_tune, real_fit = pipeline.tune, pipeline._fit

    def tune(kind, X, adjusted, amount, order, **kw):  # type: ignore[no-untyped-def]
        tuned.append((kind, np.asarray(order), kw["sample_weight"]))
        return real_tune(kind, X, adjusted, amount, order, **kw)

    def fit(X, ex, params_c, params_r, mono, seed, w=None):  # type: ignore[no-untyped-def]
        fits.append((ex["selected_on"].to_numpy(), w))
        return real_fit(X, ex, params_c, params_r, mono, seed, w)

    monkeypatch.setattr(pipeline, "tune", tune)
    monkeypatch.setattr(pipeline, "_fit", fit)
    result = pipeline.train(
        demo_world, as_of, settings=get_settings(workspace=workspace), trials=1, config=cfg
    )

    def expected(selected: np.ndarray) -> np.ndarray:
        w = recency_weights(pd.Series(selected), as_of, 6.0)
        assert w is not None
        return w / w.mean()

    assert [k for k, _, _ in tuned] == ["classifier", "regressor"]
    for _, order, w in tuned:
        assert w is not None
        np.testing.assert_allclose(w, expected(order), rtol=1e-9)
    params = mlflow.get_run(result.run_id).data.params
    assert params["recency_half_life_months"] == "6.0"
    assert len(fits) == 2  # the validated model (training part) and the final refit
    (val_sel, _), (all_sel, _) = fits
    assert len(val_sel) == int(params["n_train"])
    assert len(all_sel) == int(params["n_examples"])
    for selected, w in fits:
        assert w is not None
        np.testing.assert_allclose(w, expected(selected), rtol=1e-9)
        assert w.min() < 0.5 * w.max()  # the weights do differ: old audits count less
