"""Industry evaluation models (行业纳税评估模型): what a taxpayer must have produced and sold,
from physical quantities and industry norms, against what it declared.

The maths are plain arithmetic functions that work on numbers *and* on Ibis columns, so the
documents' worked examples (tests) and the feature matrix run the very same formulas:

- **power consumption** (动力实耗法): output = kWh / kWh per unit; for small coal mines the
  documents' norms are ~8 kWh per tonne, ~23 yuan of wages per tonne and a mineral
  compensation fee of 1% of sales, so power, wages and the fee each imply output or sales;
- **input-output** (投入产出法): output = raw material x yield ratio; the raw material
  over-claimed is raw - output / ratio (flour: 6,793 t wheat, 3,501 t flour, 65% floor ->
  1,407 t; its input tax at the wheat's unit cost and the 13% deduction rate is 27.8万 yuan);
- **kiln capacity** (砖瓦, five steps): output = kilns x capacity per kiln x cycles;
  finished = output x (1 - loss rate); sold = finished + opening stock - closing stock;
  sales = sold x average price; tax = sales x rate;
- **volume-density** (体积密度法): output = mined volume (length x width x height) x density;
- **industry chain** (产业链): purchases imply sales at the industry's sales-to-purchases
  ratio (and a buyer's purchases are its suppliers' sales: see ``invoice_vs_declared``).

Application (features): ``industries.model`` picks the model of a taxpayer's industry;
``operations`` metrics (monthly, k=1..12; ``stock_t`` is a level) and electricity feed it;
norms come from ``industry_norms`` (``kwh_per_unit``, ``input_output_ratio``, ``loss_rate``,
``density_t_per_m3``, ``avg_price``, ``wages_per_unit``) with the documented defaults of
``indicator_defaults.toml`` where absent. Without an ``avg_price`` norm the price per implied
unit is the industry median of declared sales per implied unit. Columns (yuan per month):
``model_units_month``, ``model_implied_sales``, ``model_gap`` ((implied - declared) /
implied), ``model_gap_tax_12`` (12 months of the shortfall x VAT rate), ``io_overclaim_share``
(raw material over-claimed / raw material), ``chain_implied_sales``, ``chain_gap``,
``stock_gap_share`` (output - sales / avg_price - stock change, over output: goods produced
that are neither sold nor in stock, e.g. shipped but booked as advance receipts; the contract
has no balance sheet, so advance receipts are seen only through this physical balance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import ibis
import ibis.expr.types as ir

from .indicators._base import Context, Derived, Indicator, Source, defaults, safe_div, threshold

__all__ = [
    "DERIVED",
    "INDICATORS",
    "SOURCES",
    "KilnResult",
    "chain_implied_sales",
    "input_output_overclaim",
    "kiln_model",
    "output_from_power",
    "output_from_wages",
    "overclaimed_input_tax",
    "sales_from_fee",
    "volume_density_output",
]

N = TypeVar("N", float, Any)


def _norm(name: str) -> float:
    return float(defaults()["models"][name])


# -- the models' maths (numbers or Ibis columns) ----------------------------------------------


def output_from_power(kwh: N, kwh_per_unit: N) -> N:
    """Units produced (e.g. tonnes) = electricity used (kWh) / kWh per unit."""
    return kwh / kwh_per_unit


def output_from_wages(wages: N, wages_per_unit: N) -> N:
    """Units produced = wages paid (yuan) / wages per unit (yuan per unit)."""
    return wages / wages_per_unit


def sales_from_fee(fee: N, fee_rate: N) -> N:
    """Sales (yuan) implied by a fee levied at ``fee_rate`` of sales (coal: 1%)."""
    return fee / fee_rate


def input_output_overclaim(raw_t: N, output_t: N, ratio: N) -> N:
    """Raw material consumed beyond what the output needs at the yield ``ratio`` (tonnes):
    raw - output / ratio (positive: over-claimed)."""
    return raw_t - output_t / ratio


def overclaimed_input_tax(overclaimed_t: N, raw_t: N, raw_amount: N, deduction_rate: N) -> N:
    """Input tax to reverse (yuan) on over-claimed raw material at its unit cost
    (``raw_amount`` / ``raw_t``, yuan per tonne) and the deduction rate."""
    return overclaimed_t * (raw_amount / raw_t) * deduction_rate


@dataclass(frozen=True)
class KilnResult:
    """The five steps' results (numbers, or Ibis columns when given columns)."""

    output: Any
    finished: Any
    sold: Any
    sales: Any
    tax: Any


def kiln_model(
    kilns: N,
    capacity: N,
    cycles: N,
    loss_rate: N,
    opening_stock: N,
    closing_stock: N,
    avg_price: N,
    tax_rate: N,
) -> KilnResult:
    """The brick-and-tile kiln model's five steps (units of ``capacity``; money in yuan)."""
    output = kilns * capacity * cycles  # 1: output
    finished = output - output * loss_rate  # 2: finished = output - output x loss
    sold = finished + opening_stock - closing_stock  # 3: sold
    sales = sold * avg_price  # 4: sales
    tax = sales * tax_rate  # 5: tax
    return KilnResult(output, finished, sold, sales, tax)


def volume_density_output(volume_m3: N, density_t_per_m3: N) -> N:
    """Tonnes mined = volume (m3; length x width x height of the worked face) x density."""
    return volume_m3 * density_t_per_m3


def chain_implied_sales(purchases: N, sales_per_purchase: N) -> N:
    """Sales (yuan) implied by purchases (yuan) at the industry's sales-to-purchases ratio."""
    return purchases * sales_per_purchase


# -- application --------------------------------------------------------------------------------


def operations_source(ctx: Context) -> ir.Table:
    """Monthly operations metrics pivoted per month, then summed over k=1..12."""
    w = ctx.window("operations", 13)
    key = ["as_of", "taxpayer_id", "period", "k"]
    m = w.group_by(key).aggregate(
        **{
            f"_{name}": w.value.max(where=w.metric == name)
            for name in (
                "raw_material_t",
                "output_t",
                "stock_t",
                "kilns",
                "kiln_capacity",
                "cycles",
                "mined_volume_m3",
            )
        }
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
        _stock_close=m._stock_t.argmin(m.k, where=r12 & m._stock_t.notnull()),
        _stock_open=m._stock_t.argmax(m.k, where=m._stock_t.notnull()),
    )
    return a.mutate(stock_close_t=a._stock_close, stock_open_t=a._stock_open).drop(
        "_stock_close", "_stock_open"
    )


SOURCES = [Source("operations", ("operations",), operations_source, granularity="month")]


def _n(b: ir.Table, metric: str) -> ir.FloatingValue:
    return b[f"norm_{metric}"].fill_null(_norm(metric))


def _io_ratio(b: ir.Table) -> ir.FloatingValue:
    """The yield used in assessments: the conservative floor where the norms give one (the
    documents use 65% for flour, not the 72-75% typical), else the typical ratio, else the
    default."""
    return b.norm_input_output_floor.fill_null(_n(b, "input_output_ratio"))


def _units_month(b: ir.Table) -> ir.FloatingValue:
    """Implied units sold per month by the industry's model (null where no model applies or
    its inputs are missing)."""
    cols = set(b.columns)
    null = ibis.null("float64")
    cases = []
    if "kwh_month_avg" in cols:
        cases.append(("power", output_from_power(b.kwh_month_avg, _n(b, "kwh_per_unit"))))
    if "ops_months_12" in cols:
        months = b.ops_months_12.nullif(0).cast("float64")
        io = b.raw_material_t_12 * _io_ratio(b) / months
        # kilns x capacity x cycles per month; capacity and cycles from the norms if unreported
        fired = b.kiln_units_12.fill_null(
            b.kilns_avg
            * b.kiln_capacity_avg.fill_null(b.norm_kiln_capacity)
            * b.cycles_avg.fill_null(b.norm_cycles)
            * months
        )
        kiln = (
            kiln_model(
                1.0,
                fired,
                1.0,
                _n(b, "loss_rate"),
                b.stock_open_t.fill_null(0.0),
                b.stock_close_t.fill_null(0.0),
                1.0,
                1.0,
            ).sold
            / months
        )
        vd = volume_density_output(b.mined_volume_m3_12, _n(b, "density_t_per_m3")) / months
        cases += [("input_output", io), ("kiln", kiln), ("volume_density", vd)]
    expr = null
    for model, value in reversed(cases):
        expr = ibis.ifelse(b.industry_model == model, value.cast("float64"), expr)
    return ibis.ifelse(expr > 0, expr, null)


def _implied(b: ir.Table) -> ir.FloatingValue:
    price = b.norm_avg_price.fill_null(b.ind_model_sales_per_unit_med)
    return b.model_units_month * price


def _gap(implied: ir.FloatingValue, declared: ir.FloatingValue) -> ir.FloatingValue:
    return ibis.ifelse(
        implied > 0, (implied - declared.fill_null(0.0)) / implied, ibis.null("float64")
    )


DERIVED = [
    Derived("model_units_month", ("industry_model",), _units_month),
    Derived(
        "model_sales_per_unit",
        ("model_units_month", "sales_month_avg"),
        lambda b: safe_div(b.sales_month_avg, b.model_units_month),
    ),
    Derived(
        "io_overclaim_share",
        ("raw_material_t_12", "output_t_12"),
        lambda b: ibis.ifelse(
            (b.industry_model == "input_output")
            & (b.raw_material_t_12 > 0)
            & b.output_t_12.notnull(),
            input_output_overclaim(b.raw_material_t_12, b.output_t_12, _io_ratio(b))
            / b.raw_material_t_12,
            ibis.null("float64"),
        ),
    ),
    Derived(
        "io_overclaim_input_tax_12",
        ("io_overclaim_share", "raw_material_t_12"),
        lambda b: overclaimed_input_tax(
            ibis.greatest(b.io_overclaim_share, 0.0) * b.raw_material_t_12,
            b.raw_material_t_12,
            b.raw_material_t_12 * b.norm_raw_price,
            _norm("input_deduction_rate"),
        ),
    ),
    Derived(
        "power_units_month",
        ("kwh_month_avg",),
        lambda b: output_from_power(b.kwh_month_avg, b.norm_kwh_per_unit),
    ),
    Derived(
        "power_gap",
        ("power_units_month", "sales_month_avg"),
        lambda b: _gap(b.power_units_month * b.norm_avg_price, b.sales_month_avg),
    ),
    Derived(
        "wages_units_month",
        ("wages_month_avg",),
        lambda b: output_from_wages(b.wages_month_avg, b.norm_wages_per_unit),
    ),
    Derived(
        "wages_model_gap",
        ("wages_units_month", "sales_month_avg"),
        lambda b: _gap(b.wages_units_month * b.norm_avg_price, b.sales_month_avg),
    ),
    Derived("model_implied_sales", ("model_units_month",), _implied, stage=2),
    Derived(
        "model_gap",
        ("model_implied_sales",),
        lambda b: _gap(b.model_implied_sales, b.sales_month_avg),
        stage=2,
    ),
    Derived(
        "model_gap_tax_12",
        ("model_implied_sales",),
        lambda b: (
            ibis.greatest(b.model_implied_sales - b.sales_month_avg.fill_null(0.0), 0.0)
            * 12.0
            * _n(b, "vat_rate")
        ),
        stage=2,
    ),
    Derived(
        "stock_gap_share",
        ("output_t_12", "stock_open_t", "sales_12"),
        lambda b: ibis.ifelse(
            (b.output_t_12 > 0) & b.norm_avg_price.notnull() & b.stock_open_t.notnull(),
            (b.output_t_12 - b.sales_12 / b.norm_avg_price - (b.stock_close_t - b.stock_open_t))
            / b.output_t_12,
            ibis.null("float64"),
        ),
    ),
    Derived(
        "chain_implied_sales",
        ("inv_in_amount_12", "ind_sales_to_purchases_med"),
        lambda b: ibis.ifelse(
            b.inv_in_amount_12 > 0,
            chain_implied_sales(b.inv_in_amount_12 / 12.0, b.ind_sales_to_purchases_med),
            ibis.null("float64"),
        ),
        stage=2,
    ),
    Derived(
        "chain_gap",
        ("chain_implied_sales",),
        lambda b: _gap(b.chain_implied_sales, b.sales_month_avg),
        stage=2,
    ),
]


def _model_gap(model: str):
    return lambda b: ibis.ifelse(b.industry_model == model, b.model_gap, ibis.null("float64"))


_G = "industry_models"
_GUIDE_TAIL_ZH = "调取生产记录、原材料领用和产成品入库单、出入库台账,约谈企业说明差异并补正申报。"
_GUIDE_TAIL_EN = (
    "Request production logs, raw-material issue and finished-goods receipts and "
    "stock ledgers; interview the firm about the difference and have it correct "
    "its returns."
)


def _model_indicator(
    id_: str, model: str, zh: str, en: str, tables: tuple[str, ...], what_zh: str, what_en: str
) -> Indicator:
    return Indicator(
        id=id_,
        name_zh=zh,
        name_en=en,
        tables=("vat_returns", "industries", *tables),
        compute=_model_gap(model),
        direction="high",
        pct=False,
        threshold=threshold("industry_model_gap"),
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
        "按单位产品耗电定额(如小煤矿吨煤耗电约8度)由用电量测算产量和销售额,测算额超过申报25%以上:",
        "Output estimated from electricity at the kWh-per-unit norm (small coal mines: about 8 "
        "kWh a tonne) implies sales over 25% above those declared.",
    ),
    _model_indicator(
        "input_output_gap",
        "input_output",
        "投入产出法测算销售额高于申报",
        "Input-output model: implied sales above declared",
        ("operations",),
        "按投入产出比(面粉72%-75%,保守按65%)由原料耗用测算产量,测算销售额超过申报25%以上,"
        "或原料耗用明显超过产量所需(多耗原料应转出进项税额):",
        "Output estimated from raw material at the yield norm (flour 72-75%, 65% conservative) "
        "implies sales over 25% above those declared, or raw material far exceeds what the "
        "output needs (the input tax on the excess is reversed).",
    ),
    _model_indicator(
        "kiln_model_gap",
        "kiln",
        "砖瓦窑炉产能测算销售额高于申报",
        "Kiln-capacity model: implied sales above declared",
        ("operations",),
        "按窑孔数×单孔容量×循环次数测算产量,扣除损耗并考虑期初期末库存后测算销售额,超过申报25%以上:",
        "Kilns x capacity x cycles, less losses, plus opening minus closing stock, at the "
        "average price, implies sales over 25% above those declared.",
    ),
    _model_indicator(
        "volume_density_gap",
        "volume_density",
        "体积密度法测算煤炭销售额高于申报",
        "Volume-density model: implied coal sales above declared",
        ("operations",),
        "按采掘工作面长×宽×高×煤炭密度测算产量和销售额,超过申报25%以上:",
        "Mined volume (length x width x height of the face) x density implies sales over 25% "
        "above those declared.",
    ),
    Indicator(
        id="chain_gap",
        name_zh="产业链测算销售额高于申报",
        name_en="Industry chain: purchases imply more sales than declared",
        tables=("invoices", "vat_returns"),
        compute=lambda b: b.chain_gap,
        direction="high",
        pct=False,
        threshold=threshold("chain_gap"),
        measure="notice",
        unit="share of implied sales",
        group=_G,
        guide_zh="按同行业销售额与购进额之比,由购进发票测算应有销售额,测算额超过申报40%以上:"
        "沿产业链上下游交叉比对购销数量,核实购进货物去向和库存。",
        guide_en="Purchases on invoices, at the industry's sales-to-purchases ratio, imply sales "
        "over 40% above those declared: cross-check quantities along the chain (suppliers and "
        "buyers) and trace the purchased goods and stock.",
    ),
    Indicator(
        id="stock_mismatch",
        name_zh="产成品产销存不平衡(预收账款、库存)",
        name_en="Finished goods produced minus sold differ from the stock change",
        tables=("operations", "industry_norms", "vat_returns"),
        compute=lambda b: b.stock_gap_share,
        direction="high",
        pct=False,
        threshold=threshold("stock_mismatch"),
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
        compute=lambda b: b.io_overclaim_share,
        direction="high",
        pct=False,
        threshold=threshold("input_output_overclaim"),
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
