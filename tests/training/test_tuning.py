"""Optuna tuning: seeded and reproducible, stored in SQLite, with pruning wired in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from synthetic import audits_frame
from taxrisk.training.config import load_config
from taxrisk.training.tuning import time_folds, tune


def test_time_folds_train_before_validate() -> None:
    order = np.array([5, 1, 4, 2, 3, 0, 7, 6])
    for tr, va in time_folds(order, n_folds=3):
        assert order[tr].max() < order[va].min()


def test_tuning_is_reproducible_and_stored(tmp_path: Path) -> None:
    X, ex = audits_frame(n=500, seed=4)
    cfg = load_config()
    storage = f"sqlite:///{tmp_path / 'studies.db'}"
    kwargs = dict(
        base_params={"n_estimators": 30}, space=cfg.search_space, trials=3, storage=storage, seed=7
    )
    results = []
    for i in range(2):
        params, study = tune(
            "classifier",
            X,
            ex["adjusted"].to_numpy(),
            ex["tax_recovered"].to_numpy(),
            ex["selected_on"].to_numpy(),
            study_name=f"s{i}",
            **kwargs,
        )
        results.append(params)
        assert len(study.trials) == 3
        # every trial reported an intermediate value per fold, so the pruner can act
        assert all(t.intermediate_values for t in study.trials)
    assert results[0] == results[1]
    stored = optuna.load_study(study_name="s0", storage=storage)
    assert stored.best_params.items() <= results[0].items()
    reg, _ = tune(
        "regressor",
        X,
        ex["adjusted"].to_numpy(),
        ex["tax_recovered"].to_numpy(),
        ex["selected_on"].to_numpy(),
        study_name="r",
        **kwargs,
    )
    assert set(cfg.search_space) <= set(reg)
    none, study = tune(
        "classifier",
        X,
        ex["adjusted"].to_numpy(),
        ex["tax_recovered"].to_numpy(),
        ex["selected_on"].to_numpy(),
        study_name="z",
        **{**kwargs, "trials": 0},
    )
    assert study is None and none == {"n_estimators": 30}
