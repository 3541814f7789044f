"""Monitoring between rounds: population stability (PSI) and selection rates.

**Profile** (:func:`profile`): a JSON-serialisable summary of a matrix (or of one score
Series) to keep with a scoring run. Per numeric column: the decile edges of its non-null
values (quantiles 0.1 .. 0.9, deduplicated; the bins are ``(-inf, e_1], (e_1, e_2], ...,
(e_k, +inf)``: the infinite ends are implied, not stored, so that the profile is strict
JSON), the share of all rows in each bin and the null share. An edge is placed halfway
into the gap between the values it separates (above the largest value, as far as the gap
below it; a single value keeps its edge on it): the split of the reference is the one the
quantile makes, but a column with few distinct values (a flag, an industry median: one
value per industry) does not move whole groups across an edge that sat on their value when
the value changes by less than half a gap, such as a rounding's last bit or a month's small
drift. Infinite values fall in the end bins but do not place edges. Per categorical column
(category, string, object or bool dtype): the share of each category and the null share.
Shares are of all rows, so each column's shares and null share sum to 1.

**PSI** (:func:`psi`): for each profiled column, the current matrix is binned with the
reference's edges (or categories: a category unseen in the reference is a bin of its own)
and ``PSI = sum_b (cur_b - ref_b) x ln(cur_b / ref_b)`` over the bins plus the null bin. An
empty bin would make the logarithm infinite: both shares are floored at ``1e-4``
(:data:`SHARE_FLOOR`, not renormalised) before the sum. The usual reading
(:func:`reading`): below 0.1 stable, 0.1 to 0.25 a moderate shift (look at it), above 0.25 a
shift (the model's inputs are not what it was trained on; retrain or investigate).

**Selection rates** (:func:`selection_rates`): the share selected within each group of
size class, industry, taxpayer type and managing unit, to see whom a round's selection
falls on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from taxrisk.errors import TaxriskError

__all__ = [
    "SHARE_FLOOR",
    "MonitoringError",
    "profile",
    "psi",
    "reading",
    "selection_rates",
    "size_class",
]

SHARE_FLOOR = 1e-4
_DECILES = np.linspace(0.1, 0.9, 9)


class MonitoringError(TaxriskError):
    """A profile or a selection does not fit the data it is compared with."""


def _is_categorical(s: pd.Series) -> bool:
    return (
        isinstance(s.dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(s.dtype)
        or pd.api.types.is_bool_dtype(s.dtype)
        or s.dtype == object
    )


def _as_frame(data: pd.DataFrame | pd.Series) -> pd.DataFrame:
    if isinstance(data, pd.Series):
        return data.to_frame(name=str(data.name) if data.name is not None else "score")
    return data


def _numeric_bins(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin (len(edges) + 1) of non-null values, bins right-closed."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    return np.bincount(idx, minlength=len(edges) + 1)


def _edges(finite: np.ndarray) -> list[float]:
    """The decile edges of ``finite`` (non-null values) moved into the gaps between the
    values (see the module docstring): the same split of these values, so the same shares."""
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return []
    distinct = np.unique(finite)
    q = np.unique(np.quantile(finite, _DECILES))
    # each edge splits the values into <= e and > e: put it halfway between the largest
    # value at or below it and the smallest above it
    at = np.searchsorted(distinct, q, side="right")  # the first distinct value above e
    below = distinct[at - 1]
    edges = []
    for lo, i in zip(below, at, strict=True):
        if i < len(distinct):
            hi = distinct[i]
        elif len(distinct) > 1:  # the largest value: as far above it as the gap below it
            hi = lo + (lo - distinct[-2])
        else:  # one value: the edge stays on it
            hi = lo
        edges.append(float(lo + (hi - lo) / 2))
    return [e for e in sorted(set(edges)) if math.isfinite(e)]


def _profile_column(s: pd.Series) -> dict[str, Any]:
    n = len(s)
    null = s.isna().to_numpy()
    null_share = float(null.mean()) if n else 0.0
    if _is_categorical(s):
        text = s[~null].astype("str")
        counts = text.value_counts(sort=False)
        shares = {str(k): float(v) / n for k, v in sorted(counts.items())}
        return {"kind": "categorical", "shares": shares, "null_share": null_share}
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
    finite = values[~np.isnan(values)]
    edges = _edges(finite)
    counts = _numeric_bins(finite, edges)
    return {
        "kind": "numeric",
        "edges": edges,
        "shares": [float(c) / n for c in counts] if n else [0.0] * len(counts),
        "null_share": float(np.isnan(values).mean()) if n else 0.0,
    }


def profile(matrix: pd.DataFrame | pd.Series) -> dict[str, Any]:
    """A JSON-serialisable profile of every column (see the module docstring).

    ``matrix``: a feature matrix (index taxpayer_id), or a score Series (e.g.
    ``expected_yield`` in yuan or ``risk_score``), profiled as a one-column frame under its
    name. Returns ``{"rows": n, "columns": {name: {"kind", "edges"?, "shares",
    "null_share"}}}``.
    """
    frame = _as_frame(matrix)
    return {
        "rows": len(frame),
        "columns": {str(c): _profile_column(frame[c]) for c in frame.columns},
    }


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, SHARE_FLOOR)
    c = np.maximum(cur, SHARE_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def reading(value: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1 to 0.25), ``shift`` (> 0.25), ``missing`` (NaN)."""
    if math.isnan(value):
        return "missing"
    if value < 0.1:
        return "stable"
    return "moderate" if value <= 0.25 else "shift"


def psi(reference: dict[str, Any], matrix: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """PSI of every column of the reference profile against ``matrix`` (a frame or a score
    Series, as for :func:`profile`).

    Columns: feature, psi (>= 0; NaN when the column is absent from ``matrix``), kind
    (``numeric``/``categorical``), reading (:func:`reading`). Sorted by descending psi.
    """
    frame = _as_frame(matrix)
    n = len(frame)
    rows = []
    for name, ref in reference["columns"].items():
        kind = ref["kind"]
        if name not in frame.columns or n == 0:
            rows.append({"feature": name, "psi": math.nan, "kind": kind})
            continue
        s = frame[name]
        null = s.isna().to_numpy()
        if kind == "categorical":
            counts = s[~null].astype("str").value_counts()
            cats = sorted(set(ref["shares"]) | set(counts.index.astype("str")))
            r = np.array([ref["shares"].get(k, 0.0) for k in cats] + [ref["null_share"]])
            c = np.array([counts.get(k, 0) / n for k in cats] + [null.mean()])
        else:
            values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            finite = values[~np.isnan(values)]
            counts = _numeric_bins(finite, ref["edges"])
            r = np.array([*ref["shares"], ref["null_share"]])
            c = np.array([*(counts / n), np.isnan(values).mean()])
        rows.append({"feature": name, "psi": _psi(r, c), "kind": kind})
    out = pd.DataFrame.from_records(rows, columns=["feature", "psi", "kind"])
    out["reading"] = [reading(v) for v in out["psi"]]
    out = out.astype({"feature": "str", "kind": "str", "reading": "str"})
    return out.sort_values("psi", ascending=False, na_position="last").reset_index(drop=True)


def size_class(population: pd.DataFrame) -> pd.Series:
    """The size class of each taxpayer (str; ``unknown`` when null).

    The matrix's ``size_band`` (decade of monthly declared sales, floor(log10(monthly
    sales + 1)), from the peers source) when present with at least two bands: labelled
    ``"10^b"`` (monthly sales in [10^b, 10^(b+1)) yuan). Otherwise quintiles of
    ``sales_12`` (yuan over 12 months): ``"Q1"`` (smallest) to ``"Q5"``.
    """
    if "size_band" in population.columns:
        band = pd.to_numeric(population["size_band"], errors="coerce")
        if band.nunique() >= 2:
            text = band.map(lambda b: f"10^{int(b)}" if pd.notna(b) else "unknown")
            return text.astype("str").rename("size_class")
    if "sales_12" not in population.columns:
        raise MonitoringError("population: neither size_band nor sales_12 to size taxpayers")
    sales = pd.to_numeric(population["sales_12"], errors="coerce")
    ranks = sales.rank(method="first")
    q = pd.qcut(ranks, 5, labels=False) if sales.notna().sum() >= 5 else ranks * np.nan
    text = q.map(lambda k: f"Q{int(k) + 1}" if pd.notna(k) else "unknown")
    return text.astype("str").rename("size_class")


def selection_rates(
    population: pd.DataFrame,
    selected: Iterable[str] | pd.Series,
) -> pd.DataFrame:
    """Selection rates by size class, industry, taxpayer type and unit.

    ``population``: index taxpayer_id; columns size_band or sales_12 (see
    :func:`size_class`), industry, taxpayer_type, unit_id (absent ones are skipped).
    ``selected``: taxpayer ids, or a boolean Series indexed by taxpayer_id. Every selected id
    must be in the population (:class:`MonitoringError` names the others).

    Columns: dimension (``size_class``/``industry``/``taxpayer_type``/``unit_id``), group
    (str; ``unknown`` for null), population (taxpayers), selected (taxpayers), rate
    (selected / population, in [0, 1]). Within a dimension the populations sum to the
    population size and the selections to the number selected.
    """
    ids = population.index.astype("str")
    if isinstance(selected, pd.Series) and pd.api.types.is_bool_dtype(selected.dtype):
        chosen = set(selected.index[selected.to_numpy()].astype("str"))
    else:
        chosen = {str(t) for t in selected}
    unknown = sorted(chosen - set(ids))
    if unknown:
        raise MonitoringError(
            f"selected: {len(unknown)} taxpayer(s) not in the population, e.g. "
            + ", ".join(unknown[:5])
        )
    flag = pd.Series(ids.isin(list(chosen)), index=population.index)
    dims: dict[str, pd.Series] = {"size_class": size_class(population)}
    for col in ("industry", "taxpayer_type", "unit_id"):
        if col in population.columns:
            s = population[col]
            dims[col] = s.astype("str").where(s.notna(), "unknown")
    frames = []
    for dim, group in dims.items():
        g = pd.DataFrame({"group": group.to_numpy(), "selected": flag.to_numpy()})
        agg = g.groupby("group", sort=True)["selected"].agg(["size", "sum"]).reset_index()
        frames.append(
            pd.DataFrame(
                {
                    "dimension": dim,
                    "group": agg["group"].astype("str"),
                    "population": agg["size"].astype("int64"),
                    "selected": agg["sum"].astype("int64"),
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out["rate"] = out["selected"] / out["population"]
    return out.astype({"dimension": "str", "group": "str"})
