"""Loading a data folder: read every contract table, validate it, quarantine bad rows.

:func:`load_folder` turns a data folder (CONTRACT section 1) into clean typed tables
(:class:`~taxrisk.features.tables.Tables`) on a DuckDB connection, plus per-table counts.

Reading
    ``NAME.csv`` (UTF-8, a BOM is accepted, header row, every column read as text so that bad
    values are seen rather than coerced away) or ``NAME.parquet`` (any column types; dates and
    periods may be strings or date/timestamp types). The ``truth/`` subfolder is never read.
    Unknown files are ignored with a note; unknown columns are left out of the clean table and
    listed in :attr:`TableCounts.extra_columns`. A *nullable* contract column that is absent
    from the file is read as all-null and listed in :attr:`TableCounts.missing_columns`; a
    non-nullable one stops the run (:class:`~taxrisk.features.errors.MissingColumn`).

Stop cases (a :class:`~taxrisk.features.errors.DataError`, one line naming file and column)
    missing required table, both ``NAME.csv`` and ``NAME.parquet``, missing required column,
    empty file, header-only *required* table, binary data posing as CSV, not UTF-8 (with the
    ``iconv -f GBK`` hint), a malformed CSV line, an unreadable Parquet file. A header-only
    *optional* table is treated as absent and reported in :attr:`LoadResult.missing_optional`.

Rules (stable names; a row breaking several is quarantined under the first, in this order;
within one rule, columns in schema order)
    1. ``not_null``        a non-nullable column is null or blank
    2. ``type``            a non-blank number does not parse (``float``/``int``; NaN and
                           infinities count as unparsable; ``int`` accepts ``3.0``, not ``3.5``)
    3. ``date_format``     a non-blank date is not ISO ``YYYY-MM-DD``
    4. ``period_format``   a non-blank period is not ``YYYY-MM`` / ``YYYY-Qn``
    5. ``allowed_values``  a value outside the column's allowed set
    6. ``negative_value``  a negative value where the contract says it cannot be negative
    7. ``duplicate_key``   the key (as typed values) is carried by more than one row that passed
                           rules 1-6; every such row is quarantined, none trusted over another
    8. ``foreign_key``     a reference does not resolve in the *clean* parent table (so a row
                           whose parent was quarantined goes too); self references (units
                           ``parent_id``, industries ``parent``) resolve within the table,
                           cascading until stable. Invoice counterparties are not checked.

Rows dated after ``as_of`` are *not* quarantined: they are used (kept in the clean table) and
counted in :attr:`TableCounts.not_yet_known`; features see them only through
``Tables.known(name, as_of)``.

Invariant: ``rows_in == rows_used + sum(quarantined.values())`` for every table.

Quarantine files (``quarantine_dir/<table>.csv``, only for tables with quarantined rows; stale
files of other contract tables are removed): ``source_row`` (1-based position among the
file's data rows; for a CSV without embedded line breaks, the line number minus one), ``rule``,
``column`` (the offending column; the key columns joined by ``+`` for ``duplicate_key``),
then every contract column: the original text for the offending column, the parsed value
rendered as text for the others.

Engine
    Each table is read once into a materialised DuckDB table ``_stage_<name>`` (typed columns,
    ``_check``: the index of the rule a row broke or null, ``_value``: the offending original
    text); the key and foreign-key rules then mark rows in place; after counting and writing
    the quarantine, the failing rows and the two bookkeeping columns are dropped, and the
    clean table ``<name>`` is a view of the stage plus ``known_on``, so features never re-run
    validation. The stage is a plain scan with insertion order preserved, so its ``rowid`` is
    the source row. Load one folder per connection (names are fixed). All typing goes through
    :func:`~taxrisk.features.tables.parse_column`; the checks are Ibis expressions; reading
    files and the few set-level updates are DuckDB SQL kept in this module. Nothing is pulled
    into pandas; writing the quarantine reads the failing rows only. Blank lines in a CSV are
    skipped (they are not rows).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import ibis
import ibis.expr.types as ir

from .errors import AmbiguousTable, MissingColumn, MissingTable, TableUnreadable
from .progress import ProgressFn, report
from .schema import SCHEMAS, TableSchema, load_order
from .tables import Tables, connect, known_on_expr, parse_column

__all__ = ["RULES", "LoadResult", "TableCounts", "find_tables", "load_folder"]

log = logging.getLogger(__name__)

#: Rule names in the order they are applied (the first broken one is recorded).
RULES: tuple[str, ...] = (
    "not_null",
    "type",
    "date_format",
    "period_format",
    "allowed_values",
    "negative_value",
    "duplicate_key",
    "foreign_key",
)

_FORMAT_RULE = {
    "float": "type",
    "int": "type",
    "date": "date_format",
    "month": "period_format",
    "quarter": "period_format",
}
_HEAD_BYTES = 1 << 16
_GBK_HINT = "not UTF-8; if it is GBK convert with iconv -f GBK -t UTF-8"


@dataclass
class TableCounts:
    """Row accounting of one table.

    ``rows_in``: data rows in the file. ``rows_used``: rows in the clean table (including those
    not yet known at the as-of date). ``quarantined``: rule name -> rows (only rules that fired).
    ``not_yet_known``: subset of ``rows_used`` whose ``known_on`` is after the as-of date
    (0 when no as-of date was given). ``extra_columns``: in the file, not in the contract
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
    """

    tables: Tables
    counts: dict[str, TableCounts]
    missing_optional: list[str]
    as_of: dt.date | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Finding files


def find_tables(path: Path) -> tuple[dict[str, Path], list[str]]:
    """Contract table name -> file in ``path``, and notes on files that were ignored.

    Raises :class:`AmbiguousTable` when both ``NAME.csv`` and ``NAME.parquet`` exist. Never
    looks into subfolders (``truth/`` in particular).
    """
    path = Path(path)
    if not path.is_dir():
        raise MissingTable("not a folder", path=path)
    found: dict[str, Path] = {}
    notes: list[str] = []
    for f in sorted(path.iterdir()):
        if f.is_dir() or f.name.startswith((".", "_")):
            continue
        stem, suffix = f.stem, f.suffix.lower()
        if suffix not in (".csv", ".parquet") or stem not in SCHEMAS:
            notes.append(f"ignored unknown file {f.name}")
            continue
        if stem in found:
            raise AmbiguousTable(
                f"both {found[stem].name} and {f.name} are present; keep one", path=f
            )
        found[stem] = f
    return found, notes


# --------------------------------------------------------------------------------------------
# Reading one file into a raw relation (DuckDB SQL)


def _sql_str(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head or head.startswith(b"PAR1"):
        return True
    controls = sum(1 for b in head[:4096] if b < 9 or 13 < b < 32 or b == 127)
    return controls > max(2, len(head[:4096]) // 100)


def _bad_utf8_column(head: bytes, header: list[str]) -> tuple[int, str | None]:
    """(1-based line, column) of the first invalid UTF-8 byte in ``head``."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return 0, None
    except UnicodeDecodeError as exc:
        pos = exc.start
    line_start = head.rfind(b"\n", 0, pos) + 1
    line_no = head.count(b"\n", 0, pos) + 1
    before = head[line_start:pos].decode("utf-8", errors="replace")
    fields = next(csv.reader([before + "x"]), [])
    idx = max(len(fields) - 1, 0)
    return line_no, header[idx] if line_no > 1 and idx < len(header) else None


def _csv_header(file: Path) -> list[str] | None:
    """Column names of a CSV file, or ``None`` when it has a header and nothing else.

    Raises :class:`TableUnreadable` for empty, binary or non-UTF-8 files.
    """
    with file.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if not head.strip():
        raise TableUnreadable("empty file", path=file)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    if _looks_binary(head):
        hint = "it looks like Parquet: name it .parquet" if head.startswith(b"PAR1") else None
        raise TableUnreadable("binary data, not a CSV text file", path=file, hint=hint)
    first = head.split(b"\n", 1)[0]
    try:
        header_text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise TableUnreadable(f"line 1: {_GBK_HINT}", path=file) from None
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_text)), [])]
    if not any(header):
        raise TableUnreadable("empty header line", path=file)
    # a trailing comma leaves an unnamed column: name it so that it can be read (and ignored)
    header = [h or f"_unnamed_{i + 1}" for i, h in enumerate(header)]
    line_no, column = _bad_utf8_column(head, header)
    if line_no:
        raise TableUnreadable(f"line {line_no}: {_GBK_HINT}", path=file, column=column)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise TableUnreadable(
            "column appears more than once in the header", path=file, column=dupes[0]
        )
    return header


def _duckdb_message(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"CSV Error on Line: (\d+)", text)
    line = f"line {m.group(1)}: " if m else ""
    if "not utf-8" in text.lower() or "invalid unicode" in text.lower():
        return f"{line}{_GBK_HINT}"
    m2 = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if m2:
        return f"{line}expected {m2.group(1)} fields, found {m2.group(2)}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{line}{first}"


def _register_raw(con: ibis.BaseBackend, name: str, file: Path) -> tuple[ir.Table, list[str]]:
    """A view ``_raw_<name>`` over the file (not yet scanned) and its column names."""
    view = f"_raw_{name}"
    if file.suffix.lower() == ".csv":
        header = _csv_header(file)
        assert header is not None
        cols = "{" + ", ".join(f"{_sql_str(h)}: 'VARCHAR'" for h in header) + "}"
        source = (
            f"read_csv({_sql_str(file)}, auto_detect=false, header=true, delim=',', "
            f"quote='\"', escape='\"', columns={cols}, strict_mode=true)"
        )
    else:
        with file.open("rb") as fh:
            magic = fh.read(4)
        if not magic:
            raise TableUnreadable("empty file", path=file)
        if magic != b"PAR1":
            raise TableUnreadable("not a Parquet file", path=file)
        source = f"read_parquet({_sql_str(file)})"
    try:
        con.raw_sql(f"CREATE OR REPLACE TEMP VIEW {_ident(view)} AS SELECT * FROM {source}")
        raw = con.table(view)
    except Exception as exc:  # duckdb raises its own hierarchy
        raise TableUnreadable(_duckdb_message(exc), path=file) from exc
    return raw, list(raw.columns)


# --------------------------------------------------------------------------------------------
# Validation: row-level rules in one pass, set-level rules as updates


class _StageError(Exception):
    """Raised while staging; :func:`load_folder` turns it into :class:`TableUnreadable`."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class _Check:
    rule: str
    column: str
    row_level: bool = True


def _blank(col: ir.Value) -> ir.BooleanValue:
    """Null, or text of spaces only. Only a string starting with a space or a control
    character can be blank: that prefix test comes first (a CASE, so that DuckDB trims the few
    candidate rows only)."""
    if col.type().is_string():
        return col.isnull() | ibis.ifelse(col < "!", col.strip() == "", False)
    return col.isnull()


def _typed(raw: ir.Table, schema: TableSchema) -> ir.Table:
    """Level 1: per contract column ``c``: the parsed value (:func:`parse_column`; a blank
    nullable text becomes null) and ``_r_c`` (the file's value, untouched). Parsed values of
    rows that fail a check are never used, so NaN and infinities are left to the ``type``
    check rather than nulled here."""
    cols: dict[str, ir.Value] = {}
    for c in schema.columns:
        col = raw[c.name] if c.name in raw.columns else ibis.null("string")
        is_str = col.type().is_string()
        if c.kind == "int" and not col.type().is_integer():
            # values a 64-bit integer cannot hold would make the cast fail: leave them unparsed
            num = col.try_cast("float64") if is_str else col.cast("float64")
            col_in = ibis.ifelse(num.abs() < 9.0e18, col, ibis.null(col.type()))
        else:
            col_in = col
        try:
            parsed = parse_column(col_in, c.kind)
        except Exception as exc:  # ibis refuses casts it cannot type (lists, structs, ...)
            raise _StageError(
                f"column of type {col.type()} cannot hold a {c.kind}", c.name
            ) from exc
        if is_str and c.kind == "str" and c.nullable:
            parsed = ibis.ifelse(_blank(col), ibis.null("string"), parsed)
        cols[c.name] = parsed
        cols[f"_r_{c.name}"] = col
    return raw.select(**cols)


def _row_checks(t: ir.Table, schema: TableSchema) -> list[tuple[_Check, ir.BooleanValue]]:
    """Level 2: the ordered row-level checks over the columns of :func:`_typed`.

    No join may happen here: the stage must stay a plain scan so that DuckDB keeps file order
    (a join, even a semi join, reorders rows, and ``rowid`` would no longer be the source row).
    """
    checks: list[tuple[_Check, ir.BooleanValue]] = []
    for c in schema.columns:
        if not c.nullable:
            checks.append((_Check("not_null", c.name), _blank(t[f"_r_{c.name}"])))
    for rule in ("type", "date_format", "period_format"):
        for c in schema.columns:
            if _FORMAT_RULE.get(c.kind) == rule:
                bad = t[c.name].isnull()
                if c.kind == "float":
                    bad = bad | t[c.name].isnan() | t[c.name].isinf()
                cond = ~_blank(t[f"_r_{c.name}"]) & bad
                checks.append((_Check(rule, c.name), cond))
    for c in schema.columns:
        if c.allowed is not None:
            cond = t[c.name].notnull() & ~t[c.name].isin(c.allowed)
            checks.append((_Check("allowed_values", c.name), cond))
    for c in schema.columns:
        if c.nonneg:
            checks.append((_Check("negative_value", c.name), t[c.name] < 0))
    return checks


_FLOAT_MAX = 1.7976931348623157e308


def _passes(t: ir.Table, schema: TableSchema) -> ir.BooleanValue:
    """A cheap test that implies no row-level check fires (one comparison or two per column,
    evaluated as one conjunction); rows failing it go through the ordered checks, which decide.

    A finite number in range passes not_null, type and negative_value at once (``BETWEEN``
    excludes infinities; NaN is tested apart); a text starting above a space is not blank; a
    parsed date or period is not null.
    """
    terms: list[ir.BooleanValue] = []
    for c in schema.columns:
        v, r = t[c.name], t[f"_r_{c.name}"]
        if c.kind == "str":
            if c.allowed is not None:
                term = v.isin(c.allowed) | v.isnull() if c.nullable else v.isin(c.allowed)
            elif c.nullable:
                continue
            else:
                term = (r >= "!") if r.type().is_string() else r.notnull()
            terms.append(term)
            continue
        if c.kind == "float":
            # NaN compares unreliably (seen: NaN from Parquet passing BETWEEN 0.0 AND max)
            term = v.between(0.0 if c.nonneg else -_FLOAT_MAX, _FLOAT_MAX) & ~v.isnan()
        elif c.kind == "int":
            term = (v >= 0) if c.nonneg else v.notnull()
        else:
            term = v.notnull()
        terms.append(term | r.isnull() if c.nullable else term)
    ok: ir.BooleanValue = ibis.literal(True)
    for term in terms:
        ok = ok & term
    return ok


def _stage(
    con: ibis.BaseBackend, name: str, raw: ir.Table, schema: TableSchema
) -> tuple[str, list[_Check]]:
    """Materialise ``_stage_<name>``: typed columns, ``_check`` (index of the first broken
    rule, null when the row passes) and ``_value`` (original text of the offending column,
    computed for failing rows only). Row order = file order, so ``rowid`` is the 0-based
    source row."""
    typed = _typed(raw, schema)
    checks = _row_checks(typed, schema)
    code = ibis.ifelse(
        _passes(typed, schema),
        ibis.null("int16"),
        ibis.cases(*[(cond, i) for i, (_, cond) in enumerate(checks)], else_=None).cast("int16"),
    )
    checked = typed.select(
        *schema.column_names,
        *(f"_r_{c}" for c in schema.column_names),
        _check=code,
    )
    value = ibis.cases(
        (checked._check.isnull(), ibis.null("string")),  # most rows: stop at the first test
        *[
            (checked._check == i, checked[f"_r_{chk.column}"].cast("string"))
            for i, (chk, _) in enumerate(checks)
        ],
        else_=ibis.null("string"),
    )
    staged = checked.select(*schema.column_names, "_check", _value=value)
    stage = f"_stage_{name}"
    con.raw_sql("SET preserve_insertion_order = true")
    try:
        con.create_table(stage, staged, overwrite=True)
    except Exception as exc:
        raise _StageError(_duckdb_message(exc)) from exc
    finally:
        con.raw_sql("SET preserve_insertion_order = false")
    return stage, [chk for chk, _ in checks]


def _execute_count(con: ibis.BaseBackend, sql: str) -> int:
    cur = con.raw_sql(sql)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _set_checks(
    con: ibis.BaseBackend,
    stage: str,
    schema: TableSchema,
    checks: list[_Check],
    loaded: set[str],
) -> None:
    """Apply ``duplicate_key`` then ``foreign_key`` (other tables first, then self references,
    cascading), in place, on rows still passing."""
    st = _ident(stage)
    key = schema.key
    idx = len(checks)
    checks.append(_Check("duplicate_key", "+".join(key), row_level=False))
    key_list = ", ".join(_ident(k) for k in key)
    # Cheap first pass on one 64-bit hash of the key; the exact pass runs only on collisions.
    candidates = (
        f"SELECT hash({key_list}) AS h FROM {st} WHERE _check IS NULL "
        f"GROUP BY h HAVING count(*) > 1"
    )
    if _execute_count(con, f"SELECT count(*) FROM ({candidates})"):
        join = " AND ".join(f"{st}.{_ident(k)} = d.{_ident(k)}" for k in key)
        con.raw_sql(
            f"UPDATE {st} SET _check = {idx} FROM (SELECT {key_list} FROM {st} "
            f"WHERE _check IS NULL AND hash({key_list}) IN ({candidates}) "
            f"GROUP BY {key_list} HAVING count(*) > 1) d WHERE {st}._check IS NULL AND {join}"
        )
    fks = sorted(
        (fk for fk in schema.foreign_keys if fk.ref_table in loaded | {schema.name}),
        key=lambda fk: fk.ref_table == schema.name,
    )
    for fk in fks:
        idx = len(checks)
        checks.append(_Check("foreign_key", "+".join(fk.columns), row_level=False))
        parent = _ident(f"_stage_{fk.ref_table}")
        match = " AND ".join(
            f"p.{_ident(rc)} = {st}.{_ident(c)}"
            for c, rc in zip(fk.columns, fk.ref_columns, strict=True)
        )
        present = " AND ".join(f"{st}.{_ident(c)} IS NOT NULL" for c in fk.columns)
        # another table's stage holds its clean rows only; our own still has every row
        if fk.ref_table == schema.name:
            match = f"p._check IS NULL AND {match}"
        sql = (
            f"UPDATE {st} SET _check = {idx} WHERE _check IS NULL AND {present} AND NOT EXISTS "
            f"(SELECT 1 FROM {parent} p WHERE {match})"
        )
        # a self reference cascades: repeat until no row changes
        while _execute_count(con, sql) and fk.ref_table == schema.name:
            pass


def _clean_view(con: ibis.BaseBackend, name: str, stage: str, schema: TableSchema) -> ir.Table:
    """Drop the quarantined rows and the bookkeeping columns from the stage (cheap: a delete
    of the failing rows, then two column drops that rewrite nothing), and expose the clean
    table as a view ``<name>`` with ``known_on``."""
    st = _ident(stage)
    con.raw_sql(f"DELETE FROM {st} WHERE _check IS NOT NULL")
    con.raw_sql(f"ALTER TABLE {st} DROP COLUMN _value")
    con.raw_sql(f"ALTER TABLE {st} DROP COLUMN _check")
    clean = con.table(stage).select(*schema.column_names)
    # DuckDB types date + interval as TIMESTAMP while Ibis says date: cast for real
    clean = clean.mutate(known_on=known_on_expr(clean, schema).cast("timestamp").cast("date"))
    con.raw_sql(f"DROP VIEW IF EXISTS {_ident(name)}")
    return con.create_view(name, clean, overwrite=True)


@dataclass
class _Tally:
    rows_in: int = 0
    used: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    not_yet: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[dt.date | None, dt.date | None]] = field(default_factory=dict)


def _count(
    con: ibis.BaseBackend,
    stage: str,
    schema: TableSchema,
    checks: list[_Check],
    as_of: dt.date | None,
) -> _Tally:
    """Rows per rule, rows not yet known, and the used rows' null counts and date ranges, in
    one aggregate query grouped by ``_check``."""
    t = con.table(stage)
    aggs: dict[str, ir.Scalar] = {"_n": t.count()}
    if as_of is not None and schema.known_on.column is not None:
        known_on = known_on_expr(t, schema)
        late = known_on.notnull() & (known_on > ibis.literal(as_of))
        aggs["_late"] = late.cast("int64").sum()
    for i, c in enumerate(schema.columns):
        aggs[f"_null{i}"] = t[c.name].isnull().cast("int64").sum()
        if c.kind in ("date", "month", "quarter"):
            aggs[f"_min{i}"] = t[c.name].min()
            aggs[f"_max{i}"] = t[c.name].max()
    tally = _Tally()
    for row in t.group_by("_check").aggregate(**aggs).to_pyarrow().to_pylist():
        tally.rows_in += row["_n"]
        if row["_check"] is not None:
            rule = checks[row["_check"]].rule
            tally.quarantined[rule] = tally.quarantined.get(rule, 0) + row["_n"]
            continue
        tally.used = row["_n"]
        tally.not_yet = int(row.get("_late") or 0)
        for i, c in enumerate(schema.columns):
            tally.nulls[c.name] = int(row[f"_null{i}"] or 0)
            if f"_min{i}" in row:
                tally.ranges[c.name] = (_as_date(row[f"_min{i}"]), _as_date(row[f"_max{i}"]))
    tally.quarantined = {r: tally.quarantined[r] for r in RULES if r in tally.quarantined}
    return tally


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


def _write_quarantine(
    con: ibis.BaseBackend, stage: str, schema: TableSchema, checks: list[_Check], out: Path
) -> None:
    """Write the quarantined rows of one table (only they are read)."""
    rules = (
        "CASE _check "
        + " ".join(f"WHEN {i} THEN {_sql_str(c.rule)}" for i, c in enumerate(checks))
        + " END"
    )
    cols = (
        "CASE _check "
        + " ".join(f"WHEN {i} THEN {_sql_str(c.column)}" for i, c in enumerate(checks))
        + " END"
    )
    values = []
    for c in schema.columns:
        own = [str(i) for i, chk in enumerate(checks) if chk.row_level and chk.column == c.name]
        rendered = _render_sql(_ident(c.name), c.kind)
        if own:
            rendered = f"CASE WHEN _check IN ({', '.join(own)}) THEN _value ELSE {rendered} END"
        values.append(f"{rendered} AS {_ident(c.name)}")
    query = (
        f'SELECT rowid + 1 AS source_row, {rules} AS rule, {cols} AS "column", {", ".join(values)} '
        f"FROM {_ident(stage)} WHERE _check IS NOT NULL ORDER BY rowid"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    con.raw_sql(f"COPY ({query}) TO {_sql_str(out)} (FORMAT csv, HEADER true)")


# --------------------------------------------------------------------------------------------


def load_folder(
    path: Path,
    *,
    con: ibis.BaseBackend | None = None,
    as_of: dt.date | None = None,
    quarantine_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> LoadResult:
    """Read, validate and materialise every contract table of a data folder.

    ``con``: the DuckDB connection to load into (default: a new in-process one).
    ``as_of``: rows known after this date are counted in ``not_yet_known`` (not quarantined).
    ``quarantine_dir``: where to write ``<table>.csv`` of quarantined rows (none if ``None``).
    ``progress``: called as ``progress("load tables", done, total)``.

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
        raw, columns = _register_raw(con, name, file)
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
        try:
            stage, checks = _stage(con, name, raw, schema)
        except _StageError as exc:
            raise TableUnreadable(exc.message, path=file, column=exc.column) from exc
        finally:
            con.raw_sql(f"DROP VIEW IF EXISTS {_ident(f'_raw_{name}')}")
        rows_in_total = _execute_count(con, f"SELECT count(*) FROM {_ident(stage)}")
        if rows_in_total == 0:
            con.raw_sql(f"DROP TABLE IF EXISTS {_ident(stage)}")
            if schema.optional:
                missing_optional.append(name)
                notes.append(f"{file.name} has no rows: treated as absent")
                continue
            what = "header only, no rows" if file.suffix.lower() == ".csv" else "no rows"
            raise TableUnreadable(f"{what} (a required table)", path=file)
        t1 = time.perf_counter()
        _set_checks(con, stage, schema, checks, loaded=set(counts))
        t2 = time.perf_counter()
        tally = _count(con, stage, schema, checks, as_of)
        rows_in, used, quarantined = tally.rows_in, tally.used, tally.quarantined
        tc = TableCounts(
            table=name,
            path=file,
            rows_in=rows_in,
            rows_used=used,
            quarantined=quarantined,
            not_yet_known=tally.not_yet,
            null_counts=tally.nulls,
            ranges=tally.ranges,
            format=file.suffix.lower().lstrip("."),
            extra_columns=[c for c in columns if c not in schema.column_names],
            missing_columns=absent,
        )
        if quarantine_dir is not None and quarantined:
            tc.quarantine_file = Path(quarantine_dir) / f"{name}.csv"
            _write_quarantine(con, stage, schema, checks, tc.quarantine_file)
        tables[name] = _clean_view(con, name, stage, schema)
        counts[name] = tc
        for extra in tc.extra_columns:
            notes.append(f"{file.name}: ignored unknown column {extra!r}")
        for m in absent:
            notes.append(f"{file.name}: nullable column {m!r} absent, read as null")
        log.info(
            "%s: %d rows in, %d used, %s quarantined; read+row rules %.1f s, key rules %.1f s, "
            "count+quarantine %.1f s",
            name,
            rows_in,
            used,
            quarantined,
            t1 - t0,
            t2 - t1,
            time.perf_counter() - t2,
        )
    report(progress, "load tables", total, total)
    if quarantine_dir is not None:
        _remove_stale(Path(quarantine_dir), keep={n for n, c in counts.items() if c.quarantined})
    tables_obj = Tables(con=con, tables=tables, source=path, notes=notes)
    return LoadResult(
        tables=tables_obj,
        counts=counts,
        missing_optional=missing_optional,
        as_of=as_of,
        notes=notes,
    )


def _remove_stale(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for name in SCHEMAS:
        f = folder / f"{name}.csv"
        if name not in keep and f.exists():
            f.unlink()
