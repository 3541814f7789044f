"""Indicators from registry events: equity transfers (工商 股权变更), property (房产网签) and
land (土地登记), matched against the declarations they should have caused.

Day-granular: an event counts once its ``changed_on``/``event_on`` is on or before the as-of
date; it is *judged* only after ``grace_months`` (its declarations are then due), and a
matching declaration must itself be known (filed) by the as-of date.

``registrations``  ``equity_transfers_24``, ``legal_rep_changes_12``,
                   ``address_changes_12``, ``capital_changes_12``, ``scope_changes_12``.
``equity_tax``     ``equity_unmatched_24``: priced equity transfers in the last 24 months
                   lacking either trace of their taxes: a stamp-duty return in the transfer
                   month to 3 months after carrying at least 90% of the duty on the price
                   (0.05%; checked where ``local_tax_returns`` is present), or income tax
                   (CIT payable > 0) in the transfer quarter or the next. A transfer whose
                   stamp duty was paid but whose income tax was not counts.
``property``       ``property_events_24``, ``area_held_m2`` (purchased minus sold area, all
                   history), ``area_held_12m_m2`` (the same with purchases at least 12 months
                   old: land held a whole year of land-use tax), ``property_value_held``.
``property_tax``   ``property_unmatched_24``: property sales without a stamp-duty return within
                   3 months carrying 90% of the duty on the price (0.05%), and properties bought or leased out 12 to 24 months ago, not sold
                   since, with no property tax paid in the last 12 months.
Derived: ``land_tax_per_m2`` = land-use tax paid in 12 months / area held for those 12 months
(land bought during the window owes only part of the year, and none in its first month).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ._base import Benchmark, Context, Derived, Family, Indicator, Source, month_diff, safe_div

__all__ = ["FAMILY"]

_KEY = ["as_of", "taxpayer_id"]
#: stamp duty on a transfer contract (产权转移书据): 0.05% of the price
STAMP_RATE = 0.0005


def registrations_source(ctx: Context) -> ir.Table:
    r = ctx.since("registrations", 24, "changed_on")
    r12 = month_diff(r.m0, r.changed_on) < 12
    return r.group_by(_KEY).aggregate(
        equity_transfers_24=r.change_type.count(where=r.change_type == "equity_transfer"),
        legal_rep_changes_12=r.change_type.count(where=r12 & (r.change_type == "legal_rep")),
        address_changes_12=r.change_type.count(where=r12 & (r.change_type == "address")),
        capital_changes_12=r.change_type.count(where=r12 & (r.change_type == "capital")),
        scope_changes_12=r.change_type.count(where=r12 & (r.change_type == "scope")),
    )


def _stamp(ctx: Context) -> ir.Table | None:
    if not ctx.has("local_tax_returns"):
        return None
    s = ctx.window("local_tax_returns", 27)
    s = s.filter((s.tax_type == "stamp") & (s.tax_payable > 0))
    return s.select("as_of", "taxpayer_id", s_period=s.period, s_tax=s.tax_payable)


def equity_tax_source(ctx: Context) -> ir.Table:
    r = ctx.since("registrations", 24, "changed_on")
    t = r.filter(
        (r.change_type == "equity_transfer")
        & (r.amount.fill_null(0.0) > 0)
        & (month_diff(r.m0, r.changed_on) >= ctx.config.windows.grace_months)
    ).select("as_of", "taxpayer_id", "changed_on", "amount", _m=r.changed_on.truncate("M"))
    keys = ["as_of", "taxpayer_id", "changed_on"]
    # income tax declared in the transfer quarter or the next (the gain is taxable income)
    c = ctx.window("cit_returns", 27)
    c = c.filter(c.tax_payable > 0).select("as_of", "taxpayer_id", c_period=c.period)
    cm = t.join(c, ["as_of", "taxpayer_id"])
    cm = cm.filter(month_diff(cm.c_period, cm._m.truncate("Q")).isin([0, 3]))
    matched = cm.select(*keys).distinct()
    stamp = _stamp(ctx)
    if stamp is not None:
        # and the transfer contract's stamp duty (产权转移书据): both must be there
        sm = t.join(stamp, ["as_of", "taxpayer_id"])
        d = month_diff(sm.s_period, sm._m)
        enough = sm.s_tax >= STAMP_RATE * 0.9 * sm.amount
        stamped = sm.filter((d >= 0) & (d <= 3) & enough).select(*keys).distinct()
        matched = matched.semi_join(stamped, keys)
    un = t.anti_join(matched, keys)
    return un.group_by(_KEY).aggregate(equity_unmatched_24=un.changed_on.count().cast("float64"))


def property_source(ctx: Context) -> ir.Table:
    p = ctx.known_all("property")
    recent = month_diff(p.m0, p.event_on) < 24
    a = p.group_by(_KEY).aggregate(
        property_events_24=p.event.count(where=recent),
        _bought=p.area_m2.sum(where=p.event == "purchase"),
        _bought_12=p.area_m2.sum(
            where=(p.event == "purchase") & ~(month_diff(p.m0, p.event_on) < 12)
        ),
        _sold=p.area_m2.sum(where=p.event == "sale"),
        _vb=p.value.sum(where=p.event == "purchase"),
        _vs=p.value.sum(where=p.event == "sale"),
    )
    return a.select(
        "as_of",
        "taxpayer_id",
        "property_events_24",
        area_held_m2=ibis.greatest(a._bought.fill_null(0.0) - a._sold.fill_null(0.0), 0.0),
        area_held_12m_m2=ibis.greatest(a._bought_12.fill_null(0.0) - a._sold.fill_null(0.0), 0.0),
        property_value_held=ibis.greatest(a._vb.fill_null(0.0) - a._vs.fill_null(0.0), 0.0),
    )


def property_tax_source(ctx: Context) -> ir.Table:
    p = ctx.since("property", 24, "event_on")
    age = month_diff(p.m0, p.event_on)
    ev = p.select(
        "as_of", "taxpayer_id", "event_on", "event", "value", _age=age, _m=p.event_on.truncate("M")
    )
    # sales without stamp duty within 3 months
    sales = ev.filter((ev.event == "sale") & (ev._age >= ctx.config.windows.grace_months))
    stamp = _stamp(ctx)
    assert stamp is not None  # the source requires local_tax_returns
    sm = sales.join(stamp, ["as_of", "taxpayer_id"])
    d = month_diff(sm.s_period, sm._m)
    enough = sm.s_tax >= STAMP_RATE * 0.9 * sm.value
    sm = sm.filter((d >= 0) & (d <= 3) & enough).select("as_of", "taxpayer_id", "event_on")
    un_sales = sales.anti_join(sm, ["as_of", "taxpayer_id", "event_on"])
    un_sales = un_sales.group_by(_KEY).aggregate(_n1=un_sales.event_on.count())
    # holdings 12-24 months old, not sold since, with no property tax in the last 12 months
    held = ev.filter(ev.event.isin(["purchase", "lease_out"]) & (ev._age >= 12))
    last_sale = (
        ev.filter(ev.event == "sale").group_by(_KEY).aggregate(_last_sale=ibis._.event_on.max())
    )
    held = held.left_join(last_sale, _KEY).drop("as_of_right", "taxpayer_id_right")
    held = held.filter(held._last_sale.isnull() | (held._last_sale < held.event_on))
    lt = ctx.window("local_tax_returns", 12)
    paid = (
        lt.filter((lt.tax_type == "property") & (lt.tax_payable > 0))
        .select("as_of", "taxpayer_id")
        .distinct()
    )
    un_held = held.anti_join(paid, _KEY)
    un_held = un_held.group_by(_KEY).aggregate(_n2=un_held.event_on.count())
    keys = ev.select("as_of", "taxpayer_id").distinct()
    out = keys.left_join(un_sales, _KEY).drop("as_of_right", "taxpayer_id_right")
    out = out.left_join(un_held, _KEY).drop("as_of_right", "taxpayer_id_right")
    return out.select(
        "as_of",
        "taxpayer_id",
        property_unmatched_24=(out._n1.fill_null(0) + out._n2.fill_null(0)).cast("float64"),
    )


SOURCES = [
    Source(
        "registrations",
        ("registrations",),
        registrations_source,
        zero_fill=(
            "equity_transfers_24",
            "legal_rep_changes_12",
            "address_changes_12",
            "capital_changes_12",
            "scope_changes_12",
        ),
    ),
    Source(
        "equity_tax",
        ("registrations", "cit_returns"),
        equity_tax_source,
        zero_fill=("equity_unmatched_24",),
    ),
    Source(
        "property",
        ("property",),
        property_source,
        zero_fill=("property_events_24", "area_held_m2", "area_held_12m_m2", "property_value_held"),
    ),
    Source(
        "property_tax",
        ("property", "local_tax_returns"),
        property_tax_source,
        zero_fill=("property_unmatched_24",),
    ),
]

DERIVED = [
    Derived(
        "land_tax_per_m2",
        ("area_held_12m_m2", "land_use_tax_12"),
        lambda b, c: ibis.ifelse(
            b.area_held_12m_m2 > 0,
            safe_div(b.land_use_tax_12.fill_null(0.0), b.area_held_12m_m2),
            ibis.null("float64"),
        ),
    ),
]

_G = "registry_events"

INDICATORS = [
    Indicator(
        id="equity_transfer_no_tax",
        name_zh="股权转让未申报纳税",
        name_en="Equity transfer without tax declared",
        tables=("registrations", "cit_returns"),
        compute=lambda b, c: b.equity_unmatched_24.fill_null(0.0),
        direction="high",
        basis=(
            "DOMAIN: equity transfer (股权转让): the registry shows a transfer with no income tax "
            "declared; a priced transfer lacking either its stamp duty or its income tax "
            "counts."
        ),
        measure="assessment",
        pct=False,
        unit="transfers",
        group=_G,
        guide_zh="工商登记显示有作价股权转让,但未见印花税及所得税申报:调取股权转让协议、"
        "资产评估报告和付款凭证,核定转让收入与计税依据,追缴印花税、企业所得税或代扣个人所得税。",
        guide_en="The registry shows a priced equity transfer with no stamp duty or income tax "
        "declared: request the transfer agreement, valuation report and payment records, "
        "establish the proceeds and tax base, and collect stamp duty and income tax (or the "
        "individual income tax that should have been withheld).",
    ),
    Indicator(
        id="property_no_declaration",
        name_zh="房产交易、持有未申报相关税收",
        name_en="Property sold or held without the matching declarations",
        tables=("property", "local_tax_returns"),
        compute=lambda b, c: b.property_unmatched_24,
        direction="high",
        basis=(
            "DOMAIN: property contracts (房产网签) and land registry: property sold or held with no"
            " matching declaration; one unmatched event fires."
        ),
        measure="notice",
        pct=False,
        unit="events",
        group=_G,
        guide_zh="房产网签或登记显示出售、购入或出租房产,但未申报印花税或房产税:核对房产证、"
        "租赁合同和交易合同,按原值或租金计征房产税,补缴印花税及转让相关税收。",
        guide_en="Property contracts show a sale, purchase or lease with no stamp duty or "
        "property tax declared: check title deeds, lease and sale contracts; levy property tax "
        "on cost or rent and collect stamp duty and the taxes on the sale.",
    ),
    Indicator(
        id="land_use_tax",
        name_zh="土地面积与城镇土地使用税不匹配",
        name_en="Land held vs land-use tax paid",
        tables=("property", "local_tax_returns"),
        compute=lambda b, c: ibis.ifelse(
            b.area_held_12m_m2 > 0,
            safe_div(b.land_tax_per_m2, b.ind_land_tax_per_m2_med.nullif(0.0)).fill_null(
                ibis.ifelse(b.land_tax_per_m2 <= 0, 0.0, ibis.null("float64"))
            ),
            ibis.null("float64"),
        ),
        direction="low",
        pct=False,
        basis=(
            "DOMAIN: land area held vs land-use tax paid; fires under half the industry's "
            "median tax per square metre."
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="持有土地、房产面积但城镇土地使用税明显偏低:与土地登记、房产税源信息比对,"
        "必要时实地测量面积,确定土地等级和计税面积后补征。",
        guide_en="Land or buildings held but land-use tax far below peers per square metre: "
        "compare with the land registry and property tax-source records, measure on site if "
        "needed, set grade and taxable area, and collect the shortfall.",
    ),
]

FAMILY = Family(
    name="registry_events",
    order=40,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    benchmarks=(Benchmark("land_tax_per_m2"),),
    indicators=tuple(INDICATORS),
)
