"""A tiny valid base world for the loader's tests, and helpers to write it as CSV or Parquet.

Each test writes a folder (:func:`write_folder`) from the base world, changed in one place.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import strategies as st
from taxrisk.features.loading import LoadResult

Rows = list[dict[str, Any]]


def base_world() -> dict[str, Rows]:
    """A valid world: 3 units, 3 taxpayers, a few returns, invoices and one audit."""
    tp = dict(
        industry="C13",
        taxpayer_type="general",
        collection_method="self_assessed",
        deregistered_on="",
        registered_capital="1000000",
    )
    vat = dict(
        sales="1000",
        output_tax="130",
        input_tax="100",
        input_tax_transferred_out="0",
        tax_payable="30",
        credit_carried_forward="0",
    )
    return {
        "units": [
            dict(unit_id="C", parent_id="", level="city", name="市局", capacity="10"),
            dict(unit_id="K1", parent_id="C", level="county", name="县局一", capacity="5"),
            dict(unit_id="B1", parent_id="K1", level="branch", name="分局", capacity="3"),
        ],
        "taxpayers": [
            dict(taxpayer_id="T1", name="甲面粉厂", unit_id="K1", registered_on="2020-01-01", **tp),
            dict(taxpayer_id="T2", name="乙砖厂", unit_id="B1", registered_on="2021-06-01", **tp),
            dict(taxpayer_id="T3", name="丙超市", unit_id="B1", registered_on="2022-03-15", **tp),
        ],
        "vat_returns": [
            dict(taxpayer_id="T1", period="2024-01", filed_on="2024-02-15", **vat),
            dict(taxpayer_id="T1", period="2024-02", filed_on="2024-03-15", **vat),
            dict(taxpayer_id="T2", period="2024-01", filed_on="2024-02-15", **vat),
            dict(taxpayer_id="T2", period="2024-02", filed_on="2024-03-15", **vat),
        ],
        "cit_returns": [
            dict(
                taxpayer_id="T1",
                period="2024-Q1",
                revenue="3000",
                cost="2500",
                profit="500",
                tax_payable="125",
                filed_on="2024-04-20",
            ),
        ],
        "invoices": [
            dict(
                seller_id="T1", buyer_id="T2", period="2024-01", amount="1000", tax="130", count="2"
            ),
            dict(
                seller_id="T1",
                buyer_id="OUTSIDE-9",
                period="2024-02",
                amount="500",
                tax="65",
                count="1",
            ),
        ],
        "audits": [
            dict(
                case_id="A1",
                taxpayer_id="T1",
                selected_on="2024-03-01",
                selection_reason="random",
                selection_probability="0.05",
                unit_id="K1",
                measure="assessment",
                closed_on="2024-05-10",
                outcome="adjusted",
                tax_recovered="5000",
                late_fees="100",
                penalties="0",
                covers_from="2023-01",
                covers_to="2023-12",
            ),
        ],
    }


def write_csv(path: Path, rows: Rows, columns: list[str] | None = None, bom: bool = False) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def write_folder(root: Path, world: dict[str, Rows] | None = None, fmt: str = "csv") -> Path:
    """Write each table of ``world`` (default: :func:`base_world`) as CSV or Parquet (text)."""
    world = base_world() if world is None else world
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in world.items():
        if fmt == "csv":
            write_csv(root / f"{name}.csv", rows)
        else:
            cols = list(rows[0])
            data = {c: [r[c] if r[c] != "" else None for r in rows] for c in cols}
            pq.write_table(pa.table(data), root / f"{name}.parquet")
    return root


def with_row(table: str, **changes: str) -> dict[str, Rows]:
    """The base world plus one extra row: a copy of the table's first row with ``changes``."""
    world = base_world()
    world[table].append({**world[table][0], **changes})
    return world


def quarantine_rows(path: Path) -> Rows:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_invariant(result: LoadResult) -> None:
    for c in result.counts.values():
        assert c.rows_in == c.rows_used + sum(c.quarantined.values()), c


# Messy cell values for the property tests (hypothesis)
text_cells = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=6
)

any_text = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "-0",
            "1.5",
            "3.0",
            "NaN",
            "inf",
            "-inf",
            "1e400",
            "x",
            "2024-01",
            "2024-Q2",
            "2024-02-29",
            "2023-02-29",
            " T1",
            "T1",
            "general",
            "city",
            "adjusted",
            "rule",
            "notice",
            " 5",
            "2024-1",
        ]
    ),
    text_cells,
)
