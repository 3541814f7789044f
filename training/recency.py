"""Recency weighting of labels (issue 11, item 8): recent audits count more.

Audits teach the schemes of the years they were selected in. When evasion moves, an audit of
three years ago describes a city that no longer exists as well as last quarter's does. With
``[training] recency_half_life_months = h > 0`` each training audit's sample weight is
multiplied by ``0.5 ** (age / h)``, ``age`` the months (days / 30.4375) from its
``selected_on`` to the training as-of date: an audit selected one half-life before the
as-of counts half as much as one selected on it. Combined with the selection-bias weights
(:mod:`~taxrisk.training.bias`) by product, then rescaled to mean 1 over the rows of each fit
(so that LightGBM's ``min_child_samples`` and regularisation keep their meaning); the
reference date cancels in that rescaling, so a model fitted on the training part of a time
split is weighted as if trained at its cut.

``h = 0`` (the default) turns it off. Whether it helps is measured, not assumed
(docs/training.md, "Recency weighting of labels").
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

__all__ = ["DAYS_PER_MONTH", "combine_weights", "recency_weights"]

#: the average Gregorian month, in days (365.25 / 12)
DAYS_PER_MONTH = 30.4375


def recency_weights(
    selected_on: pd.Series | np.ndarray,
    as_of: dt.date | pd.Timestamp,
    half_life_months: float,
) -> np.ndarray | None:
    """``0.5 ** (age / half_life_months)`` per audit, ``age`` in months from ``selected_on``
    to ``as_of`` (floored at 0); None when ``half_life_months`` is 0 (off).

    Not rescaled: :func:`combine_weights` rescales on the rows of each fit.
    """
    if half_life_months < 0:
        raise ValueError(f"recency half-life must be >= 0 months, got {half_life_months}")
    if half_life_months == 0:
        return None
    sel = pd.to_datetime(pd.Series(np.asarray(selected_on)))
    if sel.isna().any():
        raise ValueError("recency weights need every audit's selected_on")
    age_days = (pd.Timestamp(as_of) - sel) / pd.Timedelta(days=1)
    age = np.clip(age_days.to_numpy(dtype=float), 0.0, None) / DAYS_PER_MONTH
    return np.power(0.5, age / float(half_life_months))


def combine_weights(weights: np.ndarray | None, recency: np.ndarray | None) -> np.ndarray | None:
    """Sample weights of one fit: ``weights`` (e.g. the selection-bias weights of its rows,
    or None) times ``recency`` (the recency weights of its rows), rescaled to mean 1.

    Without recency weights, ``weights`` is returned unchanged (None stays unweighted), so a
    run with recency off fits exactly what it fitted before the option existed.
    """
    if recency is None:
        return weights
    w = np.asarray(recency, dtype=float)
    if weights is not None:
        w = w * np.asarray(weights, dtype=float)
    mean = float(w.mean()) if len(w) else 0.0
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError("sample weights must have a positive finite mean")
    return w / mean
