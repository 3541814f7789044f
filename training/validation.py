"""Time-split validation: the split, the metrics, the comparison of rankings, their
bootstrap intervals, and whether a figure can tell rankings apart.

**Not censored.** An audit selected shortly before the as-of date has closed only if it was
quick; the slow ones (often the big ones) are still open and would drop out of validation,
biasing it towards quick, small cases. So validation audits are those selected early
enough to have closed: on or before ``as_of - horizon``, where the horizon is the
``closure_quantile`` (0.9) of ``closed_on - selected_on`` over the closed audits
(:func:`closure_horizon`, the data's own case durations). Audits selected after that are
still used to fit the registered model, never to judge it.

The split (:func:`time_split`): among the uncensored audits, the last ``validation_share``
(by selection date, cut at that quantile) validate; training uses audits selected *and
closed* before the cut (as if the model had been trained on the cut date).

**Decisions on an inner split.** Choices made on the validation audits would be judged on the
audits that made them. :func:`inner_split` splits the training part the same way (its own
cut, the same horizon before the outer cut): the bias method is chosen there, and the outer
validation audits, which that choice did not see, report the result.

**Intervals.** Every figure carries a percentile bootstrap interval (:func:`with_intervals`:
the validation audits resampled with replacement, seeded). **Discrimination**
(:func:`discrimination`): a figure decides nothing when it cannot tell rankings apart: one
audit holds most of the recovered yuan of its sample (every ranking that puts it in the top
captures nearly everything), too few audits back it, or the model's interval and random's
overlap almost entirely. Such figures are flagged, in MLflow and in the model card.

Metrics of a ranking on validation audits (higher is better):

``all_yield_capture``  recovered yuan in the top share by score / best possible (every audit)
``all_precision``      adjusted share among the top share (every audit)
``all_auc``            ROC AUC of the score for adjusted (every audit)
``random_*``           the same on the random stratum (selection_reason "random" with a known
                       selection_probability), weighted by 1/selection_probability: the
                       unbiased estimate for the population, from few audits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import share_capture, share_precision


def weighted_auc(
    scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """ROC AUC of ``scores`` for ``positive`` (ties count half; NaN when only one class is
    present). Equal to ``sklearn.metrics.roc_auc_score`` with ``sample_weight``, without its
    input checks: the bootstrap calls it thousands of times."""
    p = np.asarray(positive).astype(bool)
    s = np.nan_to_num(np.asarray(scores, dtype=float))
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    wp, wn = w * p, w * ~p
    tp, tn = wp.sum(), wn.sum()
    if not (tp > 0 and tn > 0):
        return float("nan")
    order = np.argsort(s, kind="stable")
    ss = s[order]
    _, start = np.unique(ss, return_index=True)
    gp = np.add.reduceat(wp[order], start)
    gn = np.add.reduceat(wn[order], start)
    below = np.cumsum(gn) - gn
    return float((gp * (below + 0.5 * gn)).sum() / (tp * tn))


__all__ = [
    "METRICS",
    "Discrimination",
    "closure_horizon",
    "comparison_table",
    "discrimination",
    "inner_split",
    "metric_on_rows",
    "ranking_metrics",
    "time_split",
    "with_intervals",
]

#: the metrics of :func:`ranking_metrics`, in its order
METRICS = (
    "all_yield_capture",
    "all_precision",
    "all_auc",
    "random_yield_capture",
    "random_precision",
    "random_auc",
)


def closure_horizon(examples: pd.DataFrame, quantile: float) -> pd.Timedelta:
    """The ``quantile`` of ``closed_on - selected_on`` over the closed audits (whole days):
    the longest typical case duration. 0 days when no audit has closed."""
    d = (pd.to_datetime(examples["closed_on"]) - pd.to_datetime(examples["selected_on"])).dropna()
    if d.empty:
        return pd.Timedelta(0)
    return pd.Timedelta(days=int(np.ceil(d.dt.days.quantile(quantile))))


def time_split(
    examples: pd.DataFrame,
    validation_share: float,
    *,
    as_of: dt.date | pd.Timestamp | None = None,
    horizon: pd.Timedelta | None = None,
) -> tuple[pd.Timestamp, np.ndarray, np.ndarray]:
    """(cut date, train mask, validation mask) over ``examples`` (see module docstring).

    With ``as_of`` and ``horizon``, only audits selected on or before ``as_of - horizon``
    validate (the others may not have closed: censored) and the cut is the quantile of
    those. Without them, every audit is eligible (the split before issue 11).
    """
    sel = pd.to_datetime(examples["selected_on"])
    eligible = pd.Series(True, index=examples.index)
    if as_of is not None and horizon is not None:
        eligible = sel <= pd.Timestamp(as_of) - horizon
        if not eligible.any():
            raise ValueError(
                f"no audit was selected {horizon.days} days or more before {as_of}: "
                "nothing can be validated without censoring"
            )
    cut = pd.Timestamp(sel[eligible].quantile(1 - validation_share)).normalize()
    closed = pd.to_datetime(examples["closed_on"])
    train = ((sel < cut) & (closed < cut)).to_numpy()
    val = ((sel >= cut) & eligible).to_numpy()
    return cut, train, val


def inner_split(
    examples: pd.DataFrame,
    train: np.ndarray,
    cut: pd.Timestamp,
    inner_share: float,
    horizon: pd.Timedelta,
) -> tuple[pd.Timestamp, np.ndarray, np.ndarray]:
    """The split of the training part (mask ``train``) at its own cut, as if the outer cut
    were the as-of date: (inner cut, inner train mask, inner validation mask), masks over
    every row of ``examples``. Inner validation audits closed before ``cut`` (they are
    training audits) and were selected at least ``horizon`` before it."""
    part = examples[train]
    icut, itr, iva = time_split(part, inner_share, as_of=cut, horizon=horizon)
    full_tr = np.zeros(len(examples), dtype=bool)
    full_va = np.zeros(len(examples), dtype=bool)
    pos = np.flatnonzero(train)
    full_tr[pos[itr]] = True
    full_va[pos[iva]] = True
    return icut, full_tr, full_va


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


def with_intervals(
    scores: dict[str, np.ndarray],
    examples: pd.DataFrame,
    top_share: float,
    *,
    resamples: int,
    level: float,
    seed: int,
) -> pd.DataFrame:
    """:func:`comparison_table` plus ``<metric>_low`` / ``<metric>_high``: percentile
    bootstrap interval at ``level`` (validation audits resampled with replacement, the same
    draws for every ranking; seeded)."""
    table = comparison_table(scores, examples, top_share)
    n = len(examples)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), int)
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    fns = {m: metric_on_rows(m, examples, top_share) for m in METRICS}
    out = table.copy()
    for m in METRICS:
        lows, highs = [], []
        for name in table.index:
            s = np.asarray(scores[name], dtype=float)
            vals = np.array([fns[m](s, d) for d in draws]) if n else np.array([np.nan])
            vals = vals[np.isfinite(vals)]
            ok = len(vals) >= max(10, resamples // 2)
            lows.append(float(np.quantile(vals, lo_q)) if ok else np.nan)
            highs.append(float(np.quantile(vals, hi_q)) if ok else np.nan)
        out[f"{m}_low"] = lows
        out[f"{m}_high"] = highs
    cols = [c for m in METRICS for c in (m, f"{m}_low", f"{m}_high")]
    return out[cols]


@dataclass(frozen=True)
class Discrimination:
    """Whether one metric can tell rankings apart on these audits; ``reason`` when not."""

    metric: str
    discriminates: bool
    reason: str = ""


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Length of the intersection of two intervals / length of the narrower one (1 when the
    narrower has no width and lies inside the other)."""
    inter = min(a[1], b[1]) - max(a[0], b[0])
    if inter < 0:
        return 0.0
    narrow = min(a[1] - a[0], b[1] - b[0])
    return 1.0 if narrow <= 0 else float(min(inter / narrow, 1.0))


def discrimination(
    table: pd.DataFrame,
    examples: pd.DataFrame,
    *,
    max_single_share: float,
    max_interval_overlap: float,
    min_audits: int,
    model: str = "model",
    reference: str = "random",
) -> dict[str, Discrimination]:
    """Per metric of ``table`` (from :func:`with_intervals`): can it decide anything?

    Not when (first reason found): its sample has fewer than ``min_audits`` audits or
    adjusted audits; (captures) one audit holds more than ``max_single_share`` of the
    sample's recovered yuan (1/p-weighted on the random stratum); the ``model``'s interval
    and the ``reference`` (random) ranking's overlap by more than ``max_interval_overlap``
    of the narrower one.
    """
    prob = pd.to_numeric(examples["selection_probability"], errors="coerce").to_numpy(dtype=float)
    rnd = (examples["selection_reason"].astype("str") == "random").to_numpy() & (prob > 0)
    rec = examples["tax_recovered"].to_numpy(dtype=float)
    adj = examples["adjusted"].to_numpy(dtype=float)
    out: dict[str, Discrimination] = {}
    for m in METRICS:
        stratum = m.split("_", 1)[0]
        mask = rnd if stratum == "random" else np.ones(len(examples), dtype=bool)
        w = 1.0 / prob[mask] if stratum == "random" else np.ones(int(mask.sum()))
        n, n_adj = int(mask.sum()), int(adj[mask].sum())
        reason = ""
        if n < min_audits or n_adj < min_audits:
            reason = (
                f"{n} audits, {n_adj} of them adjusted, in its sample: fewer than "
                f"{min_audits} {'audits' if n < min_audits else 'adjusted audits'}"
            )
        elif m.endswith("yield_capture"):
            yuan = rec[mask] * w
            total = float(yuan.sum())
            top = float(yuan.max()) / total if total > 0 else 1.0
            if top > max_single_share:
                reason = (
                    f"one audit holds {top:.1%} of the recovered yuan of its sample "
                    f"(over {max_single_share:.0%}): any ranking with it on top captures that much"
                )
        if not reason and model in table.index and reference in table.index:
            a = (table.loc[model, f"{m}_low"], table.loc[model, f"{m}_high"])
            b = (table.loc[reference, f"{m}_low"], table.loc[reference, f"{m}_high"])
            if not all(np.isfinite(v) for v in (*a, *b)):
                reason = "no interval (too few resamples with a defined value)"
            else:
                ov = _overlap(a, b)
                if ov > max_interval_overlap:
                    reason = (
                        f"the {model}'s interval [{a[0]:.3f}, {a[1]:.3f}] and {reference}'s "
                        f"[{b[0]:.3f}, {b[1]:.3f}] overlap by {ov:.0%} of the narrower"
                    )
        out[m] = Discrimination(m, not reason, reason)
    return out
