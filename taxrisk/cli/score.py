"""``taxrisk score DIR --as-of DATE [--model URI] --out FILE``: rank every active taxpayer."""

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
        Path,
        typer.Option(
            "--out",
            dir_okay=False,
            help="Write the ranking CSV here (required until dispatch and the case store exist).",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="MLflow model URI (default: models:/<registered model>@champion)."
        ),
    ] = None,
) -> None:
    """Score every active taxpayer and write the ranking as CSV.

    Loads the champion model (or --model), builds the feature matrix as of --as-of and writes
    one row per active taxpayer: taxpayer_id, rank (1 = audit first, by expected yield),
    risk_score (P(adjusted)), expected_yield (yuan), risk_level (high/medium/low/minimal,
    cut-offs in training/config.toml), unit_id. Dispatch, explanations and the case store come
    with a later issue and extend this command; for now --out is required.
    """
    from taxrisk.features.loading import load_folder
    from taxrisk.features.tables import connect
    from taxrisk.settings import get_settings
    from taxrisk.training.config import load_config
    from taxrisk.training.scoring import load_model, score_tables

    as_of_date = parse_date(as_of)
    settings = get_settings()
    settings.ensure_workspace()
    uri = model or f"models:/{settings.registered_model}@champion"
    levels = load_config().risk_levels
    with progress() as bar:
        pb = ProgressBar(bar)
        loaded = load_folder(
            data_dir.resolve(), con=connect(settings), as_of=as_of_date, progress=pb
        )
        predictor = load_model(uri, settings.tracking_uri)
        ranking = score_tables(loaded.tables, as_of_date, predictor, levels, progress=pb)
    out.parent.mkdir(parents=True, exist_ok=True)
    ranking.to_csv(out, index=False)
    counts = ranking["risk_level"].value_counts()
    summary = ", ".join(
        f"{lv} {counts.get(lv, 0):,}" for lv in ("high", "medium", "low", "minimal")
    )
    console.print(f"scored {len(ranking):,} taxpayers with {uri}: {summary}", markup=False)
    console.print(f"ranking: {out}", markup=False)
