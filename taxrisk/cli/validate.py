"""``taxrisk validate DIR [--as-of DATE]``: check a data folder, write the data-quality report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import ProgressBar, app, console, parse_date, progress


@app.command("validate")
def validate(
    data_dir: Annotated[
        Path,
        typer.Argument(
            exists=True, file_okay=False, dir_okay=True, help="The data folder (CONTRACT tables)."
        ),
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Rows dated after this ISO date are counted as not yet known (not quarantined); "
            "coverage and never-filing are computed at it. Default: the latest date in the data.",
        ),
    ] = None,
) -> None:
    """Check a data folder and write its data-quality report.

    Reads every contract table (CSV or Parquet), quarantines the rows that break a rule
    (one file per table under the workspace's `quarantine/<folder>/`), and writes
    `quality/<folder>/report.html` (for people) and report.json (for scripts) under
    TAXRISK_WORKSPACE. It also writes a clean, typed snapshot of the folder
    (`snapshots/<folder>-<hash>/<fingerprint>/`) that features, train, score and the service
    reuse while the folder's files are unchanged. Exit 0 when every table is usable, even with quarantined rows;
    exit 1 with one line naming the file and column when a table is unusable.
    """
    from taxrisk.features.loading import load_validated
    from taxrisk.features.quality import build_report, write_report
    from taxrisk.features.tables import connect
    from taxrisk.settings import get_settings

    as_of_date = parse_date(as_of) if as_of else None
    settings = get_settings()
    settings.ensure_workspace()
    folder = data_dir.resolve()
    con = connect(settings)
    with progress() as bar:
        result = load_validated(
            folder,
            snapshots=settings.snapshots_dir,
            con=con,
            as_of=as_of_date,
            quarantine_dir=settings.quarantine_dir / folder.name,
            progress=ProgressBar(bar),
            fresh=True,  # the explicit check: always validate, and rewrite the snapshot
        )
        report = build_report(result, as_of=as_of_date)
    html_path, json_path = write_report(report, settings.quality_dir / folder.name)

    summary = Table(title=f"data quality: {folder.name} (as of {report['as_of']})")
    any_bad = any(t["quarantined"] for t in report["tables"].values())
    any_versions = any(t.get("superseded") for t in report["tables"].values())
    columns = ["table", "rows in", "used", "quarantined", "not yet known"]
    columns += ["superseded"] if any_versions else []  # by an amended return
    for col in [*columns, "by rule"] if any_bad else columns:
        summary.add_column(
            col,
            justify="left" if col in ("table", "by rule") else "right",
            no_wrap=col != "by rule",
        )
    for name, t in report["tables"].items():
        cells = [
            name,
            f"{t['rows_in']:,}",
            f"{t['rows_used']:,}",
            f"{t['rows_quarantined']:,}",
            f"{t['not_yet_known']:,}",
        ]
        if any_versions:
            cells.append(f"{t['superseded']:,}")
        if any_bad:
            cells.append(", ".join(f"{r} {n:,}" for r, n in t["quarantined"].items()))
        summary.add_row(*cells)
    console.print(summary)
    if report["missing_optional"]:
        console.print(f"optional tables absent: {', '.join(report['missing_optional'])}")
    top = [p for p in report["problems"] if p["severity"] in ("high", "medium")][:5]
    for p in top:
        console.print(f"[{p['severity']}] {p['message']}", markup=False, soft_wrap=True)
    console.print(f"report: {html_path}", markup=False, soft_wrap=True)
    console.print(f"report: {json_path}", markup=False, soft_wrap=True)
    quarantined = [t["quarantine_file"] for t in report["tables"].values() if t["quarantine_file"]]
    if quarantined:
        console.print(
            f"quarantine: {settings.quarantine_dir / folder.name}", markup=False, soft_wrap=True
        )
