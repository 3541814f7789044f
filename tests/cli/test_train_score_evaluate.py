"""`taxrisk train`, `score` and `evaluate` end to end on the demo world, in a temp workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

AS_OF = "2025-12-31"


def _contract_metrics(folder: Path, ranking: pd.DataFrame) -> dict[str, float]:
    """K, N, capture@K, hit rate@K and random capture by CONTRACT section 4, from the files."""
    as_of = pd.Timestamp(AS_OF)
    tps = pd.read_parquet(folder / "taxpayers.parquet")
    reg, dereg = pd.to_datetime(tps["registered_on"]), pd.to_datetime(tps["deregistered_on"])
    active = tps.loc[(reg <= as_of) & (dereg.isna() | (dereg > as_of)), "taxpayer_id"]
    k = min(int(pd.read_parquet(folder / "units.parquet")["capacity"].sum()), len(active))
    truth = pd.read_parquet(folder / "truth" / "gaps.parquet")
    truth = truth[truth["period"].between("2024-01", "2025-12")]
    audits = pd.read_parquet(folder / "audits.parquet")
    done = audits[pd.to_datetime(audits["closed_on"]) <= as_of]
    ids = pd.Index(active)
    owed = truth.groupby("taxpayer_id")["gap"].sum().reindex(ids, fill_value=0.0)
    found = done.groupby("taxpayer_id")["tax_recovered"].sum().reindex(ids, fill_value=0.0)
    gap = (owed - found).clip(lower=0.0)
    top = ranking.sort_values("rank")["taxpayer_id"].head(k)
    best = gap.sort_values(ascending=False).head(k).sum()
    return {
        "k": k,
        "n": len(active),
        "capture": gap.reindex(top).sum() / best,
        "hit": float((gap.reindex(top) > 1000).mean()),
        "random": k / len(active) * gap.sum() / best,
    }


@pytest.mark.slow
def test_train_score_evaluate(demo_world: Path, workspace: Path, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    from taxrisk.cli import app
    from taxrisk.settings import get_settings

    runner = CliRunner()
    res = runner.invoke(app, ["train", str(demo_world), "--as-of", AS_OF, "--trials", "2"])
    assert res.exit_code == 0, res.output
    assert "run id:" in res.output and "champion" in res.output

    settings = get_settings()
    assert settings.root == workspace.resolve()
    assert (workspace / "mlflow.db").exists() and (workspace / "optuna" / "studies.db").exists()
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient(settings.tracking_uri)
    mv = client.get_model_version_by_alias(settings.registered_model, "champion")
    assert str(mv.version) == "1"
    run = client.get_run(mv.run_id)
    assert run.data.params["as_of"] == AS_OF and run.data.params["trials"] == "2"
    for key in (
        "val_all_yield_capture",
        "old_rules.all_yield_capture",
        "logistic.all_auc",
        "random.all_precision",
        "labels.rule.examples",
    ):
        assert key in run.data.metrics, key
    assert run.data.tags["champion_decision"] == "promoted"
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {
        "yield_curve.png",
        "calibration.png",
        "feature_importance.png",
        "shap_summary.png",
        "model_card.md",
        "comparison.csv",
        "label_counts.csv",
    } <= arts
    card = Path(
        client.download_artifacts(run.info.run_id, "model_card.md", str(tmp_path))
    ).read_text()
    assert "Known limits" in card and "selection mix" in card.lower()

    out = tmp_path / "ranking.csv"
    res = runner.invoke(app, ["score", str(demo_world), "--as-of", AS_OF, "--out", str(out)])
    assert res.exit_code == 0, res.output
    ranking = pd.read_csv(out, dtype={"taxpayer_id": "str", "unit_id": "str"})
    # the contract's six columns first, then the two this project adds (docs/dispatch.md)
    assert ranking.columns.tolist() == [
        "taxpayer_id",
        "rank",
        "risk_score",
        "expected_yield",
        "risk_level",
        "unit_id",
        "expected_amount",
        "recommended_measure",
    ]
    assert ranking["rank"].tolist() == list(range(1, len(ranking) + 1))
    assert ranking["taxpayer_id"].is_unique
    assert ranking["expected_yield"].is_monotonic_decreasing
    assert set(ranking["risk_level"]) <= {"high", "medium", "low", "minimal"}
    assert ranking["risk_score"].between(0, 1).all()

    metrics_file = tmp_path / "metrics.json"
    res = runner.invoke(
        app,
        [
            "evaluate",
            str(demo_world),
            "--as-of",
            AS_OF,
            "--ranking",
            str(out),
            "--json",
            str(metrics_file),
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(metrics_file.read_text())
    assert m["source"] == "truth" and m["n"] == len(ranking) and m["active_omitted"] == 0
    assert m["oracle_capture_at_k"] == 1.0
    # the figures are CONTRACT section 4's, recomputed here from the files and the CSV alone
    expected = _contract_metrics(demo_world, ranking)
    assert m["k"] == expected["k"] and m["n"] == expected["n"]
    assert m["capture_at_k"] == pytest.approx(expected["capture"], rel=1e-9)
    assert m["hit_rate_at_k"] == pytest.approx(expected["hit"], rel=1e-9)
    assert m["random_capture_at_k"] == pytest.approx(expected["random"], rel=1e-9)
    # and the trained model ranks better than chance on its own world
    assert m["capture_at_k"] > 2.0 * m["random_capture_at_k"], m
    assert m["hit_rate_at_k"] > m["random_hit_rate_at_k"], m

    # a model that does not exist: one line, non-zero exit
    res = runner.invoke(
        app,
        [
            "score",
            str(demo_world),
            "--as-of",
            AS_OF,
            "--out",
            str(out),
            "--model",
            "models:/nope/7",
        ],
    )
    assert res.exit_code != 0
