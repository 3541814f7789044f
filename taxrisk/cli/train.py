"""``taxrisk train DIR --as-of DATE [--trials N]``: train, log to MLflow, register, gate."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import ProgressBar, app, console, parse_date, progress


@app.command("train")
def train(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, dir_okay=True, help="The data folder (CONTRACT tables)."
        ),
    ],
    as_of: Annotated[
        str, typer.Option("--as-of", help="Train on audit outcomes known at this ISO date.")
    ],
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=0,
            help="Optuna trials per model (default: training/config.toml, 5; 0 = no tuning).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            exists=True,
            dir_okay=False,
            help="A TOML file overriding training/config.toml.",
        ),
    ] = None,
) -> None:
    """Train the expected-yield model on audit outcomes known at --as-of.

    Every audit closed on or before --as-of is an example, featured as of its selection date.
    The case store's closed cases (feedback from earlier rounds) are examples too, beside the
    data folder's audits table. Optuna tunes the LightGBM classifier (P(adjusted)) and regressor
    (tax recovered) on the earlier audits; the later ones (those selected early enough to have
    closed) validate the model against the old rules, a logistic regression and random, with
    bootstrap intervals. The run (parameters, label counts, metrics, indicator effectiveness,
    plots, model card) is logged to MLflow in TAXRISK_WORKSPACE (or MLFLOW_TRACKING_URI), the
    model is registered as a new version, and the alias "champion" moves to it only if it
    beats the current champion beyond a noise margin (the bootstrap interval of the
    difference) on audits neither model was fitted on. The gate fails closed: too few such
    audits, a tie, or any error while judging keeps the champion, and the output says why.
    Prints the run id, the version and the decision.
    """
    from taxrisk.settings import get_settings
    from taxrisk.training.config import load_config
    from taxrisk.training.pipeline import train as run_train

    as_of_date = parse_date(as_of)
    settings = get_settings()
    cfg = load_config(config)
    extra = _store_outcomes(settings)
    with progress() as bar:
        result = run_train(
            data_dir.resolve(),
            as_of_date,
            settings=settings,
            trials=trials,
            config=cfg,
            progress=ProgressBar(bar),
            extra_outcomes=extra,
        )
    table = Table(title="validation on the held-out audits (time split, bootstrap intervals)")
    table.add_column("ranking")
    cols = {
        "all_yield_capture": "capture@20%",
        "all_precision": "precision@20%",
        "all_auc": "AUC",
        "random_yield_capture": "capture@20% (random stratum, 1/p)",
    }
    for header in cols.values():
        table.add_column(header, justify="right")
    disc = result.discrimination
    blind = {c for c in cols if c in disc and not disc[c].discriminates}

    def cell(row, c: str) -> str:  # type: ignore[no-untyped-def]
        if c in blind:
            return "n/d"
        lo, hi = row.get(f"{c}_low", math.nan), row.get(f"{c}_high", math.nan)
        if math.isfinite(lo) and math.isfinite(hi):
            return f"{row[c]:.3f} [{lo:.3f}, {hi:.3f}]"
        return f"{row[c]:.3f}"

    for name, row in result.comparison.iterrows():
        table.add_row(str(name), *(cell(row, c) for c in cols))
    console.print(table)
    for c in sorted(blind):  # a figure that cannot tell rankings apart is no result
        console.print(f"n/d {cols[c]}: does not discriminate: {disc[c].reason}", markup=False)
    console.print(f"bias technique kept: {result.bias_method}", markup=False)
    console.print(f"run id: {result.run_id}", markup=False)
    console.print(f"model: models:/{settings.registered_model}/{result.version}", markup=False)
    decision = result.decision
    verdict = "champion" if decision.promote else "not champion"
    console.print(f"{verdict}: {decision.reason}", markup=False)
    if decision.error is not None:  # the gate failed closed: say so beside the verdict
        held = f" v{decision.champion_version}" if decision.champion_version else ""
        console.print(
            f"warning: the champion gate could not compare the models, so the champion{held} "
            f"stays: {decision.error}",
            markup=False,
        )
    console.print(f"wall time: {result.wall_seconds:.1f} s", markup=False)


def _store_outcomes(settings):  # type: ignore[no-untyped-def]
    """The case store's cases as outcomes, when a store exists (feedback of earlier rounds)."""
    from taxrisk.serving.feedback import StoreOutcomes
    from taxrisk.serving.store.session import make_engine, upgrade

    if settings.database_url is None and not (settings.root / "cases.db").exists():
        return ()
    engine = make_engine(settings)
    upgrade(engine)
    return (StoreOutcomes(engine),)
