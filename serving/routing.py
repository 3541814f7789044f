"""Routing: which units may take each taxpayer's case (DOMAIN "Classified response").

Rules, applied per taxpayer (one case per taxpayer, carrying every fired indicator):

1. A **key taxpayer** (annual tax paid >= ``key_line``, default 1,000,000 yuan; see
   :func:`annual_tax_paid`) goes to the city bureau (the root unit, level ``city``):
   ``route_reason = "key_taxpayer"``.
2. Otherwise a **cross-county** case (see :func:`cross_county`) goes to the city bureau:
   ``route_reason = "cross_county"``.
3. Otherwise the case goes to its **managing unit** (county or branch; the city itself for a
   taxpayer it manages directly): ``route_reason = "managing"``.

4. **City fallback** (``city_fallback``, default on): a case rules 1-2 send to the city may
   also be taken by the county of its managing unit. The city bureau commissions the county
   (委托) when its own officers are full: the case is answered either way, and the allocation
   prefers the city (the primary unit) whenever it has room. Without it, the key taxpayers
   and cross-county cases beyond the city's capacity become notices, although they are the
   largest cases: on the 20,000-taxpayer demo world (as of 2025-12-31) the dispatched cases'
   capture@K was 0.589 without the fallback and 0.633 with it, against 0.639 for the raw
   ranking, which ignores capacities.

The unit the rules give is ``primary_unit``; ``escalation_unit`` is its parent (null for the
city). A **complex** case (fired indicators >= ``complex_fired``, default 4, or expected yield
>= ``escalation_line``, default 500,000 yuan) may also be taken one level up: its
``allowed_units`` are ``(primary_unit, escalation_unit)``; other cases only
``(primary_unit,)``. The dispatch (:mod:`taxrisk.serving.dispatch`) chooses among them.

Errors (all :class:`~taxrisk.errors.TaxriskError`)::

    RoutingError           the units table or the candidates cannot be routed
    ├── UnknownUnit        a managing unit is not in the units table (names taxpayers, units)
    └── BadUnits           no single city root, a parent that is not a unit, a cycle
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from taxrisk.features.catalog import CATALOG, MEASURES
from taxrisk.features.tables import Tables

from taxrisk.errors import TaxriskError

__all__ = [
    "ANNUAL_TAX_COLUMNS",
    "ROUTE_REASONS",
    "BadUnits",
    "RoutingError",
    "UnknownUnit",
    "annual_tax_paid",
    "candidate_frame",
    "county_of",
    "cross_county",
    "cross_county_share",
    "invoice_indicators",
    "n_fired",
    "recommended_measure",
    "route",
]

#: the yearly tax aggregates of the matrix summed by :func:`annual_tax_paid` (yuan)
ANNUAL_TAX_COLUMNS = (
    "vat_paid_pos_12",
    "cit_tax_4q",
    "surcharge_12",
    "property_tax_12",
    "land_use_tax_12",
    "stamp_tax_12",
)

ROUTE_REASONS = ("managing", "key_taxpayer", "cross_county")


class RoutingError(TaxriskError):
    """Candidates or units cannot be routed."""


class UnknownUnit(RoutingError):
    """A managing unit is not in the units table."""

    def __init__(self, units: list[str], taxpayers: list[str], n_taxpayers: int) -> None:
        self.units, self.taxpayers = units, taxpayers
        more = ", ..." if n_taxpayers > len(taxpayers) else ""
        super().__init__(
            f"managing unit(s) {', '.join(repr(u) for u in units[:5])} not in the units table, "
            f"for {n_taxpayers} taxpayer(s): {', '.join(taxpayers)}{more} "
            "(add the unit to units, or correct taxpayers.unit_id)"
        )


class BadUnits(RoutingError):
    """The units table is not a tree with one city root."""


def _frame(t: pd.DataFrame | ir.Table) -> pd.DataFrame:
    return t.to_pandas() if isinstance(t, ir.Table) else t


def _units_frame(units: pd.DataFrame | ir.Table) -> pd.DataFrame:
    """The units as a frame indexed by unit_id (str), checked to be a tree with a city root."""
    u = _frame(units)
    if "unit_id" in u.columns:
        u = u.set_index("unit_id")
    u = u.copy()
    u.index = u.index.astype("str")
    parent = u["parent_id"].astype("str").where(u["parent_id"].notna() & (u["parent_id"] != ""))
    u["parent_id"] = parent
    roots = u.index[parent.isna()].tolist()
    city = [r for r in roots if str(u.at[r, "level"]) == "city"]
    if len(roots) != 1 or len(city) != 1:
        raise BadUnits(
            f"units: expected exactly one root unit of level 'city' (parent_id null), "
            f"got roots {roots[:5]} of levels {[str(u.at[r, 'level']) for r in roots[:5]]}"
        )
    orphans = parent[parent.notna() & ~parent.isin(u.index)]
    if len(orphans):
        raise BadUnits(
            f"units: parent_id not a unit for {len(orphans)} unit(s), e.g. "
            + ", ".join(f"{k} -> {v}" for k, v in list(orphans.items())[:5])
        )
    return u


def _root(u: pd.DataFrame) -> str:
    return str(u.index[u["parent_id"].isna()][0])


def county_of(units: pd.DataFrame | ir.Table) -> pd.Series:
    """The county of every unit: itself if level ``county``, else its nearest county ancestor;
    the city root (and a unit with no county above it) maps to the city.

    index: unit_id; value: unit_id of the county (str).
    """
    u = _units_frame(units)
    parent = u["parent_id"].to_dict()
    level = u["level"].astype("str").to_dict()
    root = _root(u)
    out: dict[str, str] = {}
    for unit in u.index:
        seen: list[str] = []
        cur: str | None = unit
        while cur is not None and level[cur] != "county":
            if cur in seen:
                raise BadUnits(f"units: a parent_id cycle through {cur!r}")
            seen.append(cur)
            cur = parent[cur] if isinstance(parent[cur], str) else None
        out[unit] = cur if cur is not None else root
    return pd.Series(out, name="county_id", dtype="str").rename_axis("unit_id")


def annual_tax_paid(matrix: pd.DataFrame) -> pd.Series:
    """Tax paid over the last year (yuan): the sum of :data:`ANNUAL_TAX_COLUMNS`.

    VAT paid (positive monthly payable, 12 months), corporate income tax (4 quarters), urban
    construction tax and education surcharges, property tax, land-use tax and stamp tax (12
    months each). A column absent from the matrix, or null, counts as 0. index: taxpayer_id.
    """
    total = pd.Series(0.0, index=matrix.index, name="annual_tax_paid")
    for col in ANNUAL_TAX_COLUMNS:
        if col in matrix.columns:
            total = total + pd.to_numeric(matrix[col], errors="coerce").fillna(0.0)
    return total.rename("annual_tax_paid")


def n_fired(matrix: pd.DataFrame) -> pd.Series:
    """Number of fired indicators (``<id>__fired`` = 1 for catalog ids). index: taxpayer_id."""
    cols = [f"{i}__fired" for i in CATALOG if f"{i}__fired" in matrix.columns]
    if not cols:
        return pd.Series(0, index=matrix.index, name="n_fired", dtype="int64")
    return (matrix[cols].fillna(0).astype("int64") == 1).sum(axis=1).rename("n_fired")


def recommended_measure(matrix: pd.DataFrame, *, none: str = "outreach") -> pd.Series:
    """The heaviest catalog measure among a taxpayer's fired indicators (``none`` if none
    fired), on the scale outreach < guidance < notice < assessment < audit. index:
    taxpayer_id; value: str."""
    level = np.full(len(matrix), MEASURES.index(none), dtype=np.int64)
    for iid, ind in CATALOG.items():
        col = f"{iid}__fired"
        if col in matrix.columns:
            hit = matrix[col].fillna(0).to_numpy(dtype=np.int64) == 1
            level = np.where(hit, np.maximum(level, MEASURES.index(ind.measure)), level)
    return pd.Series(np.asarray(MEASURES, dtype=object)[level], index=matrix.index).astype("str")


def invoice_indicators() -> list[str]:
    """Ids of the catalog indicators computed from invoices (``"invoices"`` in their
    tables)."""
    return [i.id for i in CATALOG.values() if "invoices" in i.tables]


def _add_months(d: dt.date, months: int) -> dt.date:
    y, m = divmod(d.year * 12 + (d.month - 1) + months, 12)
    return dt.date(y, m + 1, 1)


def cross_county_share(tables: Tables, as_of: dt.date) -> ir.Table:
    """Ibis expression: per registry taxpayer with invoices, ``inter_county_share`` in [0, 1].

    Invoices known at ``as_of`` whose period lies in the 12 months before the as-of month
    (as the invoice indicators read them). Each invoice counts for both its seller and its
    buyer, by absolute amount (red-letter credits count as flow too). A counterparty outside
    the registry is ignored (neither numerator nor denominator); the counties are those of the
    managing units (:func:`county_of`). Columns: taxpayer_id, invoiced (yuan),
    inter_county (yuan), inter_county_share.
    """
    m0 = as_of.replace(day=1)
    lo = _add_months(m0, -12)
    inv = tables.known("invoices", as_of)
    inv = inv.filter(inv.period >= ibis.literal(lo), inv.period < ibis.literal(m0))
    counties = county_of(tables["units"])
    cmap = ibis.memtable(
        pd.DataFrame({"unit_id": counties.index.astype("str"), "county_id": counties.to_numpy()})
    )
    tp = tables["taxpayers"]
    tc = tp.join(cmap, tp.unit_id == cmap.unit_id).select(tp.taxpayer_id, cmap.county_id)
    s = tc.select(seller=tc.taxpayer_id, s_county=tc.county_id)
    b = tc.select(buyer=tc.taxpayer_id, b_county=tc.county_id)
    j = inv.join(s, inv.seller_id == s.seller).join(b, inv.buyer_id == b.buyer)
    j = j.mutate(flow=j.amount.abs(), other=(j.s_county != j.b_county).cast("int8"))
    sides = j.select(taxpayer_id=j.seller_id, flow=j.flow, other=j.other).union(
        j.select(taxpayer_id=j.buyer_id, flow=j.flow, other=j.other), distinct=False
    )
    agg = sides.group_by("taxpayer_id").aggregate(
        invoiced=sides.flow.sum(),
        inter_county=(sides.flow * sides.other).sum(),
    )
    return agg.mutate(
        inter_county_share=ibis.ifelse(
            agg.invoiced > 0, agg.inter_county / agg.invoiced.nullif(0.0), 0.0
        )
    )


def cross_county(
    tables: Tables,
    as_of: dt.date,
    matrix: pd.DataFrame,
    *,
    min_share: float = 0.3,
) -> pd.Series:
    """True for a cross-county case: the city bureau takes it.

    Both must hold:

    * at least ``min_share`` (default 0.3) of the taxpayer's invoiced amount over the 12
      months before the as-of month (sales + purchases, absolute yuan, counterparties in the
      registry) is with counterparties managed by another county (:func:`cross_county_share`);
    * at least one indicator of the invoice family fired (:func:`invoice_indicators`).

    Why both: trading across counties is ordinary commerce, and a case whose risk lies in the
    taxpayer's own declarations (low burden, missing returns) is answered by its county. A
    case is cross-county when its risk is in invoice flows that leave the county: tracing
    the counterparties (their declarations, goods, payments) then needs another county's
    taxpayers, which only the city bureau commands.

    ``matrix``: index taxpayer_id, with the ``<id>__fired`` columns. index of the result: the
    matrix's; value: bool.
    """
    share = cross_county_share(tables, as_of).select("taxpayer_id", "inter_county_share")
    s = share.to_pandas().set_index("taxpayer_id")["inter_county_share"]
    s.index = s.index.astype("str")
    ids = matrix.index.astype("str")
    wide = pd.Series(s.reindex(ids).fillna(0.0).to_numpy() >= min_share, index=matrix.index)
    cols = [f"{i}__fired" for i in invoice_indicators() if f"{i}__fired" in matrix.columns]
    fired = (
        (matrix[cols].fillna(0).astype("int64") == 1).any(axis=1)
        if cols
        else pd.Series(False, index=matrix.index)
    )
    return (wide & fired).rename("cross_county")


def candidate_frame(
    ranking: pd.DataFrame,
    matrix: pd.DataFrame,
    cross: pd.Series | None = None,
) -> pd.DataFrame:
    """The candidate frame :func:`route` takes, from a ranking and its feature matrix.

    ``ranking``: taxpayer_id, expected_yield (yuan), unit_id (managing unit), as
    :func:`taxrisk.training.scoring.rank_predictions`. ``matrix``: index taxpayer_id.
    ``cross``: :func:`cross_county` (False for every taxpayer when None). Columns: taxpayer_id,
    unit_id, expected_yield, annual_tax_paid (yuan), n_fired, cross_county, measure
    (:func:`recommended_measure`).
    """
    ids = ranking["taxpayer_id"].astype("str")
    m = matrix.copy()
    m.index = m.index.astype("str")
    m = m.reindex(ids.to_numpy())
    flag = (
        cross.set_axis(cross.index.astype("str")).reindex(ids.to_numpy()).fillna(False)
        if cross is not None
        else pd.Series(False, index=ids.to_numpy())
    )
    return pd.DataFrame(
        {
            "taxpayer_id": ids.to_numpy(),
            "unit_id": ranking["unit_id"].astype("str").to_numpy(),
            "expected_yield": ranking["expected_yield"].to_numpy(dtype=float),
            "annual_tax_paid": annual_tax_paid(m).to_numpy(),
            "n_fired": n_fired(m).to_numpy(),
            "cross_county": flag.astype(bool).to_numpy(),
            "measure": recommended_measure(m).to_numpy(),
        }
    ).astype({"taxpayer_id": "str", "unit_id": "str", "measure": "str"})


def route(
    candidates: pd.DataFrame,
    units: pd.DataFrame | ir.Table,
    *,
    key_line: float = 1_000_000.0,
    complex_fired: int = 4,
    escalation_line: float = 500_000.0,
    city_fallback: bool = True,
) -> pd.DataFrame:
    """Route each candidate (see the module docstring for the rules).

    ``city_fallback``: a case the rules send to the city (key taxpayer, cross-county) may
    also be taken by the county of its managing unit, after the city (rule 4).

    ``candidates``: one row per taxpayer: taxpayer_id, unit_id (managing unit),
    expected_yield (yuan), annual_tax_paid (yuan), n_fired (count), cross_county (bool).
    ``units``: unit_id, parent_id, level (``city``/``county``/``branch``), name, capacity;
    a frame or an Ibis table. ``key_line``, ``escalation_line``: yuan.

    Returns the candidates (same order) plus primary_unit (str), allowed_units (tuple of
    str, primary first), route_reason (``managing``/``key_taxpayer``/``cross_county``),
    escalation_unit (the primary's parent, null at the city), complex (bool).
    Raises :class:`UnknownUnit` when a managing unit is not a unit and :class:`RoutingError`
    on a duplicated taxpayer_id.
    """
    u = _units_frame(units)
    root = _root(u)
    c = candidates.reset_index(drop=True)
    need = ["taxpayer_id", "unit_id", "expected_yield", "annual_tax_paid", "n_fired"]
    missing = [k for k in need if k not in c.columns]
    if missing:
        raise RoutingError(f"candidates: missing column(s) {', '.join(missing)}")
    tid = c["taxpayer_id"].astype("str")
    dup = tid[tid.duplicated()]
    if len(dup):
        raise RoutingError(
            f"candidates: {dup.nunique()} taxpayer_id(s) appear more than once, e.g. "
            + ", ".join(dup.unique()[:5].tolist())
            + " (one case per taxpayer)"
        )
    managing = c["unit_id"].astype("str").where(c["unit_id"].notna())
    unknown = ~managing.isin(u.index)
    if unknown.any():
        bad = managing[unknown].fillna("<null>")
        raise UnknownUnit(
            sorted(bad.unique().tolist()), tid[unknown].head(5).tolist(), int(unknown.sum())
        )

    tax = pd.to_numeric(c["annual_tax_paid"], errors="coerce").fillna(0.0)
    key = tax.to_numpy() >= key_line
    cross = (
        c["cross_county"].fillna(False).astype(bool).to_numpy()
        if "cross_county" in c.columns
        else np.zeros(len(c), dtype=bool)
    )
    reason = np.where(key, "key_taxpayer", np.where(cross, "cross_county", "managing"))
    primary = np.where(reason == "managing", managing.to_numpy(dtype=object), root)
    parent = u["parent_id"].to_dict()
    esc = np.array([parent[p] if isinstance(parent[p], str) else None for p in primary])
    ey = pd.to_numeric(c["expected_yield"], errors="coerce").fillna(0.0).to_numpy()
    fired = pd.to_numeric(c["n_fired"], errors="coerce").fillna(0).to_numpy()
    cplx = (fired >= complex_fired) | (ey >= escalation_line)
    allowed = [
        (p, e) if (k and e is not None) else (p,)
        for p, e, k in zip(primary, esc, cplx, strict=True)
    ]
    if city_fallback:
        county = county_of(u)
        for i in np.flatnonzero(reason != "managing"):
            own = county.get(managing.iloc[i], root)
            if own != root and own not in allowed[i]:
                allowed[i] = (*allowed[i], own)
    out = c.copy()
    out["taxpayer_id"] = tid
    out["primary_unit"] = pd.array(primary, dtype="str")
    out["allowed_units"] = pd.Series(allowed, index=out.index, dtype=object)
    out["route_reason"] = pd.array(reason, dtype="str")
    out["escalation_unit"] = pd.array(esc, dtype="str")
    out["complex"] = cplx
    return out
