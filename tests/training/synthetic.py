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
