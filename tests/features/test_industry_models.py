"""The industry evaluation models reproduce the documents' worked examples, and the matrix
applies the same formulas."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from factory import months, tiny_frames, vat_rows
from taxrisk.features import industry_models as im
from taxrisk.features.matrix import build_matrix
from taxrisk.features.tables import Tables


def test_flour_mill_input_output_example() -> None:
    """Wuwei, 2009: 6,793 t of wheat (10,354,056.13 yuan) for 3,501 t of flour; at the 65%
    floor, 6793 - 3501 / 65% = 1,407 t over-claimed, whose input tax of 27.8万 was reversed."""
    raw_t, flour_t, floor = 6793.0, 3501.0, 0.65
    assert round(flour_t / raw_t, 4) == 0.5154  # the mill's yield: 51.54%
    over = im.input_output_overclaim(raw_t, flour_t, floor)
    assert round(over) == 1407
    # The document reverses the input tax of the 1,407 t at the wheat's unit cost
    # (10,354,056.13 / 6,793 = 1,524.22 yuan/t) and the 13% deduction rate on farm produce:
    tax = im.overclaimed_input_tax(1407.0, raw_t, 10_354_056.13, 0.13)
    assert round(tax) == 278_796
    assert math.floor(tax / 1000) * 1000 == 278_000  # "27.8万元"
    # the typical 72-75% yield would have flagged even more
    assert im.input_output_overclaim(raw_t, flour_t, 0.72) > over


def test_kiln_five_steps() -> None:
    """24 kiln holes x 30 t per hole per cycle x 40.8 cycles a year, 5% loss, stock from 500 t
    to 800 t, 120 yuan/t, 13% VAT."""
    r = im.kiln_model(24, 30.0, 40.8, 0.05, 500.0, 800.0, 120.0, 0.13)
    assert r.output == pytest.approx(29_376.0)  # step 1: kilns x capacity x cycles
    assert r.finished == pytest.approx(29_376.0 - 1_468.8)  # step 2: output - output x loss
    assert r.sold == pytest.approx(27_907.2 + 500.0 - 800.0)  # step 3: + opening - closing
    assert r.sales == pytest.approx(27_607.2 * 120.0)  # step 4: x average price
    assert r.tax == pytest.approx(3_312_864.0 * 0.13)  # step 5: x rate
    assert round(r.tax, 2) == 430_672.32


def test_small_coal_mine_norms() -> None:
    """Xinxiang: about 8 kWh and 23 yuan of wages per tonne; the mineral compensation fee is
    1% of sales. Each implies the same 10,000 t / 4,000,000 yuan month."""
    assert im.output_from_power(80_000.0, 8.0) == pytest.approx(10_000.0)
    assert im.output_from_wages(230_000.0, 23.0) == pytest.approx(10_000.0)
    assert im.sales_from_fee(40_000.0, 0.01) == pytest.approx(4_000_000.0)
    assert im.output_from_power(80_000.0, 8.0) * 400.0 == pytest.approx(4_000_000.0)


def test_volume_density_and_chain() -> None:
    # a face 100 m long, 4 m wide, 2.5 m high at 1.3 t/m3
    assert im.volume_density_output(100 * 4 * 2.5, 1.3) == pytest.approx(1_300.0)
    assert im.chain_implied_sales(1_000_000.0, 1.25) == pytest.approx(1_250_000.0)


def _mill_tables(norms: bool = True) -> Tables:
    """One flour mill (12 months of wheat and flour) and one coal mine (power method)."""
    ps = months("2023-01", 12)
    ops = []
    for p in ps:
        ops += [
            {
                "taxpayer_id": "MILL",
                "period": p,
                "metric": "raw_material_t",
                "value": 6793.0 / 12,
                "source": "officer",
            },
            {
                "taxpayer_id": "MILL",
                "period": p,
                "metric": "output_t",
                "value": 3501.0 / 12,
                "source": "officer",
            },
        ]
    elec = [{"taxpayer_id": "MINE", "period": p, "kwh": 80_000.0, "charge": 48_000.0} for p in ps]
    # two brickworks: K1 reports its kilns, capacity and cycles, K2 only its kilns
    for p in ps:
        ops += [
            {"taxpayer_id": "K1", "period": p, "metric": "kilns", "value": 24.0},
            {"taxpayer_id": "K1", "period": p, "metric": "kiln_capacity", "value": 30.0},
            {"taxpayer_id": "K1", "period": p, "metric": "cycles", "value": 3.4},
            {"taxpayer_id": "K2", "period": p, "metric": "kilns", "value": 12.0},
        ]
    norm_rows = [
        # the contract's norm is the typical yield (72-75%, flour); assessments use the floor
        {"industry": "1311", "metric": "input_output_ratio", "value": 0.735},
        {"industry": "1311", "metric": "avg_price", "value": 2200.0},
        {"industry": "0610", "metric": "kwh_per_unit", "value": 8.0},
        {"industry": "0610", "metric": "avg_price", "value": 400.0},
        {"industry": "3031", "metric": "loss_rate", "value": 0.05},
        {"industry": "3031", "metric": "avg_price", "value": 120.0},
    ]
    extra = {"industry_norms": norm_rows} if norms else {}
    frames = tiny_frames(
        [
            {"taxpayer_id": "MILL", "industry": "1311"},
            {"taxpayer_id": "MINE", "industry": "0610"},
            {"taxpayer_id": "K1", "industry": "3031"},
            {"taxpayer_id": "K2", "industry": "3031"},
        ],
        vat_returns=vat_rows("MILL", ps, 1000.0, sales=100_000.0)
        + vat_rows("MINE", ps, 5000.0, sales=1_000_000.0)
        + vat_rows("K1", ps, 3000.0, sales=250_000.0)
        + vat_rows("K2", ps, 1000.0, sales=50_000.0),
        operations=ops,
        electricity=elec,
        industries=[
            {"industry": "1311", "name": "小麦加工(面粉)", "model": "input_output"},
            {"industry": "0610", "name": "小煤矿", "model": "power"},
            {"industry": "3031", "name": "砖瓦", "model": "kiln"},
        ],
        **extra,
    )
    return Tables.from_frames(frames)


def test_matrix_applies_the_models() -> None:
    m = build_matrix(_mill_tables(), dt.date(2024, 1, 20))
    mill, mine = m.loc["MILL"], m.loc["MINE"]
    # flour: over-claimed share = 1,407 t / 6,793 t; its input tax at 13% = 278,766 yuan
    assert mill["io_overclaim_share"] == pytest.approx((6793 - 3501 / 0.65) / 6793)
    # the input tax claimed on that share of the raw material (the raw material carries it)
    assert mill["io_overclaim_input_tax_12"] == pytest.approx(
        mill["io_overclaim_share"] * mill["input_tax_12"]
    )
    assert mill["input_output_overclaim__fired"] == 1  # 20.7% of the wheat is unexplained
    # implied flour = wheat x 65% = 4,415.45 t a year, 367.95 t a month, x 2,200 yuan
    assert mill["model_units_month"] == pytest.approx(6793 * 0.65 / 12)
    assert mill["model_implied_sales"] == pytest.approx(6793 * 0.65 / 12 * 2200.0)
    # coal by power: 80,000 kWh / 8 = 10,000 t a month x 400 yuan = 4,000,000 vs 1,000,000
    assert mine["model_units_month"] == pytest.approx(10_000.0)
    assert mine["model_gap"] == pytest.approx(0.75)
    assert mine["power_model_gap__fired"] == 1
    # kiln: K2 did not report capacity or cycles: the industry's reported medians (K1's)
    k1, k2 = m.loc["K1"], m.loc["K2"]
    assert k1["model_units_month"] == pytest.approx(24 * 30.0 * 3.4 * 0.95)
    assert k2["model_units_month"] == pytest.approx(12 * 30.0 * 3.4 * 0.95)
    assert k2["model_implied_sales"] == pytest.approx(12 * 30.0 * 3.4 * 0.95 * 120.0)


def test_models_degrade_without_norms() -> None:
    """Without industry_norms: the yield is the industry's observed median x the floor share,
    kWh per unit the documents' 8, the price the industry's median sales per implied unit."""
    from taxrisk.features.config import default_config

    share = default_config().models.floor_share
    m = build_matrix(_mill_tables(norms=False), dt.date(2024, 1, 20))
    mill, mine = m.loc["MILL"], m.loc["MINE"]
    assert mill["model_units_month"] == pytest.approx(6793 / 12 * (3501 / 6793) * share)
    assert mine["model_units_month"] == pytest.approx(80_000.0 / 8.0)
    # alone in its industry, the mine is its own price yardstick: no gap
    assert mine["model_implied_sales"] == pytest.approx(mine["sales_month_avg"])
    off = m.attrs["switched_off"]
    assert "power_model_gap" not in off and "input_output_gap" not in off
    assert off["stock_mismatch"] == "missing optional table industry_norms"
