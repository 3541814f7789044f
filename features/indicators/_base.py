"""The building blocks of the catalog: families, sources, derived columns, benchmarks,
indicators and the point-in-time context.

A **source** turns contract tables into per-taxpayer aggregates as of each date: one Ibis
table keyed ``(as_of, taxpayer_id)``, computed in one pass over its tables. An **indicator**
is a pure expression over the *base* table (one row per active taxpayer and as-of date, all
sources joined, plus industry benchmarks) that yields one float per row.

Point in time: a source sees a table only through :meth:`Context.window`, which keeps rows
known at the as-of date (``known_on <= as_of``, the contract's as-of rule) whose period lies
in the ``months`` months strictly before the as-of month (``k = 1..months``, where ``k`` is
the number of months between the period and the as-of month).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import ibis
import ibis.expr.types as ir
import pandas as pd

from ..config import IndicatorConfig, current_config, default_config
from ..tables import Tables, in_force

__all__ = [
    "Benchmark",
    "Context",
    "Derived",
    "Family",
    "Indicator",
    "Source",
    "Transform",
    "log_ratio",
    "month_diff",
    "safe_div",
    "snap",
]

Measure = Literal["outreach", "guidance", "notice", "assessment", "audit"]
Direction = Literal["high", "low"]


def _known_at(t: ir.Table, as_of: ir.DateValue) -> list[ir.BooleanValue]:
    """Join predicates of :func:`~taxrisk.features.tables.in_force` for a dated table: the
    inequality stays its own predicate (so engines keep a range join), and the versions test
    is added only for a table that has versions (only they carry ``superseded_on``)."""
    preds = [t.known_on <= as_of]
    if "superseded_on" in t.columns:
        preds.append(t.superseded_on.isnull() | (t.superseded_on > as_of))
    return preds


@dataclass(frozen=True)
class Source:
    """Per-taxpayer aggregates of some tables.

    ``tables``: tables that must all be present. ``build(ctx)`` returns a table keyed
    ``(as_of, taxpayer_id)`` (at most one row per key). ``granularity`` (see :func:`snap`):
    ``month`` for sources reading only tables known at period ends (invoices, electricity,
    ...): their result depends on the as-of month only; ``half_month`` for declarations
    (computed as of the 1st or 16th); ``day`` for small dated tables (registry events,
    audits), computable at any date. In the matrix builder every source reads its tables at
    the as-of date's *information date* (``matrix.INFORMATION_GRANULARITY``: the last day of
    the previous month), and ``day`` sources are read again at the as-of date itself, their
    columns (and what reads them) replacing the information date's: an audit closed or a
    registry event dated during the as-of month counts from its date, for training examples
    too (docs/training.md "Information dates"); a ``day`` source no benchmark, transform or
    rank reads is built at the as-of date only. Indicators on ``day`` sources must have
    ``pct=False`` and a value line (percentiles are the information date's). ``zero_fill``:
    columns that are 0 (not null) for a taxpayer without rows: the table is present, so no
    row means none.
    """

    name: str
    tables: tuple[str, ...]
    build: Callable[[Context], ir.Table]
    granularity: Granularity = "day"
    zero_fill: tuple[str, ...] = ()
    #: columns kept in the source's table for later sources (see :attr:`Context.built`) but
    #: not joined onto the base
    internal: tuple[str, ...] = ()
    #: False: a table only later sources read (from :attr:`Context.built`), its own stage in
    #: the pipeline and not joined onto the base (a subquery a source reads more than once)
    joined: bool = True


@dataclass(frozen=True)
class Derived:
    """A per-taxpayer column computed on the joined base from other columns.

    ``needs``: base columns it reads (it is skipped when one is absent, e.g. its source's
    optional table is missing). ``fn(base, config)``. ``stage`` 1 runs before the industry
    benchmarks, stage 2 after them (and may read the benchmarks, e.g. ``ind_<col>_med``).
    """

    name: str
    needs: tuple[str, ...]
    fn: Callable[[ir.Table, IndicatorConfig], ir.Value]
    stage: int = 1


@dataclass(frozen=True)
class Benchmark:
    """An industry benchmark: a quantile of a base column within (as_of, industry, taxpayer
    type), over the active taxpayers with a value, joined onto the base as ``name``
    (default ``ind_<column>_med``, the median). ``q``: the quantile, or the dotted key of a
    config parameter that holds it (``"thresholds.vat_burden"``)."""

    column: str
    q: float | str = 0.5
    name: str = ""

    @property
    def out(self) -> str:
        return self.name or f"ind_{self.column}_med"

    def quantile(self, cfg: IndicatorConfig) -> float:
        if isinstance(self.q, str):
            section, key = self.q.split(".")
            if section == "thresholds":
                return cfg.threshold(key)
            return float(getattr(getattr(cfg, section), key))
        return self.q


@dataclass(frozen=True)
class Rank:
    """A percentile a transform needs: ``out`` = the share of the group's non-null values of
    ``column`` at or below each row's (:func:`~.peers.percentile`), the group being
    ``(as_of, group(base))``; ``count``, if given, the group's size (every row). The
    pipeline computes it (on DuckDB in numpy, elsewhere as a window), not the transform: a
    window per ranked column cost 1.5 s each at 1M taxpayers."""

    out: str
    column: str
    group: Callable[[ir.Table], ir.Value]
    count: str | None = None


@dataclass(frozen=True)
class Transform:
    """A whole-base step of a family (e.g. peer-group percentiles): ``fn(base, config)``
    returns the base with columns added; runs after the benchmarks, before the stage-2
    derived columns. ``ranks``: percentiles added to what ``fn`` returns (:class:`Rank`),
    for the family's next transform to read."""

    name: str
    fn: Callable[[ir.Table, IndicatorConfig], ir.Table]
    ranks: tuple[Rank, ...] = ()


Line = Literal["value", "quantile"]


@dataclass(frozen=True)
class Indicator:
    """One risk indicator of the catalog (DESIGN: "indicators are a catalog").

    ``compute(base, config)``: float value per base row (null where the data do not cover
    it). ``direction``: "high" or "low" = risky. The threshold is the run config's
    ``thresholds.<id>``; with ``line="value"`` the indicator fires when the value is at or
    above (high) / at or below (low) it, and ``fires`` overrides the
    comparison (``fires(base, value, config)``, e.g. an industry warning line). With ``line="quantile"`` the threshold is a
    share q: it fires when the value's industry percentile ``<id>__pct`` is at least q (high)
    or at most 1 - q (low), and ``fires`` (if given) is an extra condition. ``basis``: why
    that threshold (a passage of the documents, or the quantile of the population).
    ``pct``: also emit the value's percentile within the industry (``<id>__pct``).
    """

    id: str
    name_zh: str
    name_en: str
    tables: tuple[str, ...]
    compute: Callable[[ir.Table, IndicatorConfig], ir.Value]
    direction: Direction
    measure: Measure
    guide_zh: str
    guide_en: str
    basis: str = ""
    classic: bool = False
    fires: Callable[[ir.Table, ir.Value, IndicatorConfig], ir.BooleanValue] | None = None
    line: Line = "value"
    pct: bool = True
    group: str = ""
    unit: str = ""
    #: what the threshold is, where it is not a value in ``unit`` (``quantile`` lines: the
    #: industry quantile; an indicator with its own ``fires`` may say what its number means)
    threshold_unit: str = ""

    @property
    def threshold(self) -> float:
        """The packaged default threshold (documentation; a run uses its own config's)."""
        return default_config().thresholds.get(self.id, float("nan"))

    def value(self, base: ir.Table, cfg: IndicatorConfig | None = None) -> ir.FloatingValue:
        """The value, rounded to 9 decimals: parallel sums differ in the last bits from run
        to run, and ties must stay ties for flags and percentiles to be deterministic."""
        cfg = cfg or current_config()
        return self.compute(base, cfg).cast("float64").round(9)

    def fired(
        self,
        base: ir.Table,
        value: ir.Value,
        cfg: IndicatorConfig | None = None,
        pct: ir.Value | None = None,
    ) -> ir.IntegerValue:
        """0/1: the indicator fires (0 where the value is null). ``pct``: the value's
        industry percentile (needed by a ``quantile`` line)."""
        cfg = cfg or current_config()
        t = cfg.threshold(self.id)
        if self.line == "quantile":
            if pct is None:
                raise ValueError(f"{self.id}: a quantile line needs the percentile column")
            cond = pct >= t if self.direction == "high" else pct <= 1.0 - t
            if self.fires is not None:
                cond = cond & self.fires(base, value, cfg)
        elif self.fires is not None:
            cond = self.fires(base, value, cfg)
        elif self.direction == "high":
            cond = value >= t
        else:
            cond = value <= t
        return ibis.ifelse(value.notnull() & cond.fill_null(False), 1, 0).cast("int8")


@dataclass(frozen=True)
class Family:
    """A family of indicators (one module of ``features/indicators/``), declaring everything
    the matrix needs from it: its ``sources`` (per-taxpayer aggregates of tables), its
    ``derived`` columns, the industry ``benchmarks`` it reads, the ``industry_norms``
    metrics it reads (joined as ``norm_<metric>``, null where absent), whole-base
    ``transforms`` and its ``indicators``. ``order``: families are built in ascending order
    (a source may reuse those of earlier families, see :attr:`Context.built`)."""

    name: str
    order: int
    sources: tuple[Source, ...] = ()
    derived: tuple[Derived, ...] = ()
    benchmarks: tuple[Benchmark, ...] = ()
    norms: tuple[str, ...] = ()
    transforms: tuple[Transform, ...] = ()
    indicators: tuple[Indicator, ...] = ()


# -- expression helpers ---------------------------------------------------------------------


def safe_div(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """num / den, null where den is 0 or null (never inf)."""
    return num.cast("float64") / den.cast("float64").nullif(0.0)


def log_ratio(num: ir.NumericValue, den: ir.NumericValue) -> ir.FloatingValue:
    """ln(num / den), null unless both are > 0."""
    n = num.cast("float64")
    d = den.cast("float64")
    return ibis.ifelse((n > 0) & (d > 0), (n / d.nullif(0.0)).ln(), ibis.null("float64"))


@ibis.udf.agg.builtin(name="bit_or")
def _bit_or(x: int) -> int:  # type: ignore[empty-body]  # DuckDB's and Spark SQL's BIT_OR
    ...


@ibis.udf.scalar.builtin(name="bit_count")
def _bit_count(x: int) -> int:  # type: ignore[empty-body]  # DuckDB's and Spark SQL's BIT_COUNT
    ...


def _bit(k: ir.IntegerValue) -> ir.IntegerValue:
    return ibis.literal(1, "int64").cast("int64") << k.cast("int64")


def months_mask(k: ir.IntegerValue) -> ir.IntegerValue:
    """Aggregate: the months ``k`` (1..62) a group has rows for, as the bits of one integer.
    With :func:`rows_before`, a streak without a window over the rows."""
    return _bit_or(_bit(k))


def rows_before(mask: ir.IntegerValue, first: ir.IntegerValue) -> ir.IntegerValue:
    """The group's rows with ``k`` below ``first`` (every row where ``first`` is null), from its
    :func:`months_mask`: e.g. the returns filed since the latest month with tax payable, with
    ``first`` the smallest such ``k``. Exact because a window has at most one row per
    taxpayer and month (the contract's key, latest version), and what a window over the
    rows (``min(...) OVER (PARTITION BY ...)``) computed at a large cost: a quarter of the VAT
    source's time at 1M taxpayers."""
    below = ibis.ifelse(first.isnull(), mask, mask & (_bit(first) - 1))
    return _bit_count(below).cast("int64")


def month_diff(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    """Whole months from ``earlier`` to ``later`` (calendar months, days ignored)."""
    return (later.year() - earlier.year()) * 12 + (later.month() - earlier.month())


# -- point-in-time context ------------------------------------------------------------------


def _month_start(d: dt.date) -> dt.date:
    return d.replace(day=1)


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.year * 12 + (d.month - 1) + months, 12)
    return dt.date(y, m + 1, 1)


WINDOWS = (3, 6, 12, 13, 15, 24, 27, 38)

Granularity = Literal["day", "half_month", "month"]


def snap(as_of: dt.date, granularity: Granularity) -> dt.date:
    """The date a source of this granularity reads its tables at, for an as-of date.

    ``day``: the as-of date itself. ``half_month``: the 1st or the 16th of its month, the
    latest on or before it (returns are due by the 15th, so the month's filing wave is seen
    from the 16th; declarations filed since the last snap are not used yet: less than is
    known, never more). ``month``: the last day of the previous month (periods before the
    as-of month, all known by then; for tables known at period end).
    """
    if granularity == "day":
        return as_of
    m0 = as_of.replace(day=1)
    if granularity == "half_month":
        return as_of.replace(day=16) if as_of.day >= 16 else m0
    return m0 - dt.timedelta(days=1)


def dates_frame(as_ofs: Sequence[dt.date]) -> pd.DataFrame:
    """as_of, m0 (first day of the as-of month) and lo_N (m0 minus N months) per date."""
    ds = sorted({pd.Timestamp(d).date() for d in as_ofs})
    data: dict[str, list[dt.date]] = {"as_of": ds, "m0": [_month_start(d) for d in ds]}
    for n in WINDOWS:
        data[f"lo_{n}"] = [_add_months(_month_start(d), -n) for d in ds]
    return pd.DataFrame(data)


def _snap_in(as_of: dt.date, m0: dt.date, granularity: Granularity) -> dt.date:
    """:func:`snap` for a date inside its reference month ``m0``; a date already before the
    reference month (an information date) is kept."""
    return snap(as_of, granularity) if as_of >= m0 else as_of


@dataclass
class Context:
    """The tables and the as-of dates one matrix build works on.

    ``dates``: one row per as-of date: ``as_of``, ``m0`` and ``lo_N`` bounds.
    ``single``: the as-of date when there is exactly one (rows are then filtered with
    :meth:`Tables.known` and literals, which lets the engine push filters into scans).
    ``config``: the run's configuration (thresholds and parameters).
    ``built``: the tables of the sources already built by the matrix pipeline, by source name,
    keyed ``(as_of, taxpayer_id)`` at the pipeline's dates (information dates, which every
    coarser snap keeps): a later source may reuse them instead of rescanning its tables.
    """

    tables: Tables
    dates: ir.Table
    single: dt.date | None
    frame: pd.DataFrame = field(repr=False)
    config: IndicatorConfig = field(default_factory=current_config, repr=False)
    built: dict[str, ir.Table] = field(default_factory=dict, repr=False)

    @classmethod
    def create(
        cls, tables: Tables, as_ofs: Sequence[dt.date], config: IndicatorConfig | None = None
    ) -> Context:
        frame = dates_frame(as_ofs)
        dates = ibis.memtable(frame)
        single = frame["as_of"].iloc[0] if len(frame) == 1 else None
        cfg = config or current_config()
        return cls(tables=tables, dates=dates, single=single, frame=frame, config=cfg)

    def snapped(self, granularity: Granularity) -> Context:
        """The context a source of this granularity is computed in: one date per distinct
        snapped date (see :func:`snap`), each keeping the reference month of its as-of
        dates."""
        if granularity == "day":
            return self
        pairs = sorted(
            {
                (_snap_in(a, m0, granularity), m0)
                for a, m0 in zip(self.frame["as_of"], self.frame["m0"], strict=True)
            }
        )
        frame = pd.DataFrame({"as_of": [p[0] for p in pairs], "m0": [p[1] for p in pairs]})
        for n in WINDOWS:
            frame[f"lo_{n}"] = [_add_months(m, -n) for m in frame["m0"]]
        single = frame["as_of"].iloc[0] if len(frame) == 1 else None
        same = frame[["as_of", "m0"]].equals(self.frame[["as_of", "m0"]])
        # the built sources are keyed by this context's dates: shared only if they are kept
        built = self.built if same else {}
        return Context(self.tables, ibis.memtable(frame), single, frame, self.config, built)

    def snap_map(self, granularity: Granularity) -> ir.Table:
        """as_of -> _snap for every as-of date of this context."""
        df = pd.DataFrame(
            {
                "as_of": self.frame["as_of"],
                "_snap": [
                    _snap_in(a, m0, granularity)
                    for a, m0 in zip(self.frame["as_of"], self.frame["m0"], strict=True)
                ],
            }
        )
        return ibis.memtable(df)

    def _grid(self, months: int) -> ir.Table:
        """One row per as-of date and period of its window: as_of, _period, k (1..months)."""
        rows = [
            (a, _add_months(m0, -k), k)
            for a, m0 in zip(self.frame["as_of"], self.frame["m0"], strict=True)
            for k in range(1, months + 1)
        ]
        df = pd.DataFrame(rows, columns=["as_of", "_period", "k"])
        df["k"] = df["k"].astype("int64")
        return ibis.memtable(df)

    def has(self, *names: str) -> bool:
        return all(n in self.tables for n in names)

    def window(
        self,
        name: str,
        months: int,
        *,
        period: str = "period",
        columns: Sequence[str] | None = None,
    ) -> ir.Table:
        """Rows of ``name`` known at each as-of date, with ``period`` in the ``months`` months
        before the as-of month; adds ``as_of`` and ``k`` (1 = the month before the as-of
        month). ``columns``: only these of the table's columns (and ``period``), selected
        before the rows are filtered: two windows of the same table with different
        ``columns`` are two reads, not one relation the query shares (see
        :func:`.invoices.invoices_source`)."""
        if months not in WINDOWS:
            raise ValueError(f"window of {months} months: use one of {WINDOWS}")
        cols = None if columns is None else [*columns, period]
        if self.single is not None:
            row = self.frame.iloc[0]
            t = self.tables.known(name, self.single, columns=cols)
            t = t.filter(t[period] >= row[f"lo_{months}"], t[period] < row["m0"])
            # the date and its reference month as literals: the engine folds the month's
            # year and month once, not per row (with a cross join to the dates they are
            # columns: the month count was a fifth of the invoice source's time at 1M)
            m0 = ibis.literal(row["m0"], "date")
            return t.mutate(as_of=ibis.literal(self.single, "date"), k=month_diff(m0, t[period]))
        # many dates: an equi-join on the period against a (date, period) grid, then the
        # as-of rule as a filter (engines run this as a hash join)
        t = self.tables[name] if cols is None else self.tables.narrow(name, cols)
        g = self._grid(months)
        j = t.join(g, t[period] == g._period)
        return j.filter(in_force(j, j.as_of)).drop("_period")

    def since(self, name: str, months: int, column: str) -> ir.Table:
        """Rows of a dated table (registry events, audits) known at each as-of date, dated
        within ``months`` months before it (by ``column``); adds ``as_of`` and ``m0``."""
        d = self.dates.select("as_of", "m0", f"lo_{months}")
        if self.single is not None:
            row = self.frame.iloc[0]
            t = self.tables.known(name, self.single)
            t = t.filter(t[column] >= row[f"lo_{months}"])
            return t.cross_join(d).drop(f"lo_{months}")
        t = self.tables[name]
        j = t.join(d, [*_known_at(t, d.as_of), t[column] >= d[f"lo_{months}"]])
        return j.drop(f"lo_{months}")

    def known_all(self, name: str) -> ir.Table:
        """Every row of ``name`` known at each as-of date (no period window); adds ``as_of``."""
        d = self.dates.select("as_of", "m0")
        if self.single is not None:
            return self.tables.known(name, self.single).cross_join(d)
        t = self.tables[name]
        return t.join(d, _known_at(t, d.as_of))
