"""``taxrisk indicators``: the indicator catalog for analysts, and the run's indicator config.

Lists every indicator with its names, tables, threshold (of the run's config), measure,
basis and response guide; ``--format csv|json`` exports the whole catalog (``--out`` to a
file). :func:`install_indicator_config` installs the config file of ``--indicator-config`` /
``TAXRISK_INDICATOR_CONFIG`` for the command being run (the root callback calls it).
"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._app import app, console


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def install_indicator_config(path: Path | None) -> None:
    """Load, validate and install the indicator config of this command: ``path``, else the
    ``TAXRISK_INDICATOR_CONFIG`` setting, else nothing (the packaged defaults apply)."""
    from taxrisk.features.config import install, load_config

    if path is None:
        from taxrisk.settings import get_settings

        path = get_settings().indicator_config
    if path is None:
        install(None)
        return
    from taxrisk.features.catalog import default_catalog

    install(load_config(path, indicator_ids=default_catalog().indicators))


@app.command("indicators")
def indicators(
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table: a summary on the terminal; csv or json: the whole catalog (zh/en names, "
            "tables, direction, line, threshold, unit, measure, classic, basis, guides).",
        ),
    ] = Format.table,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the export to this file (default: standard output)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML overriding the thresholds (as `taxrisk --indicator-config`): the "
            "export shows them.",
        ),
    ] = None,
) -> None:
    """List every risk indicator of the catalog, or export the catalog as CSV or JSON.

    A threshold is the value at which the indicator fires in the direction that means risk;
    for an indicator whose line is `quantile` it is the share q of its industry at or below
    the value (it fires at the top 1 - q, or the bottom 1 - q for a `low` direction). The
    basis says why: a passage of the documents or a population quantile. Thresholds come
    from features/indicator_defaults.toml, overridden by --config /
    TAXRISK_INDICATOR_CONFIG.
    """
    from taxrisk.features.catalog import RECORD_FIELDS, default_catalog, records
    from taxrisk.features.config import current_config, load_config

    catalog = default_catalog()
    cfg = (
        load_config(config, indicator_ids=catalog.indicators)
        if config is not None
        else current_config().check(catalog.indicators)
    )
    rows = records(catalog, cfg)
    if fmt is Format.table:
        if out is not None:
            raise typer.BadParameter("--out needs --format csv or json", param_hint="--out")
        t = Table(title=f"{len(rows)} indicators ({' + '.join(cfg.sources)})")
        for col in ("id", "name_zh", "name_en", "tables", "threshold", "measure"):
            t.add_column(col)
        for r in rows:
            line = ("q " if "quantile" in r["threshold_unit"] else "") + f"{r['threshold']:g}"
            arrow = ">=" if r["direction"] == "high" else "<="
            t.add_row(
                r["id"] + (" *" if r["classic"] else ""),
                r["name_zh"],
                r["name_en"],
                r["tables"],
                f"{arrow} {line}",
                r["measure"],
            )
        console.print(t)
        console.print("* the documents' old rules (classic); --format csv|json for the guides")
        return
    if fmt is Format.json:
        text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    else:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(RECORD_FIELDS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        text = buf.getvalue()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out} ({len(rows)} indicators)")
