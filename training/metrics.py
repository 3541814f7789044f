"""Pure ranking metrics on arrays (no I/O): usable anywhere, from validation to monitoring.

* :func:`ranked`: a stable order of items by descending score.
* :func:`capture_at_k` / :func:`hit_rate_at_k`: for values (yuan) listed in rank order
  (CONTRACT section 4).
* :func:`share_capture`, :func:`share_precision`, :func:`weighted_auc`: validation metrics on
  audits, with optional weights (1/selection_probability for the random stratum). "Top share"
  is read on the weighted population: items are taken best first until their weight reaches
  ``share`` of the total weight.

:mod:`taxrisk.training.evaluation` (the only module that reads ``truth/``) builds the
contract evaluation on top of these.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

__all__ = [
    "HIT_THRESHOLD",
    "capture_at_k",
    "hit_rate_at_k",
    "ranked",
    "share_capture",
    "share_precision",
    "weighted_auc",
]

HIT_THRESHOLD = 1000.0  # yuan: a "hit" has a recoverable gap above this


def ranked(scores: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``scores`` best (highest) first; ties by ascending ``tiebreak`` then index."""
    scores = np.asarray(scores, dtype=float)
    keys: list[np.ndarray] = [np.arange(len(scores))]
    if tiebreak is not None:
        tb = np.asarray(tiebreak)
        if not np.issubdtype(tb.dtype, np.number):
            tb = np.unique(tb.astype(str), return_inverse=True)[1]
        keys.insert(0, tb)
    keys.insert(0, -np.nan_to_num(scores, nan=-np.inf))
    return np.lexsort(keys[::-1])


def capture_at_k(gap_in_rank_order: np.ndarray, k: int) -> float:
    """Sum of the first ``k`` values / sum of the ``k`` largest values (1.0 = oracle).

    ``gap_in_rank_order``: yuan, non-negative, listed in the ranking's order. 0/0 -> nan.
    """
    g = np.asarray(gap_in_rank_order, dtype=float)
    k = min(int(k), len(g))
    best = np.sort(g)[::-1][:k].sum()
    return float(g[:k].sum() / best) if best > 0 else float("nan")


def hit_rate_at_k(gap_in_rank_order: np.ndarray, k: int, threshold: float = HIT_THRESHOLD) -> float:
    """Share of the first ``k`` values above ``threshold`` yuan."""
    g = np.asarray(gap_in_rank_order, dtype=float)
    k = min(int(k), len(g))
    return float((g[:k] > threshold).mean()) if k > 0 else float("nan")


def _top_mask(order: np.ndarray, weights: np.ndarray, share: float) -> np.ndarray:
    """Boolean mask of the items (original positions) in the top ``share`` of total weight."""
    w = weights[order]
    cum = np.cumsum(w)
    take = cum <= share * w.sum() + 1e-9
    if not take.any() and len(take):
        take[0] = True  # at least one item
    mask = np.zeros(len(weights), dtype=bool)
    mask[order[take]] = True
    return mask


def share_capture(
    scores: np.ndarray,
    values: np.ndarray,
    share: float,
    weights: np.ndarray | None = None,
) -> float:
    """Weighted ``values`` (yuan) in the top ``share`` by score / the same for the oracle order.

    1.0: the scores order the top share as well as the values themselves would.
    """
    v = np.asarray(values, dtype=float)
    w = np.ones(len(v)) if weights is None else np.asarray(weights, dtype=float)
    got = (v * w)[_top_mask(ranked(scores), w, share)].sum()
    best = (v * w)[_top_mask(ranked(v), w, share)].sum()
    return float(got / best) if best > 0 else float("nan")


def share_precision(
    scores: np.ndarray,
    positive: np.ndarray,
    share: float,
    weights: np.ndarray | None = None,
) -> float:
    """Weighted share of positives among the top ``share`` by score."""
    p = np.asarray(positive, dtype=float)
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=float)
    mask = _top_mask(ranked(scores), w, share)
    return float((p * w)[mask].sum() / w[mask].sum()) if mask.any() else float("nan")


def weighted_auc(
    scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """ROC AUC of ``scores`` for ``positive`` (nan when only one class is present)."""
    p = np.asarray(positive).astype(int)
    if p.min(initial=0) == p.max(initial=0):
        return float("nan")
    return float(roc_auc_score(p, np.nan_to_num(np.asarray(scores, float)), sample_weight=weights))
