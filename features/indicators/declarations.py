"""Indicators from the taxpayer's own declarations: VAT, corporate income tax, local taxes.

Sources (keyed ``(as_of, taxpayer_id)``; money in yuan; windows count months ``k`` before the
as-of month, over returns *filed* on or before the as-of date):

``vat``   ``vat_months_12`` returns filed in k=1..12; ``sales_12``, ``vat_payable_12``,
          ``output_tax_12``, ``input_tax_12``; ``sales_month_avg`` (yuan/month over filed
          months); ``vat_burden`` (payable / sales); ``input_output_tax_ratio``;
          ``sales_change`` / ``input_tax_change`` (ln of k=1..6 over k=7..12);
          ``sales_yoy`` (ln of mean monthly sales k=1..3 over the same quarter a year earlier,
          k=13..15); ``zero_negative_share``; ``zero_negative_streak`` and
          ``low_declaration_streak`` (filed months, most recent first, before the last month
          with payable > 0 / >= 50 yuan; counted back 15 months);
          ``late_days_avg`` (days filed after the 15th of the next month, approx.);
          ``sales_cmp`` / ``input_tax_cmp`` (k=2..13, the window compared with invoices);
          ``tax_q0`` / ``tax_q1`` / ``tax_qly`` (mean monthly payable in k=1..3, 4..6, 13..15,
          null with fewer than 2 returns filed).
``cit``   ``cit_revenue_4q``, ``cit_profit_4q``, ``cit_tax_4q``, ``profit_margin``,
          ``cit_burden``, ``loss_quarter_streak`` (within 27 months), ``loss_share_8q``,
          ``vat_cit_revenue_log`` (ln VAT sales / CIT revenue on quarters both cover).
``local`` ``surcharge_12`` (urban construction + education), ``property_tax_12``,
          ``land_use_tax_12``, ``stamp_tax_12``.
Derived: ``missing_returns_12`` (months k=2..12 of the taxpayer's life with no VAT return
filed); ``surcharge_rate_paid`` (surcharges / positive VAT paid, for taxpayers that pay
both); ``surcharge_coverage`` = surcharges / (the expected rate x positive VAT paid,
``vat_paid_pos_12``), the expected rate being the industry's median ``surcharge_rate_paid``
(the local rates, whatever they are: urban construction 7%, 5% or 1% by location, plus the
education surcharges), or ``declarations.surcharge_rate_fallback`` (7%) where nobody pays.

Norms read: ``tax_burden_warning``. Benchmarks: industry medians of ``vat_burden``,
``sales_yoy``, ``cit_burden``, ``profit_margin``, ``surcharge_rate_paid``, and the
quantile ``thresholds.vat_burden`` of ``vat_burden`` (``ind_vat_burden_low``: the
warning line where the industry has no norm).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ..config import IndicatorConfig
from ._base import (
    Benchmark,
    Context,
    Derived,
    Family,
    Indicator,
    Source,
    log_ratio,
    months_mask,
    rows_before,
    safe_div,
)

__all__ = ["FAMILY"]

_KEY = ["as_of", "taxpayer_id"]


def _null() -> ir.FloatingValue:
    return ibis.null("float64")


def vat_source(ctx: Context) -> ir.Table:
    low = ctx.config.declarations.low_declaration_yuan
    w = ctx.window("vat_returns", 15)
    r12 = w.k <= 12
    h1 = w.k <= 6
    h2 = (w.k > 6) & r12
    q0 = w.k <= 3
    qly = w.k >= 13
    late = ibis.greatest(w.filed_on.delta(w.period, unit="day") - 45, 0)
    a = w.group_by(_KEY).aggregate(
        vat_months_12=w.k.count(where=r12),
        _n_sq0=w.k.count(where=q0),
        _n_sqly=w.k.count(where=qly),
        vat_filed_2_12=w.k.count(where=(w.k >= 2) & r12),
        sales_12=w.sales.sum(where=r12),
        _sales_q0=w.sales.sum(where=q0),
        _sales_qly=w.sales.sum(where=qly),
        sales_cmp=w.sales.sum(where=(w.k >= 2) & (w.k <= 13)),
        input_tax_cmp=w.input_tax.sum(where=(w.k >= 2) & (w.k <= 13)),
        vat_payable_12=w.tax_payable.sum(where=r12),
        output_tax_12=w.output_tax.sum(where=r12),
        input_tax_12=w.input_tax.sum(where=r12),
        input_transferred_out_12=w.input_tax_transferred_out.sum(where=r12),
        _sales_h1=w.sales.sum(where=h1),
        _sales_h2=w.sales.sum(where=h2),
        _input_h1=w.input_tax.sum(where=h1),
        _input_h2=w.input_tax.sum(where=h2),
        _n_h1=w.k.count(where=h1),
        _n_h2=w.k.count(where=h2),
        zero_negative_months_12=w.k.count(where=r12 & (w.tax_payable <= 0)),
        # the streaks: filed months before the latest with payable > 0 / >= low
        _months=months_mask(w.k),
        _last_pos=w.k.min(where=w.tax_payable > 0),
        _last_ge=w.k.min(where=w.tax_payable >= low),
        late_days_avg=late.mean(where=r12),
        tax_q0=w.tax_payable.sum(where=w.k <= 3),
        tax_q1=w.tax_payable.sum(where=(w.k >= 4) & (w.k <= 6)),
        tax_qly=w.tax_payable.sum(where=(w.k >= 13) & (w.k <= 15)),
        _n_q0=w.k.count(where=w.k <= 3),
        _n_q1=w.k.count(where=(w.k >= 4) & (w.k <= 6)),
        _n_qly=w.k.count(where=(w.k >= 13) & (w.k <= 15)),
        latest_return_k=w.k.min(),
        vat_paid_pos_12=ibis.greatest(w.tax_payable, 0.0).sum(where=r12),
    )
    m12 = a.vat_months_12.nullif(0)
    return a.mutate(
        zero_negative_streak=rows_before(a._months, a._last_pos),
        low_declaration_streak=rows_before(a._months, a._last_ge),
        sales_month_avg=safe_div(a.sales_12, m12),
        log_sales_month=(safe_div(a.sales_12, m12) + 1.0).ln(),
        vat_burden=safe_div(a.vat_payable_12, a.sales_12),
        input_output_tax_ratio=safe_div(a.input_tax_12, a.output_tax_12),
        sales_change=log_ratio(safe_div(a._sales_h1, a._n_h1), safe_div(a._sales_h2, a._n_h2)),
        input_tax_change=log_ratio(safe_div(a._input_h1, a._n_h1), safe_div(a._input_h2, a._n_h2)),
        sales_yoy=log_ratio(safe_div(a._sales_q0, a._n_sq0), safe_div(a._sales_qly, a._n_sqly)),
        zero_negative_share=safe_div(a.zero_negative_months_12, m12),
        tax_q0=ibis.ifelse(a._n_q0 >= 2, safe_div(a.tax_q0, a._n_q0), _null()),
        tax_q1=ibis.ifelse(a._n_q1 >= 2, safe_div(a.tax_q1, a._n_q1), _null()),
        tax_qly=ibis.ifelse(a._n_qly >= 2, safe_div(a.tax_qly, a._n_qly), _null()),
    ).drop(
        "_months",
        "_last_pos",
        "_last_ge",
        "_sales_h1",
        "_sales_h2",
        "_input_h1",
        "_input_h2",
        "_n_h1",
        "_n_h2",
        "_n_q0",
        "_n_q1",
        "_n_qly",
        "_n_sq0",
        "_n_sqly",
        "_sales_q0",
        "_sales_qly",
    )


def cit_source(ctx: Context) -> ir.Table:
    w = ctx.window("cit_returns", 27)
    q4 = w.k <= 14
    a = w.group_by(_KEY).aggregate(
        cit_quarters_4q=w.k.count(where=q4),
        cit_revenue_4q=w.revenue.sum(where=q4),
        cit_cost_4q=w.cost.sum(where=q4),
        cit_profit_4q=w.profit.sum(where=q4),
        cit_tax_4q=w.tax_payable.sum(where=q4),
        _quarters=months_mask(w.k),
        _last_profit=w.k.min(where=w.profit >= 0),
        _loss_8=w.k.count(where=w.profit < 0),
        _n_8=w.k.count(),
    )
    a = a.mutate(
        profit_margin=safe_div(a.cit_profit_4q, a.cit_revenue_4q),
        cit_burden=safe_div(a.cit_tax_4q, a.cit_revenue_4q),
        loss_share_8q=safe_div(a._loss_8, a._n_8),
        loss_quarter_streak=rows_before(a._quarters, a._last_profit),
    ).drop("_loss_8", "_n_8", "_quarters", "_last_profit")
    # national vs local declarations: VAT sales vs CIT revenue on quarters both fully cover
    if ctx.has("vat_returns"):
        v = ctx.window("vat_returns", 15)
        vq = v.group_by([v.as_of, v.taxpayer_id, v.period.truncate("Q").name("quarter")]).aggregate(
            vsales=v.sales.sum(), vmonths=v.k.count()
        )
        c = w.filter(w.k <= 14)
        j = c.join(
            vq, [c.as_of == vq.as_of, c.taxpayer_id == vq.taxpayer_id, c.period == vq.quarter]
        )
        j = j.filter(j.vmonths == 3)
        m = j.group_by([c.as_of, c.taxpayer_id]).aggregate(_vs=j.vsales.sum(), _cr=j.revenue.sum())
        m = m.mutate(vat_cit_revenue_log=log_ratio(m._vs, m._cr)).drop("_vs", "_cr")
        a = a.left_join(m, _KEY).drop("as_of_right", "taxpayer_id_right")
    else:
        a = a.mutate(vat_cit_revenue_log=_null())
    return a


def local_source(ctx: Context) -> ir.Table:
    w = ctx.window("local_tax_returns", 12)
    sur = w.tax_type.isin(["urban_construction", "education_surcharge"])
    a = w.group_by(_KEY).aggregate(
        surcharge_12=w.tax_payable.sum(where=sur),
        property_tax_12=w.tax_payable.sum(where=w.tax_type == "property"),
        land_use_tax_12=w.tax_payable.sum(where=w.tax_type == "land_use"),
        stamp_tax_12=w.tax_payable.sum(where=w.tax_type == "stamp"),
    )
    return a.mutate(
        surcharge_12=a.surcharge_12.fill_null(0.0),
        property_tax_12=a.property_tax_12.fill_null(0.0),
        land_use_tax_12=a.land_use_tax_12.fill_null(0.0),
        stamp_tax_12=a.stamp_tax_12.fill_null(0.0),
    )


def _missing_returns(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    """Returns due in k=2..12 (months the taxpayer existed, the last one not yet due) not
    filed."""
    expected = ibis.greatest(ibis.least(b.age_months, 12.0) - 1.0, 0.0)
    return ibis.greatest(expected - b.vat_filed_2_12.fill_null(0).cast("float64"), 0.0)


def _surcharge_rate_paid(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    return ibis.ifelse(
        (b.vat_paid_pos_12 > 100.0) & (b.surcharge_12 > 0),
        safe_div(b.surcharge_12, b.vat_paid_pos_12),
        _null(),
    )


def _surcharge_coverage(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    """Surcharges paid / (expected rate x positive VAT paid), over k=1..12; null when less
    than 100 yuan of VAT was paid."""
    rate = b.ind_surcharge_rate_paid_med.fill_null(cfg.declarations.surcharge_rate_fallback)
    return ibis.ifelse(
        b.vat_paid_pos_12 > 100.0,
        safe_div(b.surcharge_12.fill_null(0.0), b.vat_paid_pos_12 * rate),
        _null(),
    )


DERIVED = [
    Derived("missing_returns_12", ("vat_filed_2_12", "age_months"), _missing_returns),
    Derived("surcharge_rate_paid", ("vat_paid_pos_12", "surcharge_12"), _surcharge_rate_paid),
    Derived(
        "surcharge_coverage",
        ("vat_paid_pos_12", "surcharge_12", "ind_surcharge_rate_paid_med"),
        _surcharge_coverage,
        stage=2,
    ),
]

BENCHMARKS = (
    Benchmark("vat_burden"),
    Benchmark("vat_burden", q="thresholds.vat_burden", name="ind_vat_burden_low"),
    Benchmark("sales_yoy"),
    Benchmark("cit_burden"),
    Benchmark("profit_margin"),
    Benchmark("surcharge_rate_paid"),
)


SOURCES = [
    Source("vat", ("vat_returns",), vat_source, granularity="half_month"),
    Source("cit", ("cit_returns",), cit_source, granularity="half_month"),
    Source(
        "local",
        ("local_tax_returns",),
        local_source,
        granularity="half_month",
        zero_fill=(
            "surcharge_12",
            "property_tax_12",
            "land_use_tax_12",
            "stamp_tax_12",
        ),
    ),
]


# -- indicators -----------------------------------------------------------------------------


def _burden_fires(base: ir.Table, value: ir.Value, cfg: IndicatorConfig) -> ir.BooleanValue:
    """Below the industry warning line: the `tax_burden_warning` norm where the industry has
    one, else the industry's quantile ``thresholds.vat_burden`` of the burden. General taxpayers
    only: the warning line is a credit-invoice VAT norm (small-scale ones pay a flat levy)."""
    line = base.norm_tax_burden_warning.fill_null(base.ind_vat_burden_low)
    return (value < line) & (base.sales_12 > 0) & (base.taxpayer_type == "general")


def _low_declaration_fires(
    base: ir.Table, value: ir.Value, cfg: IndicatorConfig
) -> ir.BooleanValue:
    """The documents' screen: 6 months in a row under 50 yuan (zero declarers included).
    ``declarations.low_declaration_token_only``: only taxpayers without a zero-negative streak
    (the two screens then never fire for the same months; the old-rules baseline changes)."""
    cond = value >= cfg.threshold("low_declaration_streak")
    if cfg.declarations.low_declaration_token_only:
        cond = cond & (base.zero_negative_streak < cfg.threshold("zero_negative_streak"))
    return cond


def _three_period(base: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    """Current quarter's VAT / expected, expected = mean of the previous quarter and the same
    quarter last year scaled by the industry's year-on-year sales change."""
    growth = base.ind_sales_yoy_med.fill_null(0.0).exp()
    ly = base.tax_qly * growth
    expected = ibis.ifelse(
        base.tax_q1.notnull() & ly.notnull(),
        (base.tax_q1 + ly) / 2.0,
        base.tax_q1.fill_null(ly),
    )
    return ibis.ifelse(expected > 50.0, safe_div(base.tax_q0, expected), _null())


_G = "declarations"

INDICATORS = [
    Indicator(
        id="vat_burden",
        name_zh="增值税税负率低于行业预警值",
        name_en="VAT burden below the industry warning line",
        tables=("vat_returns",),
        compute=lambda b, c: b.vat_burden,
        direction="low",
        basis=(
            "DOMAIN: tax burden below the industry warning line (beer maker 4.87% vs industry "
            "4.99%); the line is the industry's tax_burden_warning norm, else population "
            "quantile 0.1 of the industry's general taxpayers' burden."
        ),
        fires=_burden_fires,
        threshold_unit="industry quantile, where no tax_burden_warning norm",
        measure="assessment",
        classic=True,
        unit="ratio",
        group=_G,
        guide_zh="核对近12个月申报销售额与应纳税额,与行业平均税负及预警值比较;调取账簿、"
        "出入库记录和银行流水,检查是否存在账外销售、少计收入、多抵进项;必要时约谈企业负责人,"
        "要求说明税负偏低的原因并举证。",
        guide_en="Compare the last 12 months' declared sales and VAT payable with the industry "
        "average burden and warning line; request the ledgers, stock movements and bank "
        "statements to look for off-book sales, understated revenue or over-claimed input "
        "tax; interview the manager and ask for evidence explaining the low burden.",
    ),
    Indicator(
        id="vat_burden_ratio",
        name_zh="税负率与行业中位数之比",
        name_en="VAT burden relative to the industry median",
        tables=("vat_returns",),
        compute=lambda b, c: safe_div(b.vat_burden, b.ind_vat_burden_med),
        direction="low",
        fires=lambda b, v, c: (
            (v <= c.threshold("vat_burden_ratio")) & (b.taxpayer_type == "general")
        ),
        pct=False,
        basis=(
            "DOMAIN: industry burdens rose after assessment (flour 0.23% to 0.61%): "
            "under-declaring firms sat well under half the post-assessment level; fires at half"
            " the industry median, general taxpayers only (small-scale ones pay a flat levy, "
            "many under the exemption line)."
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="税负不足同行业中位数一半:核实企业经营范围与行业归属是否一致,检查销售价格、"
        "产品结构与同行差异,关注大额进项发票来源与用途。",
        guide_en="Burden under half the industry median: confirm the industry classification "
        "matches the business, compare prices and product mix with peers, and trace the "
        "origin and use of large purchase invoices.",
    ),
    Indicator(
        id="zero_negative_streak",
        name_zh="连续零申报、负申报",
        name_en="Consecutive zero or negative VAT declarations",
        tables=("vat_returns",),
        compute=lambda b, c: b.zero_negative_streak,
        direction="high",
        pct=False,
        basis=(
            "DOMAIN: zero or negative declarations, long-running (Wuwei: 104 firms); "
            "long-running taken as the documents' 6 consecutive months of the low-declaration "
            "screen."
        ),
        measure="notice",
        classic=True,
        unit="months",
        group=_G,
        guide_zh="核实企业是否正常经营:实地查看生产经营场所、用电用水及员工情况;检查留抵税额"
        "形成原因、存货与进项是否匹配,是否存在收入挂往来账、延迟确认收入。",
        guide_en="Check whether the business really trades: visit the premises, look at power, "
        "water and staff; examine why input credit accumulates, whether stock matches input "
        "tax, and whether revenue is parked in receivables or recognised late.",
    ),
    Indicator(
        id="zero_negative_share",
        name_zh="近12个月零负申报占比",
        name_en="Share of zero or negative VAT months in the last 12",
        tables=("vat_returns",),
        compute=lambda b, c: b.zero_negative_share,
        direction="high",
        fires=lambda b, v, c: (
            (v >= c.threshold("zero_negative_share"))
            & (b.zero_negative_streak < c.threshold("zero_negative_streak"))
        ),
        basis=(
            "DOMAIN: zero or negative declarations; fires at 9 of 12 months (0.75) that are not"
            " a current streak (the streak rule takes those): intermittent zero filers."
        ),
        measure="outreach",
        unit="share",
        group=_G,
        guide_zh="长期零负申报但持续经营:了解经营模式与季节性,辅导正确申报;与发票开具、第三方"
        "数据比对,确认是否有未申报收入。",
        guide_en="Mostly zero or negative returns while still trading: learn the business model "
        "and seasonality, give filing guidance, and compare with invoices and third-party data "
        "for undeclared income.",
    ),
    Indicator(
        id="low_declaration_streak",
        name_zh="连续6个月申报税额低于50元",
        name_en="VAT under 50 yuan for 6 consecutive months",
        tables=("vat_returns",),
        compute=lambda b, c: b.low_declaration_streak,
        direction="high",
        fires=_low_declaration_fires,
        pct=False,
        basis=(
            "DOMAIN: tax paid under 50 yuan for 6 consecutive months (Zhengzhou), zero "
            "declarers included as the bureaus run it; with "
            "declarations.low_declaration_token_only the token payers only (some VAT paid, "
            "under 50 yuan a month), leaving those paying nothing to the zero-negative rule."
        ),
        measure="notice",
        classic=True,
        unit="months",
        group=_G,
        guide_zh="区分正常经营低零申报、长亏不倒、走逃失联等情形:核实经营地址和实际经营状况,"
        "调取银行流水、水电费单据,对已不经营的督促办理注销,对有经营的补正申报。",
        guide_en="Tell apart real low trade, chronic loss-makers that never close and vanished "
        "firms: verify the address and activity, request bank statements and utility bills; "
        "have dormant firms deregister and active ones correct their returns.",
    ),
    Indicator(
        id="input_tax_vs_sales_change",
        name_zh="进项税额变动率高于销售额变动率",
        name_en="Input tax rising faster than sales",
        tables=("vat_returns",),
        compute=lambda b, c: b.input_tax_change - b.sales_change,
        direction="high",
        basis=(
            "DOMAIN: input-tax change rate anomaly (sudden rise of input tax vs sales); fires "
            "when input tax grew 30% faster than sales (ln 1.3) half-year on half-year."
        ),
        measure="assessment",
        classic=True,
        unit="log ratio",
        group=_G,
        guide_zh="比较近6个月与前6个月进项税额及销售额变动率:核对大额进项发票的真实性及货物流向,"
        "检查存货是否真实增加、是否有用于非应税项目未转出进项、是否取得虚开发票。",
        guide_en="Compare the last six months with the six before: check large purchase invoices "
        "against goods received, whether stock really rose, whether input used for exempt "
        "purposes was not transferred out, and whether any invoice is fictitious.",
    ),
    Indicator(
        id="input_output_tax_ratio",
        name_zh="进项税额占销项税额比例偏高",
        name_en="Input tax close to or above output tax",
        tables=("vat_returns",),
        compute=lambda b, c: b.input_output_tax_ratio,
        direction="high",
        basis=(
            "DOMAIN: input tax vs output tax; fires at 1.0, input tax as large as output tax "
            "over 12 months (进销项倒挂: nothing paid on a year's value added)."
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="进销项长期倒挂或持平:检查购进货物的去向、存货账实是否相符,是否存在销售不开票、"
        "进项发票与经营无关。",
        guide_en="Input tax as large as output tax for a year: trace where the purchased goods "
        "went, count stock against the books, and look for sales without invoices or unrelated "
        "purchase invoices.",
    ),
    Indicator(
        id="three_period",
        name_zh="三期比较:本期税额低于预期",
        name_en="Three-period comparison: current tax below expected",
        tables=("vat_returns",),
        compute=_three_period,
        direction="low",
        basis=(
            "DOMAIN: three-period comparison (previous, current, expected); fires when the "
            "current quarter is under half the expected."
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="上期、本期、预期三期比较:本季度税额不足预期(上季度与上年同期按行业增速调整后"
        "的均值)一半,了解经营变化原因,核对销售合同与发货记录。",
        guide_en="Previous, current and expected: this quarter's VAT is under half of what the "
        "previous quarter and last year's same quarter (grown at the industry rate) imply; "
        "ask what changed and check sales contracts and shipping records.",
    ),
    Indicator(
        id="vat_cit_revenue_mismatch",
        name_zh="增值税销售额与所得税收入不一致",
        name_en="VAT sales and income-tax revenue disagree",
        tables=("vat_returns", "cit_returns"),
        compute=lambda b, c: b.vat_cit_revenue_log.abs(),
        direction="high",
        basis=(
            "DOMAIN: national vs local tax declarations compared; fires when VAT sales and CIT "
            "revenue over the same quarters are 25% apart (|ln| 0.223)."
        ),
        measure="notice",
        unit="|log ratio|",
        group=_G,
        guide_zh="国地税(增值税与企业所得税)申报收入比对:差异超过25%的,核对收入确认时点、"
        "视同销售、免税收入及账外收入。",
        guide_en="VAT sales and CIT revenue over the same quarters differ by more than 25%: "
        "reconcile timing of revenue recognition, deemed sales, exempt income and off-book "
        "income.",
    ),
    Indicator(
        id="cit_burden",
        name_zh="所得税贡献率低于行业",
        name_en="Income-tax burden below the industry",
        tables=("cit_returns",),
        compute=lambda b, c: safe_div(b.cit_burden, b.ind_cit_burden_med),
        direction="low",
        basis=(
            "DOMAIN: tax burden (income tax paid / sales) vs the industry's average; fires "
            "under a quarter of the industry median."
        ),
        fires=lambda b, v, c: (
            (v < c.threshold("cit_burden")) & (b.cit_revenue_4q > 0) & (b.ind_cit_burden_med > 0)
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="所得税贡献率不足行业中位数四分之一:检查成本费用列支、关联交易定价、"
        "跨期费用与不得扣除项目。",
        guide_en="Income-tax burden under a quarter of the industry median: check cost and "
        "expense deductions, related-party pricing, cross-period expenses and non-deductible "
        "items.",
    ),
    Indicator(
        id="long_loss",
        name_zh="长亏不倒",
        name_en="Chronic losses yet never closing",
        tables=("cit_returns",),
        compute=lambda b, c: b.loss_quarter_streak,
        direction="high",
        pct=False,
        basis=(
            "DOMAIN: long-term loss yet never closing (长亏不倒, Zhengzhou); fires at 6 quarters of"
            " loss in a row while still selling."
        ),
        fires=lambda b, v, c: (v >= c.threshold("long_loss")) & (b.sales_12 > 0),
        measure="assessment",
        unit="quarters",
        group=_G,
        guide_zh="连续多个季度亏损仍持续经营和销售:核实资金来源(股东借款、往来款),检查成本"
        "是否虚增、收入是否挂账,对比同行毛利率。",
        guide_en="Losses quarter after quarter while still selling: ask how the business is "
        "funded (shareholder loans, intercompany balances), test whether costs are inflated or "
        "revenue parked, and compare gross margin with peers.",
    ),
    Indicator(
        id="missing_returns",
        name_zh="逾期未申报(非正常户风险)",
        name_en="VAT returns due but not filed",
        tables=("vat_returns",),
        compute=lambda b, c: b.missing_returns_12,
        direction="high",
        pct=False,
        basis=(
            "DOMAIN: data-quality duty (清户) and the abnormal-taxpayer risk; fires at 2 due VAT "
            "returns not filed in 12 months (one late month is common)."
        ),
        measure="guidance",
        unit="months",
        group=_G,
        guide_zh="近12个月有两个月以上应申报未申报:电话及实地联系企业,督促限期申报并加收滞纳金;"
        "联系不上的核查是否走逃,按非正常户程序处理并停供发票。",
        guide_en="Two or more VAT returns due in the last 12 months were not filed: contact the "
        "firm by phone and on site, require filing with late fees; if it cannot be reached, "
        "check whether it has vanished, treat it as an abnormal taxpayer and stop its invoices.",
    ),
    Indicator(
        id="two_tax",
        name_zh="两税比对:缴纳增值税未足额缴纳附加税费",
        name_en="Two-tax comparison: VAT paid without its surcharges",
        tables=("vat_returns", "local_tax_returns"),
        compute=lambda b, c: b.surcharge_coverage,
        direction="low",
        pct=False,
        basis=(
            "DOMAIN: two-tax comparison, 20 firms paid VAT but no city-construction tax; fires "
            "when surcharges are under half of VAT paid times the industry's median surcharge "
            "rate (the local rates; 7% urban construction where nobody pays)."
        ),
        measure="notice",
        classic=True,
        unit="ratio",
        group=_G,
        guide_zh="城市维护建设税、教育费附加应随增值税同时申报:核对实缴增值税与附加税费计税依据,"
        "通知企业补申报并加收滞纳金。",
        guide_en="Urban construction tax and education surcharge are due with VAT: reconcile "
        "VAT paid with the surcharge base, have the firm file the missing surcharges with late "
        "fees.",
    ),
]

FAMILY = Family(
    name="declarations",
    order=10,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    benchmarks=BENCHMARKS,
    norms=("tax_burden_warning",),
    indicators=tuple(INDICATORS),
)
