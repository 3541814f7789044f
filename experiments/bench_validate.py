"""Time ``validate`` against a bare read of the same files, in one run.

    python experiments/bench_validate.py DIR [--as-of DATE] [--json OUT]

(a) bare read: every column of every contract table in DIR materialised into a DuckDB table
    (``CREATE TABLE AS SELECT * FROM read_csv/read_parquet``, types auto-detected), no checks;
(b) validate, as ``taxrisk validate`` runs it: :func:`~taxrisk.features.loading.load_validated`
    with ``fresh=True`` (validation with quarantine files, each clean table written to the
    validated snapshot as Parquet as it is validated: straight from its file when no rule
    fires, else from its stage; the log lines say which, with the time of each part; then
    the snapshot reopened), plus the data-quality report
    (:func:`~taxrisk.features.quality.build_report` and ``write_report``); and (c) the reuse
    of that snapshot by a later command (``load_validated`` again, matching fingerprint).

Both on a fresh connection built from the settings (``TAXRISK_DUCKDB_MEMORY_LIMIT``,
``TAXRISK_DUCKDB_THREADS``), after one pass that reads every file once so that both start
with the same page cache. Prints wall times per stage, the ratio (b / a, target <= 2) and peak
resident memory of each phase (sampled from /proc every 0.1 s; target <= 8 GB).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import logging
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from taxrisk.features.loading import find_tables, load_validated
from taxrisk.features.quality import build_report, write_report
from taxrisk.features.tables import connect

from taxrisk.settings import get_settings


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Samples the process's resident memory in a thread; ``peak`` in bytes."""

    def __init__(self, every: float = 0.1) -> None:
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.every)

    def __enter__(self) -> PeakRSS:
        self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _warm(files: dict[str, Path]) -> float:
    t0 = time.perf_counter()
    for f in files.values():
        with f.open("rb") as fh:
            while fh.read(1 << 24):
                pass
    return time.perf_counter() - t0


def bare_read(files: dict[str, Path]) -> tuple[float, dict[str, int], dict[str, float]]:
    settings = get_settings()
    con = connect(settings)
    con.raw_sql("SET enable_progress_bar = false")
    rows: dict[str, int] = {}
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    for name, f in files.items():
        t1 = time.perf_counter()
        fn = "read_parquet" if f.suffix == ".parquet" else "read_csv"
        con.raw_sql(f"CREATE TABLE bare_{name} AS SELECT * FROM {fn}('{f}')")
        rows[name] = int(con.raw_sql(f"SELECT count(*) FROM bare_{name}").fetchone()[0])
        secs[name] = time.perf_counter() - t1
    elapsed = time.perf_counter() - t0
    con.disconnect()
    return elapsed, rows, secs


def validate(folder: Path, as_of: dt.date | None, out: Path) -> tuple[float, dict[str, float]]:
    settings = get_settings()
    con = connect(settings)
    steps: dict[str, float] = {}
    seen: dict[str, float] = {}

    def stamp(step: str, done: int, total: int) -> None:
        seen.setdefault(step, time.perf_counter())

    t0 = time.perf_counter()
    result = load_validated(
        folder,
        snapshots=out / "snapshots",
        con=con,
        as_of=as_of,
        quarantine_dir=out / "quarantine",
        progress=stamp,
        fresh=True,
    )
    t_load = time.perf_counter()
    t_write = seen.get("write validated snapshot", t_load)
    report = build_report(result, as_of=as_of)
    write_report(report, out / "quality")
    elapsed = time.perf_counter() - t0
    # each table's snapshot file is written as soon as it is validated (the log line
    # "snapshot written in ... s" gives that share); then the manifest, rename and reopen
    steps["validate + write tables"] = t_write - t0
    steps["manifest + reopen"] = t_load - t_write
    steps["quality report"] = time.perf_counter() - t_load
    con.disconnect()
    return elapsed, steps


def reuse(folder: Path, as_of: dt.date | None, out: Path) -> float:
    """A later command's load: the snapshot matches and is opened."""
    con = connect(get_settings())
    t0 = time.perf_counter()
    result = load_validated(folder, snapshots=out / "snapshots", con=con, as_of=as_of)
    elapsed = time.perf_counter() - t0
    assert result.snapshot is not None and result.snapshot.reused
    con.disconnect()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--as-of", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress in logs
    logging.basicConfig(level=logging.WARNING, format="      %(message)s")
    logging.getLogger("taxrisk.features").setLevel(logging.INFO)
    files, _ = find_tables(args.folder)
    settings = get_settings()
    settings.ensure_workspace()
    size = sum(f.stat().st_size for f in files.values())
    print(f"folder: {args.folder} ({len(files)} tables, {size / 1e9:.2f} GB on disk)")
    print(f"duckdb memory_limit={settings.duckdb_memory_limit} threads={settings.duckdb_threads}")
    print(f"warm-up read of every file: {_warm(files):.1f} s")

    with PeakRSS() as peak_a:
        t_bare, rows, secs = bare_read(files)
    gc.collect()
    print(f"(a) bare read:  {t_bare:8.1f} s   peak RSS {peak_a.peak / 1e9:.2f} GB")
    for name, n in rows.items():
        print(f"      {name:<20} {n:>14,} rows {secs[name]:8.1f} s")

    with tempfile.TemporaryDirectory(dir=settings.tmp_dir) as tmp:
        with PeakRSS() as peak_b:
            t_val, steps = validate(args.folder, args.as_of, Path(tmp))
        print(f"(b) validate:   {t_val:8.1f} s   peak RSS {peak_b.peak / 1e9:.2f} GB")
        for step, step_s in steps.items():
            print(f"      {step:<28} {step_s:8.1f} s")
        t_reuse = reuse(args.folder, args.as_of, Path(tmp))
        print(f"(c) a later command's load (snapshot reused): {t_reuse:.1f} s")
    ratio = t_val / t_bare if t_bare else float("nan")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"ratio (b)/(a): {ratio:.2f}   (target <= 2)")
    print(f"peak RSS of the process (getrusage): {maxrss / 1e9:.2f} GB   (target <= 8)")
    if args.json:
        figures: dict[str, Any] = {
            "folder": str(args.folder),
            "bytes": size,
            "rows": rows,
            "bare_read_s_per_table": secs,
            "bare_read_s": t_bare,
            "validate_s": t_val,
            "ratio": ratio,
            "peak_rss_bare_bytes": peak_a.peak,
            "peak_rss_validate_bytes": peak_b.peak,
            "peak_rss_process_bytes": maxrss,
            "steps_s": steps,
            "reuse_s": t_reuse,
            "memory_limit": settings.duckdb_memory_limit,
        }
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
