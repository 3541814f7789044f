"""The rankings a model must beat, on the same matrices.

* :func:`old_rules_scores`: the documents' old rules: the count of fired classic indicators
  (``<id>__fired`` for ``id`` in :func:`taxrisk.features.catalog.classic_ids`). Ties are broken
  by the secondary key ``size_column`` (declared sales, larger first) when the matrix has it,
  then by taxpayer id (the caller's stable order). Scores are the count plus a fraction in
  [0, 1) that encodes the secondary key, so ``score`` alone orders the ranking.
* :class:`LogisticYield`: a logistic regression for P(adjusted) times a ridge regression of
  log1p(amount) on the same features (numeric median-imputed and standardized, categorical
  one-hot): the linear analogue of :class:`~taxrisk.training.models.YieldModel`.
* :func:`random_scores`: a seeded random ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .models import categorical_columns

__all__ = ["SIZE_COLUMNS", "LogisticYield", "old_rules_scores", "random_scores"]

# Candidate secondary keys, first present wins: declared sales over the last year or month.
SIZE_COLUMNS = ("sales_12", "sales_12m", "sales_month_avg", "sales")


def _classic_fired(matrix: pd.DataFrame) -> list[str]:
    from taxrisk.features.catalog import classic_ids

    return [f"{i}__fired" for i in classic_ids() if f"{i}__fired" in matrix.columns]


def old_rules_scores(matrix: pd.DataFrame, size_column: str | None = None) -> pd.Series:
    """Old-rules score per row: fired classic indicators (count) + size tiebreak in [0, 1).

    index: as ``matrix``; value: float >= 0, higher = audit first.
    """
    fired = _classic_fired(matrix)
    count = matrix[fired].fillna(0).astype(float).clip(0, 1).sum(axis=1) if fired else 0.0
    count = pd.Series(count, index=matrix.index, dtype=float)
    size_column = size_column or next((c for c in SIZE_COLUMNS if c in matrix.columns), None)
    if size_column is None:
        return count
    size = pd.to_numeric(matrix[size_column], errors="coerce").fillna(-np.inf)
    frac = size.rank(method="first", ascending=True).to_numpy() / (len(size) + 1)
    return count + frac


def random_scores(index: pd.Index, seed: int) -> pd.Series:
    """Uniform random scores in [0, 1) (seeded)."""
    return pd.Series(np.random.default_rng(seed).random(len(index)), index=index)


class LogisticYield:
    """Logistic P(adjusted) x ridge amount on the same features; sklearn-style."""

    def __init__(self, C: float = 1.0, alpha: float = 1.0, seed: int = 42) -> None:
        self.C, self.alpha, self.seed = C, alpha, seed

    def _pre(self, X: pd.DataFrame) -> ColumnTransformer:
        cats = categorical_columns(X)
        nums = [c for c in X.columns if c not in cats]
        return ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()
                    ),
                    nums,
                ),
                ("cat", OneHotEncoder(handle_unknown="ignore", min_frequency=5), cats),
            ]
        )

    @staticmethod
    def _frame(X: pd.DataFrame) -> pd.DataFrame:
        cats = categorical_columns(X)
        out = X.copy()
        for c in cats:
            out[c] = X[c].astype("str").where(X[c].notna(), "missing")
        for c in X.columns:
            if c not in cats:
                out[c] = pd.to_numeric(X[c], errors="coerce").astype("float64")
        return out

    def fit(self, X: pd.DataFrame, adjusted, amount, sample_weight=None) -> LogisticYield:
        """``adjusted`` in {0, 1}; ``amount`` yuan recovered when adjusted."""
        Xf = self._frame(X)
        y = np.asarray(adjusted, dtype=int)
        amt = np.nan_to_num(np.asarray(amount, dtype=float))
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.feature_names_in_ = list(X.columns)
        self.classifier_ = Pipeline(
            [("pre", self._pre(Xf)), ("lr", LogisticRegression(C=self.C, max_iter=2000))]
        )
        self.classifier_.fit(Xf, y, lr__sample_weight=w)
        pos = (y > 0) & (amt > 0)
        self.regressor_ = Pipeline([("pre", self._pre(Xf)), ("ridge", Ridge(alpha=self.alpha))])
        self.regressor_.fit(
            Xf[pos], np.log1p(amt[pos]), ridge__sample_weight=None if w is None else w[pos]
        )
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Columns probability, amount (yuan, clipped to the log range seen), expected_yield."""
        Xf = self._frame(X[self.feature_names_in_])
        p = self.classifier_.predict_proba(Xf)[:, 1]
        a = np.expm1(np.clip(self.regressor_.predict(Xf), 0, 25))
        return pd.DataFrame({"probability": p, "amount": a, "expected_yield": p * a}, index=X.index)
