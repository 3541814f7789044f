"""How rankings are judged (CONTRACT section 4), and the ranking metrics used in validation.

This is the ONLY module that reads ``truth/``; the pure metrics on arrays it builds on live in
:mod:`taxrisk.training.metrics`. It reads the data folder's files itself (``taxpayers``,
``units``, ``audits``: types parsed, no quarantine rule applied), not the product's cleaned
tables, so a row the loader quarantines cannot flatter a score (:func:`_load_frames`).

The contract evaluation :func:`evaluate_ranking` (data folder + as-of + ranking) computes
K, N, yield capture@K and hit rate@K from ``truth/gaps`` when present, else precision@K and
recovered yuan@K on the audits closed after the as-of date (reweighted by
1/selection_probability on the stratum where it is known).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from taxrisk.features.errors import DataError, TaxriskError

from .metrics import HIT_THRESHOLD, capture_at_k, hit_rate_at_k

__all__ = [
    "WINDOW_MONTHS",
    "EvaluationError",
    "evaluate_ranking",
    "evaluate_rankings",
    "ranking_order",
]

log = logging.getLogger(__name__)

WINDOW_MONTHS = 24  # the gap window ends with the as-of month, inclusive


class EvaluationError(TaxriskError):
    """A ranking or a data folder cannot be evaluated."""


# --- contract evaluation --------------------------------------------------------------------


def ranking_order(ranking: pd.DataFrame, active_ids: pd.Index) -> np.ndarray:
    """The active taxpayer ids in the ranking's order (CONTRACT section 4).

    Unknown or inactive ids are ignored; active taxpayers the ranking omits come last, in
    taxpayer_id order; rank ties are broken by taxpayer_id.
    """
    missing = {"taxpayer_id", "rank"} - set(ranking.columns)
    if missing:
        raise EvaluationError(
            f"ranking: missing column(s) {sorted(missing)}; expected taxpayer_id, rank"
        )
    r = ranking[["taxpayer_id", "rank"]].copy()
    r["taxpayer_id"] = r["taxpayer_id"].astype(str)
    r["rank"] = pd.to_numeric(r["rank"], errors="coerce")
    r = r[r["taxpayer_id"].isin(active_ids)].dropna(subset=["rank"])
    r = r.sort_values(["rank", "taxpayer_id"]).drop_duplicates("taxpayer_id")
    rest = active_ids.difference(pd.Index(r["taxpayer_id"])).sort_values()
    return np.concatenate([r["taxpayer_id"].to_numpy(dtype=object), rest.to_numpy(dtype=object)])


def _window(as_of: dt.date) -> tuple[str, str]:
    """First and last month ('YYYY-MM') of the 24 months ending with the as-of month."""
    idx = as_of.year * 12 + as_of.month - 1 - (WINDOW_MONTHS - 1)
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}", f"{as_of.year:04d}-{as_of.month:02d}"


def _truth_file(data_dir: Path) -> Path | None:
    for ext in ("parquet", "csv"):
        p = data_dir / "truth" / f"gaps.{ext}"
        if p.exists():
            return p
    return None


def truth_gap(data_dir: Path, as_of: dt.date) -> pd.Series | None:
    """Truth gap (yuan) per taxpayer over the 24 months ending with the as-of month, or None.

    Before subtracting what past audits recovered; index: taxpayer_id.
    """
    path = _truth_file(data_dir)
    if path is None:
        return None
    first, last = _window(as_of)
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv_auto"
    con = duckdb.connect()
    try:
        df = con.execute(
            f"""SELECT CAST(taxpayer_id AS VARCHAR) AS taxpayer_id, SUM(gap) AS gap
                FROM {reader}(?)
                WHERE substr(CAST(period AS VARCHAR), 1, 7) BETWEEN ? AND ?
                GROUP BY 1""",
            [str(path), first, last],
        ).df()
    except duckdb.Error as exc:
        raise DataError(f"cannot read truth gaps: {exc}", path=path) from exc
    finally:
        con.close()
    return df.set_index("taxpayer_id")["gap"].astype(float)


def _table_file(data_dir: Path, name: str) -> Path | None:
    for ext in ("parquet", "csv"):
        p = data_dir / f"{name}.{ext}"
        if p.exists():
            return p
    return None


def _quoted(col: str) -> str:
    return '"' + col.replace('"', '""') + '"'


def _text(col: str) -> str:
    return f"NULLIF(trim(CAST({col} AS VARCHAR)), '')"


def _date(col: str) -> str:
    return f"TRY_CAST(substr({_text(col)}, 1, 10) AS DATE)"


def _num(col: str) -> str:
    return f"TRY_CAST({_text(col)} AS DOUBLE)"


#: What the evaluator reads of each table: column -> parse (text, date or number).
_RAW_COLUMNS: dict[str, dict[str, Any]] = {
    "taxpayers": {"taxpayer_id": _text, "registered_on": _date, "deregistered_on": _date},
    "units": {"unit_id": _text, "capacity": _num},
    "audits": {
        "case_id": _text,
        "taxpayer_id": _text,
        "closed_on": _date,
        "outcome": _text,
        "tax_recovered": _num,
        "selection_probability": _num,
    },
}


def _read_raw(con: duckdb.DuckDBPyConnection, data_dir: Path, name: str) -> pd.DataFrame:
    """Every row of ``name`` with the columns of :data:`_RAW_COLUMNS`, parsed, nothing dropped.

    Text is trimmed (empty -> null); a date or number that does not parse becomes null.
    """
    path = _table_file(data_dir, name)
    if path is None:
        raise EvaluationError(f"{data_dir / name}.parquet (or .csv): required table missing")
    reader = (
        "read_parquet(?)"
        if path.suffix == ".parquet"
        else "read_csv(?, all_varchar=true, header=true)"
    )
    try:
        cols = [
            r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}", [str(path)]).fetchall()
        ]
        missing = [c for c in _RAW_COLUMNS[name] if c not in cols]
        if missing:
            raise EvaluationError(f"{path}: missing column {missing[0]!r}")
        select = ", ".join(f"{parse(_quoted(c))} AS {c}" for c, parse in _RAW_COLUMNS[name].items())
        return con.execute(f"SELECT {select} FROM {reader}", [str(path)]).df()
    except duckdb.Error as exc:
        raise EvaluationError(f"{path}: cannot read: {exc}") from exc


def _load_frames(data_dir: Path, as_of: dt.date) -> tuple[pd.Index, pd.DataFrame, pd.DataFrame]:
    """Ids of the taxpayers active at ``as_of``, units and audits, from a raw read of the files.

    Deliberately not the product's loader (:mod:`taxrisk.features.loading`): a row its rules
    would quarantine still counts here, so a quarantine cannot flatter a score. Only types are
    parsed. Active: a taxpayer_id with a row registered on or before ``as_of`` and not
    deregistered on or before it (an unparseable registration date counts as registered).
    Capacity: per unit_id, the largest capacity among its rows (a duplicated unit counts once),
    negative or unparseable as 0. Audits: one row per case_id (a duplicated case counts once,
    with its largest recovery), recoveries floored at 0 (a recovery never adds gap).
    """
    con = duckdb.connect()
    try:
        tps = _read_raw(con, data_dir, "taxpayers")
        units = _read_raw(con, data_dir, "units")
        audits = _read_raw(con, data_dir, "audits")
    finally:
        con.close()
    ts = pd.Timestamp(as_of)
    reg = pd.to_datetime(tps["registered_on"])
    dereg = pd.to_datetime(tps["deregistered_on"])
    is_active = (
        (reg.isna() | (reg <= ts)) & (dereg.isna() | (dereg > ts)) & tps["taxpayer_id"].notna()
    )
    active = pd.Index(tps.loc[is_active, "taxpayer_id"].astype(str).unique())
    units = units.dropna(subset=["unit_id"])
    units["capacity"] = units["capacity"].fillna(0.0).clip(lower=0.0)
    units = units.groupby("unit_id", as_index=False)["capacity"].max()
    audits = audits.dropna(subset=["taxpayer_id"])
    audits["tax_recovered"] = audits["tax_recovered"].clip(lower=0.0)
    row_ids = pd.Series("<row " + audits.index.astype(str) + ">", index=audits.index)
    audits["case_id"] = audits["case_id"].fillna(row_ids)
    audits = audits.sort_values(
        ["case_id", "tax_recovered"], ascending=[True, False], kind="stable"
    )
    audits = audits.drop_duplicates("case_id").reset_index(drop=True)
    return active, units, audits


def evaluate_ranking(data_dir: Path, as_of: dt.date, ranking: pd.DataFrame) -> dict[str, Any]:
    """CONTRACT section 4 metrics of ``ranking`` (columns taxpayer_id, rank; 1 = first).

    Returns a JSON-ready dict: ``source`` ("truth" or "audits"), ``k`` (sum of unit
    capacities, at most N), ``n`` (active taxpayers), and the metrics of the ranking, of the
    oracle and of a random ranking (expected values).
    """
    return evaluate_rankings(data_dir, as_of, {"ranking": ranking})["ranking"]


def evaluate_rankings(
    data_dir: Path, as_of: dt.date, rankings: dict[str, pd.DataFrame]
) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_ranking` for several rankings of one folder (loaded once)."""
    data_dir = Path(data_dir)
    active, units, audits = _load_frames(data_dir, as_of)
    gap = truth_gap(data_dir, as_of)
    return {
        name: _evaluate(active, units, audits, gap, as_of, ranking)
        for name, ranking in rankings.items()
    }


def _evaluate(
    active: pd.Index,
    units: pd.DataFrame,
    audits: pd.DataFrame,
    gap: pd.Series | None,
    as_of: dt.date,
    ranking: pd.DataFrame,
) -> dict[str, Any]:
    n = len(active)
    if n == 0:
        raise EvaluationError(f"no active taxpayer at {as_of}")
    k = int(min(units["capacity"].fillna(0).sum(), n))
    order = ranking_order(ranking, active)
    in_ranking = ranking["taxpayer_id"].astype(str)
    out: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "k": k,
        "n": n,
        "ranking_rows": len(ranking),
        "ranking_ignored_ids": int((~in_ranking.isin(active)).sum()),
        "active_omitted": len(active.difference(pd.Index(in_ranking))),
    }
    closed = pd.to_datetime(audits["closed_on"])
    ts = pd.Timestamp(as_of)
    if gap is not None:
        past = audits[closed.notna() & (closed <= ts)]
        recovered = past.groupby(past["taxpayer_id"].astype(str))["tax_recovered"].sum()
        g = gap.reindex(active, fill_value=0.0)
        g = (g - recovered.reindex(active, fill_value=0.0)).clip(lower=0.0)
        in_order = g.reindex(order).to_numpy()
        oracle = np.sort(g.to_numpy())[::-1]
        first, last = _window(as_of)
        out |= {
            "source": "truth",
            "window": f"{first}..{last}",
            "total_gap": float(g.sum()),
            "gap_at_k": float(in_order[:k].sum()),
            "capture_at_k": capture_at_k(in_order, k),
            "hit_rate_at_k": hit_rate_at_k(in_order, k),
            "oracle_gap_at_k": float(oracle[:k].sum()),
            "oracle_capture_at_k": 1.0 if oracle[:k].sum() > 0 else float("nan"),
            "oracle_hit_rate_at_k": hit_rate_at_k(oracle, k),
            "random_capture_at_k": float(k / n * g.sum() / oracle[:k].sum())
            if oracle[:k].sum() > 0
            else float("nan"),
            "random_hit_rate_at_k": float((g > HIT_THRESHOLD).mean()),
            "taxpayers_with_gap": int((g > HIT_THRESHOLD).sum()),
        }
        return out
    out |= {"source": "audits", **_audit_metrics(audits, active, order, k, ts)}
    return out


def _audit_metrics(
    audits: pd.DataFrame, active: pd.Index, order: np.ndarray, k: int, as_of: pd.Timestamp
) -> dict[str, Any]:
    """precision@K and recovered yuan@K on audits closed after ``as_of`` (no truth)."""
    closed = pd.to_datetime(audits["closed_on"])
    held = audits[closed.notna() & (closed > as_of) & audits["outcome"].notna()].copy()
    held["taxpayer_id"] = held["taxpayer_id"].astype(str)
    held = held[held["taxpayer_id"].isin(active)]
    if held.empty:
        raise EvaluationError(
            f"no truth/ and no audit closed after {as_of.date()}: nothing to evaluate against"
        )
    held["adjusted"] = (held["outcome"] == "adjusted").astype(float)
    held["recovered"] = held["tax_recovered"].fillna(0.0).where(held["adjusted"] > 0, 0.0)
    held["w"] = 1.0 / held["selection_probability"]
    per_tp = held.groupby("taxpayer_id").agg(
        adjusted=("adjusted", "max"), recovered=("recovered", "sum")
    )
    top = pd.Index(order[:k])
    in_top = per_tp.index.isin(top)
    oracle = np.sort(per_tp["recovered"].to_numpy())[::-1][:k].sum()
    out: dict[str, Any] = {
        "held_out_audits": len(held),
        "held_out_taxpayers": len(per_tp),
        "audited_in_top_k": int(in_top.sum()),
        "precision_at_k": float(per_tp.loc[in_top, "adjusted"].mean())
        if in_top.any()
        else float("nan"),
        "recovered_at_k": float(per_tp.loc[in_top, "recovered"].sum()),
        "recovered_total": float(per_tp["recovered"].sum()),
        "oracle_recovered_at_k": float(oracle),
    }
    rnd = held[held["w"].notna() & np.isfinite(held["w"])]
    if not rnd.empty:
        rt = rnd["taxpayer_id"].isin(top)
        w = rnd["w"]
        out |= {
            "random_stratum_audits": len(rnd),
            "weighted_precision_at_k": float((rnd["adjusted"] * w)[rt].sum() / w[rt].sum())
            if rt.any()
            else float("nan"),
            "weighted_recovered_at_k": float((rnd["recovered"] * w)[rt].sum()),
            "weighted_recovered_total": float((rnd["recovered"] * w).sum()),
        }
    return out
