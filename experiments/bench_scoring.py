"""Benchmark: a scoring run (predict, contributions, allocation, publish) on a built matrix.

    python -m taxrisk.experiments.bench_scoring DIR --as-of DATE [--matrix FILE]
        [--model URI] [--json OUT]

Uses the settings' workspace, MLflow store (the champion, or ``--model``) and case store.
With ``--matrix`` (a Parquet file written by ``taxrisk features``), the features are taken as
built and the run starts from them ("features already built"); without it the run builds them.
Prints the stage timings of the run (``load``, ``features``, ``predict``, ``allocation``,
``contributions``, ``monitoring``, ``write``, ``publish``), the counts, the peak RSS of the
process, and, where the folder has ``truth/``, the CONTRACT section 4 capture@K and hit
rate@K of the raw ranking and of the cases actually dispatched (dispatched cases first, in
rank order, then everyone else in rank order).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from taxrisk.settings import get_settings

log = logging.getLogger("bench_scoring")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def dispatched_ranking(ranking: pd.DataFrame, dispatched: set[str]) -> pd.DataFrame:
    """The ranking reordered: dispatched taxpayers first (rank order), then the rest."""
    first = ranking["taxpayer_id"].isin(dispatched)
    out = pd.concat([ranking[first], ranking[~first]], ignore_index=True)
    return out.assign(rank=range(1, len(out) + 1))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--matrix", type=Path)
    ap.add_argument("--model")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    from sqlalchemy import select
    from taxrisk.serving.runs import run_scoring
    from taxrisk.serving.store.models import Case
    from taxrisk.serving.store.session import make_engine, session_factory

    settings = get_settings()
    matrix = None
    t0 = time.perf_counter()
    if args.matrix is not None:
        matrix = pd.read_parquet(args.matrix)
        if "taxpayer_id" in matrix.columns:  # as `taxrisk features` writes it
            matrix = matrix.set_index("taxpayer_id")
        matrix.index = matrix.index.astype("str")
        for c in ("unit_id", "industry", "taxpayer_type", "collection_method"):
            if c in matrix.columns:
                matrix[c] = matrix[c].astype("category")
    read_s = time.perf_counter() - t0
    result = run_scoring(settings, args.data_dir, args.as_of, model_uri=args.model, matrix=matrix)
    out: dict[str, Any] = {
        "data_dir": str(args.data_dir),
        "as_of": args.as_of.isoformat(),
        "taxpayers_scored": result.counts["scored"],
        "counts": result.counts,
        "timings_s": result.timings,
        "matrix_read_s": round(read_s, 2),
        "score_contrib_dispatch_s": round(
            result.timings["total"]
            - result.timings.get("load", 0)
            - result.timings.get("features", 0),
            2,
        ),
        "peak_rss_gb_scoring_run": round(peak_rss_gb(), 2),
    }
    if (args.data_dir / "truth").exists():
        from taxrisk.training.evaluation import evaluate_rankings

        with session_factory(make_engine(settings))() as s:
            dispatched = set(
                s.scalars(
                    select(Case.taxpayer_id).where(
                        Case.run_id == result.run_id,
                        Case.selection.in_(["model", "exploration"]),
                    )
                )
            )
        metrics = evaluate_rankings(
            args.data_dir,
            args.as_of,
            {
                "raw ranking": result.ranking,
                "dispatched cases": dispatched_ranking(result.ranking, dispatched),
            },
        )
        out["evaluation"] = {
            name: {k: m[k] for k in ("k", "n", "capture_at_k", "hit_rate_at_k")}
            for name, m in metrics.items()
        }
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
