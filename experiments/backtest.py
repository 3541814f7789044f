"""Backtest: the model against the old rules, a logistic regression, random and the oracle.

    python -m taxrisk.experiments.backtest DIR --as-of DATE [--trials N] [--out DIR]

Trains on the audits known at DATE (``taxrisk.training.pipeline.train``: MLflow run and
registry in TAXRISK_WORKSPACE), scores every active taxpayer as of DATE with the model, the
old rules (count of fired classic indicators), the logistic baseline refitted on the same
audits, and a seeded random ranking, writes each ranking as CSV under ``--out`` (so that
``taxrisk evaluate`` can re-check any of them), evaluates them by CONTRACT section 4 and
prints a markdown table (for the README) plus the training wall time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("backtest"))
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    logging.basicConfig(level=logging.WARNING)

    from taxrisk.features.loading import load_folder
    from taxrisk.features.matrix import build_matrix, feature_columns
    from taxrisk.serving.config import load_config as load_serving_config
    from taxrisk.serving.scoring import rank_predictions
    from taxrisk.training.baselines import old_rules_scores, random_scores
    from taxrisk.training.evaluation import evaluate_rankings
    from taxrisk.training.pipeline import train

    from taxrisk.settings import get_settings

    settings = get_settings()
    levels = load_serving_config().risk_levels
    t0 = time.perf_counter()
    result = train(args.data_dir, args.as_of, settings=settings, trials=args.trials)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    tables = load_folder(args.data_dir, as_of=args.as_of).tables
    matrix = build_matrix(tables, args.as_of)
    feats = matrix[feature_columns(matrix)]
    unit = matrix["unit_id"]

    def as_ranking(
        scores: np.ndarray | pd.Series, probability: np.ndarray | None = None
    ) -> pd.DataFrame:
        s = np.asarray(scores, dtype=float)
        p = np.zeros(len(s)) if probability is None else probability
        pred = pd.DataFrame({"expected_yield": s, "probability": p}, index=matrix.index)
        return rank_predictions(pred, unit, levels)

    # the matrix as scoring gives it (serving.scoring): the model takes its own columns of it
    # (the undated registry attributes are in the matrix, not among the model's inputs)
    model_pred = result.model.predict(feats, allow_extra=True)
    rankings = {
        "model": as_ranking(model_pred["expected_yield"], model_pred["probability"].to_numpy()),
        "model (probability only)": as_ranking(model_pred["probability"]),
        "old rules": as_ranking(old_rules_scores(feats)),
        "logistic": as_ranking(result.logistic.predict(feats)["expected_yield"]),
        "random": as_ranking(random_scores(matrix.index, args.seed)),
    }
    score_s = time.perf_counter() - t1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, r in rankings.items():
        r.to_csv(
            args.out / f"ranking_{name.split(' ')[0]}{'_p' if 'probability' in name else ''}.csv",
            index=False,
        )
    metrics = evaluate_rankings(args.data_dir, args.as_of, rankings)
    first = next(iter(metrics.values()))
    print(
        f"World {args.data_dir.name}, as of {args.as_of}: N = {first['n']:,} active, K = {first['k']:,}."
    )
    print()
    if first["source"] == "truth":
        print("| ranking | capture@K | hit rate@K | gap in top K (yuan) |")
        print("|---|---:|---:|---:|")
        for name, m in metrics.items():
            print(
                f"| {name} | {m['capture_at_k']:.3f} | {m['hit_rate_at_k']:.3f} | {m['gap_at_k']:,.0f} |"
            )
        print(
            f"| oracle | 1.000 | {first['oracle_hit_rate_at_k']:.3f} | {first['oracle_gap_at_k']:,.0f} |"
        )
        print(
            f"| random (expected) | {first['random_capture_at_k']:.3f} | {first['random_hit_rate_at_k']:.3f} | |"
        )
        ratio = metrics["model"]["capture_at_k"] / max(metrics["old rules"]["capture_at_k"], 1e-12)
        print()
        print(f"model / old rules capture@K: {ratio:.2f}x")
    else:
        print("| ranking | precision@K | recovered@K (yuan) | weighted precision@K |")
        print("|---|---:|---:|---:|")
        for name, m in metrics.items():
            print(
                f"| {name} | {m['precision_at_k']:.3f} | {m['recovered_at_k']:,.0f} | "
                f"{m.get('weighted_precision_at_k', float('nan')):.3f} |"
            )
    print()
    print("Validation on held-out audits (time split), from the training run:")
    print()
    cols = ["all_yield_capture", "all_precision", "all_auc", "random_yield_capture", "random_auc"]
    print("| ranking | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, row in result.comparison.iterrows():
        print(f"| {name} | " + " | ".join(f"{row[c]:.3f}" for c in cols) + " |")
    print()
    print(
        f"train wall time {train_s:.1f} s (trials {args.trials if args.trials is not None else 'default'}), "
        f"scoring + baselines {score_s:.1f} s; bias technique kept: {result.bias_method}; "
        f"run {result.run_id}, version {result.version}, champion: {result.decision.reason}"
    )
    print("timings:", {k: round(v, 1) for k, v in result.timings.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
