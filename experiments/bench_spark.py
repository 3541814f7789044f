"""Features + scoring on Apache Spark (local mode) against DuckDB, on one data folder.

    python experiments/bench_spark.py DATA_DIR [--as-of 2025-12-31] [--engines duckdb,spark]
        [--master local[2]] [--driver-memory 12g] [--explain-top 2000] [--out bench.json]

Validation (DuckDB, the validated snapshot; reused when it exists) is done first and timed
apart. Then each engine runs in its own child process, so that its wall time and peak memory
are its own: the peak is the largest sum of the resident memory of the child's whole process
tree (the Python driver and, for Spark, its JVM and Python workers), sampled every 0.2 s.

* duckdb: ``build_matrix`` (DuckDB) -> ``score_matrix`` (in-process LightGBM) ->
  ``explain.contributions`` of the top ``--explain-top`` ranks;
* spark: ``score_on_spark``: the same catalog on Spark over the snapshot's Parquet files ->
  ``mapInPandas`` predictions -> distributed rank -> top contributions, all written as Parquet.

The model: ``--model URI`` (with ``--tracking-uri``), else a YieldModel trained here on the
folder's audits (the same features; the figures are about the engines, not the model). Per-stage seconds of the feature pipeline
come from the ``stage <name>: <s>`` log lines of ``taxrisk.features.matrix``; for Spark, the
Spark jobs, stages and task seconds of each step come from its status tracker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (from /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def _run_child(args: list[str]) -> tuple[dict[str, Any], float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, _ = proc.communicate()
    done.set()
    th.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": f"exit code {proc.returncode}"}, wall, peak
    return json.loads(out.strip().splitlines()[-1]), wall, peak


class _Stages(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.stages: dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("stage "):
            name, secs = record.getMessage()[6:].rsplit(": ", 1)
            self.stages[name] = self.stages.get(name, 0.0) + float(secs.rstrip("s"))


def _settings(ws: Path, master: str, memory: str) -> Any:
    from taxrisk.settings import get_settings

    s = get_settings(workspace=ws, spark_master=master, spark_driver_memory=memory)
    s.ensure_workspace()
    return s


def _model(ws: Path) -> Any:
    import pickle

    with open(ws / "bench_model.pkl", "rb") as f:
        return pickle.load(f)


def _prepare(
    folder: Path, as_of: dt.date, ws: Path, model_uri: str | None, tracking_uri: str | None
) -> dict[str, Any]:
    """Validate (snapshot), and load (``--model``) or train the model the children score with."""
    import pickle

    from taxrisk.features.loading import load_validated
    from taxrisk.features.tables import connect
    from taxrisk.training.dataset import build_training_set
    from taxrisk.training.models import YieldModel

    s = _settings(ws, "local[2]", "2g")
    t0 = time.perf_counter()
    loaded = load_validated(folder, snapshots=s.snapshots_dir, con=connect(s), as_of=as_of)
    t_val = time.perf_counter() - t0
    t0 = time.perf_counter()
    if model_uri:
        from taxrisk.training.tracking import load_yield_model

        model = load_yield_model(model_uri, tracking_uri or s.tracking_uri).model
        with open(ws / "bench_model.pkl", "wb") as f:
            pickle.dump(model, f)
        return {"validate_s": round(t_val, 2), "model": model_uri}
    ds = build_training_set(loaded.tables, as_of)
    ex = ds.examples
    model = YieldModel(
        classifier_params={"n_estimators": 200, "num_leaves": 31},
        regressor_params={"n_estimators": 200, "num_leaves": 31},
    ).fit(ds.X, ex["adjusted"], ex["tax_recovered"])
    with open(ws / "bench_model.pkl", "wb") as f:
        pickle.dump(model, f)
    return {"validate_s": round(t_val, 2), "train_s": round(time.perf_counter() - t0, 2)}


def _child(engine: str, folder: Path, as_of: dt.date, ws: Path, a: argparse.Namespace) -> None:
    from taxrisk.features.loading import load_validated
    from taxrisk.features.tables import connect
    from taxrisk.serving.config import load_config

    stages = _Stages()
    logging.getLogger("taxrisk.features.matrix").addHandler(stages)
    logging.getLogger("taxrisk.features.matrix").setLevel(logging.INFO)
    s = _settings(ws, a.master, a.driver_memory)
    loaded = load_validated(folder, snapshots=s.snapshots_dir, con=connect(s), as_of=as_of)
    model, cfg = _model(ws), load_config()
    rec: dict[str, Any] = {"engine": engine}
    if engine == "duckdb":
        from taxrisk.features.matrix import build_matrix
        from taxrisk.serving import explain
        from taxrisk.serving.scoring import score_matrix

        t0 = time.perf_counter()
        matrix = build_matrix(loaded.tables, as_of)
        rec["features_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranking = score_matrix(model, matrix, cfg)
        rec["predict_rank_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        top = ranking.head(a.explain_top)["taxpayer_id"]
        explain.contributions(model, matrix.loc[top])
        rec["contributions_s"] = time.perf_counter() - t0
        rec["scored"] = len(ranking)
        out = ws / "duckdb_ranking.parquet"
        ranking.to_parquet(out, index=False)
    else:
        from taxrisk.features.engine import engine_tables
        from taxrisk.serving.spark_scoring import score_on_spark

        s = s.model_copy(update={"engine": "spark"})
        t0 = time.perf_counter()
        tables = engine_tables(loaded, s)
        rec["session_s"] = time.perf_counter() - t0
        sc = tables.con._session.sparkContext  # type: ignore[attr-defined]
        rec["parallelism"] = sc.defaultParallelism
        scores = score_on_spark(
            tables, as_of, model, cfg, ws / "spark_out", explain_top=a.explain_top
        )
        for k, v in scores.timings.items():
            rec[f"{k}_s"] = v
        rec["scored"] = scores.scored
        tracker = sc.statusTracker()
        jobs = tracker.getJobIdsForGroup(None)
        st_ids = [sid for j in jobs if (ji := tracker.getJobInfo(j)) for sid in ji.stageIds]
        rec["spark_jobs"] = len(jobs)
        rec["spark_stages"] = len(st_ids)
        tasks = [si.numTasks for sid in st_ids if (si := tracker.getStageInfo(sid))]
        rec["spark_tasks"] = int(sum(tasks))
        rec["max_tasks_per_stage"] = max(tasks) if tasks else 0
        out = ws / "spark_out" / "ranking.parquet"
    rec["feature_stages_s"] = {k: round(v, 2) for k, v in stages.stages.items()}
    rec["ranking"] = str(out)
    rec = {k: round(v, 2) if isinstance(v, float) else v for k, v in rec.items()}
    print(json.dumps(rec))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--as-of", default="2025-12-31")
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="12g")
    ap.add_argument("--explain-top", type=int, default=2000)
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--model", default=None, help="MLflow model URI (default: train one here)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow tracking URI of --model")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    as_of = dt.date.fromisoformat(a.as_of)
    folder = a.data_dir.resolve()
    ws = a.workspace or Path(tempfile.mkdtemp(prefix="bench-spark-"))
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if a.child:
        _child(a.child, folder, as_of, ws, a)
        return
    result: dict[str, Any] = {"data_dir": str(folder), "as_of": a.as_of, "master": a.master}
    result |= _prepare(folder, as_of, ws, a.model, a.tracking_uri)
    print(json.dumps(result), flush=True)
    common = [str(folder), "--as-of", a.as_of, "--workspace", str(ws), "--master", a.master]
    common += ["--driver-memory", a.driver_memory, "--explain-top", str(a.explain_top)]
    for engine in a.engines.split(","):
        rec, wall, peak = _run_child([*common, "--child", engine])
        rec["wall_s"] = round(wall, 2)
        rec["peak_rss_gib"] = round(peak / 2**30, 2)
        result[engine] = rec
        print(json.dumps(rec), flush=True)
    if "duckdb" in result and "spark" in result and "error" not in result["spark"]:
        import pandas as pd

        d = pd.read_parquet(result["duckdb"]["ranking"])
        sp = pd.read_parquet(result["spark"]["ranking"]).sort_values("rank")
        n = min(len(d), 1000)
        result["same_top_1000"] = list(d["taxpayer_id"][:n]) == list(sp["taxpayer_id"][:n])
        result["same_ranking"] = list(d["taxpayer_id"]) == list(sp["taxpayer_id"])
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
