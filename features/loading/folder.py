"""The public entry point: :func:`load_folder` reads, validates and materialises a folder."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir

from taxrisk.progress import ProgressFn, report

from ..errors import MissingColumn, MissingTable, TableUnreadable
from ..schema import SCHEMAS, TableSchema, load_order
from ..tables import Tables, connect, sql_str
from .quarantine import as_of_counts, count_rows, file_profile, remove_stale, write_quarantine
from .reading import find_tables, ident, register_raw
from .rules import (
    PARENTS,
    StageError,
    clean_select,
    execute_count,
    set_checks,
    stage_table,
    write_if_clean,
)

if TYPE_CHECKING:
    from .snapshot import Snapshot

__all__ = ["LoadResult", "TableCounts", "load_folder"]

log = logging.getLogger("taxrisk.features.loading")


@dataclass
class TableCounts:
    """Row accounting of one table.

    ``rows_in``: data rows in the file. ``rows_used``: rows in the clean table (including those
    not yet known at the as-of date). ``quarantined``: rule name -> rows (only rules that fired).
    ``not_yet_known``: subset of ``rows_used`` whose ``known_on`` is after the as-of date
    (0 when no as-of date was given). ``superseded``: subset of ``rows_used`` that a later
    version of the same key (an amended return) replaces at the as-of date (every replaced
    version when no as-of date was given); they stay for dates before the amendment.
    ``extra_columns``: in the file, not in the contract
    (ignored). ``missing_columns``: nullable contract columns absent from the file (read as
    null). ``null_counts``: per contract column, null values among the used rows.
    ``ranges``: per date or period column, (min, max) over the used rows (periods as their
    first day). ``quarantine_file``: where the quarantined rows were written, if anywhere.
    """

    table: str
    path: Path
    rows_in: int
    rows_used: int
    quarantined: dict[str, int] = field(default_factory=dict)
    not_yet_known: int = 0
    superseded: int = 0
    format: str = "csv"
    extra_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    quarantine_file: Path | None = None
    null_counts: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[dt.date | None, dt.date | None]] = field(default_factory=dict)

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined.values())


@dataclass
class LoadResult:
    """What :func:`load_folder` returns.

    ``tables``: clean typed tables (present tables only). ``counts``: per present table.
    ``missing_optional``: optional tables absent (or header-only) in the folder.
    ``snapshot``: the validated snapshot the tables are read from (``load_validated``), or
    ``None`` for tables validated into the connection (``load_folder``).
    """

    tables: Tables
    counts: dict[str, TableCounts]
    missing_optional: list[str]
    as_of: dt.date | None = None
    notes: list[str] = field(default_factory=list)
    snapshot: Snapshot | None = None


def _streamable(schema: TableSchema) -> bool:
    """A table :func:`.rules.write_if_clean` may try: no later foreign key needs its stage,
    and no self reference."""
    return schema.name not in PARENTS and all(
        fk.ref_table != schema.name for fk in schema.foreign_keys
    )


def clean_view(con: ibis.BaseBackend, name: str, stage: str, schema: TableSchema) -> ir.Table:
    """Drop the quarantined rows and the bookkeeping columns from the stage (cheap: a delete
    of the failing rows, then two column drops that rewrite nothing), and expose the clean
    table as a view ``<name>`` with ``known_on`` (and ``superseded_on`` if versioned)."""
    st = ident(stage)
    con.raw_sql(f"DELETE FROM {st} WHERE _check IS NOT NULL")
    con.raw_sql(f"ALTER TABLE {st} DROP COLUMN _value")
    con.raw_sql(f"ALTER TABLE {st} DROP COLUMN _check")
    staged = con.table(stage)
    clean = clean_select(staged, schema, staged._superseded if schema.versioned else None)
    con.raw_sql(f"DROP VIEW IF EXISTS {ident(name)}")
    return con.create_view(name, clean, overwrite=True)


# --------------------------------------------------------------------------------------------


def load_folder(
    path: Path,
    *,
    con: ibis.BaseBackend | None = None,
    as_of: dt.date | None = None,
    quarantine_dir: Path | None = None,
    progress: ProgressFn | None = None,
    profile: bool = True,
    on_table: Callable[[str, ir.Table, TableCounts], None] | None = None,
    sink: Callable[[str], Path] | None = None,
) -> LoadResult:
    """Read, validate and materialise every contract table of a data folder.

    ``con``: the DuckDB connection to load into (default: a new in-process one).
    ``as_of``: rows known after this date are counted in ``not_yet_known`` (not quarantined).
    ``quarantine_dir``: where to write ``<table>.csv`` of quarantined rows (none if ``None``).
    ``progress``: called as ``progress("load tables", done, total)``.
    ``profile``: gather the used rows' null counts and date ranges (``False``: left empty,
    for :func:`~taxrisk.features.loading.load_validated`, which reads them from its snapshot).
    ``on_table``: called with each clean table and its counts as soon as it is complete (the
    snapshot writes it then); it may drop the table once no later table needs it.
    ``sink``: where to write each clean table as Parquet (the snapshot's files), if anywhere.
    A table whose rows all pass every rule is then written straight from its file while its
    row rules are checked, and its keys and references are checked on the written file,
    without a stage (:func:`.rules.write_if_clean`; not for tables other tables refer to);
    the others are staged, checked, and written from the stage. Either way the clean table
    in ``con`` and the file are the same.

    Raises a :class:`~taxrisk.features.errors.DataError` subclass when a table is unusable.
    """
    path = Path(path)
    con = con or connect()
    con.raw_sql("SET enable_progress_bar = false")  # library work: no bars on stdout
    files, notes = find_tables(path)
    order = load_order()
    missing_required = [n for n in order if not SCHEMAS[n].optional and n not in files]
    if missing_required:
        name = missing_required[0]
        raise MissingTable(
            f"required table {name!r} is missing (expected {name}.csv or {name}.parquet)",
            path=path / f"{name}.csv",
        )
    counts: dict[str, TableCounts] = {}
    tables: dict[str, ir.Table] = {}
    missing_optional: list[str] = []
    total = len(order)
    for i, name in enumerate(order):
        report(progress, "load tables", i, total)
        schema = SCHEMAS[name]
        file = files.get(name)
        if file is None:
            missing_optional.append(name)
            continue
        raw, columns = register_raw(con, name, file)
        absent = [c.name for c in schema.columns if c.name not in columns]
        required_absent = [c for c in absent if not schema.column(c).nullable]
        if required_absent:
            hint = None
            if len(columns) == 1 and any(d in columns[0] for d in (";", "\t", "|")):
                hint = "the delimiter must be a comma"
            raise MissingColumn(
                f"required column is missing (found: {', '.join(columns)})",
                path=file,
                column=required_absent[0],
                hint=hint,
            )
        t0 = time.perf_counter()
        out = sink(name) if sink is not None else None
        extra_cols = [c for c in columns if c not in schema.column_names]
        # what the file is, the same whichever way its rows are counted below
        counted = partial(
            TableCounts,
            table=name,
            path=file,
            format=file.suffix.lower().lstrip("."),
            extra_columns=extra_cols,
            missing_columns=absent,
        )
        streamed: int | None = None
        try:
            if out is not None and _streamable(schema):
                streamed = write_if_clean(con, raw, schema, set(counts), out)
            t1 = time.perf_counter()
            if streamed is None:
                stage, checks = stage_table(con, name, raw, schema)
        except StageError as exc:
            raise TableUnreadable(exc.message, path=file, column=exc.column) from exc
        finally:
            con.raw_sql(f"DROP VIEW IF EXISTS {ident(f'_raw_{name}')}")
        if streamed is not None:
            assert out is not None
            # every row passed every rule: the clean table was written straight from the file
            con.raw_sql(
                f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM read_parquet({sql_str(out)})"
            )
            tables[name] = con.table(name)
            tc = counted(rows_in=streamed, rows_used=streamed)
            tc.not_yet_known, tc.superseded = as_of_counts(tables[name], as_of)
            if profile:
                tc.null_counts, tc.ranges = file_profile(con, out, schema)
            t2 = t3 = t1  # written while checked; the rest is the counts from the file
            how = "written straight from the file, every rule passed (no stage)"
        else:
            rows_in_total = execute_count(con, f"SELECT count(*) FROM {ident(stage)}")
            if rows_in_total == 0:
                con.raw_sql(f"DROP TABLE IF EXISTS {ident(stage)}")
                if schema.optional:
                    missing_optional.append(name)
                    notes.append(f"{file.name} has no rows: treated as absent")
                    continue
                what = "header only, no rows" if file.suffix.lower() == ".csv" else "no rows"
                raise TableUnreadable(f"{what} (a required table)", path=file)
            t1 = time.perf_counter()
            set_checks(con, stage, schema, checks, loaded=set(counts))
            t2 = time.perf_counter()
            tally = count_rows(con, stage, schema, checks, as_of, profile=profile)
            tc = counted(
                rows_in=tally.rows_in,
                rows_used=tally.used,
                quarantined=tally.quarantined,
                not_yet_known=tally.not_yet,
                superseded=tally.superseded,
                null_counts=tally.nulls,
                ranges=tally.ranges,
            )
            if quarantine_dir is not None and tc.quarantined:
                tc.quarantine_file = Path(quarantine_dir) / f"{name}.csv"
                write_quarantine(con, stage, schema, checks, tc.quarantine_file)
            tables[name] = clean_view(con, name, stage, schema)
            t3 = time.perf_counter()
            if out is not None:
                con.raw_sql(
                    f"COPY (SELECT * FROM {ident(name)}) TO {sql_str(out)} (FORMAT parquet)"
                )
            how = "staged"
        counts[name] = tc
        if on_table is not None:
            on_table(name, tables[name], tc)
        for extra in tc.extra_columns:
            notes.append(f"{file.name}: ignored unknown column {extra!r}")
        for m in absent:
            notes.append(f"{file.name}: nullable column {m!r} absent, read as null")
        log.info(
            "%s: %d rows in, %d used, %s quarantined; %s; read+row rules %.1f s, key rules "
            "%.1f s, count+quarantine %.1f s, write %.1f s",
            name,
            tc.rows_in,
            tc.rows_used,
            tc.quarantined,
            how,
            t1 - t0,
            t2 - t1,
            t3 - t2,
            time.perf_counter() - t3,
        )
    report(progress, "load tables", total, total)
    if quarantine_dir is not None:
        remove_stale(Path(quarantine_dir), keep={n for n, c in counts.items() if c.quarantined})
    tables_obj = Tables(con=con, tables=tables, source=path, notes=notes)
    return LoadResult(
        tables=tables_obj,
        counts=counts,
        missing_optional=missing_optional,
        as_of=as_of,
        notes=notes,
    )
