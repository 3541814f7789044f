"""Optuna tuning of the two LightGBM models of :class:`~taxrisk.training.models.YieldModel`.

Each model has its own study (``<name>-classifier``, ``<name>-regressor``) in the workspace's
Optuna SQLite store. An objective is the mean over time-ordered folds of the training audits
(train on earlier selections, early-stop and score on the next block; the number of trees is
the best trial's mean stopping round): weighted log loss of P(adjusted) for
the classifier, RMSE of log1p(tax recovered) on adjusted audits for the regressor. The value
after each fold is reported so that the median pruner stops bad trials early.

Reproducible: the TPE sampler is seeded, trials run one at a time (``n_jobs=1``: the pruner
sees the same history), LightGBM is deterministic on one thread, and the rows are put in one
order (by selection date, then row label) before the folds are cut, so the same rows and seed
give the same parameters in whatever order the rows come.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.metrics import log_loss

from .models import categorical_columns, prepare_features

__all__ = ["suggest_params", "time_folds", "tune"]

log = logging.getLogger(__name__)

_BASE = {"verbose": -1, "n_jobs": 1, "deterministic": True, "force_row_wise": True}


def _fit(model: lgb.LGBMModel, X: pd.DataFrame, y: np.ndarray, **kwargs: Any) -> None:
    """``model.fit`` with an evaluation set: LightGBM 4.7 turns ``eval_X``/``eval_y`` into its
    own deprecated ``eval_set`` internally and then warns about it; nothing to fix here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lgb.basic.LGBMDeprecationWarning)
        model.fit(X, y, **kwargs)


def time_folds(order: np.ndarray, n_folds: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window folds: positions sorted by ``order``; fold i trains on blocks < i+1."""
    idx = np.argsort(order, kind="stable")
    blocks = np.array_split(idx, n_folds + 1)
    return [(np.concatenate(blocks[: i + 1]), blocks[i + 1]) for i in range(n_folds)]


def suggest_params(trial: optuna.Trial, space: dict[str, list[float]]) -> dict[str, Any]:
    """LightGBM parameters drawn from the configured search space."""
    out: dict[str, Any] = {}
    for name, (lo, hi) in space.items():
        if name in ("num_leaves", "n_estimators"):
            out[name] = trial.suggest_int(name, int(lo), int(hi))
        elif name == "min_child_samples":
            out[name] = trial.suggest_int(name, int(lo), int(hi), log=True)
        elif name in ("learning_rate", "reg_lambda"):
            out[name] = trial.suggest_float(name, float(lo), float(hi), log=True)
        else:
            out[name] = trial.suggest_float(name, float(lo), float(hi))
    return out


def tune(
    kind: str,
    X: pd.DataFrame,
    adjusted: np.ndarray,
    amount: np.ndarray,
    order: np.ndarray,
    *,
    base_params: dict[str, Any],
    space: dict[str, list[float]],
    trials: int,
    storage: str | None,
    study_name: str,
    seed: int,
    sample_weight: np.ndarray | None = None,
    monotone: list[int] | None = None,
    max_estimators: int = 1000,
    early_stopping_rounds: int = 30,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], optuna.Study | None]:
    """Best LightGBM parameters for ``kind`` ("classifier" or "regressor").

    ``order``: the selection date of each row (folds follow time; ties by row label, so the
    result does not depend on the rows' order). Each fold fits up to
    ``max_estimators`` trees with early stopping on the fold's later block; the best trial's
    mean stopping round becomes ``n_estimators``. Returns ``base_params`` overlaid with the
    best trial's parameters, and the study (None when ``trials`` is 0).
    """
    if trials <= 0:
        return dict(base_params), None
    # rows in one order whatever order they came in (the folds and LightGBM's bagging follow
    # positions): by ``order``, then by row label
    labels = np.unique(X.index.astype("str").to_numpy(), return_inverse=True)[1]
    perm = np.lexsort((labels, np.asarray(order)))
    X, order = X.iloc[perm], np.asarray(order)[perm]
    adjusted, amount = np.asarray(adjusted)[perm], np.asarray(amount)[perm]
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight)[perm]
    cats = categorical_columns(X)
    categories = {c: sorted(X[c].dropna().astype("str").unique().tolist()) for c in cats}
    Xp = prepare_features(X, list(X.columns), categories)
    y = np.asarray(adjusted, dtype=float)
    amt = np.nan_to_num(np.asarray(amount, dtype=float))
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if kind == "regressor":
        keep = (y > 0) & (amt > 0)
        Xp, target, w, order = Xp[keep], np.log1p(amt[keep]), w[keep], np.asarray(order)[keep]
    else:
        target = y.astype(int)
    folds = time_folds(np.asarray(order))

    def objective(trial: optuna.Trial) -> float:
        params = {**_BASE, **base_params, **suggest_params(trial, space), "random_state": seed}
        params["n_estimators"] = max_estimators
        scores, rounds = [], []
        stop = [lgb.early_stopping(early_stopping_rounds, verbose=False)]
        for step, (tr, va) in enumerate(folds):
            fit = {
                "sample_weight": w[tr],
                "eval_set": [(Xp.iloc[va], target[va])],
                "eval_sample_weight": [w[va]],
                "callbacks": stop,
            }
            if kind == "classifier":
                if len(np.unique(target[tr])) < 2 or len(np.unique(target[va])) < 2:
                    continue
                m = lgb.LGBMClassifier(**params, monotone_constraints=monotone)
                _fit(m, Xp.iloc[tr], target[tr], eval_metric="binary_logloss", **fit)
                p = np.clip(np.asarray(m.predict_proba(Xp.iloc[va]))[:, 1], 1e-6, 1 - 1e-6)
                scores.append(log_loss(target[va], p, sample_weight=w[va]))
            else:
                if len(tr) < 5 or len(va) < 1:
                    continue
                m = lgb.LGBMRegressor(**params)
                _fit(m, Xp.iloc[tr], target[tr], eval_metric="l2", **fit)
                err = m.predict(Xp.iloc[va]) - target[va]
                scores.append(float(np.sqrt(np.average(err**2, weights=w[va]))))
            rounds.append(m.best_iteration_ or max_estimators)
            trial.report(float(np.mean(scores)), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("n_estimators", int(np.ceil(np.mean(rounds))) if rounds else None)
        return float(np.mean(scores)) if scores else float("inf")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )
    done = [] if callback is None else [lambda _s, t: callback(t.number + 1, trials)]
    study.optimize(objective, n_trials=trials, n_jobs=1, callbacks=done)
    best: dict[str, Any] = {}
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        best = dict(study.best_params)
        if study.best_trial.user_attrs.get("n_estimators"):
            best["n_estimators"] = study.best_trial.user_attrs["n_estimators"]
    log.info("%s: best %s -> %s", study_name, best, study.best_value if best else None)
    return {**base_params, **best}, study
