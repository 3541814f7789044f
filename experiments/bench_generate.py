"""Benchmark the synthetic-city generator: wall time and peak memory at several sizes.

Usage::

    .venv/bin/python experiments/bench_generate.py [--sizes 2000 100000 1000000] [--months 36]
        [--seed 1] [--workers N] [--out DIR --keep] [--json FILE]

For each size it generates a world (into a temporary folder, or ``--out`` with a single size,
kept with ``--keep``), and reports wall time, the peak resident memory of the whole process
tree (main + worker processes, sampled from /proc every 0.2 s) and of the largest single
process (``ru_maxrss``), rows written and bytes on disk. Run the 1,000,000 size alone, under
``flock /tmp/taxrisk-bench.lock`` (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path


def _tree_rss_kb(root: int) -> int:
    """Sum of VmRSS (kB) of ``root`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/status") as f:
                text = f.read()
        except OSError:
            continue
        pid = int(d)
        ppid = int(text.split("PPid:", 1)[1].split()[0])
        children.setdefault(ppid, []).append(pid)
        if "VmRSS:" in text:
            rss[pid] = int(text.split("VmRSS:", 1)[1].split()[0])
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


class _PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._stop_event.is_set():
            self.peak_kb = max(self.peak_kb, _tree_rss_kb(me))
            self._stop_event.wait(0.2)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench(size: int, months: int, seed: int, out: Path, workers: int | None) -> dict:
    from taxrisk.experiments.demo import CHUNK_SIZE, generate

    sampler = _PeakSampler()
    sampler.start()
    t0 = time.perf_counter()
    summary = generate(out, taxpayers=size, months=months, seed=seed, workers=workers)
    wall = time.perf_counter() - t0
    sampler.stop()
    max_single = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return {
        "taxpayers": size,
        "months": months,
        "seconds": round(wall, 1),
        "peak_tree_rss_gb": round(sampler.peak_kb / 1024**2, 2),
        "peak_single_process_rss_gb": round(max_single / 1024**2, 2),
        "rows": sum(summary["tables"].values()),
        "invoice_rows": summary["tables"]["invoices"],
        "disk_gb": round(_du(out) / 1024**3, 2),
        "workers": min(workers or min(os.cpu_count() or 1, 4), -(-size // CHUNK_SIZE)),
        "evader_share": round(summary["evader_share"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 100_000, 1_000_000])
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, help="output folder (one size only)")
    ap.add_argument("--keep", action="store_true", help="keep the generated folder")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.out and len(args.sizes) != 1:
        ap.error("--out takes a single --sizes value")
    results = []
    for size in args.sizes:
        tmp = None
        out = args.out
        if out is None:
            tmp = Path(tempfile.mkdtemp(prefix=f"taxrisk-bench-{size}-"))
            out = tmp
        try:
            r = bench(size, args.months, args.seed, out, args.workers)
        finally:
            if tmp is not None and not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        results.append(r)
        print(
            f"{r['taxpayers']:>9,} taxpayers x {r['months']} months: {r['seconds']:>7.1f} s, "
            f"peak RSS {r['peak_tree_rss_gb']:.2f} GB (process tree; largest process "
            f"{r['peak_single_process_rss_gb']:.2f} GB), {r['rows']:,} rows "
            f"({r['invoice_rows']:,} invoices), {r['disk_gb']:.2f} GB on disk, {r['workers']} workers",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
