"""Scoring: risk levels, measures and the ranking from predictions; bad columns named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import audits_frame
from taxrisk.serving.config import RiskLevel, load_config
from taxrisk.serving.scoring import RANKING_COLUMNS, rank_predictions, risk_levels, score_matrix
from taxrisk.training.models import FeatureMismatch, YieldModel

PARAMS = {"n_estimators": 40, "num_leaves": 7, "min_child_samples": 10}


@pytest.fixture(scope="module")
def fitted():
    X, ex = audits_frame(n=400, seed=5)
    return YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"]), X, ex


def test_ranking_and_risk_levels() -> None:
    levels = (
        RiskLevel(name="high", top_share=0.25, min_probability=0.5),
        RiskLevel(name="medium", top_share=0.5, min_probability=0.0),
    )
    ey = np.array([10.0, 40.0, 30.0, 20.0])
    p = np.array([0.9, 0.4, 0.8, 0.1])
    # positions by yield: 40 (p .4) -> 0.25 but p < .5 -> medium; 30 -> 0.5 medium; rest minimal
    assert risk_levels(ey, p, levels).tolist() == ["minimal", "medium", "medium", "minimal"]
    pred = pd.DataFrame({"probability": p, "expected_yield": ey}, index=["t1", "t2", "t3", "t4"])
    cfg = load_config()
    r = rank_predictions(pred, pd.Series(["U1", "U2", "U1", "U2"], index=pred.index), levels, cfg)
    assert r.columns.tolist() == RANKING_COLUMNS
    assert r["taxpayer_id"].tolist() == ["t2", "t3", "t4", "t1"]
    assert r["rank"].tolist() == [1, 2, 3, 4]
    # medium -> notice, minimal -> outreach (serving/config.toml [measures].by_level)
    assert r["recommended_measure"].tolist() == ["notice", "notice", "outreach", "outreach"]
    assert r["expected_amount"].tolist() == pytest.approx([100.0, 37.5, 200.0, 10.0 / 0.9])
    assert [lv.name for lv in cfg.risk_levels] == ["high", "medium", "low"]


def test_audit_needs_probability_and_yield() -> None:
    cfg = load_config()
    line = cfg.measures.audit_min_yield
    assert cfg.measure_for("high", 0.9, line) == "audit"
    assert cfg.measure_for("high", 0.9, line - 1) == "assessment"
    assert cfg.measure_for("high", cfg.measures.audit_min_probability - 0.01, line) == "assessment"
    assert cfg.measure_for("low", 0.99, 10 * line) == "guidance"


def test_score_matrix_names_bad_columns(fitted) -> None:
    model, X, _ = fitted
    matrix = X.assign(unit_id="U1").drop(columns=["ratio"])
    with pytest.raises(FeatureMismatch, match="ratio"):
        score_matrix(model, matrix, load_config())


def test_score_matrix_ranks_every_row(fitted) -> None:
    model, X, _ = fitted
    r = score_matrix(model, X.assign(unit_id="U1"), load_config())
    assert len(r) == len(X) and sorted(r["rank"]) == list(range(1, len(X) + 1))
    assert (np.diff(r["expected_yield"].to_numpy()) <= 0).all()


def test_a_missing_optional_table_is_named(fitted) -> None:
    """A model trained with an optional table cannot score a folder without it: the error
    names the table, not only the columns (the matrix's switched-off reasons)."""
    model, X, _ = fitted
    matrix = X.assign(unit_id="U1").drop(columns=["a__fired"])
    matrix.attrs["switched_off"] = {"a": "missing optional table social_insurance"}
    with pytest.raises(
        FeatureMismatch,
        match=r"a__fired.*lacks the optional table\(s\) "
        r"social_insurance",
    ):
        score_matrix(model, matrix, load_config())
