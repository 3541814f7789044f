"""The peer comparison of a report: the industry's medians from the run's feature matrix.

A scoring run keeps its feature matrix (``runs/<run_id>/matrix.parquet`` in the workspace,
named in ``ScoringRun.artifacts["matrix.parquet"]``; index ``taxpayer_id``, a category column
``industry``, each indicator's value under its id). :func:`peer_stats` reads only the rows of
the taxpayer's industry and only the columns asked for, and returns the industry median of
each item and the taxpayer's own industry-model estimates (:data:`MODEL_COLUMNS`, yuan per
month or shares). Without the file (an old run, a copied store) it returns None and the report
shows the stored percentiles alone.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taxrisk.settings import Settings

    from ..store.models import ScoringRun

__all__ = ["MODEL_COLUMNS", "PeerStats", "peer_stats"]

log = logging.getLogger(__name__)

#: the industry-model estimates of features/industry_models.py, shown when the matrix has them
MODEL_COLUMNS = (
    "sales_month_avg",
    "model_units_month",
    "model_implied_sales",
    "model_gap",
    "model_gap_tax_12",
    "chain_implied_sales",
    "chain_gap",
    "io_overclaim_share",
    "stock_gap_share",
)


@dataclass(frozen=True)
class PeerStats:
    industry: str
    peers: int  # taxpayers of the industry in the run's matrix
    medians: dict[str, float | None] = field(default_factory=dict)
    own: dict[str, float | None] = field(default_factory=dict)  # MODEL_COLUMNS present


def _clean(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def matrix_path(settings: Settings, run: ScoringRun) -> Path | None:
    rel = (run.artifacts or {}).get("matrix.parquet")
    if not rel:
        return None
    path = settings.root / str(rel)
    return path if path.is_file() else None


def peer_stats(
    settings: Settings,
    run: ScoringRun | None,
    taxpayer_id: str,
    industry: str | None,
    items: list[str],
) -> PeerStats | None:
    """Industry medians of ``items`` and the taxpayer's model estimates, or None."""
    if run is None or not industry:
        return None
    path = matrix_path(settings, run)
    if path is None:
        return None
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        names = set(pq.read_schema(path).names)
        id_col = "taxpayer_id" if "taxpayer_id" in names else None
        if "industry" not in names or id_col is None:
            return None
        wanted = [c for c in dict.fromkeys([*items, *MODEL_COLUMNS]) if c in names]
        table = pq.read_table(
            path, columns=[id_col, "industry", *wanted], filters=[("industry", "==", industry)]
        )
        medians: dict[str, float | None] = {}
        for c in items:
            if c in wanted:
                col = table.column(c)
                valid = pc.drop_null(col)
                medians[c] = _clean(pc.quantile(valid, q=0.5)[0].as_py()) if len(valid) else None
        own: dict[str, float | None] = {}
        mask = pc.equal(table.column(id_col).cast("string"), taxpayer_id)
        row = table.filter(mask)
        if row.num_rows:
            for c in MODEL_COLUMNS:
                if c in wanted:
                    own[c] = _clean(row.column(c)[0].as_py())
        return PeerStats(industry=industry, peers=table.num_rows, medians=medians, own=own)
    except Exception as exc:  # the report renders without the medians
        log.warning("peer comparison unavailable from %s: %s", path, exc)
        return None
