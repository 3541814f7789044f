"""The backtest command (``python -m taxrisk.experiments.backtest``): trains, ranks with the
model and the baselines, writes each ranking and prints the comparison table of
docs/training.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest


def test_the_backtest_ranks_every_active_taxpayer_with_each_ranking(
    demo_world: Path, workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taxrisk.experiments.backtest import main

    out = tmp_path / "bt"
    assert main([str(demo_world), "--as-of", "2025-12-31", "--trials", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.name for p in out.glob("ranking_*.csv"))
    assert files == [
        "ranking_logistic.csv",
        "ranking_model.csv",
        "ranking_model_p.csv",
        "ranking_old.csv",
        "ranking_random.csv",
    ]
    model = pd.read_csv(out / "ranking_model.csv")
    old = pd.read_csv(out / "ranking_old.csv")
    # one row per active taxpayer, the same taxpayers in every ranking, in rank order
    assert model["taxpayer_id"].is_unique and len(model) > 1000
    assert set(model["taxpayer_id"]) == set(old["taxpayer_id"])
    assert model["expected_yield"].is_monotonic_decreasing
    assert "| model | " in printed and "model / old rules capture@K: " in printed
