"""Scoring on Spark: the registered model applied to the Spark feature table gives the same
ranking as the in-process scorer, with the same contributions for the top ranks.

Uses the session's trained champion (``trained``, tests/conftest.py) and the Spark feature
table of ``spark_world`` (``spark_features``): one catalog run on Spark per test session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from taxrisk.features.matrix import build_matrix
from taxrisk.serving import explain
from taxrisk.serving.config import load_config
from taxrisk.serving.scoring import RANKING_COLUMNS, rank_predictions, score_matrix
from taxrisk.serving.spark_scoring import rank_spark, read_matrix, read_ranking, score_on_spark
from taxrisk.training.tracking import load_yield_model

pytestmark = pytest.mark.spark

TOP = 25


@pytest.fixture(scope="module")
def model(trained: dict[str, str]):  # type: ignore[no-untyped-def]
    return load_yield_model("models:/taxrisk@champion", trained["tracking_uri"]).model


@pytest.fixture(scope="module")
def scored(spark_world: dict, spark_features: str, model, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("spark_scores")
    return score_on_spark(
        spark_world["spark"],
        spark_world["as_of"],
        model,
        load_config(),
        out,
        explain_top=TOP,
        features=spark_features,
    )


def test_ranking_equals_in_process_scorer(scored, spark_features: str, model) -> None:  # type: ignore[no-untyped-def]
    cfg = load_config()
    got = read_ranking(scored.ranking)
    # the in-process scorer on the same (Spark-built) matrix: exactly the same ranking
    want = score_matrix(model, read_matrix(spark_features), cfg)
    assert scored.scored == len(want) > 300
    assert list(got.columns) == RANKING_COLUMNS
    pd.testing.assert_frame_equal(
        got[["taxpayer_id", "rank", "risk_level", "unit_id", "recommended_measure"]],
        want[["taxpayer_id", "rank", "risk_level", "unit_id", "recommended_measure"]],
        check_dtype=False,
    )
    for c in ("risk_score", "expected_yield", "expected_amount"):
        np.testing.assert_allclose(got[c], want[c], rtol=1e-12)
    assert got["risk_level"].nunique() >= 2


def test_ranking_equals_duckdb_pipeline(spark_world: dict, scored, model) -> None:  # type: ignore[no-untyped-def]
    """Features on DuckDB + the in-process scorer: the same order of taxpayers."""
    duck = build_matrix(spark_world["loaded"].tables, spark_world["as_of"])
    want = score_matrix(model, duck, load_config())
    got = read_ranking(scored.ranking)
    assert list(got["taxpayer_id"]) == list(want["taxpayer_id"])
    assert list(got["risk_level"]) == list(want["risk_level"])
    np.testing.assert_allclose(got["expected_yield"], want["expected_yield"], rtol=1e-9)


def test_contributions_of_the_top_ranks(scored, spark_features: str, model) -> None:  # type: ignore[no-untyped-def]
    got_items = pd.read_parquet(scored.contributions)
    got_base = pd.read_parquet(scored.contribution_base).set_index("taxpayer_id")
    top = read_ranking(scored.ranking).head(TOP)["taxpayer_id"]
    assert scored.explained == TOP and set(got_base.index) == set(top)
    want = explain.contributions(model, read_matrix(spark_features).loc[top])
    key = ["taxpayer_id", "item"]
    a = got_items.sort_values(key).reset_index(drop=True)
    b = want.items.sort_values(key).reset_index(drop=True)
    assert list(a["item"]) == list(b["item"]) and list(a["kind"]) == list(b["kind"])
    np.testing.assert_allclose(a["yuan"], b["yuan"], rtol=1e-9, atol=1e-6)
    base = got_base.loc[want.base.index]
    np.testing.assert_allclose(base.to_numpy(), want.base[base.columns].to_numpy(), rtol=1e-9)
    # the decomposition adds up: base + sum of items = expected yield
    total = got_items.groupby("taxpayer_id")["yuan"].sum()
    np.testing.assert_allclose(
        got_base["base_yield"] + total.reindex(got_base.index),
        got_base["expected_yield"],
        rtol=1e-6,
    )


def test_distributed_rank_matches_rank_predictions(spark_world: dict) -> None:
    """Ties, a missing yield and many partitions: the distributed rank is the in-process one."""
    rng = np.random.default_rng(0)
    n = 2000
    ey = np.round(rng.exponential(1000.0, n), -2)  # many exact ties
    ey[5] = np.nan
    pred = pd.DataFrame(
        {
            "probability": rng.uniform(0, 1, n),
            "expected_yield": ey,
        },
        # rows in taxpayer_id order, as a feature matrix is: the in-process risk levels break
        # ties in yield by row order, the rank by taxpayer_id
        index=pd.Index([f"T{i:05d}" for i in range(n)], name="taxpayer_id"),
    )
    pred["amount"] = pred["expected_yield"] / pred["probability"]
    units = pd.Series(rng.choice(["U1", "U2"], n), index=pred.index)
    cfg = load_config()
    want = rank_predictions(pred, units, cfg.risk_levels, cfg)
    session = spark_world["spark"].con._session
    sdf = session.createDataFrame(
        pd.DataFrame(
            {
                "taxpayer_id": pred.index.to_numpy(),
                "unit_id": units.to_numpy(),
                "risk_score": pred["probability"].to_numpy(),
                "expected_amount": pred["amount"].to_numpy(),
                "expected_yield": pred["expected_yield"].to_numpy(),
            }
        )
    ).repartition(7)  # shuffled over 7 partitions: the distributed rank must restore order
    got = rank_spark(sdf, cfg).toArrow().to_pandas().sort_values("rank").reset_index(drop=True)
    assert list(got["taxpayer_id"]) == list(want["taxpayer_id"])
    assert list(got["rank"]) == list(range(1, n + 1))
    assert list(got["risk_level"]) == list(want["risk_level"])
    assert list(got["recommended_measure"]) == list(want["recommended_measure"])
