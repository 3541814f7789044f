"""Benchmark: the feature matrix against a bare DuckDB scan of the same input, in one run.

    python -m taxrisk.experiments.bench_features DIR [--as-of DATE] [--batch] [--json OUT]

Measures, in one process, with every input file read once first (warm, as the build's
snapshot files are): a bare DuckDB scan of every column of every contract table file
(``max()`` of each column, so every value is read), loading (``load_folder``: reading,
validation, typing; ``--validated``: the workspace's validated snapshot, as the commands read
it), ``build_matrix`` as of the last month of the data (or ``--as-of``), per
stage and source group (the slowest first), the build's user and system CPU seconds and
minor page faults (``build_cpu``: on a VM that hands freed memory back to the host, the
system time is the price of fresh memory, docs/decisions.md "perf9"), peak RSS of the
process (DuckDB's memory included), and optionally (``--batch``) ``build_matrices`` over
every audit selection date with ``pairs`` = the audited taxpayers (the training set). Prints
a JSON summary. DuckDB is configured from the settings (``TAXRISK_DUCKDB_MEMORY_LIMIT``,
spill to the workspace).
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

import duckdb
import pandas as pd
from taxrisk.features.loading import find_tables, load_folder, load_validated
from taxrisk.features.matrix import build_matrices, build_with_timings
from taxrisk.features.schema import SCHEMAS
from taxrisk.features.tables import connect

from taxrisk.settings import get_settings

log = logging.getLogger("bench_features")


def cpu_now() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and minor page faults so far (every
    thread's: DuckDB's and Arrow's included)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bare_scan(files: dict[str, Path]) -> tuple[float, int]:
    """Seconds to read every contract column of every table file (``files``: table -> file,
    as :func:`find_tables` finds them) with DuckDB, and rows."""
    con = duckdb.connect()
    rows = 0
    t0 = time.perf_counter()
    for name, path in files.items():
        cols = SCHEMAS[name].column_names
        if path.suffix == ".parquet":
            src = f"read_parquet('{path}')"
        else:
            src = f"read_csv('{path}', all_varchar=true, header=true)"
        exprs = ", ".join(["count(*)"] + [f'max("{c}")' for c in cols])
        rows += int(con.sql(f"SELECT {exprs} FROM {src}").fetchone()[0])  # type: ignore[index]
    return time.perf_counter() - t0, rows


def warm(paths: list[Path]) -> float:
    """Read ``paths`` once (into the page cache), so the bare scan and the build both read
    warm files: a scan of files evicted by other work took 13.8-14.3 s against 10.8-11.3 s
    warm at 1M, and made the ratio look better than it was. Returns GB read."""
    n = 0
    for path in paths:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 23):
                n += len(chunk)
    return n / 1024**3


def last_month_end(files: dict[str, Path]) -> dt.date:
    """The last day of the latest VAT period in the folder's ``files`` (table -> file)."""
    path = files["vat_returns"]
    src = (
        f"read_parquet('{path}')"
        if path.suffix == ".parquet"
        else f"read_csv('{path}', all_varchar=true)"
    )
    latest = str(duckdb.sql(f"SELECT max(CAST(period AS VARCHAR)) FROM {src}").fetchone()[0])  # type: ignore[index]
    first = pd.Period(latest[:7], freq="M")
    return first.end_time.date()


def run(
    folder: Path, as_of: dt.date | None, batch: bool, validated: bool = False
) -> dict[str, Any]:
    files, _ = find_tables(folder)
    as_of = as_of or last_month_end(files)
    out: dict[str, Any] = {"folder": str(folder), "as_of": as_of.isoformat()}
    out["warmed_input_gb"] = round(warm(list(files.values())), 2)
    scan_s, rows = bare_scan(files)
    out |= {"input_rows": rows, "bare_scan_s": round(scan_s, 2)}
    t0 = time.perf_counter()
    settings = get_settings()
    if validated:
        # the tables as every command reads them: views over the workspace's validated
        # snapshot (made by ``taxrisk validate``, or by this call the first time)
        loaded = load_validated(
            folder, snapshots=settings.snapshots_dir, con=connect(settings), as_of=as_of
        )
    else:
        loaded = load_folder(folder, con=connect(settings), as_of=as_of)
    out["load_s"] = round(time.perf_counter() - t0, 2)
    if validated:
        out["snapshot"] = loaded.snapshot is not None
        if loaded.snapshot is not None:
            # after timing the load: reading 3 GB of evicted files is not the load's cost
            snap_files = sorted(loaded.snapshot.path.glob("*.parquet"))
            out["warmed_snapshot_gb"] = round(warm(snap_files), 2)
    timings: dict[str, float] = {}
    cpu0, t0 = cpu_now(), time.perf_counter()
    matrix, off = build_with_timings(loaded.tables, [as_of], timings)
    build_s = time.perf_counter() - t0
    user, system, faults = (b - a for a, b in zip(cpu0, cpu_now(), strict=True))
    out |= {
        "build_matrix_s": round(build_s, 2),
        "rows": len(matrix),
        "columns": matrix.shape[1],
        "ratio_build_to_scan": round(build_s / scan_s, 2),
        "ratio_load_and_build_to_scan": round((build_s + out["load_s"]) / scan_s, 2),
        "switched_off": sorted(off),
        # every stage in pipeline order (sources, join, derived, benchmarks, peers, values,
        # percentiles, flags + collect, pandas); their sum is build_matrix_s less overheads
        "stages_s": {k: round(v, 2) for k, v in timings.items()},
        "slowest": {k: round(v, 2) for k, v in sorted(timings.items(), key=lambda kv: -kv[1])[:8]},
        "build_cpu": {
            "user_s": round(user, 2),
            "system_s": round(system, 2),
            "cores_used": round((user + system) / build_s, 2),
            "minor_faults": int(faults),
        },
        "peak_rss_gb_after_build": round(peak_rss_gb(), 2),
    }
    fired = matrix[[c for c in matrix.columns if c.endswith("__fired")]].mean()
    out["fired_share"] = {k[:-7]: round(float(v), 4) for k, v in fired.items()}
    log.info("single build: %s", json.dumps({k: v for k, v in out.items() if k != "fired_share"}))
    del matrix
    if batch and "audits" in loaded.tables:
        aud = loaded.tables["audits"].select("taxpayer_id", "selected_on").to_pandas()
        aud["selected_on"] = pd.to_datetime(aud["selected_on"]).dt.date
        aud = aud[aud["selected_on"] <= as_of]
        pairs = pd.DataFrame({"as_of": aud["selected_on"], "taxpayer_id": aud["taxpayer_id"]})
        t0 = time.perf_counter()
        mats = build_matrices(loaded.tables, sorted(set(pairs["as_of"])), pairs=pairs)
        out |= {
            "batch_dates": int(pairs["as_of"].nunique()),
            "batch_rows": len(mats),
            "build_matrices_s": round(time.perf_counter() - t0, 2),
            "peak_rss_gb": round(peak_rss_gb(), 2),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    p.add_argument("--batch", action="store_true", help="also time build_matrices on audits")
    p.add_argument("--json", type=Path, default=None, help="also write the summary here")
    p.add_argument(
        "--validated",
        action="store_true",
        help="read the tables from the workspace's validated snapshot (as the commands do)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run(args.folder, args.as_of, args.batch, args.validated)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
