"""Factories for tiny hand-made data folders (exact numbers)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_folder(root: Path, tables: dict[str, list[dict]]) -> Path:
    """Write each table as CSV (``truth/gaps`` goes under ``truth/``)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        path = root / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(path, index=False)
    return root


def vat_year(
    tid: str, scale: float = 1.0, bump_after: str | None = None, factor: float = 1.0
) -> list[dict]:
    """Twelve monthly VAT returns of 2024 for ``tid`` (sales 1,000 x month x ``scale``), each
    filed on the 10th of the next month; returns filed after ``bump_after`` have their
    amounts times ``factor``."""
    rows = []
    for m in range(1, 13):
        period = f"2024-{m:02d}"
        filed = (pd.Timestamp(f"{period}-01") + pd.DateOffset(months=1, days=9)).date().isoformat()
        f = factor if bump_after is not None and filed > bump_after else 1.0
        sales = 1000.0 * m * scale * f
        rows.append(
            {
                "taxpayer_id": tid,
                "period": period,
                "sales": sales,
                "output_tax": 0.13 * sales,
                "input_tax": 0.1 * sales,
                "input_tax_transferred_out": 0.0,
                "tax_payable": 0.03 * sales,
                "credit_carried_forward": 0.0,
                "filed_on": filed,
            }
        )
    return rows


def tp(tid: str, unit: str = "U1", registered: str = "2020-01-01", dereg: str = "") -> dict:
    return {
        "taxpayer_id": tid,
        "name": f"name {tid}",
        "unit_id": unit,
        "industry": "C13",
        "taxpayer_type": "general",
        "collection_method": "self_assessed",
        "registered_on": registered,
        "deregistered_on": dereg,
        "registered_capital": 1e6,
    }


def audit(
    case: str,
    tid: str,
    selected: str,
    closed: str = "",
    outcome: str = "",
    recovered: float | str = "",
    reason: str = "rule",
    prob: float | str = "",
) -> dict:
    return {
        "case_id": case,
        "taxpayer_id": tid,
        "selected_on": selected,
        "selection_reason": reason,
        "selection_probability": prob,
        "unit_id": "U1",
        "measure": "audit",
        "closed_on": closed,
        "outcome": outcome,
        "tax_recovered": recovered,
        "late_fees": 0.0 if outcome else "",
        "penalties": 0.0 if outcome else "",
        "covers_from": "2024-01",
        "covers_to": "2024-12",
    }


def minimal_tables(
    taxpayers: list[dict], audits: list[dict], capacities: tuple[int, ...] = (1, 1)
) -> dict[str, list[dict]]:
    """Every required table with at least one row."""
    units = [
        {
            "unit_id": "CITY",
            "parent_id": "",
            "level": "city",
            "name": "city",
            "capacity": capacities[0],
        }
    ]
    units += [
        {
            "unit_id": f"U{i}",
            "parent_id": "CITY",
            "level": "county",
            "name": f"county {i}",
            "capacity": c,
        }
        for i, c in enumerate(capacities[1:], start=1)
    ]
    first = taxpayers[0]["taxpayer_id"]
    return {
        "units": units,
        "taxpayers": taxpayers,
        "vat_returns": [
            {
                "taxpayer_id": first,
                "period": "2025-01",
                "sales": 100.0,
                "output_tax": 13.0,
                "input_tax": 10.0,
                "input_tax_transferred_out": 0.0,
                "tax_payable": 3.0,
                "credit_carried_forward": 0.0,
                "filed_on": "2025-02-10",
            }
        ],
        "cit_returns": [
            {
                "taxpayer_id": first,
                "period": "2025-Q1",
                "revenue": 300.0,
                "cost": 200.0,
                "profit": 100.0,
                "tax_payable": 25.0,
                "filed_on": "2025-04-15",
            }
        ],
        "invoices": [
            {
                "seller_id": first,
                "buyer_id": "OUTSIDE",
                "period": "2025-01",
                "amount": 100.0,
                "tax": 13.0,
                "count": 1,
            }
        ],
        "audits": audits,
    }
