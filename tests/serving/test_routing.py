"""Routing: managing unit, city for key and cross-county cases, one level up when complex."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from taxrisk.features.tables import Tables
from taxrisk.serving.routing import (
    BadUnits,
    UnknownUnit,
    annual_tax_paid,
    candidate_frame,
    county_of,
    cross_county,
    cross_county_share,
    invoice_indicators,
    n_fired,
    recommended_measure,
    route,
)

AS_OF = dt.date(2025, 6, 30)  # window: invoices of 2024-06 .. 2025-05


def _units() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "unit_id": ["CITY", "C1", "C2", "B11", "B12", "B21", "B211", "BX"],
            "parent_id": [None, "CITY", "CITY", "C1", "C1", "C2", "B21", "CITY"],
            "level": ["city", "county", "county", "branch", "branch", "branch", "branch", "branch"],
            "name": ["市局", "一县", "二县", "一所", "二所", "三所", "三所一组", "直属所"],
            "capacity": [5, 4, 4, 2, 2, 2, 1, 1],
        }
    )


def _cand(tid: str, unit: str, ey: float = 1000.0, tax: float = 0.0, fired: int = 0,
          cross: bool = False) -> dict[str, object]:  # fmt: skip
    return {
        "taxpayer_id": tid,
        "unit_id": unit,
        "expected_yield": ey,
        "annual_tax_paid": tax,
        "n_fired": fired,
        "cross_county": cross,
    }


def test_county_of_walks_up_to_the_nearest_county() -> None:
    c = county_of(_units())
    assert c.to_dict() == {
        "CITY": "CITY",
        "C1": "C1",
        "C2": "C2",
        "B11": "C1",
        "B12": "C1",
        "B21": "C2",
        "B211": "C2",  # a branch under a branch
        "BX": "CITY",  # a branch directly under the city has no county: the city
    }


def test_route_rules() -> None:
    cands = pd.DataFrame(
        [
            _cand("plain", "B11"),
            _cand("county", "C2"),
            _cand("key", "B11", tax=1_000_000.0, fired=9, ey=2e6),
            _cand("almost_key", "B11", tax=999_999.0),
            _cand("cross", "B21", cross=True),
            _cand("key_and_cross", "C1", tax=5e6, cross=True),
            _cand("many_fired", "B11", fired=4),
            _cand("three_fired", "B11", fired=3, ey=499_999.0),
            _cand("big_yield", "C1", ey=500_000.0),
            _cand("city_managed", "CITY", fired=7),
        ]
    )
    r = route(cands, _units(), city_fallback=False).set_index("taxpayer_id")
    assert list(r.index) == list(cands["taxpayer_id"])  # same order, nothing dropped
    expect = {
        "plain": ("B11", ("B11",), "managing", "C1"),
        "county": ("C2", ("C2",), "managing", "CITY"),
        "key": ("CITY", ("CITY",), "key_taxpayer", None),
        "almost_key": ("B11", ("B11",), "managing", "C1"),
        "cross": ("CITY", ("CITY",), "cross_county", None),
        "key_and_cross": ("CITY", ("CITY",), "key_taxpayer", None),
        "many_fired": ("B11", ("B11", "C1"), "managing", "C1"),
        "three_fired": ("B11", ("B11",), "managing", "C1"),
        "big_yield": ("C1", ("C1", "CITY"), "managing", "CITY"),
        "city_managed": ("CITY", ("CITY",), "managing", None),
    }
    for tid, (primary, allowed, reason, esc) in expect.items():
        row = r.loc[tid]
        assert row["primary_unit"] == primary, tid
        assert row["allowed_units"] == allowed, tid
        assert row["route_reason"] == reason, tid
        assert pd.isna(row["escalation_unit"]) if esc is None else row["escalation_unit"] == esc
    assert r["complex"].to_dict()["many_fired"] and not r["complex"].to_dict()["three_fired"]
    assert str(r["route_reason"].dtype) == "str" and str(r["primary_unit"].dtype) == "str"


def test_city_fallback_to_the_managing_county() -> None:
    cands = pd.DataFrame(
        [
            _cand("key", "B11", tax=2e6),
            _cand("cross", "B211", cross=True),
            _cand("key_direct", "BX", tax=2e6),  # no county above: the city alone
            _cand("plain", "B11"),
        ]
    )
    r = route(cands, _units()).set_index("taxpayer_id")["allowed_units"].to_dict()
    assert r == {
        "key": ("CITY", "C1"),  # the city first, its county when the city has no room
        "cross": ("CITY", "C2"),
        "key_direct": ("CITY",),
        "plain": ("B11",),
    }


def test_route_parameters() -> None:
    cands = pd.DataFrame([_cand("a", "B11", tax=600_000.0, fired=2, ey=100_000.0)])
    base = route(cands, _units()).iloc[0]
    assert base["route_reason"] == "managing" and base["allowed_units"] == ("B11",)
    r = route(cands, _units(), key_line=500_000.0).iloc[0]
    assert r["route_reason"] == "key_taxpayer" and r["primary_unit"] == "CITY"
    r = route(cands, _units(), complex_fired=2).iloc[0]
    assert r["allowed_units"] == ("B11", "C1")
    r = route(cands, _units(), escalation_line=100_000.0).iloc[0]
    assert r["allowed_units"] == ("B11", "C1")


def test_unknown_managing_unit_is_named() -> None:
    cands = pd.DataFrame([_cand("ok", "B11"), _cand("lost", "C9"), _cand("lost2", "C9")])
    with pytest.raises(UnknownUnit) as err:
        route(cands, _units())
    assert "'C9'" in str(err.value) and "lost, lost2" in str(err.value)
    assert err.value.units == ["C9"] and err.value.taxpayers == ["lost", "lost2"]


def test_units_must_have_one_city_root() -> None:
    units = _units()
    units.loc[units["unit_id"] == "C2", "parent_id"] = None
    with pytest.raises(BadUnits, match="exactly one root"):
        route(pd.DataFrame([_cand("a", "B11")]), units)


def test_annual_tax_paid_counts_missing_as_zero() -> None:
    m = pd.DataFrame(
        {
            "vat_paid_pos_12": [100.0, np.nan, 5.0],
            "cit_tax_4q": [10.0, 20.0, np.nan],
            "surcharge_12": [1.0, 2.0, 3.0],
            "stamp_tax_12": [0.5, 0.0, 0.0],
            "sales_12": [1e9, 1e9, 1e9],  # not a tax
        },
        index=pd.Index(["a", "b", "c"], name="taxpayer_id"),
    )  # property_tax_12 and land_use_tax_12 absent
    assert annual_tax_paid(m).to_dict() == {"a": 111.5, "b": 22.0, "c": 8.0}


def test_fired_counts_and_measures() -> None:
    m = pd.DataFrame(
        {
            "vat_burden__fired": np.array([1, 0, 0], dtype="int8"),  # assessment
            "shell_company__fired": np.array([0, 1, 0], dtype="int8"),  # audit
            "three_period__fired": np.array([1, 1, 0], dtype="int8"),  # notice
            "not_an_indicator__fired": np.array([1, 1, 1], dtype="int8"),
        },
        index=pd.Index(["a", "b", "c"], name="taxpayer_id"),
    )
    assert n_fired(m).to_dict() == {"a": 2, "b": 2, "c": 0}
    assert recommended_measure(m).to_dict() == {"a": "assessment", "b": "audit", "c": "outreach"}


# -- cross-county ----------------------------------------------------------------------------


def _tp(tid: str, unit: str) -> dict[str, object]:
    return {
        "taxpayer_id": tid,
        "name": tid,
        "unit_id": unit,
        "industry": "F52",
        "taxpayer_type": "general",
        "collection_method": "self_assessed",
        "registered_on": "2020-01-01",
        "deregistered_on": "",
        "registered_capital": 1e6,
    }


def _inv(seller: str, buyer: str, period: str, amount: float) -> dict[str, object]:
    return {
        "seller_id": seller,
        "buyer_id": buyer,
        "period": period,
        "amount": amount,
        "tax": amount * 0.13,
        "count": 1,
    }


@pytest.fixture(scope="module")
def world() -> Tables:
    units = _units().astype({"capacity": "str"}).fillna("")
    taxpayers = [
        _tp("A", "B11"),  # county C1
        _tp("C", "B12"),  # county C1 (another branch: same county)
        _tp("B", "B211"),  # county C2
        _tp("D", "C1"),
        _tp("E", "C2"),
        _tp("F", "B21"),  # county C2
        _tp("G", "C1"),
        _tp("H", "B11"),
        _tp("K", "C1"),  # no invoices at all
    ]
    invoices = [
        # A: 400 with C2, 600 within C1 -> share 0.4
        _inv("A", "B", "2025-01", 400.0),
        _inv("C", "A", "2024-06", 600.0),
        # D: the same pattern (0.4 with C2)
        _inv("D", "F", "2025-05", 40.0),
        _inv("D", "C", "2025-02", 60.0),
        # E: outside counterparties are ignored; within C2 only -> share 0
        _inv("E", "OUTSIDE", "2025-03", 10_000.0),
        _inv("OTHER", "E", "2025-03", 10_000.0),
        _inv("E", "F", "2025-03", 100.0),
        # G: a red-letter invoice with C2 counts by its absolute amount: 500 / 1500
        _inv("G", "F", "2025-04", -500.0),
        _inv("G", "C", "2025-04", 1000.0),
        # H: with C2 only outside the window (the as-of month, and 13 months back)
        _inv("H", "B", "2025-06", 9_000.0),
        _inv("H", "B", "2024-05", 9_000.0),
        _inv("H", "C", "2025-01", 100.0),
    ]
    return Tables.from_frames(
        {
            "units": units,
            "taxpayers": pd.DataFrame(taxpayers),
            "invoices": pd.DataFrame(invoices),
        }
    )


def _matrix(fired: dict[str, list[str]]) -> pd.DataFrame:
    ids = ["A", "B", "C", "D", "E", "F", "G", "H", "K"]
    cols = ["invoice_vs_declared__fired", "chain_gap__fired", "vat_burden__fired"]
    m = pd.DataFrame(0, index=pd.Index(ids, name="taxpayer_id"), columns=cols, dtype="int8")
    for tid, names in fired.items():
        for name in names:
            m.loc[tid, f"{name}__fired"] = 1
    return m


def test_invoice_family() -> None:
    fam = invoice_indicators()
    assert "invoice_vs_declared" in fam and "chain_gap" in fam and "shell_company" in fam
    assert "vat_burden" not in fam and "electricity_vs_sales" not in fam


def test_cross_county_share(world: Tables) -> None:
    s = cross_county_share(world, AS_OF).to_pandas().set_index("taxpayer_id")
    share = s["inter_county_share"].to_dict()
    assert share["A"] == pytest.approx(0.4)
    assert share["D"] == pytest.approx(0.4)
    assert share["E"] == pytest.approx(0.0) and s.at["E", "invoiced"] == pytest.approx(100.0)
    assert share["G"] == pytest.approx(500.0 / 1500.0)
    assert share["H"] == pytest.approx(0.0)
    assert share["B"] == pytest.approx(1.0)  # B's only in-window invoice is from A (C1)
    assert "OUTSIDE" not in share and "K" not in share


def test_cross_county_needs_an_invoice_indicator(world: Tables) -> None:
    m = _matrix(
        {
            "A": ["invoice_vs_declared"],
            "D": ["vat_burden"],  # same share as A, but not an invoice risk
            "E": ["chain_gap"],
            "G": ["chain_gap"],
            "H": ["invoice_vs_declared"],
            "K": ["invoice_vs_declared"],
        }
    )
    cc = cross_county(world, AS_OF, m)
    assert cc.dtype == bool and list(cc.index) == list(m.index)
    assert cc[cc].index.tolist() == ["A", "G"]
    # the share line is a parameter: at 0.35 only A (0.4) passes, at 0.45 nobody
    assert cross_county(world, AS_OF, m, min_share=0.35)[lambda s: s].index.tolist() == ["A"]
    assert not cross_county(world, AS_OF, m, min_share=0.45).any()


def test_candidate_frame_then_route(world: Tables) -> None:
    m = _matrix({"A": ["invoice_vs_declared", "vat_burden"], "K": ["vat_burden"]})
    m["vat_paid_pos_12"] = 1000.0
    m.loc["K", "vat_paid_pos_12"] = 2_000_000.0
    units = {"A": "B11", "B": "B211", "C": "B12", "D": "C1", "E": "C2", "F": "B21", "G": "C1"}
    ranking = pd.DataFrame(
        {
            "taxpayer_id": list(m.index),
            "expected_yield": np.arange(len(m), dtype=float) * 1000.0,
            "unit_id": [units.get(t, "C1") for t in m.index],
        }
    )
    cands = candidate_frame(ranking, m, cross_county(world, AS_OF, m))
    assert cands.set_index("taxpayer_id").at["A", "n_fired"] == 2
    assert cands.set_index("taxpayer_id").at["A", "measure"] == "assessment"
    r = route(cands, world["units"]).set_index("taxpayer_id")  # units as an Ibis table
    assert r.at["A", "route_reason"] == "cross_county" and r.at["A", "primary_unit"] == "CITY"
    assert r.at["K", "route_reason"] == "key_taxpayer"
    assert r.at["B", "route_reason"] == "managing" and r.at["B", "escalation_unit"] == "B21"
