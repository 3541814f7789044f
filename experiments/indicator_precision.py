"""Experiment: how often each indicator fires, and how precise it is, against a world's truth.

    python -m taxrisk.experiments.indicator_precision DIR --as-of DATE [--config TOML]
        [--json OUT] [--baseline JSON]

Evaluation code (it reads ``truth/``; no product code does). Builds the feature matrix as of
DATE, then per indicator: ``fired`` (taxpayers), ``share`` (of active taxpayers),
``precision`` (share of the fired with a gap over 1,000 yuan) and ``lift`` (precision / base
rate). The gap is the contract's metric gap (CONTRACT section 4): the truth gap over the 24
months ending with the as-of month, minus tax recovered by audits closed on or before the
as-of date, floored at zero. Also prints the pairs of indicators that fire for nearly the same
taxpayers (Jaccard >= 0.8). With ``--baseline`` (a JSON written by an earlier run with
``--json``) it prints both runs side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from taxrisk.features.catalog import CATALOG
from taxrisk.features.loading import load_folder
from taxrisk.features.matrix import build_matrix
from taxrisk.features.tables import connect

from taxrisk.settings import get_settings

GAP_LINE = 1000.0


def truth_gap(folder: Path, as_of: dt.date, active: pd.Index) -> pd.Series:
    """The contract's gap(t) over the 24 months ending with the as-of month (yuan)."""
    truth = folder / "truth"
    path = truth / "gaps.parquet"
    g = pd.read_parquet(path) if path.exists() else pd.read_csv(truth / "gaps.csv")
    period = pd.PeriodIndex(g["period"].astype(str), freq="M")
    end = pd.Period(as_of, freq="M")
    g = g[(period <= end) & (period > end - 24)]
    gap = g.groupby(g["taxpayer_id"].astype(str))["gap"].sum()
    audits_path = folder / "audits.parquet"
    a = pd.read_parquet(audits_path) if audits_path.exists() else pd.read_csv(folder / "audits.csv")
    closed = pd.to_datetime(a["closed_on"], errors="coerce")
    a = a[closed.notna() & (closed.dt.date <= as_of)]
    rec = a.groupby(a["taxpayer_id"].astype(str))["tax_recovered"].sum()
    gap = gap.sub(rec, fill_value=0.0).clip(lower=0.0)
    return gap.reindex(active).fillna(0.0)


def old_rules_at_k(matrix: pd.DataFrame, gap: pd.Series, k: int) -> dict[str, float]:
    """The old rules' ranking (``training.baselines.old_rules_scores``: count of fired
    classic indicators, size tiebreak) judged as CONTRACT section 4: capture@K, hit rate@K."""
    from taxrisk.training.baselines import old_rules_scores

    score = old_rules_scores(matrix)
    top = score.sort_values(ascending=False, kind="stable").index[:k]
    best = gap.sort_values(ascending=False).iloc[:k].sum()
    return {
        "k": k,
        "capture": float(gap[top].sum() / best) if best else float("nan"),
        "hit_rate": float((gap[top] > GAP_LINE).mean()),
    }


def measure(matrix: pd.DataFrame, gap: pd.Series) -> dict[str, Any]:
    bad = gap > GAP_LINE
    base = float(bad.mean())
    rows: dict[str, dict[str, float]] = {}
    fired_sets: dict[str, pd.Index] = {}
    for ind_id in CATALOG:
        col = f"{ind_id}__fired"
        if col not in matrix.columns:
            continue
        f = matrix[col] == 1
        n = int(f.sum())
        prec = float(bad[f].mean()) if n else float("nan")
        rows[ind_id] = {
            "fired": n,
            "share": n / len(matrix),
            "precision": prec,
            "lift": prec / base if n and base else float("nan"),
        }
        fired_sets[ind_id] = matrix.index[f]
    overlap = []
    ids = [k for k, v in fired_sets.items() if len(v)]
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            inter = len(fired_sets[a].intersection(fired_sets[b]))
            union = len(fired_sets[a].union(fired_sets[b]))
            if union and inter / union >= 0.8:
                overlap.append({"a": a, "b": b, "jaccard": inter / union, "both": inter})
    return {
        "taxpayers": len(matrix),
        "base_rate": base,
        "indicators": rows,
        "overlap": overlap,
        "switched_off": matrix.attrs.get("switched_off", {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    p.add_argument("--config", type=Path, default=None, help="indicator config override")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--baseline", type=Path, default=None)
    p.add_argument("--matrix", type=Path, default=None, help="also write the matrix (parquet)")
    args = p.parse_args(argv)
    settings = get_settings()
    settings.ensure_workspace()
    con = connect(settings)
    loaded = load_folder(args.folder.resolve(), con=con, as_of=args.as_of)
    kwargs: dict[str, Any] = {}
    if args.config is not None:
        from taxrisk.features.config import load_config

        kwargs["config"] = load_config(args.config)
    matrix = build_matrix(loaded.tables, args.as_of, **kwargs)
    gap = truth_gap(args.folder, args.as_of, matrix.index)
    if args.matrix:
        matrix.assign(_gap=gap).to_parquet(args.matrix)
    out = measure(matrix, gap)
    units = args.folder / "units.parquet"
    u = pd.read_parquet(units) if units.exists() else pd.read_csv(args.folder / "units.csv")
    out["old_rules"] = old_rules_at_k(matrix, gap, int(u["capacity"].sum()))
    before = json.loads(args.baseline.read_text())["indicators"] if args.baseline else {}
    w = sys.stdout.write
    w(f"{out['taxpayers']:,} active taxpayers, base rate {out['base_rate']:.3f}\n")
    head = f"{'indicator':28} {'fired':>7} {'share':>7} {'prec':>6} {'lift':>5}"
    w(head + ("   | before: fired   prec" if before else "") + "\n")
    for k, r in out["indicators"].items():
        line = f"{k:28} {r['fired']:7d} {r['share']:7.3f} {r['precision']:6.3f} {r['lift']:5.2f}"
        if before:
            b = before.get(k)
            line += f"   | {b['fired']:13d} {b['precision']:6.3f}" if b else "   | (new)"
        w(line + "\n")
    for k in before:
        if k not in out["indicators"]:
            w(
                f"{k:28} (gone; before: fired {before[k]['fired']}, prec {before[k]['precision']:.3f})\n"
            )
    for o in out["overlap"]:
        w(f"overlap: {o['a']} ~ {o['b']} jaccard {o['jaccard']:.2f} ({o['both']} both)\n")
    r = out["old_rules"]
    w(f"old rules: capture@{r['k']} {r['capture']:.3f}, hit rate@K {r['hit_rate']:.3f}\n")
    for k, why in out["switched_off"].items():
        w(f"switched off: {k}: {why}\n")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
