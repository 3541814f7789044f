"""Indicators from third-party data: electricity (power company) and social insurance.

Month-granular sources (known at period end), over k=1..12:

``electricity``       ``kwh_month_avg``, ``elec_charge_12``, ``elec_months_12``.
``social_insurance``  ``headcount_avg``, ``wages_month_avg``, ``soc_months_12``.

Derived on the base (scale-free, compared within the industry):
``kwh_per_sales`` (kWh per yuan of monthly sales), ``wages_per_sales`` (yuan of wages per yuan
of sales), ``sales_per_head`` (yuan of monthly sales per insured employee). A taxpayer with
power use or wages but no declared sales gets the capped value ``5.0`` for the log ratio: the
strongest evidence there is.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ._base import Benchmark, Context, Derived, Family, Indicator, Source, log_ratio, safe_div

__all__ = ["FAMILY"]

_CAP = 5.0


def electricity_source(ctx: Context) -> ir.Table:
    w = ctx.window("electricity", 12)
    a = w.group_by(["as_of", "taxpayer_id"]).aggregate(
        _kwh=w.kwh.sum(),
        elec_charge_12=w.charge.sum(),
        elec_months_12=w.k.count(),  # key: one row a month
    )
    return a.mutate(kwh_month_avg=safe_div(a._kwh, a.elec_months_12)).drop("_kwh")


def social_source(ctx: Context) -> ir.Table:
    w = ctx.window("social_insurance", 12)
    a = w.group_by(["as_of", "taxpayer_id"]).aggregate(
        headcount_avg=w.headcount.mean(),
        _wages=w.wages.sum(),
        soc_months_12=w.k.count(),
        # for the network source's no-staff signal (not joined onto the base)
        _headcount_avg_3=w.headcount.mean(where=w.k <= 3),
    )
    return a.mutate(wages_month_avg=safe_div(a._wages, a.soc_months_12)).drop("_wages")


SOURCES = [
    Source("electricity", ("electricity",), electricity_source, granularity="month"),
    Source(
        "social_insurance",
        ("social_insurance",),
        social_source,
        granularity="month",
        internal=("_headcount_avg_3",),
    ),
]

DERIVED = [
    Derived(
        "kwh_per_sales",
        ("kwh_month_avg", "sales_month_avg"),
        lambda b, c: safe_div(b.kwh_month_avg, b.sales_month_avg),
    ),
    Derived(
        "wages_per_sales",
        ("wages_month_avg", "sales_month_avg"),
        lambda b, c: safe_div(b.wages_month_avg, b.sales_month_avg),
    ),
    Derived(
        "sales_per_head",
        ("headcount_avg", "sales_month_avg"),
        lambda b, c: safe_div(b.sales_month_avg, b.headcount_avg),
    ),
]


def _vs_industry(b: ir.Table, evidence: str, ratio: str) -> ir.FloatingValue:
    """ln(ratio / industry median); capped high when there is evidence but no sales."""
    no_sales = (b[evidence] > 0) & (b.sales_month_avg.fill_null(0.0) <= 0)
    return ibis.ifelse(no_sales, _CAP, log_ratio(b[ratio], b[f"ind_{ratio}_med"]))


_G = "third_party"

INDICATORS = [
    Indicator(
        id="electricity_vs_sales",
        name_zh="用电量与销售额不匹配",
        name_en="Electricity use out of line with declared sales",
        tables=("electricity", "vat_returns"),
        compute=lambda b, c: _vs_industry(b, "kwh_month_avg", "kwh_per_sales"),
        direction="high",
        basis=(
            "DOMAIN: power consumption method (output = electricity / kWh per unit); fires at "
            "twice the industry's kWh per yuan of sales (ln 2)."
        ),
        measure="assessment",
        unit="log ratio",
        group=_G,
        guide_zh="单位销售额耗电量超过同行业两倍:按动力实耗法测算应有产量和销售额,调取电费单、"
        "生产记录和出入库单,核实是否有账外销售。",
        guide_en="Electricity per yuan of sales over twice the industry's: estimate output and "
        "sales by the power-consumption method, request power bills, production logs and "
        "warehouse records, and look for off-book sales.",
    ),
    Indicator(
        id="wages_vs_sales",
        name_zh="工资支出与销售额不匹配",
        name_en="Wages out of line with declared sales",
        tables=("social_insurance", "vat_returns"),
        compute=lambda b, c: _vs_industry(b, "wages_month_avg", "wages_per_sales"),
        direction="high",
        basis=(
            "DOMAIN: social-insurance headcount and wages as third-party data (coal: wages "
            "about 23 yuan a tonne imply output); fires at twice the industry's wages per yuan "
            "of sales (ln 2)."
        ),
        measure="notice",
        unit="log ratio",
        group=_G,
        guide_zh="单位销售额的社保工资超过同行业两倍:核实人员规模与产量,按单位产品工资定额"
        "测算产量,检查是否少计收入。",
        guide_en="Insured wages per yuan of sales over twice the industry's: check staff against "
        "output, estimate output from the wage norm per unit, and test for understated income.",
    ),
    Indicator(
        id="sales_per_head",
        name_zh="人均销售额低于同行业",
        name_en="Sales per employee below the industry",
        tables=("social_insurance", "vat_returns"),
        compute=lambda b, c: ibis.ifelse(
            (b.headcount_avg > 0) & (b.sales_month_avg.fill_null(0.0) <= 0),
            -_CAP,
            log_ratio(b.sales_per_head, b.ind_sales_per_head_med),
        ),
        direction="low",
        basis=(
            "DOMAIN: peer comparison with social-insurance headcount; fires at half the "
            "industry's sales per insured employee (ln 0.5)."
        ),
        measure="notice",
        unit="log ratio",
        group=_G,
        guide_zh="人均月销售额不足同行业一半:比对社保人数、工资与产能,了解是否存在账外经营。",
        guide_en="Monthly sales per insured employee under half the industry's: compare staff, "
        "wages and capacity, and ask whether part of the trade is off the books.",
    ),
]

FAMILY = Family(
    name="third_party",
    order=30,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    benchmarks=(
        Benchmark("kwh_per_sales"),
        Benchmark("wages_per_sales"),
        Benchmark("sales_per_head"),
    ),
    indicators=tuple(INDICATORS),
)
