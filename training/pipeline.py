"""``train``: from a data folder and an as-of date to a registered model version.

Steps (each reported to ``progress``):

1. load the folder (:func:`taxrisk.features.loading.load_validated`: its validated snapshot
   when one matches) and build the point-in-time training set
   (:func:`~taxrisk.training.dataset.build_training_set`);
2. split by time (:func:`~taxrisk.training.validation.time_split`), validating only on
   audits selected early enough to have closed (the closure horizon);
3. selection-bias weights (:mod:`~taxrisk.training.bias`) when configured, and recency
   weights of the labels (:mod:`~taxrisk.training.recency`, every fit) when configured;
4. tune both LightGBM models with Optuna on the training part (:mod:`~.tuning`);
5. choose the bias method on an inner split of the training part
   (:func:`~taxrisk.training.validation.inner_split`); fit on the training part and compare,
   on the validation audits (which that choice did not see), the model (with and without
   bias weights), the model's probability alone, the old rules, a logistic regression and
   random, each figure with a bootstrap interval and a flag when it cannot tell rankings
   apart; the indicators' effectiveness (:mod:`~taxrisk.training.effectiveness`);
6. refit the chosen variant on every labelled audit: the model that is registered;
7. log the MLflow run (parameters, data window, label counts, metrics, plots, model card),
   register the model version, and move the alias ``champion`` only if the candidate (as
   validated, fitted on the training part) beats the current champion beyond noise on the
   validation audits neither was fitted on (:func:`~taxrisk.training.tracking.gate`: fails
   closed).

Reproducible: the same data and seed give the same model, whatever order the engine returns
rows in (the training set is sorted, every draw is seeded, DuckDB and LightGBM run on one
thread; docs/training.md "Reproducibility").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from taxrisk.features.catalog import CATALOG

from taxrisk.progress import ProgressFn, report

from . import effectiveness, plots
from .anomaly import TailPrior, directions_of, fit_blend
from .baselines import LogisticYield, old_rules_scores, random_scores
from .bias import propensity_weights, selection_propensity
from .config import TrainingConfig, load_config
from .dataset import (
    AuditOutcomeSource,
    AuditTableSource,
    CombinedSource,
    NotEnoughExamples,
    TrainingSet,
    apply_measure,
    build_training_set,
)
from .modelcard import render_model_card
from .models import YieldModel
from .recency import combine_weights, recency_weights
from .tracking import ChampionDecision
from .tuning import tune
from .validation import (
    Discrimination,
    closure_horizon,
    discrimination,
    inner_split,
    metric_on_rows,
    time_split,
    with_intervals,
)

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)

SHAP_ROWS = 2000


@dataclass
class TrainResult:
    """What a training run produced (all figures also in the MLflow run)."""

    run_id: str
    version: str
    decision: ChampionDecision
    comparison: pd.DataFrame
    metrics: dict[str, float]
    bias_method: str
    wall_seconds: float
    label_counts: pd.DataFrame
    model: YieldModel
    logistic: LogisticYield
    timings: dict[str, float] = field(default_factory=dict)
    #: per metric of the comparison: can it tell rankings apart (see validation.py)
    discrimination: dict[str, Discrimination] = field(default_factory=dict)
    #: the indicator effectiveness table (training/effectiveness.py)
    effectiveness: pd.DataFrame | None = None
    #: how the bias method was chosen (inner split), in words
    bias_note: str = ""


def _split_params(cfg: TrainingConfig) -> tuple[dict[str, Any], bool]:
    params = cfg.lightgbm_params
    mono = bool(params.pop("monotone_fired", True))
    return params, mono


def _tune_progress(progress: ProgressFn | None, step: str) -> Callable[[int, int], None]:
    def cb(done: int, total: int) -> None:
        report(progress, step, done, total)

    return cb


def _weights(ts: TrainingSet, cfg: TrainingConfig) -> np.ndarray | None:
    if ts.population is None:
        return None
    rows = ts.X.copy()
    rows.index = pd.MultiIndex.from_arrays(
        [ts.examples["snapshot"], ts.examples["taxpayer_id"]], names=["snapshot", "taxpayer_id"]
    )
    p = selection_propensity(ts.population, rows, seed=cfg.seed)
    return propensity_weights(p, cfg.max_weight)


def _fit(
    X: pd.DataFrame,
    ex: pd.DataFrame,
    params_c: dict[str, Any],
    params_r: dict[str, Any],
    mono: bool,
    seed: int,
    w: np.ndarray | None = None,
) -> YieldModel:
    return YieldModel(params_c, params_r, monotone_fired=mono, seed=seed).fit(
        X, ex["adjusted"], ex["tax_recovered"], sample_weight=w
    )


def train(
    data_dir: Path,
    as_of: dt.date,
    *,
    settings: Settings,
    trials: int | None = None,
    config: TrainingConfig | None = None,
    progress: ProgressFn | None = None,
    extra_outcomes: Sequence[AuditOutcomeSource] = (),
) -> TrainResult:
    """Train, validate, log, register and gate one model (see the module docstring).

    ``extra_outcomes``: audit outcomes besides the data folder's ``audits`` table, e.g. the
    case store's closed cases (``taxrisk.serving.feedback.StoreOutcomes``), read point in
    time like the table.
    """
    import mlflow
    from mlflow import MlflowClient
    from taxrisk.features.loading import load_validated
    from taxrisk.features.tables import connect

    from . import tracking

    cfg = config or load_config()
    trials = cfg.default_trials if trials is None else trials
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    data_dir = Path(data_dir)
    settings.ensure_workspace()

    # the settings' connection, every thread: the features are exact in any order of
    # addition (one thread until they were: docs/training.md, "Floating-point sums")
    loaded = load_validated(
        data_dir,
        snapshots=settings.snapshots_dir,
        con=connect(settings),
        as_of=as_of,
        progress=progress,
    )
    timings["load"] = time.perf_counter() - t0
    want_ipw = cfg.bias_method in ("ipw", "auto")
    source = (
        CombinedSource(AuditTableSource(loaded.tables), *extra_outcomes) if extra_outcomes else None
    )
    ts = build_training_set(
        loaded.tables,
        as_of,
        source,
        snapshot=cfg.snapshot,
        metric_months=cfg.labels.metric_months if cfg.labels.normalise_covered else None,
        max_scale=cfg.labels.max_scale,
        population_sample=cfg.unaudited_per_snapshot if want_ipw else 0,
        seed=cfg.seed,
        min_examples=cfg.min_examples,
        progress=progress,
    )
    ts = apply_measure(ts, cfg.labels.measure)
    timings["training_set"] = time.perf_counter() - t0 - timings["load"]
    X, ex = ts.X, ts.examples
    horizon = closure_horizon(ex, cfg.validation.closure_quantile)
    try:
        cut, tr, va = time_split(ex, cfg.validation_share, as_of=as_of, horizon=horizon)
    except ValueError as exc:
        raise NotEnoughExamples(str(exc)) from exc
    for part, mask in (("training", tr), ("validation", va)):
        n_adj = int(ex.loc[mask, "adjusted"].sum())
        if mask.sum() < cfg.min_examples or n_adj < cfg.min_adjusted:
            raise NotEnoughExamples(
                f"{part} part has {int(mask.sum())} audits ({n_adj} adjusted) with cut {cut.date()} "
                f"and closure horizon {horizon.days} days; "
                f"need {cfg.min_examples} ({cfg.min_adjusted} adjusted)"
            )
    censored = int(((pd.to_datetime(ex["selected_on"]) >= cut).to_numpy() & ~va).sum())

    w_all = None
    if want_ipw:
        report(progress, "selection model", 0, 1)
        w_all = _weights(ts, cfg)
        report(progress, "selection model", 1, 1)
    # recency weighting of labels (training/recency.py): in every fit below, None when off
    w_rec = recency_weights(ex["selected_on"], as_of, cfg.recency_half_life_months)
    base, mono = _split_params(cfg)
    order = ex["selected_on"].to_numpy()
    mono_list = [1 if (mono and c.endswith("__fired")) else 0 for c in X.columns]
    storage = f"sqlite:///{settings.optuna_dir / 'studies.db'}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    study_base = f"{settings.registered_model}-{as_of}-{stamp}"
    t1 = time.perf_counter()
    tuned = {}
    for kind in ("classifier", "regressor"):
        # bias weights in the objective only when they are the method ("auto" tunes without
        # them); recency weights whenever configured
        w_ipw = w_all[tr] if (cfg.bias_method == "ipw" and w_all is not None) else None
        w_tr = combine_weights(w_ipw, None if w_rec is None else w_rec[tr])
        tuned[kind], _ = tune(
            kind,
            X[tr],
            ex["adjusted"].to_numpy()[tr],
            ex["tax_recovered"].to_numpy()[tr],
            order[tr],
            base_params=base,
            space=cfg.search_space,
            trials=trials,
            storage=storage,
            study_name=f"{study_base}-{kind}",
            seed=cfg.seed + (kind == "regressor"),
            sample_weight=w_tr,
            monotone=mono_list if kind == "classifier" else None,
            max_estimators=cfg.max_estimators,
            early_stopping_rounds=cfg.early_stopping_rounds,
            callback=_tune_progress(progress, f"tune {kind}"),
        )
    timings["tuning"] = time.perf_counter() - t1

    report(progress, "fit and validate", 0, 4)
    fit = _Fitter(X, ex, tuned, mono, cfg.seed, w_all, w_rec)
    # the bias choice, on an inner split of the training part (never on the validation audits)
    if cfg.bias_method == "auto":
        chosen, bias_note, inner = _choose_bias_inner(fit, tr, cut, horizon, cfg, want_ipw)
    else:
        chosen, inner = cfg.bias_method, {}
        bias_note = _bias_note_fixed(cfg)
    report(progress, "fit and validate", 1, 4)
    Xtr, extr, Xva, exva = X[tr], ex[tr], X[va], ex[va]
    variants: dict[str, YieldModel] = {"none": fit(tr)}
    if want_ipw and w_all is not None:
        variants["ipw"] = fit(tr, weighted=True)
    preds = {k: m.predict(Xva) for k, m in variants.items()}
    primary = cfg.primary_metric.removeprefix("val_")
    # the tail prior (training/anomaly.py): fitted on the training audits, its weight chosen
    # on validation; the validated model is the pooled one
    primary_fn = metric_on_rows(cfg.primary_metric, exva, cfg.top_share)
    directions = directions_of(CATALOG.values())
    tp = cfg.tail_prior
    prior_tr, tail = fit_blend(
        Xtr,
        extr,
        Xva,
        preds[chosen]["probability"].to_numpy(),
        preds[chosen]["amount"].to_numpy(),
        primary_fn,
        directions,
        weights=tp.weights,
        resamples=tp.resamples,
        top=tp.top,
        max_cost=tp.max_cost,
        seed=cfg.seed,
    )
    validated = tail.scores[tail.weight]
    variants[chosen].with_tail_prior(prior_tr, tail.weight)  # as validated, for the gate
    logistic = LogisticYield(seed=cfg.seed).fit(Xtr, extr["adjusted"], extr["tax_recovered"])
    scores = {
        "model": validated,
        "model_without_tail_prior": preds[chosen]["expected_yield"].to_numpy(),
        "model_probability_only": preds[chosen]["probability"].to_numpy(),
        **{f"model_bias_{k}": p["expected_yield"].to_numpy() for k, p in preds.items()},
        "old_rules": old_rules_scores(Xva).to_numpy(),
        "logistic": logistic.predict(Xva)["expected_yield"].to_numpy(),
        "random": random_scores(Xva.index, cfg.seed).to_numpy(),
    }
    comparison, disc = _judged(scores, exva, cfg)
    report(progress, "fit and validate", 2, 4)
    final = fit(np.ones(len(ex), dtype=bool), weighted=chosen == "ipw")
    logistic_all = LogisticYield(seed=cfg.seed).fit(X, ex["adjusted"], ex["tax_recovered"])
    report(progress, "fit and validate", 3, 4)
    eff = effectiveness.indicator_effectiveness(
        X,
        ex,
        ts.population,
        hit_yuan=cfg.effectiveness.hit_yuan,
        cofire_jaccard=cfg.effectiveness.cofire_jaccard,
        resamples=cfg.effectiveness.bootstrap_resamples,
        level=cfg.validation.interval_level,
        seed=cfg.seed,
    )
    if tail.weight > 0:
        prior_all = TailPrior(directions, tp.top).fit(
            X, ex["adjusted"].to_numpy(), random_stratum=(ex["selection_reason"] == "random")
        )
        final.with_tail_prior(prior_all, tail.weight)
    report(progress, "fit and validate", 4, 4)
    timings["fit_validate"] = time.perf_counter() - t1 - timings["tuning"]

    # -- MLflow -----------------------------------------------------------------------------
    report(progress, "log to MLflow", 0, 2)
    exp_id = tracking.configure(settings)
    client = MlflowClient()
    name = settings.registered_model
    labels = ts.label_counts()
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train {as_of}") as run:
        mlflow.log_params(
            tracking.log_params_flat(
                {
                    "as_of": as_of.isoformat(),
                    "data_dir": str(data_dir.resolve()),
                    "trials": trials,
                    "snapshot": cfg.snapshot,
                    "validation_share": cfg.validation_share,
                    "validation_cut": cut.date().isoformat(),
                    "validation.closure_horizon_days": horizon.days,
                    "validation.closure_quantile": cfg.validation.closure_quantile,
                    "validation.censored_excluded": censored,
                    "validation.bootstrap_resamples": cfg.validation.bootstrap_resamples,
                    "validation.interval_level": cfg.validation.interval_level,
                    "bias.inner_cut": inner.get("cut", ""),
                    "bias.inner_n_train": inner.get("n_train", ""),
                    "bias.inner_n_validation": inner.get("n_validation", ""),
                    "labels.metric_months": cfg.labels.metric_months
                    if cfg.labels.normalise_covered
                    else "off",
                    "labels.measure": cfg.labels.measure,
                    "recency_half_life_months": cfg.recency_half_life_months or "off",
                    **{f"discriminates.{m}": d.discriminates for m, d in disc.items()},
                    "bias_method": chosen,
                    "bias_config": cfg.bias_method,
                    "tail_prior_weight": tail.weight,
                    "n_features": X.shape[1],
                    "seed": cfg.seed,
                    "first_selected": ex["selected_on"].min().date().isoformat(),
                    "last_selected": ex["selected_on"].max().date().isoformat(),
                    "n_examples": len(ex),
                    "n_train": int(tr.sum()),
                    "n_validation": int(va.sum()),
                    "n_open_audits": len(ts.open_audits),
                    "top_share": cfg.top_share,
                    "classifier": tuned["classifier"],
                    "regressor": tuned["regressor"],
                }
            )
        )
        metrics = {
            f"{r}.{m}": float(v)
            for r, row in comparison.iterrows()
            for m, v in row.items()
            if np.isfinite(v)
        }
        metrics |= {
            f"val_{m}": float(v) for m, v in comparison.loc["model"].items() if np.isfinite(v)
        }
        for reason, row in labels.iterrows():
            metrics[f"labels.{reason}.examples"] = float(row["examples"])
            metrics[f"labels.{reason}.adjusted"] = float(row["adjusted"])
        metrics |= {f"time.{k}_s": v for k, v in timings.items()}
        metrics |= {f"val_{m}_discriminates": float(d.discriminates) for m, d in disc.items()}
        metrics |= {
            f"bias.inner.{k}.random_yield_capture": float(x)
            for k, x in inner.get("random_capture", {}).items()
            if np.isfinite(x)
        }
        metrics |= effectiveness.summary_metrics(eff)
        for w, (value, low) in tail.candidates.items():
            metrics[f"tail_prior.w{w:g}.{primary}"] = value
            metrics[f"tail_prior.w{w:g}.diff_p05"] = low
        mlflow.log_metrics(metrics)
        mlflow.set_tags(
            {f"discrimination.{m}": d.reason[:5000] for m, d in disc.items() if not d.discriminates}
        )
        # the candidate as validated (fitted on the training part) against the champion, on
        # the validation audits neither was fitted on; fails closed (training/tracking.py)
        # the gate's audits: every audit selected from the cut (the candidate as validated
        # did not see them), censored ones included: both models face the same censoring
        gate_rows = (pd.to_datetime(ex["selected_on"]) >= cut).to_numpy()
        Xg, exg = X[gate_rows], ex[gate_rows]
        decision, champ_metric_note = tracking.gate(
            client,
            name,
            cfg.primary_metric,
            metric_on_rows(cfg.primary_metric, exg, cfg.top_share),
            variants[chosen].predict(Xg)["expected_yield"].to_numpy(),
            Xg,
            exg["selected_on"],
            cfg.min_examples,
            seed=cfg.seed,
        )
        tracking.log_decision(decision)
        mlflow.set_tags({"as_of": as_of.isoformat()})
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            _artifacts(d, final, Xva, exva, scores, comparison, labels, preds[chosen])
            effectiveness.write_artifacts(eff, d)
            card = render_model_card(
                {
                    "model_name": name,
                    "as_of": as_of,
                    "data_dir": data_dir,
                    "n_examples": len(ex),
                    "first_selected": ex["selected_on"].min().date(),
                    "last_selected": ex["selected_on"].max().date(),
                    "snapshot": cfg.snapshot,
                    "n_open": len(ts.open_audits),
                    "dropped": ts.dropped,
                    "n_features": X.shape[1],
                    "cut": cut.date(),
                    "n_train": int(tr.sum()),
                    "n_val": int(va.sum()),
                    "label_counts": labels,
                    "bias_note": bias_note,
                    "comparison": comparison,
                    "discrimination": disc,
                    "interval_level": cfg.validation.interval_level,
                    "resamples": cfg.validation.bootstrap_resamples,
                    "horizon_days": horizon.days,
                    "closure_quantile": cfg.validation.closure_quantile,
                    "censored": censored,
                    "label_note": _label_note(cfg),
                    "effectiveness": eff,
                    "min_fired": cfg.validation.min_audits,
                    "top_share": cfg.top_share,
                    "champion_note": decision.reason + champ_metric_note,
                    "tail_note": tail.reason,
                }
            )
            (d / "model_card.md").write_text(card, encoding="utf-8")
            # monitoring's reference: the examples' features (PSI of scoring runs against them)
            ref = d / tracking.TRAINING_MATRIX
            ref.parent.mkdir(parents=True, exist_ok=True)
            X.to_parquet(ref)
            mlflow.log_artifacts(str(d))
        report(progress, "log to MLflow", 1, 2)
        version = tracking.log_and_register(final, X, name, run.info.run_id, as_of, decision)
        report(progress, "log to MLflow", 2, 2)
    timings["total"] = time.perf_counter() - t0
    return TrainResult(
        run_id=run.info.run_id,
        version=version,
        decision=decision,
        comparison=comparison,
        metrics=metrics,
        bias_method=chosen,
        wall_seconds=timings["total"],
        label_counts=labels,
        model=final,
        logistic=logistic_all,
        timings=timings,
        discrimination=disc,
        effectiveness=eff,
        bias_note=bias_note,
    )


class _Fitter:
    """Fits the YieldModel recipe (tuned parameters, monotone flags, seed) on a row mask.

    ``weights``: the selection-bias weights, used when a fit asks for them (``weighted``);
    ``recency``: the recency weights, used in every fit when set. Combined and rescaled to
    mean 1 over the fitted rows (:func:`~taxrisk.training.recency.combine_weights`).
    """

    def __init__(
        self,
        X: pd.DataFrame,
        ex: pd.DataFrame,
        tuned: dict[str, dict[str, Any]],
        mono: bool,
        seed: int,
        weights: np.ndarray | None,
        recency: np.ndarray | None = None,
    ) -> None:
        self.X, self.ex, self.tuned, self.mono, self.seed, self.w = (
            X,
            ex,
            tuned,
            mono,
            seed,
            weights,
        )
        self.recency = recency

    def __call__(self, rows: np.ndarray, *, weighted: bool = False) -> YieldModel:
        w_ipw = self.w[rows] if (weighted and self.w is not None) else None
        w = combine_weights(w_ipw, None if self.recency is None else self.recency[rows])
        return _fit(
            self.X[rows],
            self.ex[rows],
            self.tuned["classifier"],
            self.tuned["regressor"],
            self.mono,
            self.seed,
            w,
        )


def _choose_bias(
    per_variant: dict[str, dict[str, float]],
    cfg: TrainingConfig,
    decides: Discrimination | None = None,
) -> str:
    """The "auto" decision: ipw only if it beats plain training on the random stratum (the
    unbiased estimate) by more than ``auto_min_gain``, and only if that figure discriminates
    (``decides``); otherwise plain training."""
    if "ipw" not in per_variant or (decides is not None and not decides.discriminates):
        return "none"
    gain = per_variant["ipw"]["random_yield_capture"] - per_variant["none"]["random_yield_capture"]
    return "ipw" if np.isfinite(gain) and gain > cfg.auto_min_gain else "none"


def _judged(
    scores: dict[str, np.ndarray], examples: pd.DataFrame, cfg: TrainingConfig, model: str = "model"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The validation table of ``scores`` on ``examples`` (bootstrap intervals) and, per
    metric, whether it can tell ``model`` from random."""
    v = cfg.validation
    table = with_intervals(
        scores,
        examples,
        cfg.top_share,
        resamples=v.bootstrap_resamples,
        level=v.interval_level,
        seed=cfg.seed,
    )
    disc = discrimination(
        table,
        examples,
        max_single_share=v.max_single_share,
        max_interval_overlap=v.max_interval_overlap,
        min_audits=v.min_audits,
        model=model,
    )
    return table, disc


def _choose_bias_inner(
    fit: _Fitter,
    tr: np.ndarray,
    cut: pd.Timestamp,
    horizon: pd.Timedelta,
    cfg: TrainingConfig,
    want_ipw: bool,
) -> tuple[str, str, dict[str, Any]]:
    """Choose none/ipw on the inner split of the training part; (choice, note, figures)."""
    if not want_ipw or fit.w is None:
        return "none", "none (no selection weights could be computed).", {}
    try:
        icut, itr, iva = inner_split(fit.ex, tr, cut, cfg.validation.inner_share, horizon)
    except ValueError as exc:
        return "none", f"none: no inner split of the training part ({exc}).", {}
    info: dict[str, Any] = {
        "cut": icut.date().isoformat(),
        "n_train": int(itr.sum()),
        "n_validation": int(iva.sum()),
    }
    if itr.sum() < cfg.min_examples or iva.sum() < cfg.min_examples:
        note = (
            f"none: the inner split (cut {icut.date()}) has {int(itr.sum())} training and "
            f"{int(iva.sum())} validation audits, fewer than {cfg.min_examples}."
        )
        return "none", note, info
    Xi, exi = fit.X[iva], fit.ex[iva]
    scores = {
        k: fit(itr, weighted=k == "ipw").predict(Xi)["expected_yield"].to_numpy()
        for k in ("none", "ipw")
    }
    scores["random"] = random_scores(Xi.index, cfg.seed).to_numpy()
    table, judged = _judged(scores, exi, cfg, model="none")
    disc = judged["random_yield_capture"]
    per = {
        k: {"random_yield_capture": float(table.loc[k, "random_yield_capture"])}
        for k in ("none", "ipw")
    }
    chosen = _choose_bias(per, cfg, disc)
    info["random_capture"] = {k: per[k]["random_yield_capture"] for k in per}
    figs = "; ".join(
        f"{k} {table.loc[k, 'random_yield_capture']:.3f} "
        f"[{table.loc[k, 'random_yield_capture_low']:.3f}, "
        f"{table.loc[k, 'random_yield_capture_high']:.3f}]"
        for k in ("none", "ipw")
    )
    verdict = (
        f"that figure does not discriminate ({disc.reason}), so plain training is kept"
        if not disc.discriminates
        else f"kept: {chosen} (ipw needs a gain over {cfg.auto_min_gain})"
    )
    note = (
        "inverse-propensity weighting (selection model on audited vs sampled unaudited "
        f"taxpayers at each snapshot, cross-fitted, weights clipped at {cfg.max_weight}) or "
        f"none, chosen on an inner split of the training part (fitted on {int(itr.sum())} "
        f"audits before {icut.date()}, judged on {int(iva.sum())} selected from it): "
        f"random-stratum capture {figs}; {verdict}. The validation audits below did not take "
        "part in this choice."
    )
    return chosen, note, info


def _bias_note_fixed(cfg: TrainingConfig) -> str:
    if cfg.bias_method == "none":
        return "none (plain training on every closed audit)."
    return (
        "inverse-propensity weighting (configured: bias.method = ipw; weights clipped at "
        f"{cfg.max_weight})."
    )


def _label_note(cfg: TrainingConfig) -> str:
    lab = cfg.labels
    scale = (
        f"tax recovered x {lab.metric_months} / months covered (covers_from..covers_to), "
        f"the factor capped at {lab.max_scale:g}"
        + (
            f" (covers over {lab.metric_months} months scaled down, shorter ones kept)"
            if lab.max_scale == 1
            else ""
        )
        + f": the {lab.metric_months} months CONTRACT section 4 counts"
        if lab.normalise_covered
        else "tax recovered as recovered (covered months ignored)"
    )
    h = cfg.recency_half_life_months
    recency = (
        f"; recency weighting: half-life {h:g} months (an audit selected {h:g} months before "
        "the as-of date counts half)"
        if h > 0
        else ""
    )
    return f"{scale}; measure: {lab.measure}{recency}."


def _artifacts(
    d: Path,
    final: YieldModel,
    Xva: pd.DataFrame,
    exva: pd.DataFrame,
    scores: dict[str, np.ndarray],
    comparison: pd.DataFrame,
    labels: pd.DataFrame,
    pred: pd.DataFrame,
) -> None:
    rec = exva["tax_recovered"].to_numpy()
    keep = ["model", "old_rules", "logistic", "random"]
    plots.yield_curve({k: scores[k] for k in keep}, rec, d / "yield_curve.png")
    plots.calibration_plot(
        pred["probability"].to_numpy(), exva["adjusted"].to_numpy(), d / "calibration.png"
    )
    imp = final.feature_importance()
    imp.to_csv(d / "feature_importance.csv")
    plots.importance_plot(imp, d / "feature_importance.png")
    sample = Xva.iloc[:SHAP_ROWS]
    plots.shap_summary_plot(
        final.contributions(sample), final.prepare(sample), d / "shap_summary.png"
    )
    comparison.to_csv(d / "comparison.csv")
    labels.to_csv(d / "label_counts.csv")
    (d / "comparison.json").write_text(
        json.dumps(json.loads(comparison.to_json(orient="index")), indent=2), encoding="utf-8"
    )
