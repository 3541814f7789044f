"""Validation that is not censored, decisions on an inner split, intervals, and figures that
cannot decide (issue 11, item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import audits_frame
from taxrisk.training.config import load_config
from taxrisk.training.modelcard import render_model_card
from taxrisk.training.pipeline import _choose_bias, _choose_bias_inner, _Fitter
from taxrisk.training.validation import (
    Discrimination,
    closure_horizon,
    discrimination,
    inner_split,
    time_split,
    with_intervals,
)


def _examples(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Audits selected over two years; slow cases take up to a year to close."""
    rng = np.random.default_rng(seed)
    sel = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 730, n)), "D")
    dur = pd.to_timedelta(rng.integers(30, 365, n), "D")
    return pd.DataFrame(
        {
            "selected_on": sel,
            "closed_on": sel + dur,
            "selection_reason": np.where(rng.random(n) < 0.3, "random", "rule"),
            "selection_probability": 0.05,
            "adjusted": rng.integers(0, 2, n),
            "tax_recovered": rng.lognormal(8, 1, n),
        },
        index=pd.Index([f"C{i}" for i in range(n)], name="case_id"),
    )


AS_OF = pd.Timestamp("2025-03-31")


def _known(ex: pd.DataFrame) -> pd.DataFrame:
    """Closed by the as-of date (the training set's examples)."""
    return ex[ex["closed_on"] <= AS_OF]


def test_closure_horizon_is_the_quantile_of_case_durations() -> None:
    ex = _examples()
    h = closure_horizon(ex, 0.9)
    days = (ex["closed_on"] - ex["selected_on"]).dt.days
    assert h.days == int(np.ceil(days.quantile(0.9)))
    assert closure_horizon(ex.assign(closed_on=pd.NaT), 0.9) == pd.Timedelta(0)


def test_censored_audits_are_not_validated() -> None:
    ex = _known(_examples())
    h = closure_horizon(ex, 0.9)
    cut, tr, va = time_split(ex, 0.25, as_of=AS_OF, horizon=h)
    sel = ex["selected_on"]
    assert va.any() and (sel[va] <= AS_OF - h).all()
    # the quick closures of the last months are known, but not validated
    late = (sel > AS_OF - h).to_numpy()
    assert late.any() and not (va & late).any()
    # without the horizon (the rule before issue 11) they were
    _, _, va_old = time_split(ex, 0.25)
    assert (va_old & late).any()
    # training: selected and closed before the cut
    assert (sel[tr] < cut).all() and (ex["closed_on"][tr] < cut).all()


def test_inner_split_lies_inside_the_training_part() -> None:
    ex = _known(_examples(800))
    h = closure_horizon(ex, 0.9)
    cut, tr, va = time_split(ex, 0.25, as_of=AS_OF, horizon=h)
    icut, itr, iva = inner_split(ex, tr, cut, 0.25, h)
    assert iva.any() and itr.any()
    assert not (iva & va).any() and not (itr & va).any()
    assert (itr <= tr).all() and (iva <= tr).all() and not (itr & iva).any()
    assert (ex["selected_on"][iva] <= cut - h).all() and (ex["selected_on"][iva] >= icut).all()
    assert icut < cut


def test_every_figure_has_an_interval() -> None:
    ex = _examples(300)
    rng = np.random.default_rng(1)
    good = ex["tax_recovered"].to_numpy() * ex["adjusted"].to_numpy() + rng.normal(0, 1, len(ex))
    scores = {"model": good, "random": rng.random(len(ex))}
    t = with_intervals(scores, ex, 0.2, resamples=200, level=0.9, seed=3)
    for m in ("all_yield_capture", "all_precision", "all_auc", "random_yield_capture"):
        assert (t[f"{m}_low"] <= t[m]).all() and (t[m] <= t[f"{m}_high"]).all()
        assert t.loc["random", f"{m}_high"] > t.loc["random", f"{m}_low"]
    again = with_intervals(scores, ex, 0.2, resamples=200, level=0.9, seed=3)
    pd.testing.assert_frame_equal(t, again)


def _disc(ex: pd.DataFrame, scores: dict[str, np.ndarray]) -> dict[str, Discrimination]:
    t = with_intervals(scores, ex, 0.2, resamples=200, level=0.9, seed=0)
    return discrimination(t, ex, max_single_share=0.5, max_interval_overlap=0.8, min_audits=20)


def test_one_audit_holding_the_yuan_does_not_discriminate() -> None:
    ex = _examples(300)
    rnd = (ex["selection_reason"] == "random").to_numpy()
    whale = np.flatnonzero(rnd & (ex["adjusted"] == 1).to_numpy())[0]
    ex.iloc[whale, ex.columns.get_loc("tax_recovered")] = 1e12
    rng = np.random.default_rng(2)
    good = ex["tax_recovered"].to_numpy() * ex["adjusted"].to_numpy()
    d = _disc(ex, {"model": good, "random": rng.random(len(ex))})
    assert not d["random_yield_capture"].discriminates
    assert "one audit holds" in d["random_yield_capture"].reason
    assert not d["all_yield_capture"].discriminates


def test_overlapping_intervals_do_not_discriminate_and_clear_ones_do() -> None:
    ex = _examples(400)
    rng = np.random.default_rng(4)
    good = ex["tax_recovered"].to_numpy() * ex["adjusted"].to_numpy()
    clear = _disc(ex, {"model": good, "random": rng.random(len(ex))})
    assert clear["all_yield_capture"].discriminates and clear["all_auc"].discriminates
    r = rng.random(len(ex))
    # a model no better than random: its intervals overlap random's almost entirely
    noise = _disc(ex, {"model": r + rng.normal(0, 1e-3, len(ex)), "random": r})
    assert not noise["all_auc"].discriminates and "overlap" in noise["all_auc"].reason
    few = _disc(ex.iloc[:15], {"model": good[:15], "random": rng.random(15)})
    assert not few["all_precision"].discriminates and "fewer than" in few["all_precision"].reason


def test_a_figure_that_does_not_discriminate_decides_nothing() -> None:
    cfg = load_config()
    per = {"none": {"random_yield_capture": 0.5}, "ipw": {"random_yield_capture": 0.9}}
    assert _choose_bias(per, cfg) == "ipw"
    blind = Discrimination("random_yield_capture", False, "one audit holds 99%")
    assert _choose_bias(per, cfg, blind) == "none"


class _Recording(_Fitter):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.fitted_on: list[np.ndarray] = []

    def __call__(self, rows, *, weighted=False):
        self.fitted_on.append(np.asarray(rows).copy())
        return super().__call__(rows, weighted=weighted)


def test_bias_is_chosen_on_the_inner_split_only() -> None:
    X, ex = audits_frame(n=1500, seed=3)
    cfg = load_config().replace("validation", bootstrap_resamples=50)
    as_of = ex["closed_on"].max()
    h = closure_horizon(ex, 0.9)
    cut, tr, va = time_split(ex, 0.25, as_of=as_of, horizon=h)
    params = {"n_estimators": 20, "num_leaves": 7, "verbose": -1, "n_jobs": 1}
    w = np.linspace(0.5, 2.0, len(ex))
    fit = _Recording(X, ex, {"classifier": params, "regressor": params}, True, 0, w)
    chosen, note, info = _choose_bias_inner(fit, tr, cut, h, cfg, True)
    assert chosen in ("none", "ipw") and "inner split" in note
    _, itr, iva = inner_split(ex, tr, cut, cfg.validation.inner_share, h)
    assert info["n_validation"] == int(iva.sum()) > 0
    # every fit of the choice used inner training rows only: no outer validation audit
    assert fit.fitted_on and all((r <= itr).all() for r in fit.fitted_on)
    assert not any((r & va).any() for r in fit.fitted_on)


def test_model_card_says_a_figure_does_not_discriminate() -> None:
    ex = _examples(100)
    rng = np.random.default_rng(0)
    t = with_intervals(
        {"model": rng.random(100), "random": rng.random(100)},
        ex,
        0.2,
        resamples=50,
        level=0.9,
        seed=0,
    )
    disc = {
        m: Discrimination(m, m != "random_yield_capture", "one audit holds 99.9% of the yuan")
        for m in t.columns
        if not m.endswith(("_low", "_high"))
    }
    facts = {
        "model_name": "m",
        "as_of": "2025-01-01",
        "data_dir": "d",
        "n_examples": 1,
        "first_selected": "a",
        "last_selected": "b",
        "snapshot": "exact",
        "n_open": 0,
        "dropped": 0,
        "n_features": 1,
        "cut": "c",
        "n_train": 1,
        "n_val": 1,
        "label_counts": pd.DataFrame({"examples": [1]}),
        "bias_note": "x",
        "comparison": t,
        "discrimination": disc,
        "top_share": 0.2,
        "champion_note": "y",
    }
    card = render_model_card(facts)
    assert "n/d" in card and "does not discriminate" in card and "99.9%" in card
    v = t.loc["model", "random_yield_capture"]
    assert f"{v:.3f} [" not in card  # the figure is not printed as a result
    assert f"{t.loc['model', 'all_auc']:.3f} [{t.loc['model', 'all_auc_low']:.3f}" in card


@pytest.mark.parametrize("q", [0.5, 0.9])
def test_horizon_grows_with_the_quantile(q: float) -> None:
    ex = _examples()
    assert closure_horizon(ex, q) <= closure_horizon(ex, 0.95)
