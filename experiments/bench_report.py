"""Time the explanation report of one case: HTML and PDF (median of a few renders).

    python experiments/bench_report.py [--case CASE_ID] [--repeat N] [--peers N] [--json OUT]

With ``--case``: that case of the configured store (``TAXRISK_*`` settings, as ``taxrisk
report``). Without: a temporary SQLite store seeded by the tests' ``seed_store``
(``tests/serving/store_factories.py``: 20 cases, 4-7 indicator rows each) and a synthetic
run matrix of ``--peers`` taxpayers (default 100,000 in 30 industries, every catalog indicator
column) so that the peer-median read from Parquet is part of the time, as on a real run.

Each format is rendered once untimed (template compile, WeasyPrint and font loading), then
``--repeat`` times; prints the first and the median/min/max of the rest, in milliseconds,
and the sizes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.reports.peers import MODEL_COLUMNS
from taxrisk.serving.reports.render import render_report
from taxrisk.serving.store.action_log import Actor
from taxrisk.serving.store.models import Case, ScoringRun
from taxrisk.serving.store.session import make_engine, session_factory, upgrade

from taxrisk.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]
ACTOR = Actor("system", "admin")


def _synthetic(root: Path, peers: int) -> tuple[Settings, str]:
    """A seeded temporary store and a run matrix; (settings, the best-ranked case id)."""
    sys.path.insert(0, str(REPO / "tests" / "serving"))
    from store_factories import seed_store  # the tests' seeded store, reused

    settings = get_settings(workspace=root, database_url=f"sqlite:///{root / 'cases.db'}")
    engine = make_engine(settings)
    upgrade(engine)
    with session_factory(engine)() as s:
        info = seed_store(s)
        s.commit()
        case = s.get(Case, info.case_ids[2])
        assert case is not None and case.industry
        rng = np.random.default_rng(0)
        industries = [case.industry, *(f"I{k:03d}" for k in range(29))]
        ids = [case.taxpayer_id, *(f"P{k:07d}" for k in range(peers - 1))]
        cols = {c: rng.random(peers) for c in [*CATALOG, *MODEL_COLUMNS]}
        frame = pd.DataFrame(
            {
                "taxpayer_id": ids,
                "industry": pd.Categorical(rng.choice(industries, peers)),
                **cols,
            }
        ).set_index("taxpayer_id")
        rel = f"runs/{info.run_id}/matrix.parquet"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        frame.sort_index().to_parquet(root / rel, row_group_size=10_000)
        run = s.get(ScoringRun, info.run_id)
        assert run is not None
        run.artifacts = {**run.artifacts, "matrix.parquet": rel}
        s.commit()
    engine.dispose()
    return settings, case.case_id


def _time(settings: Settings, case_id: str, fmt: str, repeat: int) -> dict[str, Any]:
    engine = make_engine(settings)
    times: list[float] = []
    size = 0
    try:
        for _ in range(repeat + 1):
            with session_factory(engine)() as s:
                t0 = time.perf_counter()
                body = render_report(s, ACTOR, case_id, settings, fmt)  # type: ignore[arg-type]
                times.append((time.perf_counter() - t0) * 1000)
                size = len(body)
    finally:
        engine.dispose()
    rest = times[1:]
    return {
        "first_ms": round(times[0], 1),
        "median_ms": round(statistics.median(rest), 1),
        "min_ms": round(min(rest), 1),
        "max_ms": round(max(rest), 1),
        "repeat": repeat,
        "bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", help="a case id of the configured store (default: synthetic)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peers", type=int, default=100_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_report.") as tmp:
        if args.case:
            settings, case_id, source = get_settings(), args.case, "configured store"
        else:
            settings, case_id = _synthetic(Path(tmp), args.peers)
            source = f"seeded store + synthetic matrix of {args.peers:,} taxpayers"
        out: dict[str, Any] = {"case": case_id, "source": source}
        for fmt in ("html", "pdf"):
            out[fmt] = _time(settings, case_id, fmt, args.repeat)
    print(f"report of {case_id} ({source})")
    for fmt in ("html", "pdf"):
        r = out[fmt]
        print(
            f"  {fmt:4s}: median {r['median_ms']:8.1f} ms (min {r['min_ms']:.1f}, max "
            f"{r['max_ms']:.1f}, {r['repeat']} runs; first {r['first_ms']:.1f} ms), "
            f"{r['bytes']:,} bytes"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
