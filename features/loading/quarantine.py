"""Row accounting and quarantine files of one staged table.

:func:`count_rows`: rows per rule, rows not yet known at the as-of date, and the used rows'
null counts and date ranges, in one aggregate query. :func:`write_quarantine`: the
quarantined rows of one table as ``<table>.csv`` (``source_row``, ``rule``, ``column``, then
every contract column as it was in the file). :func:`remove_stale`: quarantine files of
tables that no longer have quarantined rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir

from ..schema import SCHEMAS, TableSchema
from ..tables import known_on_expr
from .reading import ident, sql_str
from .rules import RULES, Check

__all__ = [
    "Tally",
    "as_of_counts",
    "count_rows",
    "file_profile",
    "remove_stale",
    "write_quarantine",
]


@dataclass
class Tally:
    rows_in: int = 0
    used: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    not_yet: int = 0
    superseded: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[dt.date | None, dt.date | None]] = field(default_factory=dict)


def count_rows(
    con: ibis.BaseBackend,
    stage: str,
    schema: TableSchema,
    checks: list[Check],
    as_of: dt.date | None,
    profile: bool = True,
) -> Tally:
    """Rows per rule, rows not yet known, versions superseded at the as-of date, and the used
    rows' null counts and date ranges, in one aggregate query grouped by ``_check``.

    ``profile=False``: leave out the null counts and ranges (a pass over every column); the
    snapshot takes them from its Parquet files' statistics instead."""
    t = con.table(stage)
    aggs: dict[str, ir.Scalar] = {"_n": t.count()}
    if as_of is not None and schema.known_on.column is not None:
        known_on = known_on_expr(t, schema)
        late = known_on.notnull() & (known_on > ibis.literal(as_of))
        aggs["_late"] = late.cast("int64").sum()
    if schema.versioned:
        sup = t._superseded.notnull()
        if as_of is not None:
            sup = sup & (t._superseded <= ibis.literal(as_of))
        aggs["_sup"] = sup.cast("int64").sum()
    for i, c in enumerate(schema.columns if profile else ()):
        aggs[f"_null{i}"] = t[c.name].isnull().cast("int64").sum()
        if c.kind in ("date", "month", "quarter"):
            aggs[f"_min{i}"] = t[c.name].min()
            aggs[f"_max{i}"] = t[c.name].max()
    tally = Tally()
    for row in t.group_by("_check").aggregate(**aggs).to_pyarrow().to_pylist():
        tally.rows_in += row["_n"]
        if row["_check"] is not None:
            rule = checks[row["_check"]].rule
            tally.quarantined[rule] = tally.quarantined.get(rule, 0) + row["_n"]
            continue
        tally.used = row["_n"]
        tally.not_yet = int(row.get("_late") or 0)
        tally.superseded = int(row.get("_sup") or 0)
        for i, c in enumerate(schema.columns if profile else ()):
            tally.nulls[c.name] = int(row[f"_null{i}"] or 0)
            if f"_min{i}" in row:
                tally.ranges[c.name] = (_as_date(row[f"_min{i}"]), _as_date(row[f"_max{i}"]))
    tally.quarantined = {r: tally.quarantined[r] for r in RULES if r in tally.quarantined}
    return tally


def as_of_counts(clean: ir.Table, as_of: dt.date | None) -> tuple[int, int]:
    """(rows not yet known, rows superseded by a later version) of a *clean* table at
    ``as_of``: the two counts of :class:`Tally` that depend on the date."""
    aggs: dict[str, ir.Scalar] = {"_n": clean.count()}
    if as_of is not None:
        late = clean.known_on.notnull() & (clean.known_on > ibis.literal(as_of))
        aggs["_late"] = late.cast("int64").sum()
    if "superseded_on" in clean.columns:
        sup = clean.superseded_on.notnull()
        if as_of is not None:
            sup = sup & (clean.superseded_on <= ibis.literal(as_of))
        aggs["_sup"] = sup.cast("int64").sum()
    row = clean.aggregate(**aggs).to_pyarrow().to_pylist()[0]
    return int(row.get("_late") or 0), int(row.get("_sup") or 0)


def file_profile(
    con: ibis.BaseBackend, file: Path, schema: TableSchema
) -> tuple[dict[str, int], dict[str, tuple[dt.date | None, dt.date | None]]]:
    """Null counts and date ranges of the used rows, from the statistics of a Parquet file
    that holds exactly the used rows (a clean table written to the snapshot): the same
    figures as :func:`count_rows`, without a pass over the data."""
    rows = con.raw_sql(
        "SELECT path_in_schema, sum(stats_null_count), min(stats_min_value), "
        f"max(stats_max_value) FROM parquet_metadata({sql_str(file)}) GROUP BY 1"
    ).fetchall()
    stats = {r[0]: r[1:] for r in rows}
    nulls: dict[str, int] = {}
    ranges: dict[str, tuple[dt.date | None, dt.date | None]] = {}
    for col in schema.columns:
        n_null, lo, hi = stats[col.name]
        nulls[col.name] = int(n_null or 0)
        if col.kind in ("date", "month", "quarter"):
            ranges[col.name] = (
                dt.date.fromisoformat(lo) if lo else None,
                dt.date.fromisoformat(hi) if hi else None,
            )
    return nulls, ranges


def _as_date(value: object) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    return value if isinstance(value, dt.date) else None


def _render_sql(col: str, kind: str) -> str:
    """SQL rendering a typed value back to its file format (periods as YYYY-MM / YYYY-Qn)."""
    if kind == "month":
        return f"strftime({col}, '%Y-%m')"
    if kind == "quarter":
        return f"CAST(year({col}) AS VARCHAR) || '-Q' || CAST(quarter({col}) AS VARCHAR)"
    return f"CAST({col} AS VARCHAR)"


def write_quarantine(
    con: ibis.BaseBackend, stage: str, schema: TableSchema, checks: list[Check], out: Path
) -> None:
    """Write the quarantined rows of one table (only they are read)."""
    rules = (
        "CASE _check "
        + " ".join(f"WHEN {i} THEN {sql_str(c.rule)}" for i, c in enumerate(checks))
        + " END"
    )
    cols = (
        "CASE _check "
        + " ".join(f"WHEN {i} THEN {sql_str(c.column)}" for i, c in enumerate(checks))
        + " END"
    )
    values = []
    for c in schema.columns:
        own = [str(i) for i, chk in enumerate(checks) if chk.row_level and chk.column == c.name]
        rendered = _render_sql(ident(c.name), c.kind)
        if own:
            rendered = f"CASE WHEN _check IN ({', '.join(own)}) THEN _value ELSE {rendered} END"
        values.append(f"{rendered} AS {ident(c.name)}")
    query = (
        f'SELECT rowid + 1 AS source_row, {rules} AS rule, {cols} AS "column", {", ".join(values)} '
        f"FROM {ident(stage)} WHERE _check IS NOT NULL ORDER BY rowid"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    con.raw_sql(f"COPY ({query}) TO {sql_str(out)} (FORMAT csv, HEADER true)")


def remove_stale(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for name in SCHEMAS:
        f = folder / f"{name}.csv"
        if name not in keep and f.exists():
            f.unlink()
