"""A seeded synthetic audit set (numpy only) for model, tuning and tracking tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def audits_frame(n: int = 1500, seed: int = 0, shuffle_labels: bool = False):
    """(X, examples): features with a planted signal, and audit rows (selected_on, labels)."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "industry": pd.Categorical(rng.choice(["A", "B", "C"], n)),
            "sales_12": rng.lognormal(12, 1, n),
            "ratio": rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
            "a__fired": rng.integers(0, 2, n).astype("int8"),
        },
        index=pd.Index([f"C{i:05d}" for i in range(n)], name="case_id"),
    )
    logit = -0.5 + 1.5 * X["a__fired"] + 1.2 * X["ratio"]
    adjusted = (rng.random(n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    amount = np.where(
        adjusted == 1, X["sales_12"].to_numpy() * 0.02 * rng.lognormal(0, 0.3, n), 0.0
    )
    if shuffle_labels:
        perm = rng.permutation(n)
        adjusted, amount = adjusted[perm], amount[perm]
    selected = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 700, n)), "D")
    reason = np.where(rng.random(n) < 0.2, "random", "rule")
    ex = pd.DataFrame(
        {
            "taxpayer_id": [f"T{i}" for i in range(n)],
            "selected_on": selected,
            "closed_on": selected + pd.Timedelta(days=60),
            "selection_reason": reason,
            "selection_probability": np.where(reason == "random", 0.05, np.nan),
            "adjusted": adjusted,
            "tax_recovered": amount,
        },
        index=X.index,
    )
    return X, ex


def drifting_audits(n: int = 3000, seed: int = 0, months: int = 36, flip_months: int = 12):
    """(X, examples, as_of): audits selected over ``months`` months up to ``as_of`` whose label
    rule flips ``flip_months`` before it: earlier, high ``ratio`` means adjusted; in the last
    ``flip_months``, low ``ratio`` does (the evasion moved). Amounts follow sales."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp("2025-12-31")
    start = as_of - pd.DateOffset(months=months)
    days = (as_of - start).days
    selected = start + pd.to_timedelta(np.sort(rng.integers(0, days, n)), "D")
    X = pd.DataFrame(
        {
            "industry": pd.Categorical(rng.choice(["A", "B", "C"], n)),
            "sales_12": rng.lognormal(12, 0.5, n),
            "ratio": rng.normal(0, 1, n),
            "noise": rng.normal(0, 1, n),
        },
        index=pd.Index([f"D{i:05d}" for i in range(n)], name="case_id"),
    )
    new = np.asarray(selected > as_of - pd.DateOffset(months=flip_months))
    sign = np.where(new, -1.0, 1.0)
    logit = -0.5 + 2.0 * sign * X["ratio"].to_numpy()
    adjusted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    amount = np.where(
        adjusted == 1, X["sales_12"].to_numpy() * 0.02 * rng.lognormal(0, 0.3, n), 0.0
    )
    ex = pd.DataFrame(
        {
            "taxpayer_id": [f"T{i}" for i in range(n)],
            "selected_on": selected,
            "closed_on": selected + pd.Timedelta(days=30),
            "adjusted": adjusted,
            "tax_recovered": amount,
            "new_rule": new,
        },
        index=X.index,
    )
    return X, ex, as_of
