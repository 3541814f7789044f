"""The model card: a markdown page that travels with every registered model version.

:func:`render_model_card` takes the facts of a training run (data window, label counts,
selection mix, metrics of the model and baselines, champion decision) and returns markdown.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .validation import METRICS

__all__ = ["render_model_card"]


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    cols = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def _validation_table(m: pd.DataFrame, disc: dict[str, Any]) -> str:
    """Each metric as ``value [low, high]``; a metric that does not discriminate is printed as
    ``n/d`` (not a result) with its reason below the table."""
    metrics = [c for c in METRICS if c in m.columns]
    lines = ["| ranking | " + " | ".join(metrics) + " |", "|" + "---|" * (len(metrics) + 1)]
    for idx, row in m.iterrows():
        cells = []
        for c in metrics:
            d = disc.get(c)
            v, lo, hi = row[c], row.get(f"{c}_low", np.nan), row.get(f"{c}_high", np.nan)
            if d is not None and not d.discriminates:
                cells.append("n/d")
            elif not np.isfinite(v):
                cells.append("-")
            elif np.isfinite(lo) and np.isfinite(hi):
                cells.append(f"{v:.3f} [{lo:.3f}, {hi:.3f}]")
            else:
                cells.append(f"{v:.3f}")
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    notes = [
        f"- `{c}`: **does not discriminate**: {d.reason}."
        for c, d in disc.items()
        if not d.discriminates
    ]
    if notes:
        lines += [
            "",
            "n/d = the figure cannot tell rankings apart on these audits, so it is no result "
            "and decides nothing:",
            *notes,
        ]
    return "\n".join(lines)


def _effectiveness(eff: pd.DataFrame | None, min_fired: int = 20) -> str:
    if eff is None or not len(eff):
        return "Not computed."
    fired = eff[eff["fired_audits"] >= min_fired]
    thin = sorted(eff.index[(eff["fired_audits"] > 0) & (eff["fired_audits"] < min_fired)])
    cols = ["fired_audits", "precision", "lift", "random_precision", "recovered_per_fired"]

    def rows(frame: pd.DataFrame) -> str:
        t = frame[cols].copy()
        t.index.name = "indicator"
        return _table(t.astype(float), "{:.3g}")

    never = sorted(eff.index[eff["fired_audits"] == 0])
    pairs = eff.attrs.get("cofiring")
    co = (
        ", ".join(f"{r.indicator} ~ {r.other} ({r.jaccard:.2f})" for r in pairs.itertuples())
        if pairs is not None and len(pairs)
        else "none"
    )
    return (
        f"Base rate (audits with over {eff.attrs.get('hit_yuan', 1000):.0f} yuan recovered): "
        f"{eff.attrs.get('base_rate', float('nan')):.3f}. Among indicators fired for at least "
        f"{min_fired} audits, best by lift:\n\n{rows(fired.head(5))}"
        f"\n\nWorst by lift:\n\n{rows(fired.tail(5))}\n\nFired for fewer than {min_fired} "
        f"audits (too few to judge): {', '.join(thin) or 'none'}. Never fired on an audit: "
        f"{', '.join(never) or 'none'}. Co-firing pairs: {co}. Full table: "
        "`effectiveness/indicators.csv` (`taxrisk effectiveness --run RUN_ID`)."
    )


def render_model_card(facts: dict[str, Any]) -> str:
    """Markdown model card. ``facts`` keys: see :func:`taxrisk.training.pipeline.train`."""
    m: pd.DataFrame = facts["comparison"]
    labels: pd.DataFrame = facts["label_counts"]
    return f"""# Model card: {facts["model_name"]} (as of {facts["as_of"]})

## What it does
Ranks active taxpayers by **expected yield** (yuan) = P(adjusted) x expected tax recovered
when adjusted. Two LightGBM models: a classifier for P(adjusted) (monotone non-decreasing in
every fired indicator), a regressor of log1p(tax recovered) on adjusted audits (smearing
back-transform). Late fees and penalties are not targets.

## Data
- Data folder: `{facts["data_dir"]}`; as-of date {facts["as_of"]}.
- Examples: {facts["n_examples"]} audits closed on or before the as-of date, selected
  {facts["first_selected"]} to {facts["last_selected"]}; each featured as of its snapshot
  ({facts["snapshot"]}: never after its selection date). {facts["n_open"]} audits known but
  still open (unlabelled); {facts["dropped"]} dropped (no feature row at their snapshot).
- Features: {facts["n_features"]} columns of the feature matrix; `selection_reason` and
  `selection_probability` are never features.
- Labels: {facts.get("label_note", "tax recovered as recovered.")}
- Time split: train on audits selected before {facts["cut"]}, closed before it
  ({facts["n_train"]}); validate on audits selected from it ({facts["n_val"]}) and at
  least {facts.get("horizon_days", 0)} days before the as-of date (the
  {facts.get("closure_quantile", 0.9):.0%} quantile of case durations: audits selected later
  may not have closed); {facts.get("censored", 0)} later audits are left out of validation.

## Labels and selection mix
{_table(labels, "{:.0f}")}

## Selection bias
Technique: {facts["bias_note"]}

## Tail prior (robustness to moved evasion)
{facts.get("tail_note", "not used.")}

## Validation (same audits for every ranking)
`all_*`: every validation audit, unweighted. `random_*`: the random stratum weighted by
1/selection_probability (unbiased for the population, but small). capture = recovered yuan
in the top {facts["top_share"]:.0%} by the ranking / the most the top {facts["top_share"]:.0%}
could hold; precision = adjusted share in that top; auc = P(adjusted) ranking. Brackets:
{facts.get("interval_level", 0.9):.0%} bootstrap interval ({facts.get("resamples", 0)}
resamples of the validation audits).

{_validation_table(m, facts.get("discrimination", {}))}

## Indicator effectiveness (closed audits)
{_effectiveness(facts.get("effectiveness"), facts.get("min_fired", 20))}

## Champion decision
{facts["champion_note"]}

## Known limits
- Labels exist only where audits were made; the audited population was chosen by rules,
  tips and campaigns, so validation on all audits is biased, and the random stratum is small
  (wide confidence). Treat small differences between rankings as noise.
- Features are read at the information date of the snapshot (the last day of the month
  before it), as scoring reads them: returns filed in the days before selection are not
  used; the taxpayer's own audits, registry events and property count up to the snapshot
  date itself.
- `taxpayer_type` and `collection_method` are not features: the registry gives their value
  today, not at the audit's date.
- Amounts are what audits recovered, not the true gap: evasion an audit missed is invisible.
- Scores are relative to this city's history; retrain when the indicator catalog changes
  (the model refuses a matrix whose columns differ).
"""
