"""Indicators from e-invoices (发票): issued vs declared, stranded invoices, fuel input.

Invoices are known at the end of their period, so these sources are month-granular: they use
the months before the as-of month (``k`` as in :mod:`._base`). Money in yuan.

``invoices``, one source read once, both sides: as seller: ``inv_out_amount_12``, ``inv_out_tax_12``,
    ``inv_out_cmp`` (k=2..13, compared with declared ``sales_cmp``), ``inv_out_rows_12``
    (buyer-months invoiced), ``red_invoice_share`` (credit notes / positive amount).
as buyer: ``inv_in_amount_12``, ``inv_in_tax_12``,
    ``inv_in_cmp`` / ``inv_in_tax_cmp`` (k=2..13), ``inv_in_rows_12`` (seller-months).
``fuel`` (needs ``industries``): ``fuel_in_amount_12``; derived ``fuel_share`` = purchases
    from sellers whose industry is
    fuel (name or code: 成品油/石油/加油/燃料/fuel/petrol/oil/gas station, or GB/T 4754 codes
    5162/5265) / all purchases in k=1..12. The contract's invoices carry no product line, so
    the seller's industry stands in for "refined oil" (成品油).
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ._base import Benchmark, Context, Derived, Family, Indicator, Source, log_ratio, safe_div

__all__ = ["FAMILY", "fuel_industries"]

FUEL_NAME_RE = (
    r"(?i)(成品油|石油|加油|燃油|燃料|柴油|汽油|fuel|petrol|gasoline|diesel|\boil\b|gas station)"
)
FUEL_CODE_RE = r"^[A-Za-z]?(5162|5265)"


def _out_aggregates(w: ir.Table) -> ir.Table:
    """The seller side (see the module docstring), per (as_of, seller)."""
    r12 = w.k <= 12
    a = w.group_by([w.as_of, w.seller_id.name("taxpayer_id")]).aggregate(
        inv_out_amount_12=w.amount.sum(where=r12),
        inv_out_tax_12=w.tax.sum(where=r12),
        inv_out_cmp=w.amount.sum(where=w.k >= 2),
        inv_out_rows_12=w.k.count(where=r12),
        _red=(-w.amount).sum(where=r12 & (w.amount < 0)),
        _pos=w.amount.sum(where=r12 & (w.amount > 0)),
        # for the network source's surge signal (not joined onto the base)
        _out_amount_1_3=w.amount.sum(where=w.k <= 3),
        _out_amount_4_12=w.amount.sum(where=(w.k > 3) & r12),
    )
    return a.mutate(red_invoice_share=safe_div(a._red.fill_null(0.0), a._pos)).drop("_red", "_pos")


def _in_aggregates(w: ir.Table) -> ir.Table:
    """The buyer side (see the module docstring), per (as_of, buyer)."""
    r12 = w.k <= 12
    return w.group_by([w.as_of, w.buyer_id.name("taxpayer_id")]).aggregate(
        inv_in_amount_12=w.amount.sum(where=r12),
        inv_in_tax_12=w.tax.sum(where=r12),
        inv_in_cmp=w.amount.sum(where=w.k >= 2),
        inv_in_tax_cmp=w.tax.sum(where=w.k >= 2),
        inv_in_rows_12=w.k.count(where=r12),
    )


def invoices_source(ctx: Context) -> ir.Table:
    """Both sides of every taxpayer over the 13-month invoice window: the seller and buyer
    aggregates, joined in full (a taxpayer who only sells or only buys has nulls on the
    other side; the zero-filled ones become 0 on the base as with two separate sources).
    One query, but each side reads its own columns of the window: one window expression
    shared by both group-bys is a common subquery the engine materialises (DuckDB: the 34M
    rows of the window at 1M taxpayers, 2 GB, a third of the source's time in fresh memory),
    while two reads of the file are each a streaming scan."""
    sides = ("amount", "tax")
    w_out = ctx.window("invoices", 13, columns=("seller_id", *sides))
    w_in = ctx.window("invoices", 13, columns=("buyer_id", *sides))
    out, inn = _out_aggregates(w_out), _in_aggregates(w_in)
    inn = inn.rename(_i_as_of="as_of", _i_id="taxpayer_id")
    j = out.outer_join(inn, [out.as_of == inn._i_as_of, out.taxpayer_id == inn._i_id])
    return j.select(
        as_of=j.as_of.fill_null(j._i_as_of),
        taxpayer_id=j.taxpayer_id.fill_null(j._i_id),
        **{c: j[c] for c in out.columns if c not in ("as_of", "taxpayer_id")},
        **{c: j[c] for c in inn.columns if c not in ("_i_as_of", "_i_id")},
    )


def fuel_industries(industries: ir.Table) -> ir.Table:
    """Industry codes that sell fuel (see the module docstring)."""
    i = industries
    return i.filter(i.name.re_search(FUEL_NAME_RE) | i.industry.re_search(FUEL_CODE_RE)).select(
        "industry"
    )


def fuel_source(ctx: Context) -> ir.Table:
    """Purchases from fuel sellers in k=1..12 (only invoices of fuel sellers are read)."""
    w = ctx.window("invoices", 12)
    fuel = fuel_industries(ctx.tables["industries"])
    tp = ctx.tables["taxpayers"]
    sellers = tp.semi_join(fuel, tp.industry == fuel.industry).select(fuel_seller=tp.taxpayer_id)
    j = w.semi_join(sellers, w.seller_id == sellers.fuel_seller)
    return j.group_by([j.as_of, j.buyer_id.name("taxpayer_id")]).aggregate(
        fuel_in_amount_12=j.amount.sum()
    )


SOURCES = [
    Source(
        "invoices",
        ("invoices",),
        invoices_source,
        granularity="month",
        zero_fill=(
            "inv_out_amount_12",
            "inv_out_tax_12",
            "inv_out_cmp",
            "inv_out_rows_12",
            "inv_in_amount_12",
            "inv_in_tax_12",
            "inv_in_cmp",
            "inv_in_tax_cmp",
            "inv_in_rows_12",
        ),
        internal=("_out_amount_1_3", "_out_amount_4_12"),
    ),
    Source(
        "fuel",
        ("invoices", "industries"),
        fuel_source,
        granularity="month",
        zero_fill=("fuel_in_amount_12",),
    ),
]


def _fill0(c: ir.Value) -> ir.Value:
    return c.fill_null(0.0)


DERIVED = [
    Derived(
        "invoice_declared_gap",
        ("inv_out_cmp", "sales_cmp"),
        lambda b, c: ibis.ifelse(
            (_fill0(b.inv_out_cmp) > 0) | (_fill0(b.sales_cmp) > 0),
            safe_div(
                _fill0(b.inv_out_cmp) - _fill0(b.sales_cmp),
                ibis.greatest(_fill0(b.inv_out_cmp), _fill0(b.sales_cmp)),
            ),
            ibis.null("float64"),
        ),
    ),
    Derived(
        "stranded_share",
        ("inv_in_tax_cmp", "input_tax_cmp"),
        lambda b, c: ibis.ifelse(
            (b.taxpayer_type == "general") & (b.inv_in_tax_cmp > 0),
            safe_div(
                ibis.greatest(b.inv_in_tax_cmp - _fill0(b.input_tax_cmp), 0.0), b.inv_in_tax_cmp
            ),
            ibis.null("float64"),
        ),
    ),
    Derived(
        "purchases_to_sales",
        ("inv_in_cmp", "sales_cmp"),
        lambda b, c: ibis.ifelse(
            b.inv_in_cmp > 0,
            ibis.least(safe_div(b.inv_in_cmp, ibis.greatest(_fill0(b.sales_cmp), 1000.0)), 100.0),
            ibis.null("float64"),
        ),
    ),
    Derived(
        "sales_to_purchases",
        ("inv_in_amount_12", "sales_12"),
        lambda b, c: ibis.ifelse(
            b.inv_in_amount_12 > 0, safe_div(b.sales_12, b.inv_in_amount_12), ibis.null("float64")
        ),
    ),
    Derived(
        "fuel_share",
        ("fuel_in_amount_12", "inv_in_amount_12"),
        lambda b, c: ibis.ifelse(
            b.inv_in_amount_12 > 0,
            safe_div(_fill0(b.fuel_in_amount_12), b.inv_in_amount_12),
            ibis.null("float64"),
        ),
    ),
    Derived(
        "log_inv_out_12",
        ("inv_out_amount_12",),
        lambda b, c: (ibis.greatest(_fill0(b.inv_out_amount_12), 0.0) + 1.0).ln(),
    ),
]

_G = "invoices"

INDICATORS = [
    Indicator(
        id="invoice_vs_declared",
        name_zh="开票金额大于申报销售额",
        name_en="Invoiced sales above declared sales",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.invoice_declared_gap,
        direction="high",
        basis=(
            "DOMAIN: invoices issued vs declared sales, above declared by more than a set "
            "share; every invoiced sale is a declared sale, so the share is only a tolerance "
            "for credit notes and month-end timing: 5%."
        ),
        measure="assessment",
        classic=True,
        unit="share",
        group=_G,
        guide_zh="同期开具发票金额超过申报销售额:逐月核对发票开具与申报表,检查是否少申报、"
        "延迟申报收入或发票作废红冲是否真实,责令补正申报并追缴税款。",
        guide_en="Invoices issued exceed declared sales over the same months: reconcile month by "
        "month, check for under-declared or deferred revenue and whether cancellations and "
        "credit notes are genuine; have the firm correct its returns and pay.",
    ),
    Indicator(
        id="stranded_invoices",
        name_zh="滞留票:取得进项发票未申报抵扣",
        name_en="Stranded invoices: purchase invoices never declared",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.stranded_share,
        direction="high",
        basis=(
            "DOMAIN: stranded invoices (滞留票), purchase invoices never declared; fires when a "
            "fifth of the received invoice tax was never claimed."
        ),
        measure="assessment",
        classic=True,
        unit="share",
        group=_G,
        guide_zh="开给本企业的进项发票长期未认证抵扣(滞留票):核实对应货物是否入账,是否存在"
        "账外购进、账外销售;调取采购合同、付款凭证和出入库单。",
        guide_en="Purchase invoices issued to the firm never claimed as input: check whether the "
        "goods were booked; unbooked purchases usually mean unbooked sales. Request purchase "
        "contracts, payment records and warehouse receipts.",
    ),
    Indicator(
        id="purchases_vs_sales",
        name_zh="购进金额远大于申报销售额",
        name_en="Purchases invoiced far above declared sales",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.purchases_to_sales,
        direction="high",
        line="quantile",
        fires=lambda b, v, c: (v > 1.0) & (b.taxpayer_type == "small_scale"),
        basis=(
            "DOMAIN: advance receipts and inventory, hidden purchases mean hidden sales; "
            "population quantile 0.95 of the industry's purchases / declared sales, purchases "
            "above sales, small-scale taxpayers only (they cannot deduct input tax; a general "
            "taxpayer's excess purchases are credit carried forward, which "
            "input_output_tax_ratio reads)."
        ),
        measure="notice",
        unit="ratio",
        group=_G,
        guide_zh="取得的购进发票金额超过申报销售额50%以上:盘点存货,核实购进货物去向,"
        "检查是否销售未申报(小规模纳税人尤应关注)。",
        guide_en="Purchases on invoices exceed declared sales by over 50%: count stock, trace the "
        "purchased goods and check for undeclared sales (especially small-scale taxpayers).",
    ),
    Indicator(
        id="fuel_input",
        name_zh="成品油进项抵扣异常",
        name_en="Refined-oil input out of line with the business",
        tables=("invoices", "industries"),
        compute=lambda b, c: log_ratio(b.fuel_share + 0.01, b.ind_fuel_share_med + 0.01),
        direction="high",
        line="quantile",
        fires=lambda b, v, c: v > 0.693,
        basis=(
            "DOMAIN: refined-oil input deduction out of line with the business; population "
            "quantile 0.95 of the industry's fuel share of purchases, and above twice the "
            "industry median."
        ),
        measure="notice",
        unit="log ratio",
        group=_G,
        guide_zh="购进成品油占购进总额远高于同行业:核实车辆、机械台账与实际耗油量,检查是否"
        "为他人购油、取得虚开油票或将油品用于非应税项目。",
        guide_en="Fuel purchases a far larger share of purchases than the industry's: check "
        "vehicle and machine registers against plausible consumption, and whether fuel was "
        "bought for others, invoices are fictitious or fuel went to exempt use.",
    ),
]

FAMILY = Family(
    name="invoices",
    order=20,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    benchmarks=(Benchmark("fuel_share"), Benchmark("sales_to_purchases")),
    indicators=tuple(INDICATORS),
)
