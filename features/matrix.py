"""The point-in-time feature matrix: one row per taxpayer active at the as-of date.

:func:`build_matrix` (one date) and :func:`build_matrices` (many dates in one pass) run the
catalog (:mod:`.catalog`: every family's sources, derived columns, benchmarks, norms and
indicators; nothing here names an indicator) with the run's config (:mod:`.config`) on the
engine of ``tables.con`` (DuckDB by default; the expressions are plain Ibis and
compile for PySpark) and hand a pandas DataFrame to the models:

- index ``taxpayer_id`` (one date) or ``(as_of, taxpayer_id)`` (many);
- category columns ``unit_id``, ``industry``, ``taxpayer_type``, ``collection_method``;
- float64 columns: raw aggregates of every source (money in yuan, ratios, months), each
  indicator's value ``<id>``, its industry percentile ``<id>__pct`` (share of the industry at
  or below the value, in (0, 1]) where
  meaningful, industry-model estimates;
- int8 columns ``<id>__fired`` (0/1);
- ``attrs["switched_off"] = {indicator_id: reason}``, ``attrs["as_of"]`` (ISO, one date).

Point in time: every table is read as of the *information date* of the as-of date, the last
day of the previous month (:data:`INFORMATION_GRANULARITY`; the bureau's monthly analysis of
closed months): a row is used only if known then (the contract's as-of rule, via
:meth:`Tables.known` or the equivalent ``known_on`` filter), which is never later than the
as-of date. A taxpayer's own small dated records (the ``day`` sources: audits, registry
events, property) are then read again at the as-of date itself and replace theirs, with the
columns and indicators that read them (:meth:`_Pipeline._at_as_of`); one whose columns no
population statistic reads is built at the as-of date only (:meth:`_Pipeline._built_later`).
Windows count months before the as-of month (``k = 1`` is the previous month).
The rows are the taxpayers active at the as-of date itself (registered on or before it, not
deregistered by then; a deregistration dated after it is not known); one registered after
the information date gets its context columns, its dated records and null features otherwise.
Industry benchmarks and percentiles are over the taxpayers active at the information date. One information date per
as-of month is what makes :func:`build_matrices` cheap: hundreds of audit selection dates
collapse into at most one build per month, and each date's rows equal
``build_matrix(tables, date)`` exactly.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.operations as ops
import ibis.expr.schema as sch
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .catalog import Catalog, Source, default_catalog
from .config import IndicatorConfig, current_config
from .indicators._base import Context, Granularity, Rank, month_diff, snap
from .indicators.peers import (
    add_benchmarks,
    add_percentiles,
    add_ranks,
    group_ranks,
    industry_percentiles,
    percentile_inputs,
    rank_inputs,
)
from .progress import ProgressFn, report
from .schema import SCHEMAS
from .tables import Tables, is_active

__all__ = [
    "CATEGORICAL",
    "build_matrices",
    "build_matrix",
    "feature_columns",
    "matrix_expression",
    "matrix_frame",
    "matrix_table",
    "source_table",
]

log = logging.getLogger(__name__)

CATEGORICAL = ("unit_id", "industry", "taxpayer_type", "collection_method")
_CONTEXT = ("taxpayer_id", *CATEGORICAL)
#: the information date of an as-of date (see ``indicators._base.snap``): the last day of the
#: previous month, the bureau's monthly analysis cycle on closed months. One information date
#: per as-of month keeps a training batch of hundreds of dates to at most one per month.
INFORMATION_GRANULARITY: Granularity = "month"
_KEY = ["as_of", "taxpayer_id"]
_INTERNAL = {"registered_on", "county_id", "industry_model"}
#: on DuckDB, each wide stage's row position (0..n-1), carried through the later stages: the
#: columns a stage leaves unchanged are read from the previous stage's Arrow table by it
#: (:func:`_gathered`) instead of being copied through the engine again
_ROW = "_row"
#: :meth:`_Pipeline._built_later` by (catalog, config, tables present)
_BUILT_LATER: dict[tuple[int, str, frozenset[str]], tuple[Catalog, dict[str, sch.Schema]]] = {}


def _capital_as_of(ctx: Context) -> ir.Table | None:
    """(as_of, taxpayer_id, _capital): the amount of the latest ``capital`` change known at
    each date (``registrations``), None without the table."""
    if not ctx.has("registrations"):
        return None
    r = ctx.known_all("registrations")
    r = r.filter((r.change_type == "capital") & r.amount.notnull())
    return r.group_by(["as_of", "taxpayer_id"]).aggregate(
        _capital=r.amount.argmax(r.changed_on.cast("string") + r.amount.cast("string"))
    )


def _population(ctx: Context) -> ir.Table:
    """Active taxpayers at each as-of date with their context columns.

    ``log_registered_capital`` is the capital as of the date: ``registered_capital`` (the
    capital at registration) until a ``capital`` change with an amount is known, then that
    amount (the registry's later value must not reach an earlier date)."""
    t = ctx.tables["taxpayers"]
    d = ctx.dates.select("as_of", "m0")
    if ctx.single is not None:
        a = ctx.single
        p = t.filter(is_active(t, a)).cross_join(d)
    else:
        p = t.join(d, is_active(t, d.as_of))
    cap = _capital_as_of(ctx)
    if cap is not None:
        p = p.left_join(cap, ["as_of", "taxpayer_id"]).drop("as_of_right", "taxpayer_id_right")
        p = p.mutate(registered_capital=p._capital.fill_null(p.registered_capital))
    p = p.select(
        "as_of",
        "taxpayer_id",
        "unit_id",
        "industry",
        "taxpayer_type",
        "collection_method",
        "registered_on",
        age_months=month_diff(p.m0, p.registered_on).cast("float64"),
        log_registered_capital=(p.registered_capital + 1.0).ln(),
    )
    u = ctx.tables["units"]
    units = u.select(
        u.unit_id,
        county_id=ibis.ifelse(u.level == "branch", u.parent_id.fill_null(u.unit_id), u.unit_id),
    )
    p = p.left_join(units, "unit_id").drop("unit_id_right")
    return p.mutate(county_id=p.county_id.fill_null(p.unit_id))


def _norms(ctx: Context, base: ir.Table, metrics: Sequence[str]) -> ir.Table:
    """``norm_<metric>`` for the ``industry_norms`` metrics the catalog reads (null where the
    industry has none, or the table is absent) and ``industry_model``."""
    if ctx.has("industry_norms"):
        n = ctx.tables["industry_norms"]
        wide = n.group_by("industry").aggregate(
            **{f"norm_{m}": n.value.max(where=n.metric == m) for m in metrics}
        )
        base = base.left_join(wide, "industry").drop("industry_right")
    else:
        base = base.mutate(**{f"norm_{m}": ibis.null("float64") for m in metrics})
    if ctx.has("industries"):
        i = ctx.tables["industries"].select("industry", industry_model=ibis._.model)
        base = base.left_join(i, "industry").drop("industry_right")
    else:
        base = base.mutate(industry_model=ibis.null("string"))
    return base


def _derived(base: ir.Table, stage: int, catalog: Catalog, cfg: IndicatorConfig) -> ir.Table:
    """The catalog's derived columns of one stage, each where its inputs exist.

    Same result as adding them one by one in catalog order, but in as few ``mutate`` calls
    as their dependencies allow (one per wave: the columns whose inputs are all there): a
    chain of one projection per column costs Ibis's SQL compiler more than the engine
    spends computing them (seconds per stage at any scale)."""
    todo = [d for d in catalog.derived if d.stage == stage]
    while todo:
        cols = set(base.columns)
        pending = {d.name for d in todo}
        wave: dict[str, ir.Value] = {}
        later = []
        for d in todo:
            if all(c in cols for c in d.needs):
                try:
                    wave[d.name] = d.fn(base, cfg).cast("float64")
                except Exception:
                    # reads a column of this wave it does not declare: the next wave
                    later.append(d)
            elif any(c in pending and c not in cols for c in d.needs):
                later.append(d)  # an input is a derived column of this stage not yet added
            # else: an input is absent for good, skipped (as one by one)
        if not wave:
            # nothing computable: one by one, which raises the real error of the first
            for d in later:
                base = base.mutate(**{d.name: d.fn(base, cfg).cast("float64")})
            return base
        base = base.mutate(**wave)
        todo = later
    return base


def _benchmarks(base: ir.Table, catalog: Catalog, cfg: IndicatorConfig) -> ir.Table:
    """The catalog's benchmarks whose column exists and that are not joined yet."""
    todo = [b for b in catalog.benchmarks if b.column in base.columns and b.out not in base.columns]
    return add_benchmarks(base, todo, cfg) if todo else base


def _join_sources(
    pop: ir.Table, aggs: list[tuple[Source, ir.Table | sch.Schema]], *, one_date: bool = False
) -> ir.Table:
    """One left-join chain of the population with every source's aggregates; ``one_date``:
    every table is of the same single as-of date, joined on the taxpayer alone (a second
    key column costs every hash join of the chain a third more). A source given as its
    schema is not built at these dates: its columns are nulls of their types
    (:meth:`_Pipeline.values`)."""
    j = pop
    fields: list[ir.Value] = [pop[c] for c in pop.columns]
    for src, agg in aggs:
        if not src.joined:
            continue
        if isinstance(agg, sch.Schema):
            fields.extend(
                ibis.null(agg[c]).name(c)
                for c in agg.names
                if c not in _KEY and c not in src.internal
            )
            continue
        on = [pop.taxpayer_id == agg.taxpayer_id]
        j = j.left_join(agg, on if one_date else [pop.as_of == agg.as_of, *on])
        for c in agg.columns:
            if c in _KEY or c in src.internal:
                continue
            col = agg[c].fill_null(0) if c in src.zero_fill else agg[c]
            fields.append(col.name(c))
    return j.select(*fields)


def _fields(expr: ir.Value, table: ir.Table) -> set[str]:
    """The columns of ``table`` an expression over it reads."""
    rel = table.op()
    # through value nodes only: a relation's own history (the whole pipeline) is not read
    found = expr.op().find(ops.Field, filter=ops.Value)
    return {f.name for f in found if f.rel == rel}


def _trace(rel: ops.Relation, name: str, stage: ops.Relation, memo: dict) -> tuple | None:
    """Where column ``name`` of ``rel`` comes from: ``("col", c)`` for column ``c`` of
    ``stage`` unchanged, ``("null",)`` for a null literal, nested in the joins and unions it
    passes through (``("join", chain, side, inner)``, ``("union", op, left, right)``); None
    when it is computed, or passes through an operation not known to keep values. Renames,
    projections, filters, sorts and joins keep a column's values; they may drop, repeat or
    reorder rows, which the row id of the same route drops, repeats or reorders alike."""
    key = (rel, name)
    if key not in memo:
        memo[key] = _trace_step(rel, name, stage, memo)
    return memo[key]


def _trace_step(rel: ops.Relation, name: str, stage: ops.Relation, memo: dict) -> tuple | None:
    if name not in rel.schema:
        return None
    if rel == stage:
        return ("col", name)
    if isinstance(rel, ops.Project):
        value = rel.values.get(name)
        while isinstance(value, ops.Alias):
            value = value.arg
        if isinstance(value, ops.Field):
            return _trace(value.rel, value.name, stage, memo)
        if isinstance(value, ops.Cast):
            value = value.arg
        if isinstance(value, ops.Literal) and value.value is None:
            return ("null",)
        return None
    if isinstance(rel, (ops.DropColumns, ops.Filter, ops.Sort)):
        return _trace(rel.parent, name, stage, memo)
    if isinstance(rel, ops.JoinChain):
        value = rel.values.get(name)
        if isinstance(value, ops.Field) and isinstance(value.rel, ops.JoinReference):
            inner = _trace(value.rel.parent, value.name, stage, memo)
            return None if inner is None else ("join", rel, value.rel.identifier, inner)
        return None
    if isinstance(rel, ops.Union) and not rel.distinct:
        left = _trace(rel.left, name, stage, memo)
        right = _trace(rel.right, name, stage, memo)
        return None if left is None or right is None else ("union", rel, left, right)
    return None


def _route(trace: tuple) -> tuple:
    """A trace without the stage column it ends at."""
    if trace[0] == "join":
        return (*trace[:3], _route(trace[3]))
    if trace[0] == "union":
        return (*trace[:2], _route(trace[2]), _route(trace[3]))
    return trace[:1]


def _leaves(trace: tuple) -> set[str]:
    if trace[0] == "col":
        return {trace[1]}
    if trace[0] == "join":
        return _leaves(trace[3])
    if trace[0] == "union":
        return _leaves(trace[2]) | _leaves(trace[3])
    return set()


def _gathered(t: ir.Table, stage: ir.Table) -> dict[str, str]:
    """The columns of ``t`` that are a column of ``stage`` unchanged, by the same route as
    ``t``'s row id :data:`_ROW` (null where the row id is null): ``{column of t: column of
    stage}``. Their values are ``stage``'s at the row id, read by position in its Arrow table
    rather than copied through the engine (a wide stage's round trip costs seconds at 1M)."""
    memo: dict = {}
    rel, target = t.op(), stage.op()
    row = _trace(rel, _ROW, target, memo)
    if row is None or _leaves(row) != {_ROW}:
        return {}
    route = _route(row)
    out = {}
    for c in t.columns:
        if c == _ROW:
            continue
        trace = _trace(rel, c, target, memo)
        if trace is not None and _route(trace) == route and len(_leaves(trace)) == 1:
            out[c] = next(iter(_leaves(trace)))
    return out


def _origins(rel: ops.Relation, name: str, base: ops.Relation, memo: dict) -> frozenset[str]:
    """The columns of ``base`` that column ``name`` of ``rel`` is, unchanged: through
    references, projections, joins, unions and the relations that keep their parent's
    values (filters, sorts, limits, distinct); empty for a computed column (its
    computation reads its own inputs, see :func:`_reads`). Looser than :func:`_trace`, which
    also needs the rows kept (no distinct, no limit) for a value to be read by row id."""
    key = (rel, name)
    if key in memo:
        return memo[key]  # type: ignore[no-any-return]
    out: frozenset[str] = frozenset()
    if rel == base:
        out = frozenset({name})
    elif isinstance(rel, ops.Reference):
        out = _origins(rel.parent, name, base, memo)
    elif isinstance(rel, ops.Project | ops.JoinChain):
        value = rel.values.get(name)
        while isinstance(value, ops.Alias):
            value = value.arg
        if isinstance(value, ops.Field):
            out = _origins(value.rel, value.name, base, memo)
    elif isinstance(rel, ops.Set):
        out = _origins(rel.left, name, base, memo) | _origins(rel.right, name, base, memo)
    elif not isinstance(rel, ops.Aggregate):
        parent = getattr(rel, "parent", None)
        if isinstance(parent, ops.Relation) and name in parent.schema:
            out = _origins(parent, name, base, memo)
    memo[key] = out
    return out


def _reads(expr: ir.Table, base: ir.Table) -> set[str]:
    """The columns of ``base`` that ``expr`` reads: every use of one (in a value, a filter,
    a group key, a join predicate, a sort or window key) but passing it through unchanged
    as a column of a projection or a join. An over-approximation (a column computed from
    another counts as reading it, whether or not anything reads the result), which is the
    safe side for :meth:`_Pipeline._built_later`."""
    target = base.op()
    memo: dict[tuple[ops.Relation, str], frozenset[str]] = {}
    out: set[str] = set()
    for node in expr.op().find(ops.Node):
        if isinstance(node, ops.Project | ops.JoinChain):
            continue  # bare fields pass through; computed values are nodes of their own
        for arg in node.__children__:  # its arguments' nodes, collections flattened
            if isinstance(arg, ops.Field):
                out |= _origins(arg.rel, arg.name, target, memo)
    return out


def _numbered(arrow: pa.Table) -> pa.Table:
    """``arrow`` with the row id :data:`_ROW`: each row's position (replacing one it had)."""
    ids = pa.array(np.arange(arrow.num_rows))
    if _ROW in arrow.column_names:
        return arrow.set_column(arrow.column_names.index(_ROW), _ROW, ids)
    return arrow.append_column(_ROW, ids)


def _permutation(ids: pa.ChunkedArray, n: int) -> np.ndarray | None:
    """``ids`` as positions if they are each of 0..n-1 once (the same rows in some order),
    else None."""
    if len(ids) != n or ids.null_count:
        return None
    at = ids.to_numpy()
    if n and (at.min() < 0 or at.max() >= n):
        return None
    seen = np.zeros(n, dtype=bool)
    seen[at] = True
    return at if seen.all() else None


def _reorder(column: pa.ChunkedArray, at: np.ndarray) -> pa.ChunkedArray:
    """``column`` at positions ``at`` (no nulls among them): numeric columns through numpy,
    values and validity (pyarrow's take of a nullable float column is single-threaded and
    about twice as slow at 1M rows), others through pyarrow."""
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        return _take(column, pa.array(at))
    if column.null_count == 0:
        return pa.chunked_array([pa.array(column.to_numpy()[at], column.type)])
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    filled = pc.fill_null(column, 0).to_numpy(zero_copy_only=False)
    return pa.chunked_array([pa.array(filled[at], column.type, mask=~valid[at])])


def _split(t: ir.Table, stage: ir.Table) -> tuple[pa.Table, dict[str, str]]:
    """``t``'s columns that the engine computes, collected (with the row id), and those it
    keeps from ``stage`` unchanged (:func:`_gathered`), left in ``stage``'s Arrow table."""
    src = _gathered(t, stage)
    return t.select(*[c for c in t.columns if c not in src]).to_pyarrow(), src


def _take(column: pa.ChunkedArray, ids: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    taken = column.take(ids)
    return taken if isinstance(taken, pa.ChunkedArray) else pa.chunked_array([taken])


def _sources_for(catalog: Catalog, present: set[str]) -> list[Source]:
    return [s for s in catalog.sources.values() if all(t in present for t in s.tables)]


#: reductions that skip nulls: ``f(x, where=c)`` is ``f(c ? x : NULL)``
_MASKABLE = (ops.Sum, ops.Mean, ops.Min, ops.Max, ops.Count)


def _declared_decimals(table: str, column: str) -> int | None:
    schema = SCHEMAS.get(table)
    if schema is None or column not in schema.column_names:
        return None
    return schema.column(column).decimals


#: operations whose value is one of their argument's (or its exact negation)
_KEEPS_DECIMALS = (
    ops.Negate,
    ops.Abs,
    ops.Min,
    ops.Max,
    ops.Arbitrary,
    ops.ArgMin,
    ops.ArgMax,
    ops.First,
    ops.Last,
)


class _Grid:
    """The decimals a value is recorded to (None: not known to lie on a grid), traced from
    the contract tables' columns declared with ``decimals``
    (:class:`~taxrisk.features.schema.Column`; the loaders register each table under its
    contract name) through the relations and the exact operations on them: a negation,
    minimum or maximum keeps the decimals, a sum or difference the finer, a product their
    sum; a cast keeps them to a float64 or a decimal type (to at most its scale), makes an
    integer of them (0) and loses them to anything else (a float32 holds a fen amount only
    to about 7 digits); a division or any other function is off the grid."""

    def __init__(self) -> None:
        self._memo: dict[ops.Node, int | None] = {}

    def of(self, node: ops.Node) -> int | None:
        if node not in self._memo:
            self._memo[node] = self._of(node)
        return self._memo[node]

    def _column(self, rel: ops.Node, name: str) -> int | None:
        if isinstance(rel, ops.Project | ops.JoinChain):
            return self.of(rel.values[name]) if name in rel.values else None
        if isinstance(rel, ops.Aggregate):
            value = rel.groups.get(name, rel.metrics.get(name))
            return None if value is None else self.of(value)
        if isinstance(rel, ops.PhysicalTable):
            return _declared_decimals(rel.name, name)
        if isinstance(rel, ops.Set):
            sides = {self._column(rel.left, name), self._column(rel.right, name)}
            return sides.pop() if len(sides) == 1 else None
        parent = getattr(rel, "parent", None)
        return None if parent is None else self._column(parent, name)

    def _join(self, places: Sequence[int | None]) -> int | None:
        return None if not places or None in places else max(p for p in places if p is not None)

    def _of(self, node: ops.Node) -> int | None:
        if isinstance(node, ops.Field):
            return self._column(node.rel, node.name)
        if isinstance(node, ops.Literal):
            v = node.value
            return (
                0
                if isinstance(v, int | bool) or (isinstance(v, float) and v.is_integer())
                else None
            )
        if isinstance(node, _KEEPS_DECIMALS):
            return self.of(node.arg)  # type: ignore[attr-defined]
        if isinstance(node, ops.Cast):
            return _cast_places(self.of(node.arg), node.to)
        if isinstance(node, ops.Round) and isinstance(node.digits, ops.Literal):
            return int(node.digits.value)
        if isinstance(node, ops.Add | ops.Subtract):
            return self._join([self.of(node.left), self.of(node.right)])
        if isinstance(node, ops.Multiply):
            left, right = self.of(node.left), self.of(node.right)
            return None if left is None or right is None else left + right
        if isinstance(node, ops.Greatest | ops.Least | ops.Coalesce):
            return self._join([self.of(v) for v in node.arg])
        if isinstance(node, ops.IfElse):
            branches = (node.true_expr, node.false_null_expr)
            return self._join([self.of(v) for v in branches if not _is_null(v)])
        return None


def _cast_places(places: int | None, to: dt_.DataType) -> int | None:
    """The decimals of a value on a grid of ``places`` cast to ``to`` (see :class:`_Grid`)."""
    if places is None:
        return None
    if to.is_integer():
        return 0
    if to.is_float64():
        return places
    if to.is_decimal() and to.scale is not None:  # type: ignore[attr-defined]
        return min(places, to.scale)  # type: ignore[attr-defined]
    return None


def _is_null(node: ops.Node) -> bool:
    return isinstance(node, ops.Literal) and node.value is None


def _rewrite_reductions() -> Callable[[ops.Node, dict | None], ops.Node]:
    grid = _Grid()

    def rewrite(node: ops.Node, kwargs: dict | None) -> ops.Node:
        node = node.__recreate__(kwargs) if kwargs else node
        if isinstance(node, _MASKABLE) and node.where is not None:  # type: ignore[attr-defined]
            arg = node.arg  # type: ignore[attr-defined]
            masked = ops.IfElse(node.where, arg, ops.Literal(None, arg.dtype))  # type: ignore[attr-defined]
            node = type(node)(arg=masked, where=None)  # type: ignore[call-arg]
        if isinstance(node, ops.Sum | ops.Mean) and node.dtype.is_floating():
            places = grid.of(node.arg)
            if places is not None:
                total = ops.Round(ops.Sum(node.arg, where=None), places)
                if total.dtype != node.dtype:  # Ibis types a round to 0 digits as int64
                    total = ops.Cast(total, node.dtype)
                if isinstance(node, ops.Sum):
                    return total
                return ops.Divide(total, ops.Count(node.arg, where=None))
        return node

    return rewrite


def masked_reductions(t: ir.Table) -> ir.Table:
    """``t`` with every filtered null-skipping reduction (``x.sum(where=c)``, and ``mean``,
    ``min``, ``max``, ``count``) as the same reduction of the masked value
    (``ifelse(c, x, NULL).sum()``): the same numbers (the rows the filter drops are the
    nulls the reduction skips; an empty selection is null, a count 0, either way), and on
    DuckDB twice as fast for a source's thirty-odd aggregates, which compile to
    ``SUM(x) FILTER (WHERE c)``: the VAT source at 1M taxpayers, 12M returns, 11.4 s -> 6.1 s
    (docs/decisions.md, perf4). The families keep writing ``where=``.

    A float sum or mean of values recorded to known decimals (money to the fen, see
    :class:`_Grid`) is the sum rounded to those decimals (a mean: that sum over the count).
    Threads add a float sum in an order that changes from run to run, and its last bits
    with it: on the same files an industry's median ratio came out one ulp apart, which
    moved the whole industry across a monitoring decile edge (PSI 0.54 between two scoring
    runs), and ``inv_in_tax - input_tax`` an exact 0 in one build and 1e-8 in the next. The
    rounded sum of fen amounts is exact in any order (its error is ~1e-6 yuan at 1e10 yuan,
    the nearest half fen 0.005 away): the matrix is bit-identical from build to build on
    any number of threads (docs/decisions.md, "Reproducible features")."""
    return t.op().replace(_rewrite_reductions()).to_expr()  # type: ignore[no-any-return]


def source_table(src: Source, ctx: Context) -> ir.Table:
    """A source's aggregates keyed ``(as_of, taxpayer_id)`` for the dates of ``ctx``
    (coarser-grained sources are computed once per snapped date and mapped back), its
    filtered reductions masked and its sums of recorded values (money, quantities) rounded
    to their grid (:func:`masked_reductions`)."""
    if src.granularity == "day":
        return masked_reductions(src.build(ctx))
    agg = masked_reductions(src.build(ctx.snapped(src.granularity))).rename(_snap="as_of")
    m = ctx.snap_map(src.granularity)
    return m.join(agg, "_snap").drop("_snap")


#: numbers the stage views registered on DuckDB, one name per registration in the process (a
#: connection may hold the views of several pipelines)
_VIEWS = itertools.count()


class _Pipeline:
    """The matrix as a sequence of stages; each stage is materialised (on DuckDB an Arrow
    table registered as a view, elsewhere the engine's cached table) unless ``lazy``, in
    which case the whole build stays one expression (used to render the pipeline for another
    engine)."""

    def __init__(
        self,
        tables: Tables,
        as_ofs: Sequence[dt.date],
        *,
        lazy: bool = False,
        progress: ProgressFn | None = None,
        timings: dict[str, float] | None = None,
        config: IndicatorConfig | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.catalog = catalog or default_catalog()
        self.cfg = (config or current_config()).check(self.catalog.indicators)
        self.as_ofs = sorted({pd.Timestamp(d).date() for d in as_ofs})
        #: one as-of date: every table carries it, so tables join on the taxpayer alone
        self.one_date = len(self.as_ofs) == 1
        self.info = {d: snap(d, INFORMATION_GRANULARITY) for d in self.as_ofs}
        # every source reads the tables as of the information date (see ``snap``)
        ctx = Context.create(tables, self.as_ofs, self.cfg)
        self.ctx = ctx.snapped(INFORMATION_GRANULARITY)
        # ... except a taxpayer's own small dated records, read again at the as-of date
        # itself (:meth:`_at_as_of`)
        self.day_ctx = ctx
        self.present = set(tables.tables)
        self.off = self.catalog.switched_off(self.present)
        self.active = {k: ind for k, ind in self.catalog.indicators.items() if k not in self.off}
        self.sources = _sources_for(self.catalog, self.present)
        self.day_sources = [s for s in self.sources if s.granularity == "day"]
        self.lazy = lazy
        self.progress = progress
        self.timings = timings
        self.cached: list[ir.Table] = []
        self._con = tables.con
        #: stages held as Arrow tables registered on DuckDB (see :meth:`stage`), by name
        self._arrow: dict[str, pa.Table] = {}
        #: the last wide stage, whose columns the collected matrix reads by row id
        self._rows: ir.Table | None = None

    def stage(
        self,
        name: str,
        t: ir.Table,
        *,
        drop: list[ir.Table] | None = None,
        rows_of: ir.Table | None = None,
        number: bool = False,
    ) -> ir.Table:
        """Materialise a stage (engines would otherwise recompute shared subqueries), then
        release the stages in ``drop`` (no longer needed: keeps peak memory to two stages).
        ``number``: give the stage's rows the row id :data:`_ROW`; ``rows_of``: the stage
        ``t`` adds columns to, whose unchanged columns it reuses (:meth:`_materialise`)."""
        if self.lazy:
            return t
        t1 = time.perf_counter()
        out = self._materialise(t, rows_of, number)
        self.cached.append(out)
        for old in drop or []:
            self._release(old)
        spent = time.perf_counter() - t1
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + spent
        log.info("stage %s: %.2fs", name, spent)
        return out

    def _percentiles(
        self,
        base: ir.Table,
        extra: Callable[[ir.Table], dict[str, ir.Value]],
        cols: list[str],
        keep: ir.Table | None,
    ) -> ir.Table:
        """``base`` with the fired flags ``extra(base)`` and each column's industry percentile
        (:func:`add_percentiles`). On DuckDB, with ``base`` a stage held in Arrow, the ranks
        are computed in numpy on the engine-rounded values (:func:`industry_percentiles`, the
        same numbers) and appended to the stage's Arrow table by row position: DuckDB's
        window over the long form, and joining the result back, were the slowest step of
        the 1M build."""
        # not lazy: ``base`` is the values stage, a table with a name
        arrow = None if self.lazy else self._arrow.get(base.get_name())
        if not cols or arrow is None:
            return add_percentiles(base.mutate(**extra(base)), cols, keep=keep)
        t1 = time.perf_counter()
        rows = arrow if _ROW in arrow.column_names else _numbered(arrow)
        numbered = self._register(rows)
        ranked = industry_percentiles(
            percentile_inputs(numbered, cols, [_ROW]).to_pyarrow(), cols, [_ROW]
        )
        at = ranked.column(_ROW).to_numpy()
        for c in cols:
            pct = np.full(arrow.num_rows, np.nan)
            pct[at] = ranked.column(f"{c}__pct").to_numpy(zero_copy_only=False)
            null = np.ones(arrow.num_rows, dtype=bool)
            null[at] = ranked.column(f"{c}__pct").is_null().to_numpy(zero_copy_only=False)
            rows = rows.append_column(f"{c}__pct", pa.array(pct, pa.float64(), mask=null))
        self._drop(numbered)
        out = self._register(rows)
        self.cached.append(out)
        self._rows = out
        if keep is not None:
            out = out.semi_join(keep, _KEY)
        if self.timings is not None:
            self.timings["percentiles"] = time.perf_counter() - t1
        pcts = {f"{c}__pct": out[f"{c}__pct"] for c in cols}
        return out.select(*base.columns, **extra(out), **pcts)

    def _ranks(self, base: ir.Table, ranks: Sequence[Rank]) -> ir.Table:
        """``base`` with the percentiles of ``ranks`` whose column it has. On DuckDB, with
        row ids, ranked in numpy on the engine-rounded values (:func:`group_ranks`) and joined
        back by row id; elsewhere as windows (:func:`add_ranks`), the same numbers."""
        ranks = [r for r in ranks if r.column in base.columns]
        if not ranks:
            return base
        if self.lazy or not self._on_duckdb() or _ROW not in base.columns:
            return add_ranks(base, ranks)
        t1 = time.perf_counter()
        inputs, group_of = rank_inputs(base, ranks, [_ROW])
        ranked = self._register(group_ranks(inputs.to_pyarrow(), ranks, [_ROW], group_of))
        self.cached.append(ranked)
        if self.timings is not None:
            self.timings["ranks"] = self.timings.get("ranks", 0.0) + time.perf_counter() - t1
        j = base.left_join(ranked, _ROW)
        return j.drop(f"{_ROW}_right")

    def _on_duckdb(self) -> bool:
        return getattr(self._con, "name", None) == "duckdb"

    def _register(self, arrow: pa.Table) -> ir.Table:
        """An Arrow table as a DuckDB view scanned in place, dropped by :meth:`_drop`. Each
        registration has a name of its own (:data:`_VIEWS`), even of an Arrow table already
        registered: named by the table, dropping one view dropped the other with it."""
        name = f"_taxrisk_stage_{next(_VIEWS)}"
        self._con.con.register(name, arrow)  # type: ignore[attr-defined]
        self._arrow[name] = arrow
        return self._con.table(name)

    def _materialise(
        self, t: ir.Table, rows_of: ir.Table | None = None, number: bool = False
    ) -> ir.Table:
        """On DuckDB, the stage's rows as an Arrow table registered as a view (scanned in
        place): a ``CREATE TABLE AS`` of a wide stage (1M rows x 200 columns) costs DuckDB
        about twice the time of producing the Arrow result, and the matrix has half a
        dozen wide stages. A stage that adds columns to ``rows_of`` runs only the columns it
        computes (:meth:`_narrow`). Elsewhere (Spark) the engine's own cache."""
        if not self._on_duckdb():
            return t.cache()
        prev = None if rows_of is None else self._arrow.get(rows_of.get_name())
        if prev is not None and _ROW in t.columns and _ROW in prev.column_names:
            return self._register(self._narrow(t, rows_of, prev))  # type: ignore[arg-type]
        arrow = t.to_pyarrow()
        return self._register(_numbered(arrow) if number else arrow)

    def _narrow(self, t: ir.Table, stage: ir.Table, prev: pa.Table) -> pa.Table:
        """``t`` as an Arrow table, the engine running only the columns it computes: those
        it keeps from ``stage`` unchanged (:func:`_gathered`) are ``prev``'s (``stage``'s
        Arrow table) at the row ids, without a copy when ``t`` has ``stage``'s rows. Every
        wide stage round-tripped whole through the engine cost 4-5 s at 1M rows x 200
        columns, most of it copying columns no stage had touched."""
        part, src = _split(t, stage)
        log.debug("stage: %d columns computed, %d reused", part.num_columns, len(src))
        n = prev.num_rows
        at = _permutation(part.column(_ROW), n)
        if at is not None:  # the same rows, possibly in another order
            if not np.array_equal(at, np.arange(n)):
                log.debug("stage: rows reordered by the engine, put back")
                back = np.empty(n, dtype=np.int64)
                back[at] = np.arange(n)
                part = pa.table({c: _reorder(part.column(c), back) for c in part.column_names})
            return pa.table(
                {c: prev.column(src[c]) if c in src else part.column(c) for c in t.columns}
            )
        ids = part.column(_ROW)
        taken = {
            c: _take(prev.column(src[c]), ids) if c in src else part.column(c) for c in t.columns
        }
        return _numbered(pa.table(taken))

    def collect(self, out: ir.Table) -> tuple[pa.Table, tuple[pa.Table, dict[str, str]] | None]:
        """The collected matrix ``out`` (from :meth:`final` with ``keep_row``): an Arrow table
        of the columns the engine computes, and (the last wide stage's Arrow table, {column:
        its column}) for those read from it at the row id :data:`_ROW` (:func:`_to_frame`)."""
        stage = self._rows
        arrow = None if stage is None else self._arrow.get(stage.get_name())
        if stage is None or arrow is None or _ROW not in out.columns:
            return (out.drop(_ROW) if _ROW in out.columns else out).to_pyarrow(), None
        part, src = _split(out, stage)
        log.debug("matrix: %d columns computed, %d read by row id", part.num_columns, len(src))
        return part, (arrow, src)

    def _drop(self, t: ir.Table) -> None:
        name = t.get_name()
        if name in self._arrow:
            self._con.con.unregister(name)  # type: ignore[attr-defined]
            del self._arrow[name]
            return
        try:
            t.release()
        except Exception:  # pragma: no cover - release is best effort
            log.debug("could not release a cached table", exc_info=True)

    def _release(self, t: ir.Table) -> None:
        if t in self.cached:
            self.cached.remove(t)
            self._drop(t)

    def values(self) -> ir.Table:
        """Population + sources + benchmarks + every active indicator's value."""
        steps = len(self.sources) + 6
        report(self.progress, "features", 0, steps)
        self.ctx.built.clear()
        later = self._built_later()
        pop = self.stage("population", _population(self.ctx))
        aggs: list[tuple[Source, ir.Table | sch.Schema]] = []
        for i, src in enumerate(self.sources, start=1):
            if src.name in later:
                aggs.append((src, later[src.name]))
                report(self.progress, "features", i, steps)
                continue
            agg = self.stage(src.name, source_table(src, self.ctx))
            # later sources may reuse it (network: the sellers' invoicing and VAT paid)
            self.ctx.built[src.name] = agg
            aggs.append((src, agg))
            report(self.progress, "features", i, steps)
        n = len(self.sources)
        base = self.stage(
            "join",
            _join_sources(pop, aggs, one_date=self.one_date),
            drop=[pop, *(a for _, a in aggs if isinstance(a, ir.Table))],
            number=True,
        )
        self.ctx.built.clear()
        cat, cfg = self.catalog, self.cfg
        # derived (1) -> benchmarks -> family transforms + derived (2) -> benchmarks of the
        # stage-2 columns + derived (3) -> values; each stage materialised, the previous
        # released
        prev = base
        base = self.stage(
            "derived",
            _derived(_norms(self.ctx, base, cat.norms), 1, cat, cfg),
            drop=[prev],
            rows_of=prev,
        )
        report(self.progress, "features", n + 1, steps)
        prev, base = base, self.stage("benchmarks", _benchmarks(base, cat, cfg), rows_of=base)
        self._release(prev)
        step = base
        for tr in cat.transforms:
            step = self._ranks(tr.fn(step, cfg), tr.ranks)
        base = self.stage("peers", _derived(step, 2, cat, cfg), drop=[base], rows_of=base)
        report(self.progress, "features", n + 2, steps)
        step = _derived(_benchmarks(base, cat, cfg), 3, cat, cfg)
        values = {k: ind.value(step, cfg) for k, ind in self.active.items()}
        base = self.stage("values", step.mutate(**values), drop=[base], rows_of=base)
        self._rows = base
        report(self.progress, "features", n + 3, steps)
        return base

    def _built_later(self) -> dict[str, sch.Schema]:
        """The ``day`` sources not built at the information date, with their schemas: those
        no population statistic reads. Their columns (and what reads them) are replaced at
        the as-of date anyway (:meth:`_at_as_of`), so at the information date they only
        matter to what ranks or compares taxpayers there: the industry benchmarks, the
        family transforms (peer groups) and their ranks. Which columns those read is found on
        the expression itself (:func:`_reads`, run on a table with the joined base's schema,
        every derived column taken as an input): a source whose columns, or the derived
        columns computed from them, are among them is built as before. Until then they are
        nulls of their types (``equity_tax`` and ``property_tax`` at 1M: 1.1-1.3 s each,
        built for nothing)."""
        day = [s for s in self.day_sources if s.joined]
        if not day:
            return {}
        # the answer depends on the catalog, the config and the tables present, not on the
        # dates or the data: found once per process (about a second of expression building)
        key = (id(self.catalog), self.cfg.model_dump_json(), frozenset(self.present))
        hit = _BUILT_LATER.get(key)
        if hit is not None and hit[0] is self.catalog:
            return hit[1]
        later = self._find_built_later(day)
        if len(_BUILT_LATER) >= 16:
            _BUILT_LATER.pop(next(iter(_BUILT_LATER)))
        _BUILT_LATER[key] = (self.catalog, later)
        return later

    def _find_built_later(self, day: list[Source]) -> dict[str, sch.Schema]:
        ctx, cat, cfg = self.ctx, self.catalog, self.cfg
        schemas = {s.name: s.build(ctx).schema() for s in self.sources if s.joined}
        joined = _join_sources(
            _population(ctx), [(s, schemas[s.name]) for s in self.sources if s.joined]
        )
        columns = dict(_norms(ctx, joined, cat.norms).schema().items())
        for d in cat.derived:
            columns.setdefault(d.name, "float64")
        base = ibis.table(ibis.schema(columns), name="_taxrisk_base_schema")
        step = _benchmarks(base, cat, cfg)
        for tr in cat.transforms:  # as :meth:`_ranks` does, with windows
            out = tr.fn(step, cfg)
            step = add_ranks(out, [r for r in tr.ranks if r.column in out.columns])
        read = _reads(step, base)
        grew = True
        while grew:  # a derived column read reads its inputs
            grew = False
            for d in cat.derived:
                if d.name in read and not set(d.needs) <= read:
                    read |= set(d.needs)
                    grew = True
        later = {}
        for s in day:
            cols = {c for c in schemas[s.name].names if c not in _KEY and c not in s.internal}
            if not cols & read:
                later[s.name] = schemas[s.name]
        if later:
            log.info(
                "built at the as-of date only (no population statistic reads them): %s",
                ", ".join(later),
            )
        return later

    def final(self, pairs: pd.DataFrame | None = None, *, keep_row: bool = False) -> ir.Table:
        """The matrix before the hand-off (``as_of`` and ``taxpayer_id`` columns); with
        ``keep_row``, the row id :data:`_ROW` of the last wide stage too (for :meth:`collect`)."""
        base = self.values()
        cfg = self.cfg
        by_value = {k: ind for k, ind in self.active.items() if ind.line == "value"}

        def extra(b: ir.Table) -> dict[str, ir.Value]:
            return {f"{k}__fired": ind.fired(b, b[k], cfg) for k, ind in by_value.items()}

        pct = [k for k, ind in self.active.items() if ind.pct]
        keep = None
        if pairs is not None:
            # only the requested rows are pivoted back (percentiles still rank everyone)
            info = pd.DataFrame(
                {
                    "as_of": [self.info[d] for d in pairs["as_of"] if d in self.info],
                    "taxpayer_id": [
                        t
                        for d, t in zip(pairs["as_of"], pairs["taxpayer_id"], strict=True)
                        if d in self.info
                    ],
                }
            ).drop_duplicates()
            keep = ibis.memtable(info)
        base = self._percentiles(base, extra, pct, keep)
        # quantile lines fire on the industry percentile
        by_pct = {
            f"{k}__fired": ind.fired(base, base[k], cfg, pct=base[f"{k}__pct"])
            for k, ind in self.active.items()
            if ind.line == "quantile"
        }
        if by_pct:
            base = base.mutate(**by_pct)
        base = self._to_dates(base)
        if pairs is not None:
            want = ibis.memtable(pairs[["as_of", "taxpayer_id"]].drop_duplicates())
            base = base.semi_join(want, _KEY)
        base = self._at_as_of(base)
        return base.drop(
            *[
                c
                for c in base.columns
                if (c.startswith("_") and not (keep_row and c == _ROW)) or c in _INTERNAL
            ]
        )

    def _at_as_of(self, base: ir.Table) -> ir.Table:
        """A taxpayer's own small dated records at the as-of date itself, not its information
        date: the ``day`` sources (audits, registry events, property) are built again at the
        requested dates and replace their columns, and the derived columns, indicator values
        and fired flags that read them are computed again on the replaced columns. Population
        statistics (industry benchmarks, percentiles, peers) stay those of the information
        date: an audit closed during the as-of month is seen, and counts as of its date, for
        the taxpayer it concerns; the industry's median is last month's."""
        if not self.day_sources:
            return base
        aggs = [
            (src, self.stage(f"{src.name}@as_of", source_table(src, self.day_ctx)))
            for src in self.day_sources
        ]
        late = {
            c
            for src, agg in aggs
            for c in agg.columns
            if c not in _KEY and c not in src.internal and c in base.columns
        }
        redo: set[str] = set()
        grew = True
        while grew:  # every derived column reading a replaced column, in any stage
            grew = False
            for d in self.catalog.derived:
                if d.name in base.columns and d.name not in late and late & set(d.needs):
                    late.add(d.name)
                    redo.add(d.name)
                    grew = True
        # in stage order, catalog order within a stage (a stable sort)
        derived = sorted((d for d in self.catalog.derived if d.name in redo), key=lambda d: d.stage)
        cfg = self.cfg
        indicators = {
            k: ind
            for k, ind in self.active.items()
            if k in base.columns and _fields(ind.value(base, cfg), base) & late
        }
        for k, ind in indicators.items():
            if ind.pct or ind.line == "quantile":
                raise ValueError(
                    f"indicator {k} reads a taxpayer's dated records (columns "
                    f"{sorted(_fields(ind.value(base, cfg), base) & late)}), which are read at the "
                    "as-of date, but ranks them by industry percentile, computed at the "
                    "information date: declare it pct=False with a value line"
                )
        replaced = [*late, *indicators, *(f"{k}__fired" for k in indicators)]
        rest = base.drop(*[c for c in replaced if c in base.columns])
        b = _join_sources(rest, aggs, one_date=self.one_date)
        for d in derived:  # few columns: one mutate each, in dependency order
            b = b.mutate(**{d.name: d.fn(b, cfg).cast("float64")})
        if indicators:
            b = b.mutate(**{k: ind.value(b, cfg) for k, ind in indicators.items()})
            b = b.mutate(
                **{f"{k}__fired": ind.fired(b, b[k], cfg) for k, ind in indicators.items()}
            )
        return b.select(*base.columns)

    def _to_dates(self, base: ir.Table) -> ir.Table:
        """From information dates to the requested as-of dates: the taxpayers active at each
        as-of date; those registered after its information date get their context columns
        and null features (nothing about them is known yet)."""
        m = ibis.memtable(pd.DataFrame({"as_of": list(self.info), "_s": list(self.info.values())}))
        tp = self.ctx.tables["taxpayers"]
        status = tp.select("taxpayer_id", _reg=tp.registered_on, _dereg=tp.deregistered_on)
        cols = base.columns
        if self.one_date:
            # one date: the date a literal, and the taxpayers still registered at it a
            # semi-join on the taxpayer alone (as :func:`_join_sources`)
            (day,) = self.info
            j = base.mutate(as_of=ibis.literal(day, "date"))
            k = status.filter(status._dereg.isnull() | (status._dereg > day))
            known = j.semi_join(k, "taxpayer_id").select(*cols)
        else:
            j = m.join(base.rename(_s="as_of"), "_s")
            # still registered at the as-of date: a semi-join on a narrow key table (a join
            # would build its hash table on the wide matrix)
            k = j.select("as_of", "taxpayer_id").join(status, "taxpayer_id")
            k = k.filter(k._dereg.isnull() | (k._dereg > k.as_of))
            known = j.semi_join(k, _KEY).select(*cols)
        # registered after the information date, on or before the as-of date
        new = m.join(tp, [tp.registered_on > m._s, tp.registered_on <= m.as_of])
        new = new.filter(new.deregistered_on.isnull() | (new.deregistered_on > new.as_of))
        fill = {
            "age_months": month_diff(new.as_of.truncate("M"), new.registered_on).cast("float64"),
            "log_registered_capital": (new.registered_capital + 1.0).ln(),
        }
        schema = base.schema()
        new = new.select(
            *[
                new[c]
                if c in ("as_of", *_CONTEXT)
                else fill[c].name(c)
                if c in fill
                else ibis.null(schema[c]).name(c)
                for c in cols
            ]
        )
        return known.union(new)

    def release(self) -> None:
        for c in self.cached:
            self._drop(c)
        self.cached.clear()


def matrix_expression(
    tables: Tables,
    as_ofs: Sequence[dt.date],
    *,
    config: IndicatorConfig | None = None,
    catalog: Catalog | None = None,
) -> ir.Table:
    """The whole matrix as one unexecuted Ibis expression (no stage materialised): what a
    non-DuckDB engine would run (``ibis.to_sql(expr, dialect="pyspark")``)."""
    return _Pipeline(tables, as_ofs, lazy=True, config=config, catalog=catalog).final()


@contextmanager
def matrix_table(
    tables: Tables,
    as_ofs: Sequence[dt.date],
    *,
    config: IndicatorConfig | None = None,
    catalog: Catalog | None = None,
) -> Iterator[ir.Table]:
    """The matrix as a table on the engine of ``tables.con``, nothing collected: the stages
    are materialised there as in :func:`build_matrix` and released on exit. Columns as
    :func:`build_matrix`'s before the hand-off to pandas (``as_of`` and ``taxpayer_id``
    columns, fired flags possibly null; :func:`matrix_frame` types a collected part).
    What scoring on Spark reads (``serving/spark_scoring.py``)."""
    pipe = _Pipeline(tables, as_ofs, config=config, catalog=catalog)
    try:
        yield pipe.final()
    finally:
        pipe.release()


def matrix_frame(table: object, catalog: Catalog | None = None) -> pd.DataFrame:
    """A collected part of :func:`matrix_table` (Arrow table or pandas frame) typed as
    :func:`build_matrices` types it (``as_of`` and ``taxpayer_id`` as columns)."""
    return _to_frame(table, list((catalog or default_catalog()).indicators))


def _build(
    tables: Tables,
    as_ofs: Sequence[dt.date],
    progress: ProgressFn | None,
    timings: dict[str, float] | None = None,
    pairs: pd.DataFrame | None = None,
    config: IndicatorConfig | None = None,
    catalog: Catalog | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    pipe = _Pipeline(
        tables, as_ofs, progress=progress, timings=timings, config=config, catalog=catalog
    )
    steps = len(pipe.sources) + 6
    try:
        out = pipe.final(pairs, keep_row=True)
        t0 = time.perf_counter()
        table, gather = pipe.collect(out)
        if timings is not None:
            # the fired flags, the as-of dates and the collect (the percentiles: on DuckDB
            # their own stage, elsewhere part of this query)
            timings["flags+collect"] = time.perf_counter() - t0
        report(progress, "features", steps - 1, steps)
    finally:
        pipe.release()
    t0 = time.perf_counter()
    df = _to_frame(table, list(pipe.active), gather)
    if timings is not None:
        timings["to_pandas"] = time.perf_counter() - t0
    report(progress, "features", steps, steps)
    return df, pipe.off


def _to_frame(
    table: object,
    indicator_ids: list[str],
    gather: tuple[pa.Table, dict[str, str]] | None = None,
) -> pd.DataFrame:
    """One typed frame from the collected Arrow table (or a pandas frame): rows sorted by
    (as_of, taxpayer_id), numeric columns as one float64 block and the fired flags as one
    int8 block, each column copied once straight into its place (a pandas round trip per
    column copies the matrix three times). ``gather`` (from :meth:`_Pipeline.collect`): the
    columns read from a stage's Arrow table at the row id column :data:`_ROW` (null: a null
    value), taken there straight into their place too."""
    t: pa.Table = (
        pa.Table.from_pandas(table, preserve_index=False)
        if isinstance(table, pd.DataFrame)
        else table  # type: ignore[assignment]
    )
    source, src = gather if gather is not None else (None, {})
    names = [c for c in t.column_names if c != _ROW] + [c for c in src if c not in t.column_names]

    def raw(c: str) -> pa.ChunkedArray:  # in the collected table's row order
        if c in src:
            return _take(source.column(src[c]), t.column(_ROW))  # type: ignore[union-attr]
        return t.column(c)

    as_of = pd.to_datetime(raw("as_of").to_pandas()).dt.date
    tid = raw("taxpayer_id")
    order = pa.table({"a": pa.array(as_of.to_numpy(), pa.date32()), "t": tid})
    perm = pc.sort_indices(order, [("a", "ascending"), ("t", "ascending")]).to_numpy()
    if src:
        ids = t.column(_ROW).take(perm)
        missing = ids.is_null().to_numpy(zero_copy_only=False)
        any_missing = bool(missing.any())
        at = pc.fill_null(ids, 0).to_numpy(zero_copy_only=False)
    rest = [c for c in names if c not in (*CATEGORICAL, "as_of", "taxpayer_id")]
    fired = sorted(c for c in rest if c.endswith("__fired"))
    numeric = [c for c in rest if not c.endswith("__fired")]
    first = [c for c in indicator_ids if c in numeric]
    ordered = first + sorted(c for c in numeric if c not in first)

    def block(cols: list[str], dtype: str, fill: float | None) -> pd.DataFrame:
        out = np.empty((len(perm), len(cols)), dtype=dtype, order="F")

        def place(j: int) -> None:
            c = cols[j]
            col = source.column(src[c]) if c in src else t.column(c)  # type: ignore[union-attr]
            if fill is not None:
                col = pc.fill_null(col, fill)
            values = pc.cast(col, dtype).to_numpy(zero_copy_only=False)
            if c in src:
                np.take(values, at, out=out[:, j])
                if any_missing:
                    out[missing, j] = np.nan if fill is None else fill
            else:
                np.take(values, perm, out=out[:, j])

        _each_column(place, len(cols))
        return pd.DataFrame(out, columns=cols, copy=False)

    def text(c: str) -> pd.Series:  # one take: a gathered column at the sorted row ids
        if c in src:
            return _take(source.column(src[c]), ids).to_pandas()  # type: ignore[union-attr]
        return t.column(c).take(perm).to_pandas()

    head = pd.DataFrame(
        {
            "as_of": as_of.to_numpy()[perm],
            "taxpayer_id": tid.take(perm).to_pandas().astype(str),
            **{c: text(c).astype("category") for c in CATEGORICAL},
        }
    )
    return pd.concat([head, block(ordered, "float64", None), block(fired, "int8", 0)], axis=1)


def _each_column(place: Callable[[int], None], n: int) -> None:
    """``place(j)`` for each column ``j < n``, on Arrow's CPU threads: each call writes its
    own column of a preallocated block, and the work (Arrow's cast, numpy's take) runs
    without the GIL, so two cores hand off a 1M-row matrix in half the time of one
    (docs/decisions.md, perf5)."""
    workers = min(pa.cpu_count(), n)
    if workers <= 1:
        for j in range(n):
            place(j)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(place, range(n)):  # re-raises the first error
            pass


def build_matrix(
    tables: Tables,
    as_of: dt.date,
    *,
    progress: ProgressFn | None = None,
    config: IndicatorConfig | None = None,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """The feature matrix as of one date: index ``taxpayer_id`` (str), one row per taxpayer
    active at ``as_of``; see the module docstring for the columns. ``config``: thresholds
    and parameters (default: the run's, :func:`~taxrisk.features.config.current_config`);
    ``catalog``: the indicators (default: every family of ``features/indicators/``)."""
    df, off = _build(tables, [as_of], progress, config=config, catalog=catalog)
    df = df.drop(columns="as_of").set_index("taxpayer_id")
    df.attrs["switched_off"] = off
    df.attrs["as_of"] = as_of.isoformat()
    df.attrs["information_date"] = snap(as_of, INFORMATION_GRANULARITY).isoformat()
    return df


def build_matrices(
    tables: Tables,
    as_ofs: Sequence[dt.date],
    *,
    progress: ProgressFn | None = None,
    pairs: pd.DataFrame | None = None,
    config: IndicatorConfig | None = None,
    catalog: Catalog | None = None,
) -> pd.DataFrame:
    """Feature matrices for many as-of dates in one pass: MultiIndex ``(as_of, taxpayer_id)``
    (``as_of`` a ``datetime.date``). Each date's rows equal ``build_matrix(tables, as_of)``.

    ``pairs`` (optional, columns ``as_of`` and ``taxpayer_id``): return only these rows, e.g.
    the audited taxpayers at their selection dates. Features are still computed against the
    whole active population, so percentiles and benchmarks are unchanged; only the hand-off
    to pandas shrinks (a full 20,000-taxpayer x 300-date matrix would be several GB).
    """
    dates = sorted({pd.Timestamp(d).date() for d in as_ofs})
    if not dates:
        raise ValueError("build_matrices needs at least one as-of date")
    if pairs is not None:
        pairs = pd.DataFrame(
            {
                "as_of": pd.to_datetime(pairs["as_of"]).dt.date,
                "taxpayer_id": pairs["taxpayer_id"].astype(str),
            }
        )
    df, off = _build(tables, dates, progress, pairs=pairs, config=config, catalog=catalog)
    df = df.set_index(["as_of", "taxpayer_id"])
    df.attrs["switched_off"] = off
    return df


def feature_columns(matrix: pd.DataFrame) -> list[str]:
    """Model inputs: every numeric column plus the categorical ``industry``,
    ``taxpayer_type`` and ``collection_method`` (not ``unit_id``: an administrative route, not
    a property of the taxpayer)."""
    cats = [c for c in ("industry", "taxpayer_type", "collection_method") if c in matrix.columns]
    num = [
        c
        for c in matrix.columns
        if c not in CATEGORICAL and c != "as_of" and pd.api.types.is_numeric_dtype(matrix[c])
    ]
    return cats + num


def build_with_timings(
    tables: Tables, as_ofs: Sequence[dt.date], timings: dict[str, float]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The matrix frame (``as_of`` and ``taxpayer_id`` as columns) and the indicators switched
    off, filling ``timings`` with seconds per stage (for ``experiments/bench_features.py``)."""
    return _build(tables, as_ofs, None, timings)
