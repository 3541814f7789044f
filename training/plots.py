"""Figures of a training run, each written to a PNG file (matplotlib, Agg backend).

* :func:`yield_curve`: cumulative recovered yuan vs number of audits, per ranking.
* :func:`calibration_plot`: mean predicted P(adjusted) vs observed adjusted rate by decile.
* :func:`importance_plot`: LightGBM gain importance of the classifier and the regressor.
* :func:`shap_summary_plot`: the shap library's summary (beeswarm) of TreeSHAP contributions
  computed by LightGBM (``pred_contrib``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .metrics import ranked

__all__ = ["calibration_plot", "importance_plot", "shap_summary_plot", "yield_curve"]


def yield_curve(
    scores: dict[str, np.ndarray], recovered: np.ndarray, path: Path, title: str = ""
) -> Path:
    """Recovered yuan captured by the first n audits of each ranking (plus the oracle)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rec = np.asarray(recovered, dtype=float)
    n = np.arange(1, len(rec) + 1)
    ax.plot(n, np.cumsum(np.sort(rec)[::-1]), color="black", ls=":", label="oracle")
    for name, s in scores.items():
        ax.plot(n, np.cumsum(rec[ranked(s)]), label=name)
    ax.set_xlabel("number of audits (validation, best first)")
    ax.set_ylabel("tax recovered (yuan)")
    ax.set_title(title or "Yield curve on validation audits")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration_plot(
    probability: np.ndarray, adjusted: np.ndarray, path: Path, bins: int = 10
) -> Path:
    """Observed adjusted rate vs mean predicted probability in quantile bins."""
    p = np.asarray(probability, dtype=float)
    y = np.asarray(adjusted, dtype=float)
    frame = pd.DataFrame({"p": p, "y": y})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(p)), labels=False)
    agg = frame.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfect")
    ax.plot(agg["p"], agg["y"], marker="o", label="model")
    ax.set_xlabel("predicted P(adjusted)")
    ax.set_ylabel("observed adjusted rate")
    ax.set_title("Calibration on validation audits")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def importance_plot(importance: pd.DataFrame, path: Path, top: int = 25) -> Path:
    """Horizontal bars of gain importance (classifier and regressor), top features."""
    imp = importance.head(top).iloc[::-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, max(4, 0.28 * len(imp) + 1)), sharey=True)
    axes[0].barh(imp.index, imp["classifier_gain"])
    axes[0].set_title("P(adjusted): gain")
    axes[1].barh(imp.index, imp["regressor_gain"], color="tab:orange")
    axes[1].set_title("amount: gain")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shap_summary_plot(contributions: pd.DataFrame, X: pd.DataFrame, path: Path) -> Path:
    """shap summary plot of per-row contributions (log-odds of P(adjusted))."""
    values = contributions.drop(columns=["bias"]).to_numpy()
    display = pd.DataFrame(
        {
            c: (
                X[c].cat.codes.replace(-1, np.nan).astype(float)
                if isinstance(X[c].dtype, pd.CategoricalDtype)
                else X[c].astype(float)
            )
            for c in X.columns
        },
        index=X.index,
    )
    plt.figure()
    with warnings.catch_warnings():
        # shap 0.51 calls matplotlib APIs slated for deprecation (Colormap.set_bad) and seeds
        # NumPy's global RNG for its jitter (a FutureWarning in NumPy 2.x): its own business
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import shap

        shap.summary_plot(values, display, show=False, max_display=20)
    fig = plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
