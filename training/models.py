"""The estimators: P(adjusted) x amount recovered when adjusted = expected yield (yuan).

:class:`YieldModel` follows the scikit-learn estimator contract: parameters in ``__init__``,
learning in :meth:`YieldModel.fit`, fitted state in attributes ending with ``_``. It knows
nothing of MLflow or Optuna (tuning wraps it, tracking logs it).

* classifier: LightGBM binary, target ``adjusted`` (1 = the audit adjusted the tax).
* regressor: LightGBM on ``log1p(tax_recovered)`` of the adjusted audits only; predictions are
  back-transformed with Duan's smearing factor so that they estimate the mean amount (yuan),
  not the median.
* expected yield = P(adjusted) x amount (yuan). Late fees and penalties are not targets.

Tail prior (``training/anomaly.py``): optionally, :meth:`YieldModel.with_tail_prior` blends
the classifier's P(adjusted) with an unsupervised, industry-relative prior by a logarithmic
pool, ``p = p_model ** (1 - w) * p_tail ** w``, the ranking's insurance against schemes no past audit has seen;
``predict`` returns the blended probability and expected yield, ``predict_proba`` the
classifier's alone.

Monotone constraint (the domain demands it): a fired indicator (column ``<id>__fired`` = 1)
may never lower P(adjusted); ``monotone_fired=False`` lifts it.

Fitted state records the feature names, their order and the categories of the categorical
columns; :meth:`YieldModel.prepare` checks a matrix against them and names the missing and
unexpected columns (:class:`FeatureMismatch`).
"""

from __future__ import annotations

import logging
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from taxrisk.errors import TaxriskError

from .anomaly import TailPrior, pool

__all__ = ["FeatureMismatch", "NotFitted", "YieldModel", "prepare_features"]

log = logging.getLogger(__name__)

_BASE = {"verbose": -1, "n_jobs": 1, "deterministic": True, "force_row_wise": True}


class FeatureMismatch(TaxriskError):
    """A matrix does not have the columns a model was fitted on."""

    def __init__(self, missing: list[str], unexpected: list[str], *, hint: str = "") -> None:
        self.missing, self.unexpected = missing, unexpected
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} column(s) {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} column(s) {_names(unexpected)}")
        super().__init__(
            "feature matrix does not match the model: "
            + "; ".join(parts)
            + f" ({hint or 'retrain the model on the current feature catalog'})"
        )


class NotFitted(TaxriskError):
    """The model was used before :meth:`YieldModel.fit`."""


def _names(cols: list[str]) -> str:
    return ", ".join(cols[:5]) + (", ..." if len(cols) > 5 else "")


def prepare_features(
    matrix: pd.DataFrame,
    feature_names: list[str],
    categories: dict[str, list[str]],
    *,
    allow_extra: bool = False,
) -> pd.DataFrame:
    """``matrix`` restricted to ``feature_names`` in order, typed as at fit time.

    Numeric columns become float64; categorical columns become ``category`` with the fit-time
    categories (unseen values become missing). Raises :class:`FeatureMismatch` naming missing
    columns, and unexpected ones unless ``allow_extra``.
    """
    cols = set(matrix.columns)
    missing = [c for c in feature_names if c not in cols]
    known = set(feature_names)
    unexpected = [] if allow_extra else [c for c in matrix.columns if c not in known]
    if missing or unexpected:
        raise FeatureMismatch(missing, unexpected)
    # Numeric columns of a numeric dtype convert in one block (one taxpayer on demand: 50 ms
    # column by column, mostly overhead); others go through to_numeric one by one.
    # (dtypes read once: a column access copies the matrix's attrs each time)
    dtypes = matrix.dtypes
    cats = [c for c in feature_names if c in categories]
    plain = [
        c for c in feature_names if c not in categories and pd.api.types.is_numeric_dtype(dtypes[c])
    ]
    block = pd.DataFrame(
        matrix[plain].to_numpy(dtype="float64", na_value=np.nan) if plain else None,
        index=matrix.index,
        columns=plain,
    )
    out: dict[str, Any] = {}
    for c in feature_names:
        if c in categories:
            s = matrix[c]
            text = s.astype("str").where(s.notna())
            known = text.where(text.isin(categories[c]))  # unseen values become missing
            out[c] = pd.Categorical(known, categories=categories[c])
        elif c not in block.columns:
            out[c] = pd.to_numeric(matrix[c], errors="coerce").astype("float64")
    if not cats and len(out) == 0:
        return block[list(feature_names)]
    rest = pd.DataFrame(out, index=matrix.index)
    return pd.concat([block, rest], axis=1)[list(feature_names)]


def categorical_columns(matrix: pd.DataFrame) -> list[str]:
    """Columns to treat as categorical: category, string or object dtype."""
    return [
        c
        for c in matrix.columns
        if isinstance(matrix[c].dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(matrix[c].dtype)
        or matrix[c].dtype == object
    ]


class YieldModel:
    """Two LightGBM models whose product ranks taxpayers by expected yield (yuan).

    Parameters
    ----------
    classifier_params, regressor_params:
        LightGBM parameters (``n_estimators``, ``learning_rate``, ``num_leaves``, ...).
    monotone_fired:
        Constrain P(adjusted) to be non-decreasing in every ``<id>__fired`` flag.
    seed:
        Seed for every random choice of LightGBM.
    """

    #: the tail prior and its weight (see :meth:`with_tail_prior`); none by default
    tail_prior_: TailPrior | None = None
    tail_weight_: float = 0.0

    def __init__(
        self,
        classifier_params: dict[str, Any] | None = None,
        regressor_params: dict[str, Any] | None = None,
        *,
        monotone_fired: bool = True,
        seed: int = 42,
    ) -> None:
        self.classifier_params = classifier_params or {}
        self.regressor_params = regressor_params or {}
        self.monotone_fired = monotone_fired
        self.seed = seed

    # -- fitting ------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        adjusted: np.ndarray | pd.Series,
        amount: np.ndarray | pd.Series,
        sample_weight: np.ndarray | pd.Series | None = None,
    ) -> YieldModel:
        """Fit on audits: ``adjusted`` in {0, 1}; ``amount`` = tax recovered (yuan) when adjusted.

        ``sample_weight``: per-audit weights (e.g. inverse propensity), default 1.
        """
        y = np.asarray(adjusted, dtype=float)
        amt = np.nan_to_num(np.asarray(amount, dtype=float), nan=0.0)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if len(X) != len(y) or len(y) != len(amt) or len(w) != len(y):
            raise ValueError("X, adjusted, amount and sample_weight must have the same length")
        if len(np.unique(y)) < 2:
            raise ValueError("adjusted must contain both classes (0 and 1)")
        cats = categorical_columns(X)
        self.feature_names_in_: list[str] = [str(c) for c in X.columns]
        self.categories_: dict[str, list[str]] = {
            c: sorted(X[c].dropna().astype("str").unique().tolist()) for c in cats
        }
        Xp = prepare_features(X, self.feature_names_in_, self.categories_)
        mono = [
            1 if (self.monotone_fired and c.endswith("__fired")) else 0
            for c in self.feature_names_in_
        ]
        self.classifier_ = lgb.LGBMClassifier(
            **{**_BASE, "random_state": self.seed, **self.classifier_params},
            monotone_constraints=mono,
        )
        self.classifier_.fit(Xp, y.astype(int), sample_weight=w)
        pos = (y > 0) & (amt > 0)
        log_amt = np.log1p(amt[pos])
        self.regressor_: lgb.LGBMRegressor | None = lgb.LGBMRegressor(
            **{**_BASE, "random_state": self.seed, **self.regressor_params}
        )
        if pos.sum() >= 2:
            self.regressor_.fit(Xp[pos], log_amt, sample_weight=w[pos])
            resid = log_amt - self.regressor_.predict(Xp[pos])
            self.smearing_ = float(np.average(np.exp(resid), weights=w[pos]))
        else:  # degenerate: a constant amount
            self.regressor_ = None
            self.smearing_ = 1.0
        self.fallback_amount_ = float(np.average(amt[pos], weights=w[pos])) if pos.any() else 0.0
        self.n_examples_ = len(y)
        self.n_adjusted_ = int(pos.sum())
        return self

    def with_tail_prior(self, prior: TailPrior | None, weight: float) -> YieldModel:
        """Blend P(adjusted) with ``prior`` at ``weight`` in [0, 1] (0 or None: no blend)."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"tail prior weight must be in [0, 1], got {weight}")
        self.tail_prior_ = prior if weight > 0 else None
        self.tail_weight_ = float(weight) if prior is not None else 0.0
        return self

    # -- prediction ---------------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "classifier_"):
            raise NotFitted("the model is not fitted yet: call fit first")

    def prepare(self, X: pd.DataFrame, *, allow_extra: bool = False) -> pd.DataFrame:
        """``X`` checked and typed as at fit time (see :func:`prepare_features`)."""
        self._check()
        return prepare_features(
            X, self.feature_names_in_, self.categories_, allow_extra=allow_extra
        )

    def predict_proba(self, X: pd.DataFrame, *, allow_extra: bool = False) -> np.ndarray:
        """P(adjusted) per row, in [0, 1]."""
        Xp = self.prepare(X, allow_extra=allow_extra)
        return np.asarray(self.classifier_.predict_proba(Xp))[:, 1]

    def predict_amount(self, X: pd.DataFrame, *, allow_extra: bool = False) -> np.ndarray:
        """Expected tax recovered (yuan) if adjusted, per row."""
        Xp = self.prepare(X, allow_extra=allow_extra)
        if self.regressor_ is None:
            return np.full(len(Xp), self.fallback_amount_)
        return np.expm1(self.regressor_.predict(Xp)) * self.smearing_

    def predict(self, X: pd.DataFrame, *, allow_extra: bool = False) -> pd.DataFrame:
        """Columns probability (P(adjusted), blended with the tail prior when the model has
        one), amount (yuan if adjusted), expected_yield (yuan)."""
        p = self.predict_proba(X, allow_extra=allow_extra)
        if self.tail_prior_ is not None and self.tail_weight_ > 0:
            p = pool(p, self.tail_prior_.predict_proba(X), self.tail_weight_)
        a = self.predict_amount(X, allow_extra=allow_extra)
        return pd.DataFrame({"probability": p, "amount": a, "expected_yield": p * a}, index=X.index)

    def contributions(self, X: pd.DataFrame, *, allow_extra: bool = False) -> pd.DataFrame:
        """TreeSHAP contributions of each feature to the classifier's log-odds (plus ``bias``).

        Cost: about 1 ms per row on 2 cores; compute for the rows that need it.
        """
        Xp = self.prepare(X, allow_extra=allow_extra)
        raw = self.classifier_.booster_.predict(Xp, pred_contrib=True)
        return pd.DataFrame(raw, index=X.index, columns=[*self.feature_names_in_, "bias"])

    def feature_importance(self) -> pd.DataFrame:
        """Gain importance of each feature in both models; index: feature name."""
        self._check()
        out = pd.DataFrame(index=pd.Index(self.feature_names_in_, name="feature"))
        out["classifier_gain"] = self.classifier_.booster_.feature_importance("gain")
        out["regressor_gain"] = (
            self.regressor_.booster_.feature_importance("gain")
            if self.regressor_ is not None
            else 0.0
        )
        return out.sort_values("classifier_gain", ascending=False)

    def get_params(self) -> dict[str, Any]:
        return {
            "classifier_params": self.classifier_params,
            "regressor_params": self.regressor_params,
            "monotone_fired": self.monotone_fired,
            "seed": self.seed,
        }
