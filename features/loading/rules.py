"""The quarantine rules, in their documented order (see :mod:`taxrisk.features.loading`).

Row rules (1-6) are Ibis expressions evaluated in the one pass that stages a table; the set
rules (7 ``duplicate_key``, 8 ``foreign_key``) and the versions of amended rows are DuckDB
updates on the staged table, with quoted identifiers.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..schema import SCHEMAS, ForeignKey, TableSchema
from ..tables import known_on_expr, parse_column, sql_str
from .reading import duckdb_message, ident

__all__ = ["RULES", "RULES_VERSION", "Check", "StageError", "set_checks", "stage_table"]

log = logging.getLogger("taxrisk.features.loading")

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

#: Bumped whenever a rule's meaning changes: a validated snapshot made under another version
#: is not reused. 2: versions of amended rows (``TableSchema.versioned``).
RULES_VERSION = 2

#: Tables another table's foreign keys point at: their staged rows stay until the end.
PARENTS = frozenset(
    fk.ref_table for s in SCHEMAS.values() for fk in s.foreign_keys if fk.ref_table != s.name
)

_FORMAT_RULE = {
    "float": "type",
    "int": "type",
    "date": "date_format",
    "month": "period_format",
    "quarter": "period_format",
}


# --------------------------------------------------------------------------------------------
# Validation: row-level rules in one pass, set-level rules as updates


class StageError(Exception):
    """Raised while staging; :func:`load_folder` turns it into :class:`TableUnreadable`."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Check:
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


@ibis.udf.scalar.builtin(name="try_strptime")
def _try_strptime(text: str, fmt: str) -> datetime.datetime:  # type: ignore[empty-body]
    """DuckDB's ``try_strptime``: null where ``text`` does not parse."""


@ibis.udf.scalar.builtin(name="last_day")
def _last_day(day: datetime.date) -> datetime.date:  # type: ignore[empty-body]
    """DuckDB's ``last_day``: the last day of the month of ``day``."""


@ibis.udf.scalar.builtin(name="strftime")
def _strftime(ts: datetime.datetime, fmt: str) -> str:  # type: ignore[empty-body]
    """DuckDB's ``strftime``."""


def _fast_month(text: ir.StringValue, parsed: ir.DateValue) -> ir.DateValue:
    """``parsed`` (:func:`parse_column` of a month, a trim, a regular expression and a cast
    per row), computed cheaply for the text that is exactly ``YYYY-MM``: a text that parses
    with ``%Y-%m`` and prints back as itself is such a text, and its date is the first of
    that month, as :func:`parse_column` says; any other text (spaces, ``2024-1``, blanks,
    nonsense) goes through ``parsed``. The same values, about a third of the work (the
    periods of 220M rows at 1M taxpayers)."""
    ts = _try_strptime(text, "%Y-%m")
    return ibis.ifelse(_strftime(ts, "%Y-%m") == text, ts.cast("date"), parsed)


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
            raise StageError(f"column of type {col.type()} cannot hold a {c.kind}", c.name) from exc
        if is_str and c.kind == "str" and c.nullable:
            parsed = ibis.ifelse(_blank(col), ibis.null("string"), parsed)
        if is_str and c.kind == "month":
            parsed = _fast_month(col, parsed)
        cols[c.name] = parsed
        cols[f"_r_{c.name}"] = col
    return raw.select(**cols)


def _row_checks(t: ir.Table, schema: TableSchema) -> list[tuple[Check, ir.BooleanValue]]:
    """Level 2: the ordered row-level checks over the columns of :func:`_typed`.

    No join may happen here: the stage must stay a plain scan so that DuckDB keeps file order
    (a join, even a semi join, reorders rows, and ``rowid`` would no longer be the source row).
    """
    checks: list[tuple[Check, ir.BooleanValue]] = []
    for c in schema.columns:
        if not c.nullable:
            checks.append((Check("not_null", c.name), _blank(t[f"_r_{c.name}"])))
    for rule in ("type", "date_format", "period_format"):
        for c in schema.columns:
            if _FORMAT_RULE.get(c.kind) == rule:
                bad = t[c.name].isnull()
                if c.kind == "float":
                    bad = bad | t[c.name].isnan() | t[c.name].isinf()
                cond = ~_blank(t[f"_r_{c.name}"]) & bad
                checks.append((Check(rule, c.name), cond))
    for c in schema.columns:
        if c.allowed is not None:
            cond = t[c.name].notnull() & ~t[c.name].isin(c.allowed)
            checks.append((Check("allowed_values", c.name), cond))
    for c in schema.columns:
        if c.nonneg:
            checks.append((Check("negative_value", c.name), t[c.name] < 0))
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


def _checked(
    raw: ir.Table, schema: TableSchema
) -> tuple[ir.Table, list[tuple[Check, ir.BooleanValue]], ir.IntegerValue]:
    """The typed columns, the ordered row checks, and the index of the first broken one
    (null when the row passes: the cheap :func:`_passes` test first)."""
    typed = _typed(raw, schema)
    checks = _row_checks(typed, schema)
    code = ibis.ifelse(
        _passes(typed, schema),
        ibis.null("int16"),
        ibis.cases(*[(cond, i) for i, (_, cond) in enumerate(checks)], else_=None).cast("int16"),
    )
    return typed, checks, code


def clean_select(
    t: ir.Table, schema: TableSchema, superseded: ir.Value | None, **extra: ir.Value
) -> ir.Table:
    """The clean table's columns from typed ones: the contract columns, ``known_on`` and,
    for a versioned table, ``superseded_on`` (the snapshot's layout, whichever path wrote it).

    ``known_on`` is :func:`~taxrisk.features.tables.known_on_expr`, computed cheaply where
    it can be: the end of a month is ``last_day`` (the same date as the first day plus a
    month minus a day, a fifth of the work), and a date column is taken as it is."""
    rule = schema.known_on
    known: ir.Value
    if rule.column is None:
        known = ibis.null("date")
    elif rule.period_end and schema.column(rule.column).kind == "month":
        known = _last_day(t[rule.column])
    elif not rule.period_end:
        known = t[rule.column]
    else:  # DuckDB types date + interval as TIMESTAMP while Ibis says date: cast for real
        known = known_on_expr(t, schema).cast("timestamp").cast("date")
    versions = {"superseded_on": superseded} if schema.versioned else {}
    return t.select(*schema.column_names, known_on=known, **versions, **extra)


#: The error a row breaking a row rule raises in :func:`write_if_clean`'s write.
_GUARD = "taxrisk: a row breaks a row rule"


def write_if_clean(
    con: ibis.BaseBackend, raw: ir.Table, schema: TableSchema, loaded: set[str], out: Path
) -> int | None:
    """Validate a table without staging it, when every row passes every rule: the clean
    table is written straight from the file to ``out`` (Parquet) by a query that raises at the
    first row breaking a row rule (rules 1-6), then the written key and reference columns
    are read back for the set rules (:func:`key_scan`). Returns the number of rows, or
    ``None`` (``out`` removed) when a row breaks a rule, a key is carried twice (a duplicate
    or a version), the table is empty, or the file does not read: the caller then stages
    the table (:func:`stage_table`, :func:`set_checks`), which decides every row as the rules
    say and reports what makes a file unreadable.

    Only for a table no other table refers to and without self references (no later
    foreign key needs its stage)."""
    assert all(fk.ref_table != schema.name for fk in schema.foreign_keys)
    typed, _, code = _checked(raw, schema)
    clean = clean_select(typed, schema, ibis.null("date"), _check=code)
    first = ident(schema.column_names[0])
    sql = (
        f"SELECT * EXCLUDE (_check) REPLACE (CASE WHEN _check IS NULL THEN {first} "
        f"ELSE error({sql_str(_GUARD)}) END AS {first}) FROM ({con.compile(clean)})"
    )
    t0 = time.perf_counter()
    try:
        con.raw_sql(f"COPY ({sql}) TO {sql_str(out)} (FORMAT parquet)")
    except Exception:  # a broken row rule (the guard) or an unreadable file: stage it
        out.unlink(missing_ok=True)
        log.info("%s: a row rule fires (or the file does not read): staged", schema.name)
        return None
    t1 = time.perf_counter()
    q = ident("_q")
    fks = [fk for fk in schema.foreign_keys if fk.ref_table in loaded]
    key_list = ", ".join(f"{q}.{ident(k)}" for k in schema.key)
    n, repeated, unresolved = key_scan(con, f"read_parquet({sql_str(out)}) {q}", q, key_list, fks)
    log.info(
        "%s: written from the file with the row rules in %.1f s, keys and references checked "
        "on it in %.1f s",
        schema.name,
        t1 - t0,
        time.perf_counter() - t1,
    )
    if n == 0 or repeated.size or unresolved:
        out.unlink()
        log.info("%s: a key or reference rule fires (or no rows): staged", schema.name)
        return None
    return n


def stage_table(
    con: ibis.BaseBackend, name: str, raw: ir.Table, schema: TableSchema
) -> tuple[str, list[Check]]:
    """Materialise ``_stage_<name>``: typed columns, ``_check`` (index of the first broken
    rule, null when the row passes) and ``_value`` (original text of the offending column,
    computed for failing rows only), and for a versioned table ``_superseded`` (null here; see
    :func:`set_checks`). Row order = file order, so ``rowid`` is the 0-based source row."""
    typed, checks, code = _checked(raw, schema)
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
    extra = {"_superseded": ibis.null("date")} if schema.versioned else {}
    staged = checked.select(*schema.column_names, "_check", _value=value, **extra)
    stage = f"_stage_{name}"
    con.raw_sql("SET preserve_insertion_order = true")
    try:
        con.create_table(stage, staged, overwrite=True)
    except Exception as exc:
        raise StageError(duckdb_message(exc)) from exc
    finally:
        con.raw_sql("SET preserve_insertion_order = false")
    return stage, [chk for chk, _ in checks]


def execute_count(con: ibis.BaseBackend, sql: str) -> int:
    cur = con.raw_sql(sql)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def set_checks(
    con: ibis.BaseBackend,
    stage: str,
    schema: TableSchema,
    checks: list[Check],
    loaded: set[str],
) -> None:
    """Apply ``duplicate_key`` then ``foreign_key`` (other tables first, then self references,
    cascading), in place, on rows still passing; then date the versions of a versioned table.

    Versioned tables (``schema.versioned``: the returns, whose as-of column ``filed_on`` is not
    part of the key): rows with the same key and different ``known_on`` are *versions* of one
    record (an amended return, 更正申报), not duplicates. The duplicate rule then applies to
    the key plus the as-of column: two versions filed the same day are duplicates and every row
    carrying them is quarantined (none is trusted over another). Each version left is in force
    from its ``known_on`` until the next version of its key is known (``_superseded``; null for
    the latest), so at any as-of date exactly the latest version known then is used, and a
    later amendment never removes the original from a date before it was filed.
    """
    st = ident(stage)
    key = schema.key
    dup_key = tuple(c for c in (*key, schema.known_on.column if schema.versioned else None) if c)
    dup_idx = len(checks)
    checks.append(Check("duplicate_key", "+".join(dup_key), row_level=False))
    fks = sorted(
        (fk for fk in schema.foreign_keys if fk.ref_table in loaded | {schema.name}),
        key=lambda fk: fk.ref_table == schema.name,
    )
    # One read-only pass over the passing rows (rules 1-6) gives what decides whether the set
    # rules can fire at all: each row's 64-bit key hash, and whether any reference to another
    # table misses its parent. Keys carried by more than one row are found by sorting the
    # hashes (both duplicates and versions are among them); the exact updates below run only
    # when there is something to mark, on those rows only.
    key_list = ", ".join(ident(k) for k in key)
    others = [fk for fk in fks if fk.ref_table != schema.name]
    _, repeated, unresolved = key_scan(con, st, st, key_list, others, where="_check IS NULL")
    cand = ident(f"_cand_{stage}")
    multi = repeated.size > 0
    if multi:
        con.con.register("_cand_hashes", pa.table({"h": repeated}))
        try:
            con.raw_sql(f"CREATE OR REPLACE TEMP TABLE {cand} AS SELECT h FROM _cand_hashes")
        finally:
            con.con.unregister("_cand_hashes")
        _mark_duplicates(con, st, dup_key, dup_idx, f"hash({key_list}) IN (SELECT h FROM {cand})")
    for fk in fks:
        idx = len(checks)
        checks.append(Check("foreign_key", "+".join(fk.columns), row_level=False))
        if fk.ref_table != schema.name and fk not in unresolved:
            continue  # every reference resolves: the update would mark no row
        sql = _fk_update(st, fk, idx, own=fk.ref_table == schema.name)
        # a self reference cascades: repeat until no row changes
        while execute_count(con, sql) and fk.ref_table == schema.name:
            pass
    if schema.versioned and multi:
        _date_versions(con, st, schema, dup_idx, f"hash({key_list}) IN (SELECT h FROM {cand})")
    con.raw_sql(f"DROP TABLE IF EXISTS {cand}")


def _fk_match(st: str, fk: ForeignKey) -> str:
    return " AND ".join(
        f"p.{ident(rc)} = {st}.{ident(c)}" for c, rc in zip(fk.columns, fk.ref_columns, strict=True)
    )


def _fk_present(st: str, fk: ForeignKey) -> str:
    return " AND ".join(f"{st}.{ident(c)} IS NOT NULL" for c in fk.columns)


def _fk_update(st: str, fk: ForeignKey, idx: int, own: bool) -> str:
    """Mark the passing rows whose reference ``fk`` does not resolve. Another table's stage
    holds its clean rows only; our own (``own``: a self reference) still has every row."""
    match = _fk_match(st, fk)
    if own:
        match = f"p._check IS NULL AND {match}"
    parent = ident(f"_stage_{fk.ref_table}")
    return (
        f"UPDATE {st} SET _check = {idx} WHERE _check IS NULL AND {_fk_present(st, fk)} AND "
        f"NOT EXISTS (SELECT 1 FROM {parent} p WHERE {match})"
    )


#: Rows per batch handed from the key scan to numpy (a module setting so tests can force many).
_BATCH_ROWS = 1 << 20


def key_scan(
    con: ibis.BaseBackend,
    rel: str,
    qual: str,
    key_list: str,
    fks: list[ForeignKey],
    where: str | None = None,
) -> tuple[int, np.ndarray, set[ForeignKey]]:
    """One read-only pass over the rows of ``rel`` (a FROM item whose columns ``qual``
    qualifies) selected by ``where``: their number, the key hashes carried by more than one
    of them (sorted, distinct), and the foreign keys ``fks`` (to other tables, whose stages
    hold clean rows only) that some of them break.

    The hashes are sorted rather than grouped: at 90M invoice rows, a sort of one 64-bit
    column is several times cheaper than a hash aggregate with as many groups. A hash shared
    by different keys only makes the exact pass look at a few more rows."""
    cond = f" WHERE {where}" if where else ""
    n = execute_count(con, f"SELECT count(*) FROM {rel}{cond}")
    hashes = np.empty(n, dtype=np.uint64)
    unresolved: set[ForeignKey] = set()
    got = 0
    # a reference that misses its parent rides along as one flag column per foreign key
    flags = "".join(
        f", ({_fk_present(qual, fk)} AND NOT EXISTS (SELECT 1 FROM "
        f"{ident('_stage_' + fk.ref_table)} p WHERE {_fk_match(qual, fk)})) AS {ident(f'_fk{i}')}"
        for i, fk in enumerate(fks)
    )
    sql = f"SELECT hash({key_list}) AS h{flags} FROM {rel}{cond}"
    reader = con.raw_sql(sql).to_arrow_reader(_BATCH_ROWS)
    for batch in reader:
        m = batch.num_rows
        hashes[got : got + m] = batch.column(0).to_numpy(zero_copy_only=False)
        got += m
        for i, fk in enumerate(fks):
            if fk not in unresolved and pc.any(batch.column(i + 1)).as_py():
                unresolved.add(fk)
    assert got == n, (got, n)
    hashes.sort()
    same = hashes[1:] == hashes[:-1]
    return n, np.unique(hashes[1:][same]), unresolved


def _mark_duplicates(
    con: ibis.BaseBackend, st: str, key: tuple[str, ...], idx: int, among: str
) -> None:
    """Quarantine every passing row whose ``key`` is carried by another, among the rows
    selected by ``among`` (a superset of them: the candidates of the first pass)."""
    key_list = ", ".join(ident(k) for k in key)
    join = " AND ".join(f"{st}.{ident(k)} = d.{ident(k)}" for k in key)
    con.raw_sql(
        f"UPDATE {st} SET _check = {idx} FROM (SELECT {key_list} FROM {st} "
        f"WHERE _check IS NULL AND {among} "
        f"GROUP BY {key_list} HAVING count(*) > 1) d WHERE {st}._check IS NULL AND {join}"
    )


def _date_versions(
    con: ibis.BaseBackend, st: str, schema: TableSchema, dup_idx: int, among: str
) -> None:
    """Set ``_superseded`` of each clean row that has a later version: the next later
    ``known_on`` among the rows of its key that passed the row rules (duplicates included: a
    conflicting amendment still withdraws the version before it, from the day it was filed).
    ``among``: selects a superset of the keys with more than one row."""
    known = schema.known_on.column
    assert known is not None and not schema.known_on.period_end
    key_list = ", ".join(ident(k) for k in schema.key)
    k = ident(known)
    join = " AND ".join(f"{st}.{ident(c)} = n.{ident(c)}" for c in schema.key)
    con.raw_sql(
        f"UPDATE {st} SET _superseded = n.nxt FROM ("
        f"SELECT {key_list}, k, lead(k) OVER (PARTITION BY {key_list} ORDER BY k) AS nxt FROM ("
        f"SELECT DISTINCT {key_list}, {k} AS k FROM {st} "
        f"WHERE (_check IS NULL OR _check = {dup_idx}) AND {among})) n "
        f"WHERE {st}._check IS NULL AND n.nxt IS NOT NULL AND {join} AND {st}.{k} = n.k"
    )
