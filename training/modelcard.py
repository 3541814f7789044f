"""The model card: a markdown page that travels with every registered model version.

:func:`render_model_card` takes the facts of a training run (data window, label counts,
selection mix, metrics of the model and baselines, champion decision) and returns markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["render_model_card"]


def _table(frame: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    cols = [str(frame.index.name or ""), *map(str, frame.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in frame.iterrows():
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row.tolist()]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


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
- Time split: train on audits selected before {facts["cut"]}, closed before it
  ({facts["n_train"]}); validate on audits selected from it ({facts["n_val"]}).

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
could hold; precision = adjusted share in that top; auc = P(adjusted) ranking.

{_table(m)}

## Champion decision
{facts["champion_note"]}

## Known limits
- Labels exist only where audits were made; the audited population was chosen by rules,
  tips and campaigns, so validation on all audits is biased, and the random stratum is small
  (wide confidence). Treat small differences between rankings as noise.
- Snapshots at the month end before selection drop rows filed in the days before
  selection: conservative (no leak), slightly less information.
- Amounts are what audits recovered, not the true gap: evasion an audit missed is invisible.
- Scores are relative to this city's history; retrain when the indicator catalog changes
  (the model refuses a matrix whose columns differ).
"""
