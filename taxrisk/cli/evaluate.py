"""``taxrisk evaluate DIR --as-of DATE --ranking FILE [--json FILE]``: CONTRACT section 4."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console, parse_date


@app.command("evaluate")
def evaluate(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True,
            file_okay=False,
            dir_okay=True,
            help="The data folder (with truth/ if synthetic).",
        ),
    ],
    as_of: Annotated[
        str, typer.Option("--as-of", help="The as-of date the ranking was made at (ISO).")
    ],
    ranking: Annotated[
        Path,
        typer.Option(
            "--ranking", exists=True, dir_okay=False, help="Ranking CSV with taxpayer_id and rank."
        ),
    ],
    json_out: Annotated[
        Path | None,
        typer.Option(
            "--json", dir_okay=False, help="Write the metrics as JSON here (default: stdout)."
        ),
    ] = None,
) -> None:
    """Judge a ranking by CONTRACT section 4.

    With truth/ (a synthetic world): K (sum of unit capacities), N (active taxpayers), yield
    capture@K and hit rate@K of the ranking, of the oracle and of a random ranking, on the gap
    of the 24 months ending with the --as-of month minus what audits closed by then
    recovered. Without truth/: precision@K and recovered yuan@K on the audits closed after
    --as-of, also reweighted by 1/selection_probability on the random stratum. Prints a
    table on stderr and the metrics as JSON on stdout (or to --json FILE).
    """
    import pandas as pd

    from taxrisk.training.evaluation import evaluate_ranking

    as_of_date = parse_date(as_of)
    frame = pd.read_csv(ranking, dtype={"taxpayer_id": "str"})
    metrics = evaluate_ranking(data_dir.resolve(), as_of_date, frame)
    table = Table(title=f"{ranking.name} as of {as_of_date} ({metrics['source']})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:,.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    clean = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v)
        for k, v in metrics.items()
    }
    text = json.dumps(clean, indent=2)
    if json_out is None:
        typer.echo(text)
    else:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text + "\n", encoding="utf-8")
        console.print(f"metrics: {json_out}", markup=False)
