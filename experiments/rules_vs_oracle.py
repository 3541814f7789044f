"""Score a synthetic city with the documents' old rules and with the oracle (CONTRACT section 4).

Usage::

    .venv/bin/python experiments/rules_vs_oracle.py DIR --as-of 2025-12-31 [--json OUT]

Loads the folder with the project's loader, builds the feature matrix as of the date, ranks
active taxpayers by the old rules (count of fired classic indicators, declared size as the
tie-break: :func:`taxrisk.training.baselines.old_rules_scores`), and evaluates that ranking
against ``truth/`` with :func:`taxrisk.training.evaluation.evaluate_ranking`, which also
reports the oracle (the K taxpayers with the largest remaining gap) and a random ranking.
Also prints a plain cross-check computed here from the files alone (low burden, zero filings,
invoices above declared sales), so a change in either can be noticed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _read(folder: Path, name: str) -> pd.DataFrame:
    p = folder / f"{name}.parquet"
    return pd.read_parquet(p) if p.exists() else pd.read_csv(folder / f"{name}.csv")


def plain_rules(folder: Path, as_of: dt.date) -> pd.Series:
    """A self-contained old-rules score from the files: the count of three classic rules.

    Rules over the 12 months up to ``as_of`` (returns filed by then): VAT burden below the
    industry warning line (general taxpayers), six or more zero/negative returns, invoices
    issued above 110% of declared sales. Tie-break: declared sales. index: taxpayer_id.
    """
    ts = pd.Timestamp(as_of)
    lo = ts.to_period("M").to_timestamp() - pd.DateOffset(months=11)
    tp = _read(folder, "taxpayers").set_index("taxpayer_id")
    v = _read(folder, "vat_returns")
    v = v[(pd.to_datetime(v.filed_on) <= ts) & (pd.to_datetime(v.period + "-01") >= lo)]
    s = v.groupby("taxpayer_id").agg(
        sales=("sales", "sum"),
        pay=("tax_payable", "sum"),
        zero=("tax_payable", lambda x: (x <= 0).sum()),
    )
    norms = _read(folder, "industry_norms")
    warn = norms[norms.metric == "tax_burden_warning"].set_index("industry").value
    general = tp.taxpayer_type.reindex(s.index) == "general"
    r1 = (
        general
        & (s.sales > 0)
        & (s.pay / s.sales.clip(lower=1) < tp.industry.reindex(s.index).map(warn))
    )
    r2 = s.zero >= 6
    inv = _read(folder, "invoices")
    p = pd.to_datetime(inv.period + "-01")
    issued = inv[(p >= lo) & (p <= ts)].groupby("seller_id").amount.sum()
    r3 = issued.reindex(s.index).fillna(0) > 1.1 * s.sales + 1000
    count = r1.astype(float) + r2 + r3
    frac = s.sales.rank(method="first").to_numpy() / (len(s) + 1)
    return (count + frac).reindex(tp.index).fillna(0.0)


def _ranking(scores: pd.Series) -> pd.DataFrame:
    order = scores.sort_values(ascending=False, kind="stable")
    return pd.DataFrame(
        {"taxpayer_id": order.index.astype(str), "rank": np.arange(1, len(order) + 1)}
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    from taxrisk.features.loading import load_folder
    from taxrisk.features.matrix import build_matrix
    from taxrisk.training.baselines import old_rules_scores
    from taxrisk.training.evaluation import evaluate_rankings

    t0 = time.time()
    loaded = load_folder(args.folder, as_of=args.as_of)
    matrix = build_matrix(loaded.tables, args.as_of)
    t1 = time.time()
    rankings = {
        "old_rules": _ranking(old_rules_scores(matrix)),
        "plain_rules": _ranking(plain_rules(args.folder, args.as_of)),
    }
    res = evaluate_rankings(args.folder, args.as_of, rankings)
    old, plain = res["old_rules"], res["plain_rules"]
    print(
        f"world {args.folder} as of {args.as_of}: N={old['n']:,} active, K={old['k']:,} (sum of capacities)"
    )
    print(
        f"  remaining gap over {old['window']}: {old['total_gap']:,.0f} yuan; {old['taxpayers_with_gap']:,} taxpayers with gap > 1,000"
    )
    print(f"  {'ranking':<28}{'capture@K':>10}{'hit rate@K':>12}{'gap@K (yuan)':>18}")
    print(
        f"  {'oracle':<28}{1.0:>10.3f}{old['oracle_hit_rate_at_k']:>12.3f}{old['oracle_gap_at_k']:>18,.0f}"
    )
    print(
        f"  {'old rules (project catalog)':<28}{old['capture_at_k']:>10.3f}{old['hit_rate_at_k']:>12.3f}{old['gap_at_k']:>18,.0f}"
    )
    print(
        f"  {'old rules (plain, 3 rules)':<28}{plain['capture_at_k']:>10.3f}{plain['hit_rate_at_k']:>12.3f}{plain['gap_at_k']:>18,.0f}"
    )
    print(
        f"  {'random (expected)':<28}{old['random_capture_at_k']:>10.3f}{old['random_hit_rate_at_k']:>12.3f}"
    )
    print(f"  old rules / oracle yield at K: {old['capture_at_k']:.1%} (target: well under 50%)")
    print(f"  (load + matrix {t1 - t0:.1f} s)")
    if args.json:
        args.json.write_text(
            json.dumps({"old_rules": old, "plain_rules": plain}, indent=2, default=str)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
