"""``taxrisk score DIR --as-of DATE [--model URI] [--out FILE]``: a published scoring run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import ProgressBar, app, console, parse_date, progress


@app.command("score")
def score(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, dir_okay=True, help="The data folder (CONTRACT tables)."
        ),
    ],
    as_of: Annotated[
        str, typer.Option("--as-of", help="Score the taxpayers active at this ISO date.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            dir_okay=False,
            help="Also write the full ranking here as CSV (taxpayer_id, rank, risk_score, "
            "expected_yield, risk_level, unit_id, expected_amount, recommended_measure).",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="MLflow model URI (default: `models:/<registered model>@champion`)."
        ),
    ] = None,
) -> None:
    """Score every active taxpayer, dispatch the cases and publish the run.

    Loads the champion model (or --model), builds the feature matrix as of --as-of, predicts
    P(adjusted), the amount and the expected yield, assigns risk levels and measures
    (serving/config.toml), routes and allocates one case per taxpayer within each unit's
    capacity (with the exploration share; what does not fit becomes a lighter measure),
    explains the dispatched cases per indicator, and publishes it all in one transaction to
    the case store (TAXRISK_DATABASE_URL, default the workspace's cases.db). A run that is
    interrupted publishes nothing. Prints the run id, the counts and the units whose capacity
    binds, with the expected yield one more case would bring there. With TAXRISK_ENGINE=spark
    the features, predictions, ranking and top contributions run on Apache Spark
    (TAXRISK_SPARK_MASTER) and dispatch runs here on the ranking (docs/spark.md).
    """
    from taxrisk.serving.runs import run_scoring
    from taxrisk.settings import get_settings

    as_of_date = parse_date(as_of)
    settings = get_settings()
    with progress() as bar:
        result = run_scoring(
            settings, data_dir.resolve(), as_of_date, model_uri=model, progress=ProgressBar(bar)
        )
    c = result.counts
    console.print(
        f"run {result.run_id} published: {c['scored']:,} taxpayers scored with "
        f"{result.model_uri}; {c['model'] + c['exploration']:,} cases dispatched "
        f"({c['exploration']:,} exploration) within a capacity of {c['capacity']:,}; "
        f"{c['overflow']:,} lighter measures; {c['superseded']:,} earlier cases superseded",
        markup=False,
    )
    levels = result.ranking["risk_level"].value_counts()
    console.print(
        "risk levels: "
        + ", ".join(f"{lv} {levels.get(lv, 0):,}" for lv in ("high", "medium", "low", "minimal")),
        markup=False,
    )
    binding = result.units.sort_values("shadow_price", ascending=False).head(3)
    for u in binding.itertuples(index=False):
        if u.shadow_price and u.shadow_price > 0:
            console.print(
                f"unit {u.unit_id}: one more case of capacity would bring "
                f"{u.shadow_price:,.0f} yuan of expected yield",
                markup=False,
            )
    console.print(f"wall time: {result.timings['total']:.1f} s", markup=False)
    if out is not None:
        from taxrisk.serving.scoring import RANKING_COLUMNS

        out.parent.mkdir(parents=True, exist_ok=True)
        result.ranking[RANKING_COLUMNS].to_csv(out, index=False)
        console.print(f"ranking: {out}", markup=False)
