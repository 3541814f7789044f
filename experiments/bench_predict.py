"""Benchmark: predicting through MLflow's pyfunc wrapper against the unwrapped model.

    python -m taxrisk.experiments.bench_predict MATRIX.parquet [--model URI]

Same model, same feature matrix (``taxrisk features`` output), one process: seconds for
``mlflow.pyfunc.load_model(uri).predict`` (with MLflow's input-schema enforcement) and for
``YieldModel.predict`` on the unwrapped model (what scoring runs use), and the largest
difference in expected yield between the two (yuan).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from taxrisk.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("matrix", type=Path)
    ap.add_argument("--model")
    args = ap.parse_args(argv)

    from taxrisk.training.tracking import load_model, load_yield_model, signature_frame

    settings = get_settings()
    uri = args.model or f"models:/{settings.registered_model}@champion"
    matrix = pd.read_parquet(args.matrix)
    if "taxpayer_id" in matrix.columns:
        matrix = matrix.set_index("taxpayer_id")
    pyfunc = load_model(uri, settings.tracking_uri)
    inner = load_yield_model(uri, settings.tracking_uri).model
    names = pyfunc.metadata.get_input_schema().input_names()
    t0 = time.perf_counter()
    a = pyfunc.predict(signature_frame(matrix[names]))
    t1 = time.perf_counter()
    b = inner.predict(matrix, allow_extra=True)
    t2 = time.perf_counter()
    diff = float(np.abs(a["expected_yield"].to_numpy() - b["expected_yield"].to_numpy()).max())
    print(
        f"{len(matrix):,} taxpayers x {len(names)} features: pyfunc {t1 - t0:.2f} s, "
        f"unwrapped {t2 - t1:.2f} s ({(t1 - t0) / (t2 - t1):.0f}x); max |diff| {diff:.6f} yuan"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
