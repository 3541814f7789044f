"""Indicator effectiveness (跟踪评价): which indicators earn their place, every training run.

The bureaus evaluate their indicators against what the responses found and prune or retune
them. :func:`indicator_effectiveness` does it on the training set of a run, per indicator of
the catalog (the matrix's ``<id>__fired`` columns), on the **closed audits** (each featured as
of its selection, so "fired" means fired when the audit was chosen):

``fire_rate_population``  share of the population it fires for (the run's population
                          sample at the audits' snapshots, weighted back; NaN without one)
``fired_audits``, ``fire_rate_audits``  audits it fired for, and their share
``precision``             share of those audits that found something: adjusted with tax
                          recovered over ``hit_yuan`` (1,000 yuan, as the metric's hit)
``recovered_per_fired``   mean yuan recovered per fired audit (as recovered)
``recovered_per_hit``     mean yuan recovered per hit among them
``lift``                  precision / the base rate (the hit share of all audits)
``random_*``              the same on the random stratum (selection_reason ``random`` with a
                          known probability), weighted by 1/selection_probability: the
                          unbiased estimate, with ``_low``/``_high`` percentile bootstrap
                          intervals (the stratum's audits resampled, seeded); ``random_fired``
                          how many random audits it fired for
``cofires_with``, ``max_jaccard``  the indicator whose fired set is closest (Jaccard index
                          over the taxpayers it fires for, population sample or audits)

``frame.attrs["cofiring"]``: every pair with a Jaccard index above ``cofire_jaccard`` (one is
nearly the other); ``frame.attrs["base_rate"]`` / ``["random_base_rate"]``.

Logged by ``train`` as ``effectiveness/indicators.csv`` + ``.json`` and
``effectiveness/cofiring.csv``, with a few metrics (:func:`summary_metrics`); printed by
``taxrisk effectiveness``.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from taxrisk.features.errors import TaxriskError

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = [
    "ARTIFACT_DIR",
    "COFIRING_FILE",
    "INDICATORS_FILE",
    "EffectivenessNotFound",
    "indicator_effectiveness",
    "load_logged",
    "summary_metrics",
    "write_artifacts",
]

ARTIFACT_DIR = "effectiveness"
INDICATORS_FILE = f"{ARTIFACT_DIR}/indicators.csv"
COFIRING_FILE = f"{ARTIFACT_DIR}/cofiring.csv"
_SUFFIX = "__fired"


def _fired_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if c.endswith(_SUFFIX)]


def _jaccard(F: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Jaccard index of every pair of 0/1 columns of ``F`` (k x k, NaN where neither
    fires)."""
    Fw = F * w[:, None]
    inter = Fw.T @ F
    size = np.diag(inter)
    union = size[:, None] + size[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def indicator_effectiveness(
    X: pd.DataFrame,
    examples: pd.DataFrame,
    population: pd.DataFrame | None = None,
    *,
    hit_yuan: float = 1000.0,
    cofire_jaccard: float = 0.8,
    resamples: int = 500,
    level: float = 0.9,
    seed: int = 42,
) -> pd.DataFrame:
    """One row per indicator (index ``indicator``); see the module docstring for columns.

    ``X``: the examples' features (rows aligned with ``examples``); ``examples``: columns
    adjusted, recovered_raw (or tax_recovered), selection_reason, selection_probability;
    ``population``: the run's population sample (fired columns and ``weight``) or None.
    """
    fired = _fired_columns(X)
    ids = [c.removesuffix(_SUFFIX) for c in fired]
    F = X[fired].fillna(0).to_numpy(dtype=float)
    rec_col = "recovered_raw" if "recovered_raw" in examples.columns else "tax_recovered"
    rec = examples[rec_col].fillna(0.0).to_numpy(dtype=float)
    adj = examples["adjusted"].to_numpy(dtype=float)
    hit = ((adj > 0) & (rec > hit_yuan)).astype(float)
    n = len(examples)
    n_fired = F.sum(axis=0)
    base = float(hit.mean()) if n else np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = (F * hit[:, None]).sum(axis=0) / n_fired
        per_fired = (F * rec[:, None]).sum(axis=0) / n_fired
        hits = (F * hit[:, None]).sum(axis=0)
        per_hit = (F * (rec * hit)[:, None]).sum(axis=0) / hits
    out = pd.DataFrame(
        {
            "fire_rate_population": np.nan,
            "fired_audits": n_fired.astype(int),
            "fire_rate_audits": n_fired / n if n else np.nan,
            "precision": precision,
            "recovered_per_fired": per_fired,
            "recovered_per_hit": per_hit,
            "lift": precision / base if base and base > 0 else np.nan,
        },
        index=pd.Index(ids, name="indicator"),
    )
    # the random stratum, 1/p-weighted, bootstrap intervals
    prob = pd.to_numeric(examples["selection_probability"], errors="coerce").to_numpy(dtype=float)
    rnd = (examples["selection_reason"].astype("str") == "random").to_numpy() & (prob > 0)
    Fr, hr, rr = F[rnd], hit[rnd], rec[rnd]
    wr = 1.0 / prob[rnd] if rnd.any() else np.zeros(0)
    rb = float((wr * hr).sum() / wr.sum()) if rnd.any() else np.nan

    def stats(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(precision, recovered per fired, base rate) per draw; ``counts``: B x n_random."""
        cw = counts * wr[None, :]
        den = cw @ Fr
        with np.errstate(invalid="ignore", divide="ignore"):
            prec = (cw @ (Fr * hr[:, None])) / den
            yuan = (cw @ (Fr * rr[:, None])) / den
            b = (cw @ hr) / cw.sum(axis=1)
        return prec, yuan, b

    point_p, point_y, _ = stats(np.ones((1, int(rnd.sum()))))
    out["random_fired"] = Fr.sum(axis=0).astype(int)
    out["random_precision"] = point_p[0]
    out["random_recovered_per_fired"] = point_y[0]
    out["random_lift"] = point_p[0] / rb if rb and rb > 0 else np.nan
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    m = int(rnd.sum())
    if m >= 2:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, m, size=(resamples, m))
        counts = np.zeros((resamples, m))
        np.add.at(counts, (np.repeat(np.arange(resamples), m), draws.ravel()), 1.0)
        bp, by, bb = stats(counts)
        with np.errstate(invalid="ignore", divide="ignore"):
            blift = bp / bb[:, None]
        for name, arr in (
            ("random_precision", bp),
            ("random_recovered_per_fired", by),
            ("random_lift", blift),
        ):
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                # an indicator that never fires on a draw has no value there (All-NaN slice)
                warnings.simplefilter("ignore", RuntimeWarning)
                ok = np.isfinite(arr).sum(axis=0) >= max(10, resamples // 2)
                lo = np.nanquantile(np.where(np.isfinite(arr), arr, np.nan), lo_q, axis=0)
                hi = np.nanquantile(np.where(np.isfinite(arr), arr, np.nan), hi_q, axis=0)
            out[f"{name}_low"] = np.where(ok, lo, np.nan)
            out[f"{name}_high"] = np.where(ok, hi, np.nan)
    else:
        for name in ("random_precision", "random_recovered_per_fired", "random_lift"):
            out[f"{name}_low"] = np.nan
            out[f"{name}_high"] = np.nan
    # co-firing on the population sample when there is one (the audits otherwise)
    Fc, wc = F, np.ones(n)
    if population is not None and len(population) and all(c in population for c in fired):
        Fc = population[fired].fillna(0).to_numpy(dtype=float)
        wc = population["weight"].to_numpy(dtype=float)
        out["fire_rate_population"] = (Fc * wc[:, None]).sum(axis=0) / wc.sum()
    J = _jaccard(Fc, wc) if len(ids) else np.zeros((0, 0))
    if len(ids):
        Jd = J.copy()
        np.fill_diagonal(Jd, np.nan)
        any_pair = np.asarray((np.nan_to_num(Jd) > 0).any(axis=1), dtype=bool)
        has = [bool(x) for x in any_pair.tolist()]
        best = np.where(has, np.nanargmax(np.where(np.isfinite(Jd), Jd, -1.0), axis=1), 0)
        out["cofires_with"] = [ids[b] if h else "" for b, h in zip(best, has, strict=True)]
        out["max_jaccard"] = [
            float(Jd[i, b]) if h else np.nan for i, (b, h) in enumerate(zip(best, has, strict=True))
        ]
    pairs = [
        {"indicator": ids[i], "other": ids[j], "jaccard": float(J[i, j])}
        for i in range(len(ids))
        for j in range(i + 1, len(ids))
        if np.isfinite(J[i, j]) and J[i, j] > cofire_jaccard
    ]
    out = out.sort_values(["lift", "precision"], ascending=False, na_position="last")
    out.attrs["cofiring"] = pd.DataFrame(pairs, columns=["indicator", "other", "jaccard"])
    out.attrs["base_rate"] = base
    out.attrs["random_base_rate"] = rb
    out.attrs["hit_yuan"] = hit_yuan
    out.attrs["n_audits"] = n
    out.attrs["n_random"] = m
    return out


def summary_metrics(eff: pd.DataFrame) -> dict[str, float]:
    """A few MLflow metrics of an effectiveness table (the rest is in the artifact)."""
    never = int((eff["fired_audits"] == 0).sum())
    below = int((eff["lift"] < 1).sum())
    out = {
        "effectiveness.indicators": float(len(eff)),
        "effectiveness.never_fired_on_audits": float(never),
        "effectiveness.lift_below_1": float(below),
        "effectiveness.cofiring_pairs": float(len(eff.attrs.get("cofiring", []))),
        "effectiveness.base_rate": float(eff.attrs.get("base_rate", np.nan)),
    }
    for ind, row in eff.iterrows():
        if np.isfinite(row["lift"]):
            out[f"effectiveness.{ind}.lift"] = float(row["lift"])
        if np.isfinite(row["precision"]):
            out[f"effectiveness.{ind}.precision"] = float(row["precision"])
    return {k: v for k, v in out.items() if np.isfinite(v)}


def write_artifacts(eff: pd.DataFrame, folder: Path) -> None:
    """``effectiveness/indicators.csv|json`` and ``effectiveness/cofiring.csv`` under
    ``folder`` (the run's artifact staging folder)."""
    d = Path(folder) / ARTIFACT_DIR
    d.mkdir(parents=True, exist_ok=True)
    eff.to_csv(d / "indicators.csv")
    meta = {k: v for k, v in eff.attrs.items() if k != "cofiring"}
    payload = {
        "meta": meta,
        "indicators": json.loads(eff.to_json(orient="index")),
        "cofiring": json.loads(eff.attrs["cofiring"].to_json(orient="records")),
    }
    (d / "indicators.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    eff.attrs["cofiring"].to_csv(d / "cofiring.csv", index=False)


class EffectivenessNotFound(TaxriskError):
    """No effectiveness table logged for the requested run or model."""


def load_logged(
    settings: Settings, *, run_id: str | None = None, model_uri: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(indicators table, co-firing pairs, run id) logged by a training run.

    ``run_id``: that run; ``model_uri`` (``models:/name/N`` or ``models:/name@alias``): the
    run that registered it; neither: the champion of the settings' registered model.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from . import tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tracking.configure(settings)
    if run_id is None:
        uri = model_uri or f"models:/{settings.registered_model}@{tracking.CHAMPION}"
        try:
            _, run_id, _ = tracking._version_of(uri, settings.tracking_uri)
        except Exception as exc:
            raise EffectivenessNotFound(f"{uri}: {tracking._first_line(exc)}") from exc
        if run_id is None:
            raise EffectivenessNotFound(f"{uri}: no training run behind this model")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=ARTIFACT_DIR,
                dst_path=tmp,
                tracking_uri=settings.tracking_uri,
            )
            table = pd.read_csv(Path(path) / "indicators.csv", index_col="indicator")
            pairs = pd.read_csv(Path(path) / "cofiring.csv")
            meta = json.loads((Path(path) / "indicators.json").read_text(encoding="utf-8"))
    except (MlflowException, OSError) as exc:
        raise EffectivenessNotFound(
            f"run {run_id}: no {ARTIFACT_DIR}/ artifact (trained before effectiveness was "
            f"logged?): {tracking._first_line(exc)}"
        ) from exc
    table.attrs.update(meta.get("meta", {}))
    table["cofires_with"] = table["cofires_with"].fillna("")
    return table, pairs, run_id
