"""``taxrisk features DIR --as-of DATE --out FILE``: the point-in-time feature matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import ProgressBar, app, console, parse_date, progress


class OutputFormatError(typer.BadParameter):
    pass


@app.command("features")
def features(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, dir_okay=True, help="The data folder (CONTRACT tables)."
        ),
    ],
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="ISO date. Rows: the taxpayers active on it. Data: what was known on the last "
            "day of the previous month (the monthly information date), never later.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Output file: .parquet or .csv (by extension)."),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML overriding the indicator thresholds and parameters (default: "
            "TAXRISK_INDICATOR_CONFIG, else features/indicator_defaults.toml).",
        ),
    ] = None,
) -> None:
    """Build the feature matrix as of a date and write it.

    One row per taxpayer active at the as-of date (registered on or before it, not
    deregistered by then), with taxpayer_id as the first column, the context columns
    (unit_id, industry, taxpayer_type, collection_method), every indicator's value, its
    0/1 fired flag (`<id>__fired`) and industry percentile (`<id>__pct`), the industry-model
    estimates and the raw aggregates. Rows that break the data contract are left out (see
    `taxrisk validate`). Prints how often each indicator fired and which indicators were
    switched off because an optional table is missing. With TAXRISK_ENGINE=spark the
    catalog runs on Apache Spark (TAXRISK_SPARK_MASTER; validation stays on DuckDB; see
    docs/spark.md).
    """
    from taxrisk.features.catalog import CATALOG
    from taxrisk.features.config import current_config, load_config
    from taxrisk.features.engine import engine_tables
    from taxrisk.features.loading import load_validated
    from taxrisk.features.matrix import build_matrix
    from taxrisk.features.tables import connect
    from taxrisk.settings import get_settings

    as_of_date = parse_date(as_of)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise OutputFormatError(
            f"expected a .parquet or .csv file, got {out.name!r}", param_hint="--out"
        )
    settings = get_settings()
    cfg = load_config(config, indicator_ids=CATALOG) if config is not None else current_config()
    settings.ensure_workspace()
    con = connect(settings)
    with progress() as bar:
        cb = ProgressBar(bar)
        loaded = load_validated(
            data_dir.resolve(),
            snapshots=settings.snapshots_dir,
            con=con,
            as_of=as_of_date,
            progress=cb,
        )
        tables = engine_tables(loaded, settings)  # TAXRISK_ENGINE=spark: the snapshot on Spark
        matrix = build_matrix(tables, as_of_date, progress=cb, config=cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = matrix.reset_index()
    if suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)

    n = len(matrix)
    summary = Table(title=f"indicators as of {as_of_date.isoformat()}: {n:,} active taxpayers")
    summary.add_column("indicator")
    summary.add_column("name")
    summary.add_column("fired", justify="right")
    summary.add_column("share", justify="right")
    off: dict[str, str] = matrix.attrs.get("switched_off", {})
    for ind_id, ind in CATALOG.items():
        col = f"{ind_id}__fired"
        if col not in matrix.columns:
            continue
        fired = int(matrix[col].sum())
        share = f"{fired / n:.1%}" if n else "-"
        summary.add_row(ind_id + (" *" if ind.classic else ""), ind.name_en, f"{fired:,}", share)
    console.print(summary)
    console.print("* the documents' old rules (classic)")
    if off:
        console.print(f"switched off ({len(off)}):")
        for ind_id, reason in off.items():
            console.print(f"  {ind_id}: {reason}")
    else:
        console.print("switched off: none (every optional table present)")
    quarantined = sum(c.rows_quarantined for c in loaded.counts.values())
    if quarantined:
        console.print(f"{quarantined:,} rows quarantined and not used (run `taxrisk validate`)")
    console.print(f"wrote {out} ({n:,} rows x {len(frame.columns)} columns)")
