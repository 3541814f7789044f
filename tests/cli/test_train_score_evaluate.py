"""`taxrisk train`, `score` and `evaluate` end to end on the demo world, in a temp workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

AS_OF = "2025-12-31"


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
    assert 0 <= m["capture_at_k"] <= 1 and 0 <= m["hit_rate_at_k"] <= 1
    assert m["oracle_capture_at_k"] == 1.0

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
