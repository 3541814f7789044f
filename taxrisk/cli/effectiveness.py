"""``taxrisk effectiveness [--run RUN_ID | --model URI] [--csv FILE]``: the indicators'
effectiveness logged by a training run (training/effectiveness.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app

_COLUMNS = {
    "fire_rate_population": ("fires (pop.)", "{:.1%}"),
    "fired_audits": ("fired audits", "{:.0f}"),
    "precision": ("precision", "{:.3f}"),
    "lift": ("lift", "{:.2f}"),
    "recovered_per_hit": ("yuan / hit", "{:,.0f}"),
    "random_precision": ("precision (random, 1/p)", "{:.3f}"),
    "random_lift": ("lift (random)", "{:.2f}"),
    "max_jaccard": ("max Jaccard", "{:.2f}"),
}


def _cell(value: object, fmt: str) -> str:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    return "-" if v != v else fmt.format(v)


@app.command("effectiveness")
def effectiveness(
    run: Annotated[
        str | None, typer.Option("--run", help="The MLflow run id of a `taxrisk train`.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="A model URI (models:/taxrisk/3, models:/taxrisk@champion)."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", dir_okay=False, help="Also write the full table as CSV here."),
    ] = None,
) -> None:
    """Print the indicator effectiveness a training run logged (跟踪评价).

    Per indicator, on the audits closed by the run's as-of date (each featured as of its
    selection): how often it fires (population sample and audits), its precision (share of
    fired audits with over 1,000 yuan recovered), yuan recovered per hit, lift over the base
    rate, the same on the random stratum weighted by 1/selection_probability (with bootstrap
    intervals in the CSV), and the indicator it co-fires with most (Jaccard). Default: the
    champion's run. Best lift first.
    """
    from taxrisk.settings import get_settings
    from taxrisk.training.effectiveness import load_logged

    if run and model:
        raise typer.BadParameter("give --run or --model, not both", param_hint="--run")
    table, pairs, run_id = load_logged(get_settings(), run_id=run, model_uri=model)
    out = Table(
        title=f"indicator effectiveness, run {run_id} (base rate "
        f"{float(table.attrs.get('base_rate', float('nan'))):.3f}, "
        f"{table.attrs.get('n_audits', '?')} closed audits, "
        f"{table.attrs.get('n_random', '?')} random)"
    )
    out.add_column("indicator", no_wrap=True)
    for _, (label, _fmt) in _COLUMNS.items():
        out.add_column(label, justify="right")
    out.add_column("co-fires with")
    for ind, row in table.iterrows():
        out.add_row(
            str(ind),
            *[_cell(row.get(c), fmt) for c, (_, fmt) in _COLUMNS.items()],
            str(row.get("cofires_with", "")),
        )
    from rich.console import Console

    console = Console()
    # piped or captured: wide enough for the whole table (a terminal keeps its width)
    (console if console.is_terminal else Console(width=220)).print(out)
    if len(pairs):
        typer.echo("co-firing pairs (Jaccard above the configured line):")
        for r in pairs.itertuples():
            typer.echo(f"  {r.indicator} ~ {r.other}: {r.jaccard:.3f}")
    if csv is not None:
        table.to_csv(csv)
        typer.echo(f"wrote {csv}")
