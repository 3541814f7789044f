"""Which label tracks the truth gap on the metric's scale? (an evaluation diagnostic)

Usage::

    .venv/bin/python -m taxrisk.experiments.label_scale WORLD [WORLD ...]

For each generated world (a folder with ``truth/gaps.parquet``; evaluation code, the only kind
that may read ``truth/``): every adjusted audit with a recovery, its truth gap over the 24
months before its selection month (``g24``, the metric's window at the selection date), and
three labels: the amount as recovered (``raw``), scaled to 24 months either way
(``up``: ``x 24 / covered months``, factor <= 24, the first default) and scaled down only
(``down``: factor ``min(1, 24 / covered months)``, the default since). Prints, per label, the
Spearman correlation with ``g24`` and the median ``label / g24`` by selection year: a good
label has a high correlation and a flat ratio (a trend in the ratio is a trend in time the
model learns as risk). Also the covered months by selection year.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["label_table", "main"]

METRIC_MONTHS = 24


def label_table(world: Path) -> tuple[pd.DataFrame, pd.Series]:
    """(per label: spearman and median ratio by year; mean covered months by year)."""
    g = pd.read_parquet(world / "truth" / "gaps.parquet")
    g["p"] = pd.PeriodIndex(g["period"], freq="M")
    gp = g.pivot_table(index="taxpayer_id", columns="p", values="gap", aggfunc="sum")
    gp = gp.fillna(0.0).clip(lower=0.0)
    a = pd.read_parquet(world / "audits.parquet")
    f = pd.PeriodIndex(a["covers_from"], freq="M")
    t = pd.PeriodIndex(a["covers_to"], freq="M")
    a["n"] = [x.n + 1 for x in (t - f)]
    a["year"] = pd.to_datetime(a["selected_on"]).dt.year
    covered = a.groupby("year")["n"].mean()
    adj = a[(a["outcome"] == "adjusted") & (a["tax_recovered"] > 0)]
    adj = adj[adj["taxpayer_id"].isin(gp.index)]
    cols = gp.columns
    g24 = []
    for r in adj.itertuples():
        s = pd.Period(pd.Timestamp(r.selected_on), freq="M")
        v = gp.loc[r.taxpayer_id].to_numpy()
        g24.append(v[(cols < s) & (cols >= s - METRIC_MONTHS)].sum())
    d = pd.DataFrame(
        {
            "raw": adj["tax_recovered"].to_numpy(),
            "n": adj["n"].to_numpy(),
            "g24": g24,
            "year": adj["year"].to_numpy(),
        }
    )
    d["up"] = d["raw"] * np.minimum(METRIC_MONTHS / d["n"], 24.0)
    d["down"] = d["raw"] * np.minimum(METRIC_MONTHS / d["n"], 1.0)
    d = d[d["g24"] > 0]
    rows = {}
    for lab in ("raw", "up", "down"):
        ratio = (d[lab] / d["g24"]).groupby(d["year"]).median()
        rows[lab] = {"spearman": d[lab].corr(d["g24"], method="spearman"), **ratio.to_dict()}
    return pd.DataFrame(rows).T, covered


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("worlds", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for w in args.worlds:
        table, covered = label_table(w)
        print(f"== {w}: covered months by selection year {covered.round(1).to_dict()}")
        print("label / g24 (median by selection year) and Spearman with g24:")
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
