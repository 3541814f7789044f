"""Explanations: TreeSHAP per indicator, in yuan, adding up to each prediction exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.explain import Explanation, contributions, indicator_of, indicator_table
from taxrisk.training.models import YieldModel

PARAMS = {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 10}
N_FIT = 600


def _matrix(n: int = 900, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A matrix with catalog-named indicator columns (and a prefix trap: vat_burden vs
    vat_burden_ratio), a planted signal, and audit labels."""
    rng = np.random.default_rng(seed)
    vb = rng.normal(0.03, 0.01, n)
    X = pd.DataFrame(
        {
            "industry": pd.Categorical(rng.choice(["A", "B", "C"], n)),
            "sales_12": rng.lognormal(13, 1, n),
            "noise": rng.normal(0, 1, n),
            "peer_burden_pct": rng.random(n),
            "vat_burden": vb,
            "vat_burden__pct": pd.Series(vb).rank(pct=True).to_numpy(),
            "vat_burden__fired": (vb < 0.02).astype("int8"),
            "vat_burden_ratio": rng.normal(1, 0.3, n),
            "vat_burden_ratio__fired": (rng.random(n) < 0.2).astype("int8"),
            "invoice_vs_declared": rng.normal(0, 1, n),
            "invoice_vs_declared__fired": (rng.random(n) < 0.3).astype("int8"),
        },
        index=pd.Index([f"T{i:04d}" for i in range(n)], name="taxpayer_id"),
    )
    logit = (
        -0.8
        + 1.5 * X["vat_burden__fired"]
        + 0.8 * X["invoice_vs_declared__fired"]
        + 0.6 * X["vat_burden_ratio"]
        - 0.5 * X["noise"]
    )
    adjusted = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    amount = np.where(
        adjusted == 1,
        X["sales_12"].to_numpy() * 0.02 * np.exp(0.5 * X["invoice_vs_declared"].to_numpy()),
        0.0,
    )
    return X, adjusted, amount


@pytest.fixture(scope="module")
def fitted() -> tuple[YieldModel, pd.DataFrame]:
    X, adjusted, amount = _matrix()
    model = YieldModel(PARAMS, PARAMS).fit(X[:N_FIT], adjusted[:N_FIT], amount[:N_FIT])
    assert model.regressor_ is not None
    return model, X[N_FIT:]  # explained rows were not fitted on


@pytest.fixture(scope="module")
def explained(fitted: tuple[YieldModel, pd.DataFrame]) -> Explanation:
    model, X = fitted
    return contributions(model, X.assign(extra_column=1.0))


def test_raw_scores_are_reproduced(
    fitted: tuple[YieldModel, pd.DataFrame], explained: Explanation
) -> None:
    model, X = fitted
    Xp = model.prepare(X)
    assert model.regressor_ is not None
    f = model.classifier_.booster_.predict(Xp, raw_score=True)
    z = model.regressor_.booster_.predict(Xp, raw_score=True)
    by = explained.items.groupby("taxpayer_id", sort=False)
    base = explained.base
    assert list(base.index) == list(X.index)
    np.testing.assert_allclose(base["logodds"], f, rtol=0, atol=1e-9)
    np.testing.assert_allclose(base["logamount"], z, rtol=0, atol=1e-9)
    logodds = base["base_logodds"] + by["logodds"].sum().reindex(base.index)
    logamount = base["base_logamount"] + by["logamount"].sum().reindex(base.index)
    np.testing.assert_allclose(logodds, f, rtol=0, atol=1e-9)
    np.testing.assert_allclose(logamount, z, rtol=0, atol=1e-9)
    # the base is the model's expectation: one value for every row
    assert base["base_logodds"].nunique() == 1 and base["base_logamount"].nunique() == 1


def test_yuan_add_up_to_the_expected_yield(
    fitted: tuple[YieldModel, pd.DataFrame], explained: Explanation
) -> None:
    model, X = fitted
    pred = model.predict(X)
    base = explained.base
    yuan = explained.items.groupby("taxpayer_id", sort=False)["yuan"].sum().reindex(base.index)
    np.testing.assert_allclose(base["base_yield"] + yuan, pred["expected_yield"], rtol=1e-6)
    np.testing.assert_allclose(base["probability"], pred["probability"], rtol=1e-12)
    np.testing.assert_allclose(base["amount"], pred["amount"], rtol=1e-12)
    np.testing.assert_allclose(base["expected_yield"], pred["expected_yield"], rtol=1e-12)
    np.testing.assert_allclose(
        base["base_yield"], base["base_probability"] * base["base_amount"], rtol=1e-12
    )
    # the explanation is not trivial: taxpayers differ from the base by real amounts
    assert (yuan.abs() > 1.0).mean() > 0.9
    # an item's yuan has the sign of its log-odds when it moves only the classifier
    items = explained.items
    only_c = items[(items["logamount"] == 0) & (items["logodds"].abs() > 1e-6)]
    assert len(only_c) > 0
    assert (np.sign(only_c["yuan"]) == np.sign(only_c["logodds"])).all()
    idle = items[(items["logamount"] == 0) & (items["logodds"] == 0)]
    assert (idle["yuan"] == 0).all()


def test_columns_of_one_indicator_are_one_item(
    fitted: tuple[YieldModel, pd.DataFrame], explained: Explanation
) -> None:
    model, X = fitted
    items = explained.items
    assert list(items.columns) == ["taxpayer_id", "item", "kind", "logodds", "logamount", "yuan"]
    one = items[items["taxpayer_id"] == X.index[0]]
    kinds = dict(zip(one["item"], one["kind"], strict=True))
    assert kinds == {
        "industry": "feature",
        "sales_12": "feature",
        "noise": "feature",
        "peer_burden_pct": "feature",
        "vat_burden": "indicator",
        "vat_burden_ratio": "indicator",
        "invoice_vs_declared": "indicator",
    }
    assert len(items) == len(X) * 7
    # the vat_burden item is exactly the sum of its three columns' TreeSHAP values
    raw = model.contributions(X)
    cols = ["vat_burden", "vat_burden__pct", "vat_burden__fired"]
    mine = items[items["item"] == "vat_burden"].set_index("taxpayer_id")["logodds"]
    np.testing.assert_allclose(mine.reindex(X.index), raw[cols].sum(axis=1), atol=1e-12)
    ratio = items[items["item"] == "vat_burden_ratio"].set_index("taxpayer_id")["logodds"]
    np.testing.assert_allclose(
        ratio.reindex(X.index),
        raw[["vat_burden_ratio", "vat_burden_ratio__fired"]].sum(axis=1),
        atol=1e-12,
    )


def test_indicator_of() -> None:
    assert indicator_of("vat_burden") == "vat_burden"
    assert indicator_of("vat_burden__pct") == "vat_burden"
    assert indicator_of("vat_burden_ratio__fired") == "vat_burden_ratio"
    assert indicator_of("vat_burden__anything") == "vat_burden"
    assert indicator_of("peer_burden_pct") is None
    assert indicator_of("sales_12") is None
    assert indicator_of("nope__fired") is None


def test_one_taxpayer_on_demand_equals_bulk(
    fitted: tuple[YieldModel, pd.DataFrame], explained: Explanation
) -> None:
    model, X = fitted
    tid = X.index[5]
    one = contributions(model, X.loc[[tid]])
    bulk = explained.items[explained.items["taxpayer_id"] == tid].reset_index(drop=True)
    pd.testing.assert_frame_equal(one.items, bulk, rtol=1e-9)
    threaded = contributions(model, X.iloc[:50], n_jobs=2)
    head = explained.items[explained.items["taxpayer_id"].isin(X.index[:50])]
    np.testing.assert_allclose(threaded.items["yuan"], head["yuan"], rtol=1e-9)
    of = explained.of(tid)
    assert (of["yuan"].abs().diff().dropna() <= 0).all()
    with pytest.raises(KeyError):
        explained.of("nobody")


def test_degenerate_regressor_has_constant_amount() -> None:
    X, adjusted, _ = _matrix(n=300, seed=3)
    amount = np.zeros(len(X))
    first = int(np.flatnonzero(adjusted == 1)[0])
    amount[first] = 12_345.0  # one adjusted audit with an amount: no regressor
    model = YieldModel(PARAMS, PARAMS).fit(X[:200], adjusted[:200], amount[:200])
    assert model.regressor_ is None and model.fallback_amount_ == 12_345.0
    ex = contributions(model, X[200:])
    assert (ex.items["logamount"] == 0).all()
    np.testing.assert_allclose(ex.base["base_amount"], 12_345.0)
    np.testing.assert_allclose(ex.base["amount"], 12_345.0)
    pred = model.predict(X[200:])
    yuan = ex.items.groupby("taxpayer_id", sort=False)["yuan"].sum().reindex(ex.base.index)
    np.testing.assert_allclose(ex.base["base_yield"] + yuan, pred["expected_yield"], rtol=1e-9)
    # all of the change is the probability's: yuan = 12,345 x (p - p0) per taxpayer
    np.testing.assert_allclose(
        yuan, 12_345.0 * (ex.base["probability"] - ex.base["base_probability"]), rtol=1e-9
    )


def test_zero_amount_is_guarded() -> None:
    X, adjusted, _ = _matrix(n=300, seed=4)
    model = YieldModel(PARAMS, PARAMS).fit(X, adjusted, np.zeros(len(X)))
    assert model.regressor_ is None and model.fallback_amount_ == 0.0
    ex = contributions(model, X[:20])
    assert np.isfinite(ex.items["yuan"]).all()
    assert (ex.items["yuan"].abs() < 1e-8).all()
    assert (ex.base["expected_yield"] == 0).all()


def test_indicator_table(fitted: tuple[YieldModel, pd.DataFrame], explained: Explanation) -> None:
    _, X = fitted
    matrix = X.assign(two_tax=0.0, two_tax__fired=np.int8(1))  # fired, but not a model input
    fired = X[
        (X["vat_burden__fired"] == 1)
        & (X["invoice_vs_declared__fired"] == 1)
        & (X["vat_burden_ratio__fired"] == 0)
    ]
    tid = str(fired.index[0])
    full = indicator_table(matrix, explained, tid, "en", top=None)
    assert set(full["indicator"]) == {
        "vat_burden",
        "vat_burden_ratio",
        "invoice_vs_declared",
        "two_tax",
    }
    assert (full["yuan"].abs().diff().dropna() <= 0).all()  # largest |yuan| first
    table = indicator_table(matrix, explained, tid, "en", top=1)
    # the top one and every fired indicator, even beyond top=1, in the same order
    expected = {full["indicator"].iloc[0]} | {"vat_burden", "invoice_vs_declared", "two_tax"}
    assert set(table["indicator"]) == expected
    assert list(table["indicator"]) == [i for i in full["indicator"] if i in expected]
    assert table["fired"].sum() == 3
    row = table.set_index("indicator")
    assert row.at["two_tax", "yuan"] == 0.0 and bool(row.at["two_tax", "fired"])
    assert row.at["vat_burden", "name_zh"] == CATALOG["vat_burden"].name_zh
    assert row.at["vat_burden", "name"] == CATALOG["vat_burden"].name_en
    assert row.at["vat_burden", "guide"] == CATALOG["vat_burden"].guide_en
    assert row.at["vat_burden", "measure"] == CATALOG["vat_burden"].measure
    assert row.at["vat_burden", "value"] == pytest.approx(X.at[tid, "vat_burden"])
    assert row.at["vat_burden", "percentile"] == pytest.approx(X.at[tid, "vat_burden__pct"])
    assert np.isnan(row.at["invoice_vs_declared", "percentile"])
    items = explained.items
    mine = items[(items["taxpayer_id"] == tid) & (items["item"] == "vat_burden")]
    assert row.at["vat_burden", "yuan"] == pytest.approx(float(mine["yuan"].iloc[0]))
    # in Chinese, from one row of the matrix
    zh = indicator_table(matrix.loc[tid], explained, tid, "zh", top=None)
    pd.testing.assert_series_equal(zh["yuan"], full["yuan"])
    assert zh.set_index("indicator").at["vat_burden", "guide"] == CATALOG["vat_burden"].guide_zh
    with pytest.raises(KeyError):
        indicator_table(matrix, explained, "nobody", "en")


def test_a_tail_prior_is_one_more_item_and_the_sum_still_holds() -> None:
    """A model blended with the tail prior: EY0 + sum of yuan = the blended expected yield,
    and the prior's item carries exactly the blend's log change of the probability."""
    import copy

    from taxrisk.serving.explain import TAIL_ITEM
    from taxrisk.training.anomaly import TailPrior

    X, adjusted, amount = _matrix(seed=3)
    plain = YieldModel(PARAMS, PARAMS).fit(X[:N_FIT], adjusted[:N_FIT], amount[:N_FIT])
    prior = TailPrior({"vat_burden": "low"}).fit(X[:N_FIT], adjusted[:N_FIT])
    blended = copy.deepcopy(plain).with_tail_prior(prior, 0.3)
    rows = X[N_FIT:]
    ex = contributions(blended, rows)
    ey = blended.predict(rows)["expected_yield"]
    assert not np.allclose(ey, plain.predict(rows)["expected_yield"])  # the blend moved it
    total = ex.base["base_yield"] + ex.items.groupby("taxpayer_id", sort=False)["yuan"].sum()
    np.testing.assert_allclose(total.reindex(ex.base.index), ey.to_numpy(), rtol=1e-9)
    tail = ex.items[ex.items["item"] == TAIL_ITEM]
    assert (tail["kind"] == "prior").all() and len(tail) == len(rows)
    p_model = plain.predict_proba(rows)
    p_blend = blended.predict(rows)["probability"].to_numpy()
    # the item's sign is the blend's: positive where the prior raised the probability
    raised = p_blend > p_model * (1 + 1e-9)
    assert raised.any() and (~raised).any()
    np.testing.assert_array_equal(tail["yuan"].to_numpy() > 0, raised)
