"""Clean tables on an engine: what loading produces and what indicators consume.

:class:`Tables` holds one Ibis table expression per *present* contract table, typed per
:mod:`taxrisk.features.schema` and carrying ``known_on``. Indicators take ``Tables`` and an
as-of date and never see a file.

The parsing helpers here (:func:`parse_column`, :func:`known_on_expr`) are the only place
where text becomes typed values; the loader uses them both to detect unparsable values (a null
where the input was not null) and to build the clean form. They are plain Ibis expressions
and run on DuckDB and PySpark alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.types as ir

from .schema import SCHEMAS, Kind, TableSchema

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = ["Tables", "connect", "in_force", "is_active", "known_on_expr", "parse_column", "sql_str"]

_MONTH_RE = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
_QUARTER_RE = r"^[0-9]{4}-Q[1-4]$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def sql_str(value: str | Path) -> str:
    """A SQL string literal (single quotes doubled): paths and settings go into SQL only so."""
    return "'" + str(value).replace("'", "''") + "'"


def connect(settings: Settings | None = None) -> ibis.BaseBackend:
    """An in-process DuckDB connection configured from the settings (threads, memory, spill)."""
    con = ibis.duckdb.connect()
    if settings is not None:
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        con.raw_sql(f"SET temp_directory = {sql_str(settings.tmp_dir)}")
        con.raw_sql(f"SET memory_limit = {sql_str(settings.duckdb_memory_limit)}")
        if settings.duckdb_threads:
            con.raw_sql(f"SET threads = {int(settings.duckdb_threads)}")
    con.raw_sql("SET preserve_insertion_order = false")
    return con


def parse_column(col: ir.Value, kind: Kind) -> ir.Value:
    """The typed value of ``col`` for a schema kind; null where it does not parse.

    Accepts text (as in CSV) or, for dates and periods, date/timestamp types (as Parquet may
    hold them). ``month`` and ``quarter`` become the first day of the period.
    """
    typ = col.type()
    if kind == "str":
        return col if typ.is_string() else col.cast("string")
    if kind == "float":
        return col.cast("float64") if typ.is_numeric() else col.try_cast("float64")
    if kind == "int":
        if typ.is_integer():
            return col.cast("int64")
        as_float = col.cast("float64") if typ.is_numeric() else col.try_cast("float64")
        # integers only: 3.0 is accepted, 3.5 is not
        return ibis.ifelse(as_float == as_float.floor(), as_float.cast("int64"), ibis.null("int64"))
    if typ.is_date() or typ.is_timestamp():
        d = col.cast("date")
        if kind == "month":
            return d.truncate("M")
        if kind == "quarter":
            return d.truncate("Q")
        return d
    s = col.cast("string").strip()
    if kind == "date":
        return ibis.ifelse(s.re_search(_DATE_RE), s.try_cast("date"), ibis.null("date"))
    if kind == "month":
        return ibis.ifelse(s.re_search(_MONTH_RE), (s + "-01").try_cast("date"), ibis.null("date"))
    if kind == "quarter":
        year = s.substr(0, 4)
        q = s.substr(6, 1).try_cast("int64")
        month = ((q - 1) * 3 + 1).cast("string").lpad(2, "0")
        return ibis.ifelse(
            s.re_search(_QUARTER_RE),
            (year + "-" + month + "-01").try_cast("date"),
            ibis.null("date"),
        )
    raise ValueError(f"unknown column kind {kind!r}")


def period_end(first_day: ir.DateValue, kind: Kind) -> ir.DateValue:
    """Last day of the month or quarter starting on ``first_day``."""
    months = 3 if kind == "quarter" else 1
    # DuckDB types date + interval as a timestamp: cast back so known_on is a date everywhere
    return ((first_day + ibis.interval(months=months)) - ibis.interval(days=1)).cast("date")


def is_active(taxpayers: ir.Table, as_of: dt.date | ir.DateValue) -> ir.BooleanValue:
    """True for taxpayers active at ``as_of``: registered on or before it and not deregistered
    on or before it (a deregistration dated after ``as_of`` is not known yet)."""
    at = as_of if isinstance(as_of, ir.Value) else ibis.literal(as_of)
    dereg = taxpayers.deregistered_on
    return (taxpayers.registered_on <= at) & (dereg.isnull() | (dereg > at))


def known_on_expr(t: ir.Table, schema: TableSchema) -> ir.DateValue:
    """The ``known_on`` date of each row of a *typed* table (null: always known)."""
    rule = schema.known_on
    if rule.column is None:
        return ibis.null("date")
    col = t[rule.column]
    if rule.period_end:
        return period_end(col, schema.column(rule.column).kind)
    return col


def in_force(t: ir.Table, at: dt.date | ir.DateValue) -> ir.BooleanValue:
    """True for the rows of a clean table in force at ``at``: known on or before it
    (``known_on``; null: always known) and not replaced by a later version known by then
    (``superseded_on``, set for amended returns). ``at`` may be a column (many as-of dates)."""
    d = at if isinstance(at, ir.Value) else ibis.literal(at)
    known = t.known_on.isnull() | (t.known_on <= d)
    if "superseded_on" not in t.columns:  # only versioned tables carry it
        return known
    return known & (t.superseded_on.isnull() | (t.superseded_on > d))


@dataclass
class Tables:
    """Clean, typed tables of one data folder on one Ibis backend.

    ``tables``: present tables only, each typed per the schema plus ``known_on`` (and
    ``superseded_on`` for versioned tables; see :func:`in_force`).
    ``source``: the data folder, when loaded from one.
    """

    con: ibis.BaseBackend
    tables: dict[str, ir.Table]
    source: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> ir.Table:
        try:
            return self.tables[name]
        except KeyError:
            raise KeyError(f"table {name!r} is not present") from None

    def __contains__(self, name: object) -> bool:
        return name in self.tables

    def __iter__(self) -> Iterator[str]:
        return iter(self.tables)

    @property
    def missing(self) -> list[str]:
        """Optional contract tables that are absent."""
        return [n for n, s in SCHEMAS.items() if s.optional and n not in self.tables]

    def active(self, as_of: dt.date) -> ir.Table:
        """The ``taxpayers`` rows active at ``as_of`` (see :func:`is_active`)."""
        t = self["taxpayers"]
        return t.filter(is_active(t, as_of))

    def known(self, name: str, as_of: dt.date, *, columns: Sequence[str] | None = None) -> ir.Table:
        """Rows of ``name`` known at ``as_of`` (CONTRACT as-of rule), latest version only;
        ``columns``: only these (see :meth:`narrow`)."""
        t = self[name] if columns is None else self.narrow(name, columns)
        return t.filter(in_force(t, as_of))

    def narrow(self, name: str, columns: Sequence[str]) -> ir.Table:
        """``name`` with only ``columns`` and those the as-of rule reads (``known_on``, and
        ``superseded_on`` where the table has it), in the table's order."""
        t = self[name]
        keep = {*columns, "known_on", "superseded_on"}
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise KeyError(f"{name}: no column {', '.join(missing)}")
        return t.select(*[c for c in t.columns if c in keep])

    @classmethod
    def from_frames(cls, frames: Mapping[str, Any], con: ibis.BaseBackend | None = None) -> Tables:
        """Typed tables from in-memory frames, **without validation** (tests, tools).

        Each frame has the contract's columns as text or native types; columns are parsed
        with :func:`parse_column` and ``known_on`` added (``superseded_on`` null for versioned
        tables: no versions).
        Use the loader for untrusted data.
        """
        con = con or connect()
        out: dict[str, ir.Table] = {}
        for name, frame in frames.items():
            schema = SCHEMAS[name]
            raw = con.create_table(f"raw_{name}", frame, overwrite=True)
            typed = raw.select(
                **{c.name: parse_column(raw[c.name], c.kind) for c in schema.columns}
            )
            typed = typed.mutate(known_on=known_on_expr(typed, schema))
            if schema.versioned:
                typed = typed.mutate(superseded_on=ibis.null("date"))
            out[name] = con.create_table(name, typed, overwrite=True)
        return cls(con=con, tables=out)


def empty_table(schema: TableSchema) -> ir.Table:
    """An empty typed table of a schema (for code paths that want a table either way)."""
    types = {
        "str": dt_.string,
        "float": dt_.float64,
        "int": dt_.int64,
        "date": dt_.date,
        "month": dt_.date,
        "quarter": dt_.date,
    }
    cols = {c.name: types[c.kind] for c in schema.columns}
    cols["known_on"] = dt_.date
    if schema.versioned:
        cols["superseded_on"] = dt_.date
    return ibis.memtable({k: [] for k in cols}, schema=cols)
