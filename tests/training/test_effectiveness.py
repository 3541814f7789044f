"""Indicator effectiveness (issue 11, item 9): exact figures on a hand-made audit set, the
MLflow artifact of a real training run, and the `taxrisk effectiveness` command."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from taxrisk.training.effectiveness import (
    indicator_effectiveness,
    load_logged,
    summary_metrics,
    write_artifacts,
)
from typer.testing import CliRunner

from taxrisk.cli import app

HITS = [1, 1, 1, 0, 0, 0, 0, 0, 1, 0]


def _audits() -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(HITS)
    hit = np.array(HITS)
    X = pd.DataFrame(
        {
            "good__fired": hit.astype("int8"),  # fires exactly for the hits
            "twin__fired": hit.astype("int8"),  # the same set: one is the other
            "always__fired": np.ones(n, dtype="int8"),  # fires for everyone: base rate
            "bad__fired": (1 - hit).astype("int8"),  # fires only where nothing was found
            "never__fired": np.zeros(n, dtype="int8"),
            "sales": np.arange(n, dtype=float),
        },
        index=pd.Index([f"C{i}" for i in range(n)], name="case_id"),
    )
    rec = np.where(hit == 1, [5000.0, 3000.0, 2000.0, 0, 0, 0, 0, 0, 4000.0, 0], 0.0)
    # an adjusted audit with a recovery under 1,000 yuan is not a hit
    adjusted = hit.copy()
    adjusted[3] = 1
    rec[3] = 500.0
    ex = pd.DataFrame(
        {
            "adjusted": adjusted,
            "recovered_raw": rec,
            "tax_recovered": rec * 2,
            "selection_reason": ["random"] * 6 + ["rule"] * 4,
            "selection_probability": [0.1, 0.1, 0.5, 0.5, 0.5, 0.5] + [np.nan] * 4,
        },
        index=X.index,
    )
    return X, ex


def test_precision_lift_yuan_and_cofiring_exactly() -> None:
    X, ex = _audits()
    eff = indicator_effectiveness(X, ex, None, resamples=200, seed=0)
    assert eff.attrs["base_rate"] == pytest.approx(0.4)
    g, a, b = eff.loc["good"], eff.loc["always"], eff.loc["bad"]
    assert g["fired_audits"] == 4 and g["precision"] == 1.0 and g["lift"] == pytest.approx(2.5)
    assert g["recovered_per_hit"] == pytest.approx(14000 / 4)
    assert a["precision"] == pytest.approx(0.4) and a["lift"] == pytest.approx(1.0)
    assert a["recovered_per_fired"] == pytest.approx(14500 / 10)  # as recovered, not scaled
    assert b["precision"] == 0.0 and b["lift"] == 0.0
    assert eff.loc["never", "fired_audits"] == 0 and pd.isna(eff.loc["never", "precision"])
    # random stratum, weighted by 1/p: hits C0, C1 (w 10 each), C2 (w 2) of 28 in all
    assert eff.attrs["random_base_rate"] == pytest.approx(22 / 28)
    assert eff.loc["good", "random_precision"] == 1.0
    assert eff.loc["bad", "random_precision"] == 0.0
    lo, hi = eff.loc["always", "random_precision_low"], eff.loc["always", "random_precision_high"]
    assert lo <= 22 / 28 <= hi and lo < hi
    # co-firing
    pairs = eff.attrs["cofiring"]
    assert {"good", "twin"} in [set(p) for p in pairs[["indicator", "other"]].to_numpy()]
    assert eff.loc["good", "cofires_with"] == "twin" and eff.loc["good", "max_jaccard"] == 1.0
    assert not any("bad" in set(p) for p in pairs[["indicator", "other"]].to_numpy())
    # ranked best first
    assert list(eff.index[:2]) == ["good", "twin"] or list(eff.index[:2]) == ["twin", "good"]
    m = summary_metrics(eff)
    assert m["effectiveness.never_fired_on_audits"] == 1 and m["effectiveness.lift_below_1"] == 1
    assert m["effectiveness.cofiring_pairs"] == 1


def test_population_firing_rate_is_weighted() -> None:
    X, ex = _audits()
    pop = pd.DataFrame(
        {c: [1, 0, 0] for c in X.columns if c.endswith("__fired")} | {"weight": [1.0, 1.0, 2.0]}
    )
    eff = indicator_effectiveness(X, ex, pop, resamples=50)
    assert eff.loc["good", "fire_rate_population"] == pytest.approx(0.25)


def test_artifacts_round_trip(tmp_path: Path) -> None:
    X, ex = _audits()
    eff = indicator_effectiveness(X, ex, None, resamples=50)
    write_artifacts(eff, tmp_path)
    back = pd.read_csv(tmp_path / "effectiveness" / "indicators.csv", index_col="indicator")
    pd.testing.assert_index_equal(back.index, eff.index)
    assert (tmp_path / "effectiveness" / "cofiring.csv").exists()


def test_training_run_logs_it_and_the_command_prints_it(
    trained: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxrisk.settings import get_settings

    monkeypatch.setenv("TAXRISK_WORKSPACE", trained["workspace"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["tracking_uri"])
    table, _pairs, run_id = load_logged(get_settings())
    assert len(table) > 10 and {"precision", "lift", "random_precision_low"} <= set(table.columns)
    assert table["fired_audits"].sum() > 0
    out = tmp_path / "eff.csv"
    r = CliRunner().invoke(app, ["effectiveness", "--csv", str(out)], env=dict(os.environ))
    assert r.exit_code == 0, r.output
    assert "indicator effectiveness" in r.output and run_id in r.output
    assert pd.read_csv(out, index_col="indicator").shape[0] == len(table)
    r2 = CliRunner().invoke(app, ["effectiveness", "--run", run_id], env=dict(os.environ))
    assert r2.exit_code == 0 and str(table.index[0]) in r2.output
    # the model card says which figures do not discriminate, with intervals for the others
    import mlflow

    mlflow.set_tracking_uri(trained["tracking_uri"])
    card = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model_card.md"))
    text = card.read_text(encoding="utf-8")
    assert "bootstrap interval" in text and "Indicator effectiveness" in text
    run = mlflow.get_run(run_id)
    assert "model.all_yield_capture_low" in run.data.metrics
    assert "validation.closure_horizon_days" in run.data.params


def test_missing_artifact_is_a_clear_error(workspace: Path) -> None:
    from taxrisk.training.effectiveness import EffectivenessNotFound

    from taxrisk.settings import get_settings

    with pytest.raises(EffectivenessNotFound):
        load_logged(get_settings(), model_uri="models:/nope/1")


def test_an_indicator_that_never_fires_cofires_with_nothing() -> None:
    X, ex = _audits()
    eff = indicator_effectiveness(X, ex, None, resamples=20)
    assert eff.loc["never", "cofires_with"] == "" and pd.isna(eff.loc["never", "max_jaccard"])
    assert eff.loc["bad", "cofires_with"] == "always"
