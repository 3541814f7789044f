"""Scoring on Spark: the registered model applied to the Spark feature table gives the same
ranking as the in-process scorer, with the same contributions for the top ranks.

Uses the session's trained champion (``trained``, tests/conftest.py) and the Spark feature
table of ``spark_world`` (``spark_features``): one catalog run on Spark per test session, and
one more for the user's path, ``TAXRISK_ENGINE=spark taxrisk score`` (in-process, on the same
Spark session), checked against the DuckDB engine's ``taxrisk score``.
"""

from __future__ import annotations

from pathlib import Path

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


def _cli_score(folder, ws, out, monkeypatch, **env: str):  # type: ignore[no-untyped-def]
    """``taxrisk score FOLDER --as-of ... --out OUT`` in-process (the Typer app), in workspace
    ``ws`` with its own case store; ``env``: extra TAXRISK_* variables. Returns the ranking."""
    from typer.testing import CliRunner

    from taxrisk.cli import app

    monkeypatch.setenv("TAXRISK_WORKSPACE", str(ws))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = CliRunner().invoke(
        app, ["score", str(folder), "--as-of", "2025-12-31", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "published" in res.output, res.output
    for k in env:
        monkeypatch.delenv(k)
    return pd.read_csv(out, dtype={"taxpayer_id": "str", "unit_id": "str"})


def _store(ws):  # type: ignore[no-untyped-def]
    """The published run, its cases and their indicators, from the workspace's case store."""
    from sqlalchemy import select
    from taxrisk.serving.store.models import Case, CaseIndicator, ScoringRun
    from taxrisk.serving.store.session import make_engine, session_factory

    from taxrisk.settings import get_settings

    engine = make_engine(get_settings(workspace=ws))
    try:
        with session_factory(engine)() as s:
            runs = s.scalars(select(ScoringRun)).all()
            cases = pd.DataFrame(
                [
                    (c.case_id, c.taxpayer_id, c.unit_id, c.selection, c.rank, c.expected_yield)
                    for c in s.scalars(select(Case))
                ],
                columns=["case_id", "taxpayer_id", "unit_id", "selection", "rank", "yield"],
            )
            ind = pd.DataFrame(
                [
                    (i.case_id, i.item, i.kind, i.contribution)
                    for i in s.scalars(select(CaseIndicator))
                ],
                columns=["case_id", "item", "kind", "contribution"],
            )
            return [(r.run_id, r.counts, r.artifacts) for r in runs], cases, ind
    finally:
        engine.dispose()


def test_cli_score_on_spark_equals_duckdb(
    spark_world: dict, trained: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``TAXRISK_ENGINE=spark taxrisk score DIR --out FILE`` (the user's path: serving/runs.py
    -> score_run_on_spark) publishes a run whose ranking, dispatched cases and case
    contributions are those of the DuckDB engine's ``taxrisk score`` on the same folder and
    model. In-process, on the Spark session the other Spark tests share."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["tracking_uri"])
    monkeypatch.delenv("TAXRISK_DATABASE_URL", raising=False)
    monkeypatch.delenv("TAXRISK_ENGINE", raising=False)
    monkeypatch.chdir(tmp_path)
    folder = spark_world["folder"]
    ws_duck, ws_spark = tmp_path / "ws_duck", tmp_path / "ws_spark"
    want = _cli_score(folder, ws_duck, tmp_path / "duck.csv", monkeypatch)
    got = _cli_score(
        folder,
        ws_spark,
        tmp_path / "spark.csv",
        monkeypatch,
        TAXRISK_ENGINE="spark",
        TAXRISK_SPARK_MASTER="local[2]",
        TAXRISK_SPARK_SHUFFLE_PARTITIONS="4",
    )

    # published, once, and through Spark: its tables are under <workspace>/spark/<run_id>/
    (runs, cases, ind), (d_runs, d_cases, d_ind) = _store(ws_spark), _store(ws_duck)
    assert len(runs) == len(d_runs) == 1
    run_id, counts, artifacts = runs[0]
    assert (ws_spark / "spark" / run_id / "ranking.parquet").is_dir()
    assert (ws_spark / "spark" / run_id / "contributions.parquet").is_dir()
    assert not (ws_duck / "spark").exists()
    assert (ws_spark / artifacts["ranking.parquet"]).is_file()
    assert counts["scored"] == d_runs[0][1]["scored"] == len(got) > 300

    # the --out ranking: the same taxpayers in the same order, the same levels and measures
    assert list(got.columns) == list(want.columns) == RANKING_COLUMNS
    for c in ("taxpayer_id", "rank", "risk_level", "unit_id", "recommended_measure"):
        assert list(got[c]) == list(want[c]), c
    for c in ("risk_score", "expected_yield", "expected_amount"):
        np.testing.assert_allclose(got[c], want[c], rtol=1e-9)

    # the same dispatched cases (same ids, units, selection and rank)
    key = ["case_id", "taxpayer_id", "unit_id", "selection", "rank"]
    a = cases.sort_values("case_id").reset_index(drop=True)
    b = d_cases.sort_values("case_id").reset_index(drop=True)
    taken = a["selection"].isin(["model", "exploration"])
    assert taken.sum() > 0
    pd.testing.assert_frame_equal(a[key], b[key])
    np.testing.assert_allclose(a["yield"], b["yield"], rtol=1e-9)

    # every dispatched case has its contributions, and they are DuckDB's
    for case_id in a.loc[taken, "case_id"]:
        rows = ind[ind["case_id"] == case_id]
        assert len(rows) and rows["contribution"].notna().all(), case_id
    k = ["case_id", "item"]
    ia = ind.sort_values(k).reset_index(drop=True)
    ib = d_ind.sort_values(k).reset_index(drop=True)
    assert list(ia["item"]) == list(ib["item"]) and list(ia["kind"]) == list(ib["kind"])
    np.testing.assert_allclose(
        ia["contribution"].astype(float), ib["contribution"].astype(float), rtol=1e-7, atol=1e-6
    )
