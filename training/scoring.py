"""Score a feature matrix with a model into a ranking (CONTRACT section 2, ``score --out``).

The ranking has one row per scored taxpayer: taxpayer_id, rank (1 = audit first, by expected
yield, ties by taxpayer_id), risk_score (P(adjusted), in [0, 1]), expected_yield (yuan),
risk_level (``high``/``medium``/``low``/``minimal`` per :class:`~.config.RiskLevel` cut-offs
in ``config.toml``), unit_id (managing unit).

A model is anything with ``predict(matrix) -> DataFrame`` holding ``probability`` and
``expected_yield``: a :class:`~taxrisk.training.models.YieldModel` or an MLflow pyfunc model
loaded by :func:`load_model`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd
from taxrisk.features.errors import TaxriskError
from taxrisk.features.progress import ProgressFn

from .config import RiskLevel
from .evaluation import ranked
from .models import FeatureMismatch

if TYPE_CHECKING:
    from taxrisk.features.tables import Tables

__all__ = [
    "RANKING_COLUMNS",
    "Predictor",
    "ScoringError",
    "load_model",
    "rank_predictions",
    "risk_levels",
    "score_matrix",
    "score_tables",
]

RANKING_COLUMNS = ["taxpayer_id", "rank", "risk_score", "expected_yield", "risk_level", "unit_id"]


class Predictor(Protocol):
    def predict(self, matrix: pd.DataFrame) -> pd.DataFrame: ...


def load_model(uri: str, tracking_uri: str) -> Any:
    """The MLflow pyfunc model at ``uri`` (e.g. ``models:/taxrisk@champion``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScoringError(
            f"cannot load model {uri!r} from {tracking_uri}: {first[:300]} "
            "(train one with `taxrisk train`, or pass --model URI)"
        ) from exc


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


def rank_predictions(
    predictions: pd.DataFrame, unit_id: pd.Series, levels: Sequence[RiskLevel]
) -> pd.DataFrame:
    """The ranking frame from predictions (index taxpayer_id; probability, expected_yield)."""
    ids = predictions.index.astype("str")
    ey = predictions["expected_yield"].to_numpy(dtype=float)
    p = predictions["probability"].to_numpy(dtype=float)
    order = ranked(ey, tiebreak=np.asarray(ids))
    rank = np.empty(len(ey), dtype=int)
    rank[order] = np.arange(1, len(ey) + 1)
    out = pd.DataFrame(
        {
            "taxpayer_id": ids,
            "rank": rank,
            "risk_score": p,
            "expected_yield": ey,
            "risk_level": risk_levels(ey, p, levels),
            "unit_id": unit_id.reindex(predictions.index).astype("str").to_numpy(),
        }
    )
    return out.sort_values("rank").reset_index(drop=True)


class ScoringError(TaxriskError):
    """A model cannot score a matrix (wrong columns, unreadable model)."""


def score_matrix(
    model: Predictor, matrix: pd.DataFrame, levels: Sequence[RiskLevel]
) -> pd.DataFrame:
    """The ranking of every row of ``matrix`` (index taxpayer_id, with column ``unit_id``).

    For an MLflow model, the matrix is first cut to the signature's columns; missing ones
    raise :class:`~taxrisk.training.models.FeatureMismatch` naming them.
    """
    schema = getattr(getattr(model, "metadata", None), "get_input_schema", lambda: None)()
    inputs = matrix
    if schema is not None:
        names = schema.input_names()
        missing = [c for c in names if c not in matrix.columns]
        if missing:
            raise FeatureMismatch(missing, [])
        inputs = matrix[names]
    try:
        pred = model.predict(inputs)
    except TaxriskError:
        raise
    except Exception as exc:  # MLflow schema errors and the like: name them in one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ScoringError(f"the model cannot score this feature matrix: {first[:300]}") from exc
    pred = pd.DataFrame(pred)
    pred.index = matrix.index
    return rank_predictions(pred, matrix["unit_id"], levels)


def score_tables(
    tables: Tables,
    as_of: dt.date,
    model: Predictor,
    levels: Sequence[RiskLevel],
    *,
    progress: ProgressFn | None = None,
) -> pd.DataFrame:
    """Build the matrix as of ``as_of`` (active taxpayers) and rank it with ``model``."""
    from taxrisk.features.matrix import build_matrix

    matrix = build_matrix(tables, as_of, progress=progress)
    if matrix.empty:
        raise ScoringError(f"no active taxpayer at {as_of}: nothing to score")
    return score_matrix(model, matrix, levels)
