"""The documents' worked examples, planted in every world, reproduce the documents' numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from taxrisk.experiments.demo import PLANTED

YEAR = "2025"  # the planted year of the default end (2025-12)


def _ops(world: Path, key: str) -> pd.DataFrame:
    ops = pd.read_parquet(world / "operations.parquet")
    tid = PLANTED[key]["taxpayer_id"]
    return ops[(ops.taxpayer_id == tid) & ops.period.str.startswith(YEAR)]


def _vat(world: Path, key: str) -> pd.DataFrame:
    v = pd.read_parquet(world / "vat_returns.parquet")
    return v[(v.taxpayer_id == PLANTED[key]["taxpayer_id"]) & v.period.str.startswith(YEAR)]


def test_planted_taxpayers_are_registered(demo_world: Path) -> None:
    tp = pd.read_parquet(demo_world / "taxpayers.parquet").set_index("taxpayer_id")
    for key, industry in (("flour_mill", "1311"), ("brick_works", "3031"), ("beer_maker", "1513")):
        row = tp.loc[PLANTED[key]["taxpayer_id"]]
        assert row.industry == industry
        assert row.taxpayer_type == "general"
        assert pd.isna(row.deregistered_on)


def test_flour_mill_input_output(demo_world: Path) -> None:
    f = PLANTED["flour_mill"]
    ops = _ops(demo_world, "flour_mill").groupby("metric").value.sum()
    assert ops["raw_material_t"] == pytest.approx(6793.0, abs=1e-6)
    assert ops["output_t"] == pytest.approx(3501.0, abs=1e-6)
    assert ops["output_t"] / ops["raw_material_t"] == pytest.approx(0.5154, abs=5e-5)
    over = ops["raw_material_t"] - ops["output_t"] / f["floor"]
    assert round(over) == 1407
    input_tax = over * f["wheat_cost"] / f["wheat_t"] * 0.13
    assert input_tax == pytest.approx(278_000, rel=0.005)
    # the declared inputs carry the over-claim: input tax of all 6,793 t of wheat
    v = _vat(demo_world, "flour_mill")
    assert v.input_tax.sum() >= 0.13 * f["wheat_cost"]
    norms = pd.read_parquet(demo_world / "industry_norms.parquet")
    ratio = norms[(norms.industry == "1311") & (norms.metric == "input_output_ratio")].value.item()
    assert 0.72 <= ratio <= 0.75
    g = pd.read_parquet(demo_world / "truth/gaps.parquet")
    g = g[(g.taxpayer_id == f["taxpayer_id"]) & g.period.str.startswith(YEAR)]
    assert set(g.scheme.dropna()) == {"inflated_inputs"}
    assert g.gap.sum() > f["input_tax_reversed"]  # the floor finds only part of the truth


def test_brick_works_five_step_kiln_model(demo_world: Path) -> None:
    b = PLANTED["brick_works"]
    ops = _ops(demo_world, "brick_works")
    by = ops.pivot(index="period", columns="metric", values="value").sort_index()
    output = (by.kilns * by.kiln_capacity * by.cycles).sum()  # step 1
    assert output == pytest.approx(28_800.0)
    finished = output * (1 - b["loss_rate"])  # step 2
    assert finished == pytest.approx(27_360.0)
    all_ops = pd.read_parquet(demo_world / "operations.parquet")
    stock = all_ops[(all_ops.taxpayer_id == b["taxpayer_id"]) & (all_ops.metric == "stock_t")]
    opening = stock[stock.period == "2024-12"].value.item()
    closing = stock[stock.period == "2025-12"].value.item()
    assert (opening, closing) == (500.0, 800.0)
    sold = finished + opening - closing  # step 3
    assert sold == pytest.approx(27_060.0)
    sales = sold * b["avg_price"]  # step 4
    assert sales == pytest.approx(3_247_200.0)
    assert sales * 0.13 == pytest.approx(422_136.0)  # step 5
    v = _vat(demo_world, "brick_works")
    assert v.sales.sum() == pytest.approx(b["declared_sales"], abs=0.1)


def test_beer_maker_burden(demo_world: Path) -> None:
    r = PLANTED["beer_maker"]
    v = _vat(demo_world, "beer_maker")
    assert v.sales.sum() == pytest.approx(r["declared_sales"], abs=0.1)
    burden = v.tax_payable.sum() / v.sales.sum()
    assert burden == pytest.approx(0.0487, abs=1e-5)
    norms = pd.read_parquet(demo_world / "industry_norms.parquet")
    beer = norms[norms.industry == "1513"].set_index("metric").value
    assert beer["tax_burden_avg"] == pytest.approx(0.0499)
    assert burden < beer["tax_burden_warning"]
    after = (v.tax_payable.sum() + r["vat_recovered"]) / (v.sales.sum() + r["hidden_sales"])
    assert after == pytest.approx(0.0498, abs=5e-5)
    g = pd.read_parquet(demo_world / "truth/gaps.parquet")
    g = g[(g.taxpayer_id == r["taxpayer_id"]) & g.period.str.startswith(YEAR)]
    assert set(g.scheme.dropna()) == {"advance_receipts"}
    # the VAT part of the gap is the document's 121,426.49 (the rest is surcharges and CIT)
    assert g.gap.sum() > r["vat_recovered"]
