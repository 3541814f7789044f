"""Time-split validation: the split, the metrics, the comparison of rankings.

The split: audits are ordered by ``selected_on``; the last ``validation_share`` of them (by
selection date, cut at that quantile) validate. Training uses audits selected *and closed*
before the cut (as if the model had been trained on the cut date), validation the audits
selected on or after it (closed on or before the as-of date).

Metrics of a ranking on validation audits (higher is better):

``all_yield_capture``  recovered yuan in the top share by score / best possible (every audit)
``all_precision``      adjusted share among the top share (every audit)
``all_auc``            ROC AUC of the score for adjusted (every audit)
``random_*``           the same on the random stratum (selection_reason "random" with a known
                       selection_probability), weighted by 1/selection_probability: the
                       unbiased estimate for the population, from few audits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .metrics import share_capture, share_precision, weighted_auc

__all__ = ["METRICS", "comparison_table", "metric_on_rows", "ranking_metrics", "time_split"]

#: the metrics of :func:`ranking_metrics`, in its order
METRICS = (
    "all_yield_capture",
    "all_precision",
    "all_auc",
    "random_yield_capture",
    "random_precision",
    "random_auc",
)


def time_split(
    examples: pd.DataFrame, validation_share: float
) -> tuple[pd.Timestamp, np.ndarray, np.ndarray]:
    """(cut date, train mask, validation mask) over ``examples`` (see module docstring)."""
    sel = pd.to_datetime(examples["selected_on"])
    cut = pd.Timestamp(sel.quantile(1 - validation_share)).normalize()
    closed = pd.to_datetime(examples["closed_on"])
    train = ((sel < cut) & (closed < cut)).to_numpy()
    val = (sel >= cut).to_numpy()
    return cut, train, val


def ranking_metrics(
    scores: np.ndarray, examples: pd.DataFrame, top_share: float
) -> dict[str, float]:
    """The metrics of one ranking's ``scores`` on validation ``examples`` (same order)."""
    s = np.asarray(scores, dtype=float)
    adj = examples["adjusted"].to_numpy(dtype=float)
    rec = examples["tax_recovered"].to_numpy(dtype=float)
    out = {
        "all_yield_capture": share_capture(s, rec, top_share),
        "all_precision": share_precision(s, adj, top_share),
        "all_auc": weighted_auc(s, adj),
    }
    prob = pd.to_numeric(examples["selection_probability"], errors="coerce").to_numpy(dtype=float)
    rnd = (examples["selection_reason"].astype("str") == "random").to_numpy() & (prob > 0)
    if rnd.sum() >= 2:
        w = 1.0 / prob[rnd]
        out |= {
            "random_yield_capture": share_capture(s[rnd], rec[rnd], top_share, w),
            "random_precision": share_precision(s[rnd], adj[rnd], top_share, w),
            "random_auc": weighted_auc(s[rnd], adj[rnd], w),
        }
    else:
        out |= {"random_yield_capture": np.nan, "random_precision": np.nan, "random_auc": np.nan}
    return out


def comparison_table(
    scores: dict[str, np.ndarray], examples: pd.DataFrame, top_share: float
) -> pd.DataFrame:
    """One row per ranking (index ``ranking``), one column per metric."""
    rows = {name: ranking_metrics(s, examples, top_share) for name, s in scores.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "ranking"
    return frame


def metric_on_rows(
    name: str, examples: pd.DataFrame, top_share: float
) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(scores, rows)``: metric ``name`` of ``scores[rows]`` on ``examples.iloc[rows]``.

    ``name``: one of :data:`METRICS`, with or without the ``val_`` prefix. ``scores``: one per
    row of ``examples``; ``rows``: integer positions, repeats allowed (a bootstrap draw). The
    value equals ``ranking_metrics(scores[rows], examples.iloc[rows], top_share)[name]``, at
    the cost of that one metric (the champion gate calls it thousands of times).
    """
    key = name.removeprefix("val_")
    if key not in METRICS:
        raise ValueError(
            f"unknown validation metric {name!r}; expected one of {', '.join(METRICS)}"
        )
    stratum, what = key.split("_", 1)
    adj = examples["adjusted"].to_numpy(dtype=float)
    rec = examples["tax_recovered"].to_numpy(dtype=float)
    prob = pd.to_numeric(examples["selection_probability"], errors="coerce").to_numpy(dtype=float)
    rnd = (examples["selection_reason"].astype("str") == "random").to_numpy() & (prob > 0)

    def f(scores: np.ndarray, rows: np.ndarray) -> float:
        r = np.asarray(rows)
        w = None
        if stratum == "random":
            r = r[rnd[r]]
            if len(r) < 2:
                return float("nan")
            w = 1.0 / prob[r]
        s = np.asarray(scores, dtype=float)[r]
        if what == "yield_capture":
            return share_capture(s, rec[r], top_share, w)
        if what == "precision":
            return share_precision(s, adj[r], top_share, w)
        return weighted_auc(s, adj[r], w)

    return f
