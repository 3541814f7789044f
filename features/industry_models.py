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

This module holds only the formulas (tested against the documents' worked examples). Their
application to the contract's tables, the matrix columns and the catalog's industry-model
indicators are the ``industry`` family: :mod:`taxrisk.features.indicators.industry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
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
