"""The feature benchmark runs as documented (``experiments/bench_features.py``) and reports
what it says: the bare scan reads every contract table, the build's stages, its CPU split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from taxrisk.experiments import bench_features
from taxrisk.features.schema import SCHEMAS


def test_the_benchmark_reports_the_scan_the_stages_and_the_cpu(
    demo_world: Path, workspace: Path
) -> None:
    out = bench_features.run(demo_world, None, batch=True, validated=True)

    # the bare scan read every row of every contract table in the folder
    files = [demo_world / f"{name}.parquet" for name in SCHEMAS]
    present = [f for f in files if f.exists()]
    assert len(present) >= 10
    assert out["input_rows"] == sum(pq.ParquetFile(f).metadata.num_rows for f in present)

    # as of the last day of the latest VAT period
    periods = pq.read_table(demo_world / "vat_returns.parquet", columns=["period"]).column(0)
    latest = pd.Timestamp(str(max(periods.to_pylist()))[:7] + "-01")
    assert out["as_of"] == (latest + pd.offsets.MonthEnd(0)).date().isoformat()

    assert out["snapshot"] is True
    stages = out["stages_s"]
    timed = {"population", "vat", "invoices", "cit", "join", "peers", "values", "to_pandas"}
    assert timed <= set(stages)
    # the stages are parts of the build, timed in it
    assert sum(stages.values()) <= out["build_matrix_s"] + 0.05
    build, scan = out["build_matrix_s"], out["bare_scan_s"]  # each rounded to 0.01 s
    assert (build - 0.005) / (scan + 0.005) <= out["ratio_build_to_scan"]
    assert out["ratio_build_to_scan"] <= (build + 0.005) / (scan - 0.005)

    cpu = out["build_cpu"]
    assert cpu["user_s"] > 0 and cpu["system_s"] >= 0 and cpu["minor_faults"] > 0
    assert cpu["cores_used"] > 0

    # the training-set build: at most one row per audit selected by the as-of date
    selected = pq.read_table(demo_world / "audits.parquet", columns=["selected_on"]).column(0)
    by_then = int((pd.to_datetime(selected.to_pandas()) <= pd.Timestamp(out["as_of"])).sum())
    assert 0 < out["batch_rows"] <= by_then
