"""``taxrisk demo-data --out DIR``: write a synthetic city with its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import ProgressBar, app, console, progress


@app.command("demo-data")
def demo_data(
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write the tables to (created if absent).")
    ],
    taxpayers: Annotated[
        int, typer.Option("--taxpayers", help="Number of taxpayers in the registry.")
    ] = 2000,
    months: Annotated[int, typer.Option("--months", help="Months of data (at least 12).")] = 36,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed gives the same files.")
    ] = 0,
    end: Annotated[str, typer.Option("--end", help="Last month of the data, YYYY-MM.")] = "2025-12",
    fmt: Annotated[str, typer.Option("--format", help="File format: parquet or csv.")] = "parquet",
    style: Annotated[
        str,
        typer.Option(
            "--style",
            help="World style: standard (default), shifted (another team's world: other "
            "scheme mix, noise, audit policy, contract norm names, no property nor "
            "social_insurance) or drift (evasion moves to new schemes in the last 12 months).",
        ),
    ] = "standard",
    drop: Annotated[
        list[str] | None,
        typer.Option(
            "--drop",
            help="Leave out an optional table (repeat for several), to show graceful degradation.",
        ),
    ] = None,
) -> None:
    """Write a synthetic city: every contract table plus truth/gaps.

    The city has units with capacities, taxpayers in the documents' industries, true monthly
    activity, invoices, third-party data, about 10% evaders using the documents' schemes, the
    returns as filed, an audit history chosen mostly by the old rules, and the documents'
    worked examples (flour mill, brick works, beer maker) as named taxpayers. The natural as-of
    date is the last day of --end. --style builds another kind of world from the same
    contract (see experiments/README.md).
    """
    from taxrisk.experiments.demo import generate

    with progress() as bar:
        summary = generate(
            out,
            taxpayers=taxpayers,
            months=months,
            seed=seed,
            end=end,
            fmt=fmt,  # type: ignore[arg-type]
            drop=tuple(drop or ()),
            style=style,
            progress=ProgressBar(bar),
        )
    table = Table(title=f"synthetic city in {summary['out']} (as of {summary['as_of']})")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary["tables"].items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    typer.echo(
        f"style {summary['style']}; taxpayers {summary['taxpayers']:,} (active at end {summary['active_at_end']:,}); "
        f"evaders {summary['evaders']:,} ({summary['evader_share']:.1%}); "
        f"total gap {summary['total_gap']:,.0f} yuan of {summary['total_due']:,.0f} due "
        f"({summary['total_gap'] / max(summary['total_due'], 1.0):.1%})"
    )
    for name, tid in summary["planted"].items():
        typer.echo(f"planted {name}: {tid}")
