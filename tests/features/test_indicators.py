"""Exact values of indicators on hand-built tables.

As of 2024-03-20 the information date is 2024-02-29 (the last day of the previous month):
returns filed by then count, so the January 2024 return (filed 2024-02-10) is the latest; the
window k=1..12 is March 2023 to February 2024.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from factory import months, tiny_frames, vat_rows
from taxrisk.features.matrix import build_matrix
from taxrisk.features.tables import Tables

AS_OF = dt.date(2024, 3, 20)
P13 = months("2023-01", 13)  # 2023-01 .. 2024-01, all filed by 2024-02-10


def _world() -> dict[str, pd.DataFrame]:
    a_pay = [500.0] * 6 + [0.0, -20.0, 0.0, 0.0, 0.0, -5.0, 0.0]  # 7 zero/negative at the end
    b_pay = [100.0] * 5 + [30.0] * 8  # 8 months under 50 yuan
    vat = (
        vat_rows("A", P13, a_pay)
        + vat_rows("B", P13, b_pay)
        + vat_rows("C", P13, 500.0)
        + vat_rows("D", P13, 300.0)
        + vat_rows("E", P13, 1000.0)
        + vat_rows("G", P13, 100.0)
        + vat_rows("H", P13, 100.0)
        + vat_rows("J", P13, 400.0)
        # filed after the information date: invisible
        + vat_rows("A", ["2024-02"], 9999.0)
    )
    inv = [
        {
            "seller_id": "C",
            "buyer_id": "X9",
            "period": p,
            "amount": 15_000.0,
            "tax": 1950.0,
            "count": 3,
        }
        for p in P13
    ] + [
        {
            "seller_id": "X8",
            "buyer_id": "D",
            "period": p,
            "amount": 15_384.62,
            "tax": 2000.0,
            "count": 1,
        }
        for p in P13
    ]
    local = (
        [
            {
                "taxpayer_id": "E",
                "period": p,
                "tax_type": "urban_construction",
                "base": 1000.0,
                "tax_payable": 10.0,
                "filed_on": r["filed_on"],
            }
            for p, r in zip(P13, vat_rows("E", P13, 1000.0), strict=True)
        ]
        + [
            # C and D pay the full surcharges (7% + 3% of VAT paid): the industry's rate is 10%
            {
                "taxpayer_id": t,
                "period": p,
                "tax_type": "urban_construction",
                "base": pay,
                "tax_payable": pay * 0.10,
                "filed_on": r["filed_on"],
            }
            for t, pay in (("C", 500.0), ("D", 300.0))
            for p, r in zip(P13, vat_rows(t, P13, pay), strict=True)
        ]
        + [
            {
                "taxpayer_id": "J",
                "period": "2023-07",
                "tax_type": "stamp",
                "base": 800_000.0,
                "tax_payable": 400.0,
                "filed_on": "2023-08-05",
            },
        ]
        + [
            {
                "taxpayer_id": "C",
                "period": "2023-07",
                "tax_type": "stamp",
                "base": 1_200_000.0,
                "tax_payable": 600.0,
                "filed_on": "2023-08-05",
            },
        ]
    )
    regs = [
        {
            "taxpayer_id": "A",
            "changed_on": "2023-06-10",
            "change_type": "equity_transfer",
            "amount": 1_000_000.0,
            "counterparty": "P1",
        },
        {
            "taxpayer_id": "C",
            "changed_on": "2023-07-02",
            "change_type": "equity_transfer",
            "amount": 1_200_000.0,
            "counterparty": "P2",
        },
        {
            "taxpayer_id": "J",
            "changed_on": "2023-07-03",
            "change_type": "equity_transfer",
            "amount": 800_000.0,
            "counterparty": "P3",
        },
        {"taxpayer_id": "B", "changed_on": "2023-12-01", "change_type": "legal_rep"},
    ]
    # J declared income tax in the transfer quarter (C did not)
    cit = [
        {
            "taxpayer_id": "J",
            "period": "2023-Q3",
            "revenue": 150_000.0,
            "cost": 100_000.0,
            "profit": 50_000.0,
            "tax_payable": 12_500.0,
            "filed_on": "2023-10-15",
        }
    ]
    audits = [
        {
            "case_id": "K1",
            "taxpayer_id": "A",
            "selected_on": "2023-05-02",
            "selection_reason": "rule",
            "unit_id": "C1",
            "measure": "assessment",
            "closed_on": "2023-10-05",
            "outcome": "adjusted",
            "tax_recovered": 5000.0,
            "late_fees": 100.0,
            "penalties": 0.0,
        },
        {
            "case_id": "K2",
            "taxpayer_id": "A",
            "selected_on": "2024-01-15",
            "selection_reason": "tip",
            "unit_id": "C1",
            "measure": "audit",
            "closed_on": "2024-06-01",
            "outcome": "adjusted",
            "tax_recovered": 90_000.0,
            "late_fees": 0.0,
            "penalties": 0.0,
        },
    ]
    return tiny_frames(
        [{"taxpayer_id": t} for t in "ABCDEJ"]
        + [
            {"taxpayer_id": "F", "registered_on": "2024-04-01"},
            {"taxpayer_id": "G", "deregistered_on": "2024-03-10"},
            {"taxpayer_id": "H", "deregistered_on": "2024-05-01"},
            {"taxpayer_id": "N", "registered_on": "2024-03-05"},
        ],
        vat_returns=vat,
        cit_returns=cit,
        invoices=inv,
        local_tax_returns=local,
        registrations=regs,
        audits=audits,
        industry_norms=[{"industry": "5190", "metric": "tax_burden_warning", "value": 0.02}],
    )


@pytest.fixture(scope="module")
def m() -> pd.DataFrame:
    return build_matrix(Tables.from_frames(_world()), AS_OF)


def test_population_is_point_in_time(m: pd.DataFrame) -> None:
    # F registers later; G deregistered before; H's deregistration is after the as-of date
    assert set(m.index) == {"A", "B", "C", "D", "E", "H", "J", "N"}
    # N registered after the information date: a row, but nothing known about it yet
    assert m.loc["N", "industry"] == "5190" and pd.isna(m.loc["N", "vat_burden"])
    assert m.loc["N", "vat_burden__fired"] == 0
    assert m.attrs["as_of"] == "2024-03-20" and m.attrs["switched_off"]["electricity_vs_sales"]
    assert str(m["industry"].dtype) == "category"


def test_zero_negative_streak_and_share(m: pd.DataFrame) -> None:
    a = m.loc["A"]
    assert a["zero_negative_streak"] == 7 and a["zero_negative_streak__fired"] == 1
    assert a["vat_months_12"] == 11  # 2023-03 .. 2024-01 (the 2024-02 return is not known)
    assert a["zero_negative_share"] == pytest.approx(7 / 11)
    assert m.loc["C", "zero_negative_streak"] == 0


def test_low_declarations(m: pd.DataFrame) -> None:
    assert m.loc["B", "low_declaration_streak"] == 8
    assert m.loc["B", "low_declaration_streak__fired"] == 1
    assert m.loc["B", "zero_negative_streak"] == 0
    assert m.loc["C", "low_declaration_streak__fired"] == 0
    # A pays nothing for 7 months: both documents' screens fire, as the bureaus run them
    assert m.loc["A", "low_declaration_streak"] == 7
    assert m.loc["A", "low_declaration_streak__fired"] == 1
    assert m.loc["A", "zero_negative_streak__fired"] == 1


def test_low_declarations_token_only() -> None:
    """With ``low_declaration_token_only`` the screen leaves zero declarers to the
    zero-negative rule: A (7 zero months) no longer fires it, B (8 months of 30) does."""
    from taxrisk.features.config import default_config

    base = default_config()
    cfg = base.model_copy(
        update={
            "declarations": base.declarations.model_copy(
                update={"low_declaration_token_only": True}
            )
        }
    )
    m = build_matrix(Tables.from_frames(_world()), AS_OF, config=cfg)
    assert m.loc["A", "low_declaration_streak__fired"] == 0
    assert m.loc["A", "zero_negative_streak__fired"] == 1
    assert m.loc["B", "low_declaration_streak__fired"] == 1


def test_burden_and_warning_line(m: pd.DataFrame) -> None:
    # C: 500 / 10,000 = 5% over the window; the industry norm's warning line is 2%
    assert m.loc["C", "vat_burden"] == pytest.approx(0.05)
    assert m.loc["C", "vat_burden__fired"] == 0
    assert m.loc["B", "vat_burden"] == pytest.approx((3 * 100 + 8 * 30) / (11 * 10_000))
    assert m.loc["B", "vat_burden__fired"] == 1


def test_invoices_vs_declared_and_stranded(m: pd.DataFrame) -> None:
    # C invoiced 15,000 a month but declared 10,000 (k=2..13: 2023-02 .. 2024-01)
    assert m.loc["C", "invoice_vs_declared"] == pytest.approx(5000 / 15000)
    assert m.loc["C", "invoice_vs_declared__fired"] == 1
    assert m.loc["A", "invoice_vs_declared"] == pytest.approx(-1.0)  # declared, nothing invoiced
    # D received 2,000 of input tax a month on invoices, claimed 1,000 (1,300 - 300)
    assert m.loc["D", "stranded_invoices"] == pytest.approx(0.5)
    assert m.loc["D", "stranded_invoices__fired"] == 1
    assert pd.isna(m.loc["A", "stranded_invoices"])  # received no invoices: no coverage


def test_two_tax(m: pd.DataFrame) -> None:
    # the industry's surcharge rate is its payers' median, 10% (C, D at 10%, E at 1%)
    assert m.loc["C", "surcharge_rate_paid"] == pytest.approx(0.10)
    assert m.loc["E", "ind_surcharge_rate_paid_med"] == pytest.approx(0.10)
    # E paid 1,000 of VAT a month and 10 of surcharges: 10 / (1,000 x 10%) = 0.1
    assert m.loc["E", "two_tax"] == pytest.approx(0.1)
    assert m.loc["E", "two_tax__fired"] == 1
    assert m.loc["C", "two_tax"] == pytest.approx(1.0) and m.loc["C", "two_tax__fired"] == 0
    # J paid VAT and no surcharge at all
    assert m.loc["J", "two_tax"] == pytest.approx(0.0) and m.loc["J", "two_tax__fired"] == 1


def test_equity_transfer_needs_its_stamp_duty_and_its_income_tax(m: pd.DataFrame) -> None:
    assert m.loc["A", "equity_transfer_no_tax"] == 1  # neither stamp duty nor income tax
    assert m.loc["A", "equity_transfer_no_tax__fired"] == 1
    # C paid the stamp duty (600 >= 0.05% x 1,200,000) but no income tax on the transfer
    assert m.loc["C", "equity_transfer_no_tax"] == 1
    assert m.loc["C", "equity_transfer_no_tax__fired"] == 1
    # J paid both (400 = 0.05% x 800,000; CIT in 2023-Q3)
    assert m.loc["J", "equity_transfer_no_tax"] == 0
    assert m.loc["B", "legal_rep_changes_12"] == 1


def test_audit_history_uses_closed_audits_only(m: pd.DataFrame) -> None:
    a = m.loc["A"]
    assert a["prior_audits"] == 1 and a["prior_adjusted"] == 1
    assert a["recovered_24m"] == 5000.0  # K2 closes after the as-of date: unknown
    assert a["months_since_audit"] == 5  # 2023-10 -> 2024-03
    assert m.loc["C", "prior_audits"] == 0 and pd.isna(m.loc["C", "months_since_audit"])
    assert "selection_reason" not in m.columns and "selection_probability" not in m.columns


def test_land_use_tax_is_judged_on_land_held_a_whole_year() -> None:
    """Land bought three months ago owes at most a part of the year's land-use tax: it is
    not judged yet; land held for 15 months with none paid is."""
    frames = _world()
    frames["property"] = pd.DataFrame(
        [
            {"taxpayer_id": "D", "event_on": "2023-12-05", "event": "purchase"},
            {"taxpayer_id": "E", "event_on": "2022-12-05", "event": "purchase"},
        ]
    ).assign(value=2_000_000.0, area_m2=1500.0)
    m = build_matrix(Tables.from_frames(frames), AS_OF)
    assert m.loc["D", "area_held_m2"] == 1500.0 and m.loc["D", "area_held_12m_m2"] == 0.0
    assert pd.isna(m.loc["D", "land_use_tax"]) and m.loc["D", "land_use_tax__fired"] == 0
    assert m.loc["E", "area_held_12m_m2"] == 1500.0
    assert m.loc["E", "land_use_tax"] == 0.0 and m.loc["E", "land_use_tax__fired"] == 1
