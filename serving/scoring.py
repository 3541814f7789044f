"""Score a feature matrix into a ranking: P(adjusted), amounts, risk levels and measures.

The ranking has one row per scored taxpayer (CONTRACT section 2, ``score --out``):
taxpayer_id, rank (1 = first, by expected yield, ties by taxpayer_id), risk_score
(P(adjusted), in [0, 1]), expected_yield (yuan), risk_level (``high``/``medium``/``low``/
``minimal`` per ``[risk_levels]`` of ``serving/config.toml``), unit_id (managing unit), then
two columns the contract does not list: expected_amount (yuan if adjusted) and
recommended_measure (``[measures]``).

Scoring predicts with the unwrapped :class:`~taxrisk.training.models.YieldModel`, whose own
check names missing columns (:class:`~taxrisk.training.models.FeatureMismatch`) and types the
rest in one vectorised pass; MLflow's pyfunc input enforcement is skipped (it checked values
one by one: 15.7 s of 16.7 s at 20,000 taxpayers x 223 features).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from taxrisk.training.metrics import ranked

from taxrisk.errors import TaxriskError

from .config import RiskLevel, ServingConfig
from .errors import ScoringError

if TYPE_CHECKING:
    from taxrisk.training.models import YieldModel

__all__ = [
    "RANKING_COLUMNS",
    "predict",
    "rank_predictions",
    "risk_levels",
    "score_matrix",
]

_OPTIONAL = re.compile(r"optional table (\w+)")

#: the contract's ranking columns, then the two this project adds
RANKING_COLUMNS = [
    "taxpayer_id",
    "rank",
    "risk_score",
    "expected_yield",
    "risk_level",
    "unit_id",
    "expected_amount",
    "recommended_measure",
]


def risk_levels(
    expected_yield: np.ndarray, probability: np.ndarray, levels: Sequence[RiskLevel]
) -> np.ndarray:
    """Risk level of each taxpayer: first level whose yield share and probability both hold.

    The yield share of a taxpayer is its position in the expected-yield order / N.
    """
    n = len(expected_yield)
    order = ranked(np.asarray(expected_yield))
    position = np.empty(n)
    position[order] = (np.arange(n) + 1) / max(n, 1)
    out = np.full(n, "minimal", dtype=object)
    assigned = np.zeros(n, dtype=bool)
    for lv in levels:
        hit = (
            ~assigned & (position <= lv.top_share) & (np.asarray(probability) >= lv.min_probability)
        )
        out[hit] = lv.name
        assigned |= hit
    return out


def recommended_measures(
    level: np.ndarray, probability: np.ndarray, expected_yield: np.ndarray, cfg: ServingConfig
) -> np.ndarray:
    """The measure of each taxpayer from its level (vectorised :meth:`ServingConfig.measure_for`)."""
    m = cfg.measures
    out = pd.Series(level).map(m.by_level).to_numpy(dtype=object)
    audit = (
        (level == "high")
        & (probability >= m.audit_min_probability)
        & (expected_yield >= m.audit_min_yield)
    )
    out[audit] = "audit"
    return out


def rank_predictions(
    predictions: pd.DataFrame,
    unit_id: pd.Series,
    levels: Sequence[RiskLevel],
    cfg: ServingConfig | None = None,
) -> pd.DataFrame:
    """The ranking frame from predictions (index taxpayer_id; probability, expected_yield and,
    optionally, amount). With ``cfg``, the recommended measure too."""
    ids = predictions.index.astype("str")
    ey = predictions["expected_yield"].to_numpy(dtype=float)
    p = predictions["probability"].to_numpy(dtype=float)
    amount = (
        predictions["amount"].to_numpy(dtype=float)
        if "amount" in predictions
        else np.divide(ey, p, out=np.zeros_like(ey), where=p > 0)
    )
    order = ranked(ey, tiebreak=np.asarray(ids))
    rank = np.empty(len(ey), dtype=int)
    rank[order] = np.arange(1, len(ey) + 1)
    level = risk_levels(ey, p, levels)
    out = pd.DataFrame(
        {
            "taxpayer_id": ids,
            "rank": rank,
            "risk_score": p,
            "expected_yield": ey,
            "risk_level": level,
            "unit_id": unit_id.reindex(predictions.index).astype("str").to_numpy(),
            "expected_amount": amount,
        }
    )
    if cfg is not None:
        out["recommended_measure"] = recommended_measures(level, p, ey, cfg)
    return out.sort_values("rank").reset_index(drop=True)


def absent_optional_tables(switched_off: dict[str, str]) -> list[str]:
    """The optional tables named by a matrix's ``switched_off`` reasons (e.g. ``missing
    optional table social_insurance``)."""
    return sorted({m for r in switched_off.values() for m in _OPTIONAL.findall(r)})


def predict(model: YieldModel, matrix: pd.DataFrame) -> pd.DataFrame:
    """probability, amount, expected_yield per row of ``matrix`` (extra columns ignored)."""
    try:
        return model.predict(matrix, allow_extra=True)
    except TaxriskError as exc:
        from taxrisk.training.models import FeatureMismatch

        absent = absent_optional_tables(matrix.attrs.get("switched_off") or {})
        if isinstance(exc, FeatureMismatch) and exc.missing and absent:
            hint = (
                f"this data folder lacks the optional table(s) {', '.join(absent)}, which the "
                "model was trained with: add them, or train a model on folders without them"
            )
            raise FeatureMismatch(exc.missing, exc.unexpected, hint=hint) from exc
        raise
    except Exception as exc:  # LightGBM and pandas errors: name them in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScoringError(f"the model cannot score this feature matrix: {first[:300]}") from exc


def score_matrix(model: YieldModel, matrix: pd.DataFrame, cfg: ServingConfig) -> pd.DataFrame:
    """The ranking of every row of ``matrix`` (index taxpayer_id, with column ``unit_id``)."""
    pred = predict(model, matrix)
    return rank_predictions(pred, matrix["unit_id"], cfg.risk_levels, cfg)
