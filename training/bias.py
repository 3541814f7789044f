"""Selection bias: inverse-propensity weights from the unaudited population.

Audits were chosen by old rules, tips and campaigns, so the audited are not the population
the model will rank. The technique here (DESIGN "Labels are biased"): a *selection model*
estimates, at each snapshot, P(selected | features) from every selected taxpayer and a seeded
sample of the unselected ones (weighted back to their number). Each training audit is then
weighted by 1/P, so that audits of kinds the old selection rarely picked count more, as if
the audited were drawn from the whole population.

Propensities of the training audits are *cross-fitted* (two folds by taxpayer): a row's
propensity comes from the model fitted on the other fold, so an audit cannot "explain
itself". Weights are normalized to median 1, clipped to [1/max_weight, max_weight] and
rescaled to mean 1 (clipping bounds the variance that a few tiny propensities would add).

Whether this helps is measured, not assumed: training runs the model with and without the
weights on the same validation audits and records both (``bias.method = "auto"`` keeps the
better one).
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from .models import categorical_columns, prepare_features

__all__ = ["propensity_weights", "selection_propensity"]

log = logging.getLogger(__name__)

_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 50,
    "colsample_bytree": 0.8,
    "verbose": -1,
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
}


def _fold(taxpayer_ids: pd.Index, seed: int) -> np.ndarray:
    """0/1 fold of each taxpayer id (stable hash, seeded)."""
    h = pd.util.hash_array(np.asarray(taxpayer_ids, dtype=object), hash_key=f"{seed:016d}")
    return (h % 2).astype(int)


def selection_propensity(
    population: pd.DataFrame, rows: pd.DataFrame, seed: int = 42
) -> np.ndarray:
    """P(selected | features) of each row of ``rows``, in (0, 1).

    ``population``: index (snapshot, taxpayer_id), feature columns plus ``selected`` (0/1)
    and ``weight`` (taxpayers a row stands for). ``rows``: feature rows to score, index
    (snapshot, taxpayer_id) so that each is scored by the fold that did not see its taxpayer.
    """
    feats = [c for c in population.columns if c not in ("selected", "weight")]
    cats = categorical_columns(population[feats])
    categories = {c: sorted(population[c].dropna().astype("str").unique().tolist()) for c in cats}
    X = prepare_features(population[feats], feats, categories)
    y = population["selected"].to_numpy()
    w = population["weight"].to_numpy(dtype=float)
    Xr = prepare_features(rows[feats], feats, categories)
    fold_pop = _fold(population.index.get_level_values(-1), seed)
    fold_rows = _fold(rows.index.get_level_values(-1), seed)
    p = np.full(len(rows), np.nan)
    for f in (0, 1):
        train = fold_pop != f
        if len(np.unique(y[train])) < 2:
            continue
        m = lgb.LGBMClassifier(**_PARAMS, random_state=seed)
        m.fit(X[train], y[train], sample_weight=w[train])
        target = fold_rows == f
        if target.any():
            p[target] = np.asarray(m.predict_proba(Xr[target]))[:, 1]
    overall = float(np.average(y, weights=w))
    return np.clip(np.nan_to_num(p, nan=overall), 1e-6, 1.0)


def propensity_weights(propensity: np.ndarray, max_weight: float = 20.0) -> np.ndarray:
    """1/propensity, normalized to median 1, clipped to [1/max_weight, max_weight], mean 1."""
    w = 1.0 / np.asarray(propensity, dtype=float)
    w = np.clip(w / np.median(w), 1.0 / max_weight, max_weight)
    return w / w.mean()
