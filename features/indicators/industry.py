"""The industry evaluation models (行业纳税评估模型) applied to the contract's tables: the
``industry`` family of the catalog. The formulas are :mod:`taxrisk.features.industry_models`
(tested against the documents' worked examples); this module feeds them.

Inputs, all named as the contract names them:

- ``industries.model`` picks the model of a taxpayer's industry (``power``,
  ``input_output``, ``kiln``, ``volume_density``);
- ``operations`` metrics (monthly, k=1..12; ``stock_t`` is a level): ``raw_material_t``,
  ``output_t``, ``stock_t``, ``kilns``, ``kiln_capacity``, ``cycles``, ``mined_volume_m3``;
  and ``electricity.kwh`` for the power method;
- ``industry_norms``: ``kwh_per_unit``, ``input_output_ratio``, ``loss_rate``, ``avg_price``,
  ``density_t_per_m3``.

Fallbacks when a norm or an input is absent (documented, in this order):

- ``input_output_ratio``: the norm is the typical yield; assessments use the documents'
  conservative floor, so it is discounted by ``models.floor_share`` (65% / 73.5%, flour).
  Without the norm: the industry's median observed yield (``output_t / raw_material_t``) x
  ``floor_share``; without either, ``models.input_output_ratio`` (65%);
- ``kwh_per_unit``, ``loss_rate``, ``density_t_per_m3``: ``[models]`` (the documents' small
  coal mine 8 kWh/t, 5% loss, 1.35 t/m3);
- ``avg_price``: the industry's median of declared sales per implied unit (the median firm of
  an industry is mostly compliant);
- kiln ``kiln_capacity`` / ``cycles`` a taxpayer did not report: the industry's median of
  those reported;
- the VAT rate on implied sales: the taxpayer's own output tax / sales, else
  ``models.vat_rate``.

Columns (yuan per month unless said): ``model_units_month``, ``model_implied_sales``,
``model_gap`` ((implied - declared) / implied), ``model_gap_tax_12`` (12 months of the
shortfall x VAT rate), ``io_yield`` (output / raw material), ``io_overclaim_share`` (raw
material over-claimed / raw material), ``io_overclaim_input_tax_12`` (the input tax claimed
on it: that share of the input tax, the raw material carrying it), ``power_units_month`` /
``power_gap`` (the power method for any taxpayer with a ``kwh_per_unit`` norm),
``chain_implied_sales``, ``chain_gap``, ``stock_gap_share`` (output - sales / avg_price -
stock change, over output: goods produced that are neither sold nor in stock, e.g. shipped but
booked as advance receipts; the contract has no balance sheet, so advance receipts are seen
only through this physical balance).

The model-gap indicators fire at a population quantile of their industry (the implied sales
carry the norms' error; the industry's spread is the yardstick), and only where implied
sales exceed declared.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from ..config import IndicatorConfig
from ..industry_models import (
    chain_implied_sales,
    input_output_overclaim,
    kiln_model,
    output_from_power,
    overclaimed_input_tax,
    volume_density_output,
)
from ._base import Benchmark, Context, Derived, Family, Indicator, Source, safe_div

__all__ = ["FAMILY"]

OPERATIONS_METRICS = (
    "raw_material_t",
    "output_t",
    "stock_t",
    "kilns",
    "kiln_capacity",
    "cycles",
    "mined_volume_m3",
)


def operations_source(ctx: Context) -> ir.Table:
    """Monthly operations metrics pivoted per month, then summed over k=1..12."""
    w = ctx.window("operations", 13)
    key = ["as_of", "taxpayer_id", "period", "k"]
    m = w.group_by(key).aggregate(
        **{f"_{name}": w.value.max(where=w.metric == name) for name in OPERATIONS_METRICS}
    )
    r12 = m.k <= 12
    a = m.group_by(["as_of", "taxpayer_id"]).aggregate(
        ops_months_12=m.period.nunique(where=r12),
        raw_material_t_12=m._raw_material_t.sum(where=r12),
        output_t_12=m._output_t.sum(where=r12),
        kiln_units_12=(m._kilns * m._kiln_capacity * m._cycles).sum(where=r12),
        kilns_avg=m._kilns.mean(where=r12),
        kiln_capacity_avg=m._kiln_capacity.mean(where=r12),
        cycles_avg=m._cycles.mean(where=r12),
        mined_volume_m3_12=m._mined_volume_m3.sum(where=r12),
        _vol_months=m.period.nunique(where=r12 & m._mined_volume_m3.notnull()),
        _raw_months=m.period.nunique(where=r12 & m._raw_material_t.notnull()),
        _kiln_months=m.period.nunique(where=r12 & m._kilns.notnull()),
        _stock_close=m._stock_t.argmin(m.k, where=r12 & m._stock_t.notnull()),
        _stock_open=m._stock_t.argmax(m.k, where=m._stock_t.notnull()),
    )
    return a.mutate(
        stock_close_t=a._stock_close,
        stock_open_t=a._stock_open,
        vol_months_12=a._vol_months.cast("float64"),
        raw_months_12=a._raw_months.cast("float64"),
        kiln_months_12=a._kiln_months.cast("float64"),
    ).drop("_stock_close", "_stock_open", "_vol_months", "_raw_months", "_kiln_months")


SOURCES = [Source("operations", ("operations",), operations_source, granularity="month")]


def _n(b: ir.Table, cfg: IndicatorConfig, metric: str) -> ir.FloatingValue:
    """The contract norm of the industry, else the ``[models]`` default."""
    return b[f"norm_{metric}"].fill_null(float(getattr(cfg.models, metric)))


def _io_ratio(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    """The yield used in assessments: the conservative floor (see the module docstring)."""
    share = cfg.models.floor_share
    observed = b.ind_io_yield_med * share if "ind_io_yield_med" in b.columns else None
    typical = b.norm_input_output_ratio * share
    if observed is not None:
        typical = typical.fill_null(observed)
    return typical.fill_null(cfg.models.input_output_ratio)


def _per_month(total: ir.Value, months: ir.Value) -> ir.FloatingValue:
    return total / months.nullif(0).cast("float64")


def _units_month(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    """Implied units sold per month by the industry's model (null where no model applies or
    its inputs are missing)."""
    cols = set(b.columns)
    null = ibis.null("float64")
    cases = []
    if "kwh_month_avg" in cols:
        cases.append(("power", output_from_power(b.kwh_month_avg, _n(b, cfg, "kwh_per_unit"))))
    if "ops_months_12" in cols:
        io = _per_month(b.raw_material_t_12 * _io_ratio(b, cfg), b.raw_months_12)
        # kilns x capacity x cycles per month; capacity and cycles the industry's medians if
        # unreported
        fired = _per_month(b.kiln_units_12, b.kiln_months_12).fill_null(
            b.kilns_avg
            * b.kiln_capacity_avg.fill_null(b.ind_kiln_capacity_avg_med)
            * b.cycles_avg.fill_null(b.ind_cycles_avg_med)
        )
        months = b.ops_months_12.nullif(0).cast("float64")
        kiln = kiln_model(
            1.0,
            fired,
            1.0,
            _n(b, cfg, "loss_rate"),
            b.stock_open_t.fill_null(0.0) / months,
            b.stock_close_t.fill_null(0.0) / months,
            1.0,
            1.0,
        ).sold
        vd = _per_month(
            volume_density_output(b.mined_volume_m3_12, _n(b, cfg, "density_t_per_m3")),
            b.vol_months_12,
        )
        cases += [("input_output", io), ("kiln", kiln), ("volume_density", vd)]
    expr = null
    for model, value in reversed(cases):
        expr = ibis.ifelse(b.industry_model == model, value.cast("float64"), expr)
    return ibis.ifelse(expr > 0, expr, null)


def _implied(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    price = b.norm_avg_price.fill_null(b.ind_model_sales_per_unit_med)
    return b.model_units_month * price


def _gap(implied: ir.FloatingValue, declared: ir.FloatingValue) -> ir.FloatingValue:
    return ibis.ifelse(
        implied > 0, (implied - declared.fill_null(0.0)) / implied, ibis.null("float64")
    )


def _vat_rate(b: ir.Table, cfg: IndicatorConfig) -> ir.FloatingValue:
    own = ibis.ifelse(b.sales_12 > 0, safe_div(b.output_tax_12, b.sales_12), ibis.null("float64"))
    return ibis.ifelse(own > 0, own, cfg.models.vat_rate)


DERIVED = [
    Derived(
        "io_yield",
        ("raw_material_t_12", "output_t_12"),
        lambda b, c: ibis.ifelse(
            b.raw_material_t_12 > 0,
            safe_div(b.output_t_12, b.raw_material_t_12),
            ibis.null("float64"),
        ),
    ),
    Derived("model_units_month", ("industry_model",), _units_month, stage=2),
    Derived(
        "model_sales_per_unit",
        ("model_units_month", "sales_month_avg"),
        lambda b, c: safe_div(b.sales_month_avg, b.model_units_month),
        stage=2,
    ),
    Derived(
        "io_overclaim_share",
        ("raw_material_t_12", "output_t_12"),
        lambda b, c: ibis.ifelse(
            (b.industry_model == "input_output")
            & (b.raw_material_t_12 > 0)
            & b.output_t_12.notnull(),
            input_output_overclaim(b.raw_material_t_12, b.output_t_12, _io_ratio(b, c))
            / b.raw_material_t_12,
            ibis.null("float64"),
        ),
        stage=2,
    ),
    Derived(
        "io_overclaim_input_tax_12",
        ("io_overclaim_share", "raw_material_t_12", "input_tax_12"),
        lambda b, c: overclaimed_input_tax(
            ibis.greatest(b.io_overclaim_share, 0.0) * b.raw_material_t_12,
            b.raw_material_t_12,
            b.input_tax_12,
            1.0,
        ),
        stage=2,
    ),
    Derived(
        "power_units_month",
        ("kwh_month_avg",),
        lambda b, c: output_from_power(b.kwh_month_avg, b.norm_kwh_per_unit),
    ),
    Derived(
        "power_gap",
        ("power_units_month", "sales_month_avg"),
        lambda b, c: _gap(b.power_units_month * b.norm_avg_price, b.sales_month_avg),
    ),
    Derived("model_implied_sales", ("model_units_month",), _implied, stage=3),
    Derived(
        "model_gap",
        ("model_implied_sales",),
        lambda b, c: _gap(b.model_implied_sales, b.sales_month_avg),
        stage=3,
    ),
    Derived(
        "model_gap_tax_12",
        ("model_implied_sales",),
        lambda b, c: (
            ibis.greatest(b.model_implied_sales - b.sales_month_avg.fill_null(0.0), 0.0)
            * 12.0
            * _vat_rate(b, c)
        ),
        stage=3,
    ),
    Derived(
        "stock_gap_share",
        ("output_t_12", "stock_open_t", "sales_12"),
        lambda b, c: ibis.ifelse(
            (b.output_t_12 > 0) & b.norm_avg_price.notnull() & b.stock_open_t.notnull(),
            (b.output_t_12 - b.sales_12 / b.norm_avg_price - (b.stock_close_t - b.stock_open_t))
            / b.output_t_12,
            ibis.null("float64"),
        ),
    ),
    Derived(
        "chain_implied_sales",
        ("inv_in_amount_12", "ind_sales_to_purchases_med"),
        lambda b, c: ibis.ifelse(
            b.inv_in_amount_12 > 0,
            chain_implied_sales(b.inv_in_amount_12 / 12.0, b.ind_sales_to_purchases_med),
            ibis.null("float64"),
        ),
        stage=2,
    ),
    Derived(
        "chain_gap",
        ("chain_implied_sales",),
        lambda b, c: _gap(b.chain_implied_sales, b.sales_month_avg),
        stage=2,
    ),
]

BENCHMARKS = (
    Benchmark("io_yield"),
    Benchmark("kiln_capacity_avg"),
    Benchmark("cycles_avg"),
    Benchmark("model_sales_per_unit"),
)

NORMS = ("kwh_per_unit", "input_output_ratio", "loss_rate", "avg_price", "density_t_per_m3")


def _model_gap(model: str):  # type: ignore[no-untyped-def]
    return lambda b, c: ibis.ifelse(b.industry_model == model, b.model_gap, ibis.null("float64"))


_G = "industry_models"
_GUIDE_TAIL_ZH = "调取生产记录、原材料领用和产成品入库单、出入库台账,约谈企业说明差异并补正申报。"
_GUIDE_TAIL_EN = (
    "Request production logs, raw-material issue and finished-goods receipts and "
    "stock ledgers; interview the firm about the difference and have it correct "
    "its returns."
)


def _model_indicator(
    id_: str,
    model: str,
    zh: str,
    en: str,
    tables: tuple[str, ...],
    what_zh: str,
    what_en: str,
    basis: str,
) -> Indicator:
    return Indicator(
        id=id_,
        name_zh=zh,
        name_en=en,
        tables=("vat_returns", "industries", *tables),
        compute=_model_gap(model),
        direction="high",
        line="quantile",
        fires=lambda b, v, c: v > 0,
        basis=basis,
        measure="assessment",
        unit="share of implied sales",
        group=_G,
        guide_zh=what_zh + _GUIDE_TAIL_ZH,
        guide_en=what_en + " " + _GUIDE_TAIL_EN,
    )


INDICATORS = [
    _model_indicator(
        "power_model_gap",
        "power",
        "动力实耗法测算销售额高于申报",
        "Power-consumption model: implied sales above declared",
        ("electricity",),
        "按单位产品耗电定额(如小煤矿吨煤耗电约8度)由用电量测算产量和销售额,测算额明显高于申报(居本行业前10%):",
        "Output estimated from electricity at the kWh-per-unit norm (small coal mines: about 8 "
        "kWh a tonne) implies sales well above those declared (the top tenth of the industry).",
        "DOMAIN: power consumption method (output = kWh / kWh per unit, contract norm "
        "kwh_per_unit, 8 kWh a tonne for small coal mines); fires at population quantile 0.9 of "
        "the industry's gap, implied above declared.",
    ),
    _model_indicator(
        "input_output_gap",
        "input_output",
        "投入产出法测算销售额高于申报",
        "Input-output model: implied sales above declared",
        ("operations",),
        "按投入产出比(面粉72%-75%,保守按65%)由原料耗用测算产量,测算销售额明显高于申报(居本行业前10%),"
        "或原料耗用明显超过产量所需(多耗原料应转出进项税额):",
        "Output estimated from raw material at the yield norm (flour 72-75%, 65% conservative) "
        "implies sales well above those declared (the top tenth of the industry), or raw material far exceeds what the "
        "output needs (the input tax on the excess is reversed).",
        "DOMAIN: input-output method (flour 72-75%, 65% the conservative floor; contract norm "
        "input_output_ratio discounted to the floor); fires at population quantile 0.9 of the "
        "industry's gap, implied above declared.",
    ),
    _model_indicator(
        "kiln_model_gap",
        "kiln",
        "砖瓦窑炉产能测算销售额高于申报",
        "Kiln-capacity model: implied sales above declared",
        ("operations",),
        "按窑孔数×单孔容量×循环次数测算产量,扣除损耗并考虑期初期末库存后测算销售额,明显高于申报(居本行业前10%):",
        "Kilns x capacity x cycles, less losses, plus opening minus closing stock, at the "
        "average price, implies sales well above those declared (the top tenth of the industry).",
        "DOMAIN: kiln capacity model (kilns x capacity x cycles, less loss_rate, stock change, "
        "avg_price); fires at population quantile 0.9 of the industry's gap, implied above "
        "declared.",
    ),
    _model_indicator(
        "volume_density_gap",
        "volume_density",
        "体积密度法测算煤炭销售额高于申报",
        "Volume-density model: implied coal sales above declared",
        ("operations",),
        "按采掘工作面长×宽×高×煤炭密度测算产量和销售额,明显高于申报(居本行业前10%):",
        "Mined volume (length x width x height of the face) x density implies sales well above "
        "those declared (the top tenth of the industry).",
        "DOMAIN: volume-density method (mined volume x density_t_per_m3); fires at population "
        "quantile 0.9 of the industry's gap, implied above declared.",
    ),
    Indicator(
        id="chain_gap",
        name_zh="产业链测算销售额高于申报",
        name_en="Industry chain: purchases imply more sales than declared",
        tables=("invoices", "vat_returns"),
        compute=lambda b, c: b.chain_gap,
        direction="high",
        line="quantile",
        fires=lambda b, v, c: v > 0,
        basis=(
            "DOMAIN: industry chain (purchases imply sales at the industry's sales-to-purchases"
            " ratio); fires at population quantile 0.95 of the industry's gap, implied above "
            "declared."
        ),
        measure="notice",
        unit="share of implied sales",
        group=_G,
        guide_zh="按同行业销售额与购进额之比,由购进发票测算应有销售额,测算额明显高于申报(居本行业前5%):"
        "沿产业链上下游交叉比对购销数量,核实购进货物去向和库存。",
        guide_en="Purchases on invoices, at the industry's sales-to-purchases ratio, imply sales "
        "well above those declared (the top 5% of the industry): cross-check quantities along the chain (suppliers and "
        "buyers) and trace the purchased goods and stock.",
    ),
    Indicator(
        id="stock_mismatch",
        name_zh="产成品产销存不平衡(预收账款、库存)",
        name_en="Finished goods produced minus sold differ from the stock change",
        tables=("operations", "industry_norms", "vat_returns"),
        compute=lambda b, c: b.stock_gap_share,
        direction="high",
        pct=False,
        basis=(
            "DOMAIN: finished goods produced minus sold differ from the stock change (advance "
            "receipts); fires at 20% of output unexplained."
        ),
        measure="assessment",
        unit="share of output",
        group=_G,
        guide_zh="本期产量减去按申报销售额折算的销量,与期末期初库存之差不符(超过产量20%):盘点库存,"
        "核对发货单与预收账款明细,检查是否已发货但挂预收账款、未确认收入。",
        guide_en="Output minus the quantity sold (declared sales at the average price) exceeds "
        "the stock change by over 20% of output: count the stock, match shipping notes with "
        "advance-receipt accounts, and check for goods shipped but parked as advance receipts "
        "instead of revenue.",
    ),
    Indicator(
        id="input_output_overclaim",
        name_zh="原材料耗用超过投入产出定额(多耗原料)",
        name_en="Raw material over-claimed against the yield norm",
        tables=("operations", "industries"),
        compute=lambda b, c: b.io_overclaim_share,
        direction="high",
        pct=False,
        basis=(
            "DOMAIN: the flour mill used 6,793 t of wheat for 3,501 t of flour (51.5% against a"
            " 65% floor) and had over-claimed 1,407 t; fires at 10% of raw material over the "
            "floor."
        ),
        measure="assessment",
        unit="share of raw material",
        group=_G,
        guide_zh="原料耗用量超过按投入产出比所需量10%以上(如面粉厂6793吨小麦仅产3501吨面粉,"
        "按65%计多耗1407吨):核实原料去向,多耗部分对应的进项税额转出,并检查是否有账外产品销售。",
        guide_en="Raw material used exceeds what the output needs at the yield norm by over 10% "
        "(the flour mill: 6,793 t of wheat for 3,501 t of flour, 1,407 t too much at 65%): trace "
        "the excess, reverse its input tax and look for unrecorded product sales.",
    ),
]

FAMILY = Family(
    name="industry_models",
    order=80,
    sources=tuple(SOURCES),
    derived=tuple(DERIVED),
    benchmarks=BENCHMARKS,
    norms=NORMS,
    indicators=tuple(INDICATORS),
)
