"""Peers: industry benchmarks, size bands, regions and peer-comparison indicators.

Benchmarks are computed over the taxpayers active at each as-of date, from their own
point-in-time aggregates (so they are as blind to the future as the aggregates):

``ind_<col>_med``  median (or another quantile) of ``<col>`` within (as_of, industry,
                   taxpayer_type), for the benchmarks the families declare
                   (:class:`~._base.Benchmark`).
``size_band``      decade of monthly declared sales: floor(log10(sales_month_avg + 1)).
``county_id``      the county of the managing unit (a branch's parent; a county or the city
                   itself otherwise).
``peer_burden_pct`` / ``peer_sales_pct``  percentile (share at or below) of the VAT burden / monthly
                   sales within industry x taxpayer type x size band x county, falling back to
                   industry x type x size band, then industry x type, when the finer group has
                   fewer than ``min_group``.
``quota_peer_ratio``  a fixed-quota taxpayer's monthly quota over what a self-assessed peer of
                   its size sells: its purchases on invoices (k=1..12, per month) x the median
                   sales-to-purchases ratio of the industry's self-assessed taxpayers; without
                   purchases on invoices, the median monthly sales of
                   self-assessed peers in the same industry and county (industry city-wide when
                   the county has too few).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..config import IndicatorConfig
from ._base import Benchmark, Family, Indicator, Rank, Transform, safe_div

_K = TypeVar("_K")
_T = TypeVar("_T")

__all__ = [
    "FAMILY",
    "add_benchmarks",
    "add_peer_columns",
    "add_percentiles",
    "add_ranks",
    "group_ranks",
    "industry_percentiles",
    "percentile",
    "percentile_inputs",
    "rank_inputs",
]


def percentile(value: ir.NumericValue, group: list[ir.Value]) -> ir.FloatingValue:
    """Share of the group's non-null values at or below ``value`` (in (0, 1]; a value tied
    with many peers gets the share of all of them, so ties at zero do not look extreme);
    null where ``value`` is null. Nulls are ordered last explicitly, so the result does not
    depend on an engine's default null ordering. Values are ranked rounded to 6 decimals:
    parallel float sums differ in the last bits from run to run, and exact ties (many
    small-scale firms at exactly the 3% rate) must stay ties for the result to be
    deterministic."""
    value = value.round(6)
    above = ibis.rank().over(group_by=group, order_by=ibis.desc(value, nulls_first=False))
    n = value.count().over(group_by=group)
    pct = (n - above).cast("float64") / n.cast("float64").nullif(0.0)
    return ibis.ifelse(value.isnull(), ibis.null("float64"), pct)


def add_percentiles(base: ir.Table, cols: list[str], *, keep: ir.Table | None = None) -> ir.Table:
    """Join ``<col>__pct``: each column's :func:`percentile` within (as_of, industry): the
    share of the industry's taxpayers with a value at or below this one.

    Computed in long form (one window over all columns at once), which engines run far
    faster than one window per column. ``keep`` (as_of, taxpayer_id): only these rows are
    returned (ranks are still over every row)."""
    if not cols:
        return base
    long = base.select("as_of", "taxpayer_id", "industry", *cols).pivot_longer(
        cols, names_to="_col", values_to="_v"
    )
    long = long.filter(long._v.notnull())
    long = long.mutate(_p=percentile(long._v, [long.as_of, long.industry, long._col]))
    if keep is not None:
        long = long.semi_join(keep, ["as_of", "taxpayer_id"])
        base = base.semi_join(keep, ["as_of", "taxpayer_id"])
    wide = long.group_by(["as_of", "taxpayer_id"]).aggregate(
        **{f"{c}__pct": long._p.max(where=long._col == c) for c in cols}
    )
    j = base.left_join(wide, ["as_of", "taxpayer_id"])
    return j.drop("as_of_right", "taxpayer_id_right")


def percentile_inputs(
    base: ir.Table, cols: list[str], keys: Sequence[str] = ("as_of", "taxpayer_id")
) -> ir.Table:
    """What :func:`industry_percentiles` ranks: ``keys``, ``as_of``, ``industry`` and each
    column rounded by the engine exactly as :func:`percentile` rounds it (so ties are the
    engine's ties)."""
    return base.select(
        *dict.fromkeys([*keys, "as_of", "industry"]),
        **{c: base[c].cast("float64").round(6) for c in cols},
    )


def _codes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Integer codes of a column's values (null its own code), and how many there are
    (Arrow's dictionary encoding: no Python object per value)."""
    whole = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    encoded = pc.dictionary_encode(whole, null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, max(len(encoded.dictionary), 1)


def _each_column(fn: Callable[[_K], _T], cols: Sequence[_K]) -> list[_T]:
    """``fn`` over ``cols`` on as many threads as cores (at most 4): numpy's sorts and
    takes release the GIL, so the columns of a step share the machine's cores."""
    workers = min(4, os.cpu_count() or 1, max(len(cols), 1))
    if workers == 1:
        return [fn(c) for c in cols]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, cols))


def _shares(group: np.ndarray, col: pa.ChunkedArray) -> pa.Array:
    """Per row, the share of its group's non-null values at or below its value (one sort):
    :func:`percentile` on values the engine has rounded. Null where the value is null; NaN,
    which engines order above every number, counts as a value tied with the other NaNs."""
    n = len(group)
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    values = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(valid)
    pct = np.full(n, np.nan)
    if len(rows):
        g, v = group[rows], values[rows]
        # by group, then value: two stable sorts (the group one a radix sort on small
        # integers) cost two thirds of a lexsort
        by_value = np.argsort(v, kind="stable")
        small = np.int16 if g.max(initial=0) < 2**15 else np.int64
        order = by_value[np.argsort(g[by_value].astype(small), kind="stable")]
        g, v = g[order], v[order]
        same_group = g[1:] == g[:-1]
        tied = same_group & ((v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1])))
        # the last position of each run of ties, and the first of each group
        run_end = np.flatnonzero(np.append(~tied, True))
        run = np.cumsum(np.insert(~tied, 0, True)) - 1
        start = np.flatnonzero(np.insert(~same_group, 0, True))
        grp = np.cumsum(np.insert(~same_group, 0, True)) - 1
        size = np.diff(np.append(start, len(g)))
        at_or_below = run_end[run] - start[grp] + 1
        pct[rows[order]] = at_or_below.astype(np.float64) / size[grp].astype(np.float64)
    return pa.array(pct, pa.float64(), mask=~valid)


def industry_percentiles(
    rounded: pa.Table, cols: list[str], keys: Sequence[str] = ("as_of", "taxpayer_id")
) -> pa.Table:
    """``keys`` and ``<col>__pct`` for every column of ``rounded`` (from
    :func:`percentile_inputs`, collected): the same numbers as :func:`add_percentiles`, the
    share of the (as_of, industry) group's non-null values at or below each value, computed
    with one sort per column instead of a window over the long form (the slowest step of
    the 1M build on DuckDB)."""
    as_of, _ = _codes(rounded.column("as_of"))
    industry, levels = _codes(rounded.column("industry"))
    group = as_of * levels + industry
    shares = _each_column(lambda c: _shares(group, rounded.column(c)), cols)
    out = {f"{c}__pct": v for c, v in zip(cols, shares, strict=True)}
    return pa.table({**{k: rounded.column(k) for k in keys}, **out})


def _rank_groups(base: ir.Table, ranks: Sequence[Rank]) -> tuple[dict[str, ir.Value], list[str]]:
    """The distinct group expressions of ``ranks`` as ``_g<i>`` columns, and each rank's."""
    groups: dict[str, ir.Value] = {}
    names: list[str] = []
    for r in ranks:
        g = r.group(base)
        name = next((k for k, v in groups.items() if v.equals(g)), f"_g{len(groups)}")
        groups.setdefault(name, g)
        names.append(name)
    return groups, names


def add_ranks(base: ir.Table, ranks: Sequence[Rank]) -> ir.Table:
    """``base`` with each :class:`Rank`'s percentile (and group size) as window functions:
    the definition, what engines other than DuckDB run."""
    cols: dict[str, ir.Value] = {}
    for r in ranks:
        grp = [base.as_of, r.group(base)]
        cols[r.out] = percentile(base[r.column].cast("float64"), grp)
        if r.count is not None:
            cols[r.count] = base.taxpayer_id.count().over(group_by=grp)
    return base.mutate(**cols)


def rank_inputs(
    base: ir.Table, ranks: Sequence[Rank], keys: Sequence[str]
) -> tuple[ir.Table, list[str]]:
    """What :func:`group_ranks` ranks: ``keys``, ``as_of``, the distinct groups (``_g<i>``)
    and each rank's column rounded by the engine as :func:`percentile` rounds it (``_v<i>``:
    ties are the engine's ties); and the group column of each rank."""
    groups, names = _rank_groups(base, ranks)
    table = base.select(
        *dict.fromkeys([*keys, "as_of"]),
        **groups,
        **{f"_v{i}": base[r.column].cast("float64").round(6) for i, r in enumerate(ranks)},
    )
    return table, names


def group_ranks(
    inputs: pa.Table, ranks: Sequence[Rank], keys: Sequence[str], group_of: Sequence[str]
) -> pa.Table:
    """``keys`` and each rank's ``out`` (and ``count``) from :func:`rank_inputs`, collected:
    the numbers of :func:`add_ranks`, one sort per rank."""
    as_of, _ = _codes(inputs.column("as_of"))
    codes = {g: _codes(inputs.column(g)) for g in dict.fromkeys(group_of)}
    groups = {g: as_of * levels + code for g, (code, levels) in codes.items()}

    def rank(i: int) -> pa.Array:
        return _shares(groups[group_of[i]], inputs.column(f"_v{i}"))

    shares = _each_column(rank, range(len(ranks)))
    out: dict[str, pa.Array] = {}
    for i, r in enumerate(ranks):
        out[r.out] = shares[i]
        if r.count is not None:
            group = groups[group_of[i]]
            out[r.count] = pa.array(np.bincount(group)[group].astype(np.int64))
    return pa.table({**{k: inputs.column(k) for k in keys}, **out})


def add_benchmarks(
    base: ir.Table, benchmarks: Sequence[Benchmark], cfg: IndicatorConfig
) -> ir.Table:
    """Join the benchmarks whose column is present (quantiles within (as_of, industry,
    taxpayer type)) onto ``base``: general and small-scale taxpayers are taxed differently
    (credit-invoice VAT vs a flat levy), so each is compared with its own kind."""
    aggs: dict[str, ir.Value] = {}
    for bm in benchmarks:
        if bm.column not in base.columns or bm.out in aggs:
            continue
        q = bm.quantile(cfg)
        col = base[bm.column]
        aggs[bm.out] = col.median() if q == 0.5 else col.quantile(q)
    if not aggs:
        return base
    keys = ["as_of", "industry", "taxpayer_type"]
    med = base.group_by(keys).aggregate(**aggs)
    j = base.left_join(med, keys)
    return j.drop("as_of_right", "industry_right", "taxpayer_type_right")


_SEP = "|"
#: peer groups, finest first: industry x taxpayer type x size band x county, without the
#: county, industry x taxpayer type
_LEVELS: dict[str, tuple[str, ...]] = {
    "fine": ("industry", "taxpayer_type", "size_band", "county_id"),
    "mid": ("industry", "taxpayer_type", "size_band"),
    "coarse": ("industry", "taxpayer_type"),
}
#: the peer percentiles: output column -> the column ranked
_PEER_PCT = {"peer_burden_pct": "vat_burden", "peer_sales_pct": "sales_month_avg"}


def _peer_group(level: str) -> Callable[[ir.Table], ir.Value]:
    def group(base: ir.Table) -> ir.Value:
        parts = [base[c].cast("string") if c == "size_band" else base[c] for c in _LEVELS[level]]
        key = parts[0]
        for part in parts[1:]:
            key = key + ibis.literal(_SEP) + part
        return key

    return group


def _peer_ranks() -> tuple[Rank, ...]:
    ranks = []
    for level in _LEVELS:
        for i, col in enumerate(_PEER_PCT.values()):
            count = f"_n_{level}" if i == 0 else None
            ranks.append(Rank(f"_p_{level}_{col}", col, _peer_group(level), count))
    return tuple(ranks)


#: every level's percentile of each peer column, and each level's group size
_PEER_RANKS = _peer_ranks()


def add_size_band(base: ir.Table, cfg: IndicatorConfig) -> ir.Table:
    """``size_band``: the decade (``peers.size_band_log10_width`` of log10) of monthly sales."""
    if "sales_month_avg" not in base.columns:
        return base
    width = cfg.peers.size_band_log10_width
    band = ((base.sales_month_avg.fill_null(0.0) + 1.0).log10() / width).floor().cast("int64")
    return base.mutate(size_band=band)


def add_peer_columns(base: ir.Table, cfg: IndicatorConfig) -> ir.Table:
    """Peer-group percentiles (the finest group with at least ``peers.min_group`` taxpayers,
    from the ranks of every level) and the fixed-quota peer ratio."""
    min_group = cfg.peers.min_group
    if "sales_month_avg" not in base.columns:
        return base
    levels = {
        name: ibis.ifelse(
            base._n_fine >= min_group,
            base[f"_p_fine_{col}"],
            ibis.ifelse(base._n_mid >= min_group, base[f"_p_mid_{col}"], base[f"_p_coarse_{col}"]),
        )
        for name, col in _PEER_PCT.items()
    }
    ranked = [r.out for r in _PEER_RANKS] + [r.count for r in _PEER_RANKS if r.count]
    base = base.mutate(**levels).drop(*ranked)
    # fixed-quota taxpayers vs self-assessed peers (industry x county, else industry)
    sa = base.filter(base.collection_method == "self_assessed")
    by_county = sa.group_by(["as_of", "industry", "county_id"]).aggregate(
        _q_med_c=sa.sales_month_avg.median(), _q_n_c=sa.taxpayer_id.count()
    )
    has_inv = "sales_to_purchases" in base.columns and "inv_in_amount_12" in base.columns
    ind_aggs = {"_q_med_i": sa.sales_month_avg.median()}
    if has_inv:
        ind_aggs["_q_s2p_i"] = sa.sales_to_purchases.median()
    by_ind = sa.group_by(["as_of", "industry"]).aggregate(**ind_aggs)
    base = base.left_join(by_county, ["as_of", "industry", "county_id"]).drop(
        "as_of_right", "industry_right", "county_id_right"
    )
    base = base.left_join(by_ind, ["as_of", "industry"]).drop("as_of_right", "industry_right")
    peer = ibis.ifelse(base._q_n_c >= 5, base._q_med_c, base._q_med_i)
    drop = ["_q_med_c", "_q_n_c", "_q_med_i"]
    if has_inv:
        # a quota shop's purchases at its self-assessed peers' sales-to-purchases ratio: what
        # a peer of its size sells (size from its invoices, not from its own quota)
        implied = ibis.ifelse(
            base.inv_in_amount_12 > 0,
            base.inv_in_amount_12 / 12.0 * base._q_s2p_i,
            ibis.null("float64"),
        )
        peer = implied.fill_null(peer)
        drop.append("_q_s2p_i")
    ratio = ibis.ifelse(
        base.collection_method == "fixed_quota",
        safe_div(base.sales_month_avg, peer),
        ibis.null("float64"),
    )
    return base.mutate(quota_peer_ratio=ratio).drop(*drop)


_G = "peers"

INDICATORS = [
    Indicator(
        id="peer_burden",
        name_zh="同行业同规模同地区税负率排名偏低",
        name_en="VAT burden low among same-industry, same-size, same-county peers",
        tables=("vat_returns",),
        compute=lambda b, c: b.peer_burden_pct,
        direction="low",
        basis=(
            "DOMAIN: peer comparison, same industry, same size, same region; fires in the "
            "lowest 5% of the peer group (population quantile 0.05)."
        ),
        fires=lambda b, v, c: (v <= c.threshold("peer_burden")) & (b.sales_12 > 0),
        measure="notice",
        pct=False,
        unit="percentile",
        group=_G,
        guide_zh="税负处于同行业、同规模、同地区纳税人的最低5%:选取可比企业对照毛利率、"
        "单位能耗、人均销售额,要求企业说明差异。",
        guide_en="Burden in the lowest 5% of peers of the same industry, size band and county: "
        "pick comparable firms, compare gross margin, energy per unit and sales per employee, "
        "and ask the firm to explain the difference.",
    ),
    Indicator(
        id="peer_sales",
        name_zh="同行业同地区销售规模排名",
        name_en="Declared sales rank among same-industry, same-county peers",
        tables=("vat_returns",),
        compute=lambda b, c: b.peer_sales_pct,
        direction="low",
        basis=(
            "DOMAIN: peer comparison, same industry and region; fires in the lowest 5% of the "
            "peer group (population quantile 0.05) after a year of trading."
        ),
        fires=lambda b, v, c: (v <= c.threshold("peer_sales")) & (b.age_months >= 12),
        measure="outreach",
        pct=False,
        unit="percentile",
        group=_G,
        guide_zh="成立一年以上、申报销售额处于同类最低5%:实地核实经营规模(场地、设备、人员),"
        "与水电、社保等第三方数据印证。",
        guide_en="Trading over a year yet in the lowest 5% of declared sales among peers: check "
        "the premises, equipment and staff on site and corroborate with power and social "
        "insurance data.",
    ),
    Indicator(
        id="fixed_quota_vs_peers",
        name_zh="定期定额户定额低于查账征收同行",
        name_en="Fixed quota below self-assessed peers' sales",
        tables=("vat_returns",),
        compute=lambda b, c: b.quota_peer_ratio,
        direction="low",
        pct=False,
        basis=(
            "DOMAIN: taxpayers paying a fixed quota vs self-assessed peers; the peer is sized "
            "by the shop's own purchases (at the self-assessed peers' sales-to-purchases "
            "ratio), not by the median firm, which a quota shop is smaller than by nature; "
            "fires under half of it."
        ),
        measure="guidance",
        unit="ratio",
        group=_G,
        guide_zh="定额不足按购进发票和查账征收同行购销比测算的销售额的一半:开展定额核定调查,"
        "核实经营面积、设备、雇员和实际营业额,调整定额或督促建账建制。",
        guide_en="Quota under half the sales its purchases imply at self-assessed peers' "
        "sales-to-purchases ratio: survey the "
        "business (floor area, equipment, staff, real turnover), raise the quota or move the "
        "business to book-keeping.",
    ),
]

FAMILY = Family(
    name="peers",
    order=60,
    transforms=(
        Transform("size_band", add_size_band, ranks=_PEER_RANKS),
        Transform("peer_columns", add_peer_columns),
    ),
    indicators=tuple(INDICATORS),
)
