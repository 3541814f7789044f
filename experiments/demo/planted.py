"""The source documents' worked examples, planted as the first three taxpayers.

Each is an ordinary registry entry (chunk 0, so present in every world of 3+ taxpayers)
whose activity, scheme and returns reproduce a document's numbers in the **planted year**:
the last full calendar year of the window (2025 with the default ``end``).

- ``flour_mill`` (TP00000001, industry 1311, input-output model): over the planted year the
  archive records 6,793 t of wheat used (self-reported, bought for 10,354,056.13 yuan) and
  3,501 t of flour produced (officer count): ratio 51.54% against the industry's 72-75%. With
  the 65% floor, 6,793 - 3,501 / 0.65 = 1,407 t over-claimed, whose input tax (13%) is about
  278,000 yuan. Truth: the mill really yields 73.5%, so it used 3,501 / 0.735 = 4,763 t and
  over-claimed 2,030 t (scheme ``inflated_inputs``): the assessment's floor finds only part.
- ``brick_works`` (TP00000002, industry 3031, kiln model): 24 kiln holes x 30 t x 40 cycles
  = 28,800 t fired; 5% loss -> 27,360 t finished; opening stock 500 t, closing 800 t ->
  27,060 t sold; x 120 yuan/t = 3,247,200 yuan of sales; x 13% = 422,136 yuan of output tax.
  It declared 2,300,000 yuan of sales (scheme ``cash_sales``).
- ``beer_maker`` (TP00000003, industry 1513, burden indicator): declared sales
  68,100,727.27 yuan and VAT payable at 4.87% of them, against the industry's 4.99%; it had
  parked 934,049.92 yuan of sales in advance receipts (scheme ``advance_receipts``), whose VAT
  is 121,426.49 yuan: with it the burden is 4.98%, as in the document.
"""

from __future__ import annotations

import numpy as np

from .evasion import S
from .industries import INDUSTRIES
from .timeline import Timeline
from .world import ORDINARY, Chunk

__all__ = ["PLANTED", "planted_year"]

_POS = {i.code: k for k, i in enumerate(INDUSTRIES)}

#: Ids and the figures each worked example must reproduce (planted year: :func:`planted_year`).
PLANTED: dict[str, dict] = {
    "flour_mill": {
        "taxpayer_id": "TP00000001",
        "industry": "1311",
        "model": "input_output",
        "wheat_t": 6793.0,
        "flour_t": 3501.0,
        "wheat_cost": 10_354_056.13,
        "ratio": 3501.0 / 6793.0,  # 51.54%
        "norm_ratio": (0.72, 0.75),
        "floor": 0.65,
        "overclaimed_t": 6793.0 - 3501.0 / 0.65,  # 1,406.85 -> 1,407 t
        "input_tax_rate": 0.13,
        "input_tax_reversed": (6793.0 - 3501.0 / 0.65) * 10_354_056.13 / 6793.0 * 0.13,  # ~278,000
        "true_ratio": 0.735,
        "scheme": "inflated_inputs",
    },
    "brick_works": {
        "taxpayer_id": "TP00000002",
        "industry": "3031",
        "model": "kiln",
        "kilns": 24,
        "kiln_capacity_t": 30.0,
        "cycles": 40,
        "cycles_by_month": (3, 3, 4, 3, 3, 4, 3, 3, 4, 3, 3, 4),
        "loss_rate": 0.05,
        "opening_stock_t": 500.0,
        "closing_stock_t": 800.0,
        "avg_price": 120.0,
        "output_t": 28_800.0,
        "finished_t": 27_360.0,
        "sold_t": 27_060.0,
        "sales": 3_247_200.0,
        "tax": 422_136.0,
        "vat_rate": 0.13,
        "declared_sales": 2_300_000.0,
        "scheme": "cash_sales",
    },
    "beer_maker": {
        "taxpayer_id": "TP00000003",
        "industry": "1513",
        "burden_declared": 0.0487,
        "industry_burden": 0.0499,
        "burden_after": 0.0498,
        "declared_sales": 68_100_727.27,
        "hidden_sales": 934_049.92,
        "vat_recovered": 121_426.49,
        "scheme": "advance_receipts",
    },
}

_MILL, _BRICK, _BEER = 0, 1, 2
_NAMES = ("凉州区金穗面粉有限公司", "武威市红星砖瓦厂有限公司", "凉州区西凉啤酒有限公司")
_SEASON = np.array([0.9, 0.85, 0.95, 1.0, 1.05, 1.1, 1.15, 1.1, 1.05, 1.0, 0.95, 0.9])
_BEER_SEASON = np.array([0.5, 0.55, 0.75, 0.95, 1.2, 1.45, 1.6, 1.55, 1.2, 0.9, 0.7, 0.6])


def planted_year(tl: Timeline) -> tuple[int, int]:
    """(calendar year, month index of its January): the last full calendar year of the window."""
    last = tl.months - 1
    cm = int(tl.calmonth_of(last))
    if cm == 12:
        return int(tl.year_of(last)), last - 11
    return int(tl.year_of(last)) - 1, last - (cm - 1) - 12


def _split(total: float, weights: np.ndarray, decimals: int) -> np.ndarray:
    """``total`` split by ``weights`` and rounded, the last part absorbing the rounding."""
    parts = np.round(total * weights / weights.sum(), decimals)
    parts[-1] = round(total - parts[:-1].sum(), decimals)
    return parts


def _year_pattern(tl: Timeline, ys: int, per_year: np.ndarray) -> np.ndarray:
    """Repeat a 12-month pattern (January first) over the whole window, aligned on ``ys``."""
    m = np.arange(tl.months)
    return per_year[(m - ys) % 12]


def plant_registry(ch: Chunk) -> None:
    """Make taxpayers 1-3 the worked examples' firms: industry, type, old and active."""
    if ch.lo != 0 or ch.n < 3:
        return
    tp = ch.tp
    tp["name"] = tp["name"].astype(object)
    tp["unit"] = tp["unit"].astype(object)
    for i, code in ((_MILL, "1311"), (_BRICK, "3031"), (_BEER, "1513")):
        tp["industry"][i] = _POS[code]
        tp["small"][i] = False
        tp["quota"][i] = False
        tp["archetype"][i] = ORDINARY
        tp["reg_m"][i] = -120
        tp["last_m"][i] = ch.months + 120
        tp["dereg_m"][i] = ch.months + 999
        tp["registered_on"][i] = ch.tl.month_start(-120) + np.timedelta64(9, "D")
        tp["name"][i] = _NAMES[i]
        tp["unit"][i] = tp["unit"][i].split("-")[0] if "-" in tp["unit"][i] else tp["unit"][i]
    tp["size"][_MILL] = 3501.0 / 12 * 2990.0
    tp["size"][_BRICK] = 3_247_200.0 / 12
    tp["size"][_BEER] = 68_100_727.27 / 12
    tp["capital"][:3] = (5_000_000.0, 2_000_000.0, 30_000_000.0)
    ch.mo["active"][:3] = True
    ch.extra["planted_mask"] = np.isin(np.arange(ch.n), [0, 1, 2])
    ch.extra["planted_ops"] = ch.extra["planted_mask"]


def plant_activity(ch: Chunk) -> None:
    """Set the true activity and the scheme of the three firms (after evasion and events)."""
    if ch.lo != 0 or ch.n < 3:
        return
    tl, tp, mo = ch.tl, ch.tp, ch.mo
    year, ys = planted_year(tl)
    del year
    for key in ("exports", "capex", "rent", "equity_gain", "equity_price"):
        mo[key][:3] = 0.0
    mo["equity_evaded"][:3] = False
    tp["scheme2"][:3] = -1
    mo["on2"][:3] = False
    tp["scheme3"][:3] = -1
    mo["on3"][:3] = False
    mo["on1"][:3] = True
    tp["evader"][:3] = True

    # flour mill: true yield 73.5%; claims the wheat of a 51.54% yield
    f = PLANTED["flour_mill"]
    flour = _year_pattern(tl, ys, _split(f["flour_t"], _SEASON, 3))
    wheat_claimed = _year_pattern(tl, ys, _split(f["wheat_t"], _SEASON, 3))
    raw_price = f["wheat_cost"] / f["wheat_t"]
    true_wheat = flour / f["true_ratio"]
    tp["raw_price"][_MILL] = raw_price
    tp["price"][_MILL] = 2990.0
    tp["yld"][_MILL] = f["true_ratio"]
    mo["output_t"][_MILL] = flour
    mo["raw_t"][_MILL] = true_wheat
    mo["stock_t"][_MILL] = flour * 0.3
    mo["sales"][_MILL] = flour * 2990.0
    mo["purchases"][_MILL] = true_wheat * raw_price + flour * 30.0
    tp["scheme1"][_MILL] = S["inflated_inputs"]
    tp["int1"][_MILL] = 0.0  # the claimed wheat is set exactly below
    ch.extra["extra_input_override"] = {_MILL: (wheat_claimed - true_wheat) * raw_price}
    ops = [
        (_MILL, "raw_material_t", wheat_claimed, "self_reported"),
        (_MILL, "output_t", flour, "officer"),
        (_MILL, "stock_t", np.round(flour * 0.3, 3), "self_reported"),
    ]

    # brick works: five-step kiln model
    b = PLANTED["brick_works"]
    cycles = _year_pattern(tl, ys, np.array(b["cycles_by_month"], dtype=float))
    finished = b["kilns"] * b["kiln_capacity_t"] * cycles * (1.0 - b["loss_rate"])
    m = np.arange(tl.months)
    step = (b["closing_stock_t"] - b["opening_stock_t"]) / 12.0
    closing = np.where(
        m < ys, b["opening_stock_t"], b["opening_stock_t"] + step * np.minimum(m - ys + 1, 12)
    )
    opening = np.concatenate([[b["opening_stock_t"]], closing[:-1]])
    sold = finished + opening - closing
    tp["kilns"][_BRICK], tp["kiln_cap"][_BRICK], tp["loss"][_BRICK] = (
        b["kilns"],
        b["kiln_capacity_t"],
        b["loss_rate"],
    )
    tp["price"][_BRICK] = b["avg_price"]
    mo["cycles"][_BRICK] = cycles
    mo["output_t"][_BRICK] = finished
    mo["stock_t"][_BRICK] = closing
    mo["sales"][_BRICK] = sold * b["avg_price"]
    mo["purchases"][_BRICK] = mo["sales"][_BRICK] * 0.55
    tp["scheme1"][_BRICK] = S["cash_sales"]
    tp["int1"][_BRICK] = 0.3
    ops += [
        (_BRICK, "kilns", np.full(tl.months, float(b["kilns"])), "officer"),
        (_BRICK, "kiln_capacity", np.full(tl.months, b["kiln_capacity_t"]), "officer"),
        (_BRICK, "cycles", cycles, "third_party"),
        (
            _BRICK,
            "output_t",
            np.round(finished * b["declared_sales"] / b["sales"], 3),
            "self_reported",
        ),
        (_BRICK, "stock_t", closing, "officer"),
    ]

    # beer maker: 4.87% declared burden, 934,049.92 yuan parked in advance receipts
    r = PLANTED["beer_maker"]
    sales_d = _year_pattern(tl, ys, _split(r["declared_sales"], _BEER_SEASON, 2))
    hidden = _year_pattern(tl, ys, _split(r["hidden_sales"], _BEER_SEASON, 2))
    mo["sales"][_BEER] = sales_d + hidden
    mo["purchases"][_BEER] = sales_d * (0.13 - r["burden_declared"]) / 0.13
    tp["scheme1"][_BEER] = S["advance_receipts"]
    tp["int1"][_BEER] = 0.0
    ch.extra["sales_d_override"] = {
        _BRICK: mo["sales"][_BRICK] * b["declared_sales"] / b["sales"],
        _BEER: sales_d,
    }
    for i in (_MILL, _BRICK, _BEER):
        mo["wages"][i] = mo["sales"][i] * 0.05
        mo["headcount"][i] = np.maximum(1, np.round(mo["wages"][i] / 6000.0))
        mo["other_cost"][i] = mo["sales"][i] * 0.05
        mo["kwh"][i] = mo["output_t"][i] * 45.0 if i == _MILL else mo["sales"][i] * 0.02
    ch.extra["planted_operations"] = (
        np.concatenate([np.full(tl.months, i) for i, *_ in ops]),
        np.concatenate([m for _ in ops]),
        np.concatenate([np.full(tl.months, metric) for _, metric, *_ in ops]),
        np.concatenate([np.round(v, 3) for *_, v, _ in ops]),
        np.concatenate([np.full(tl.months, src) for *_, src in ops]),
    )
