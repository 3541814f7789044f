"""Allocation (LP) against the greedy per-unit sort on a published run's candidates.

    python -m taxrisk.experiments.allocation_vs_greedy DIR [--run RUN_ID]

Reads the run's ranking and matrix from the workspace (the current run by default), routes
every taxpayer as the run did (without the cross-county flag, which needs the invoices) and
allocates the units' capacities (no exploration) both ways; prints the total expected yield
of each, their ratio, and how many units bind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from taxrisk.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--run")
    args = ap.parse_args(argv)

    from taxrisk.serving import dispatch, routing
    from taxrisk.serving.config import load_config
    from taxrisk.serving.runs import current_run, overflow_rules, route_candidates
    from taxrisk.serving.store.models import ScoringRun
    from taxrisk.serving.store.session import open_store

    settings = get_settings()
    cfg = load_config()
    with open_store(settings) as s:
        run = s.get(ScoringRun, args.run) if args.run else current_run(s)
        if run is None:
            raise SystemExit("no scoring run in this workspace (run `taxrisk score` first)")
        artifacts = dict(run.artifacts)
    ranking = pd.read_parquet(settings.root / artifacts["ranking.parquet"])
    matrix = pd.read_parquet(settings.root / artifacts["matrix.parquet"])
    units = pd.read_parquet(args.data_dir / "units.parquet")
    cand = routing.candidate_frame(ranking, matrix, None)
    cand["measure"] = ranking["recommended_measure"].to_numpy()
    routed = route_candidates(cand, units, cfg)
    kw = overflow_rules(cfg)
    caps = units[["unit_id", "capacity", "level"]]
    lp = dispatch.allocate(routed, caps, exploration_share=0.0, seed=1, **kw)
    gr = dispatch.greedy(routed, caps, **kw)
    print(
        f"K = {int(units['capacity'].sum()):,}, {len(ranking):,} taxpayers: "
        f"LP {lp.objective:,.0f} yuan, greedy {gr.objective:,.0f} yuan, "
        f"ratio {lp.objective / gr.objective:.4f}; units binding (LP) "
        f"{int(lp.units['binding'].sum())} of {len(lp.units)}; LP {lp.seconds:.2f} s"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
