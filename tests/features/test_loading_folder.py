"""load_folder end to end: a valid folder gives typed tables; rows after the as-of date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from loading_world import (
    write_folder,
)
from taxrisk.features.loading import load_folder
from taxrisk.features.schema import SCHEMAS

# ------------------------------------------------------------------------------------------


def test_valid_folder_loads_typed_tables(tmp_path: Path) -> None:
    result = load_folder(write_folder(tmp_path / "d"))
    assert set(result.counts) == {
        "units",
        "taxpayers",
        "vat_returns",
        "cit_returns",
        "invoices",
        "audits",
    }
    assert all(not c.quarantined for c in result.counts.values())
    assert sorted(result.missing_optional) == sorted(n for n, s in SCHEMAS.items() if s.optional)
    vat = result.tables["vat_returns"].order_by(["taxpayer_id", "period"]).to_pyarrow().to_pylist()
    assert vat[0]["period"] == dt.date(2024, 1, 1)
    assert vat[0]["sales"] == 1000.0 and vat[0]["known_on"] == dt.date(2024, 2, 15)
    cit = result.tables["cit_returns"].to_pyarrow().to_pylist()[0]
    assert cit["period"] == dt.date(2024, 1, 1) and cit["profit"] == 500.0
    units = result.tables["units"].to_pyarrow().to_pylist()
    assert {u["unit_id"]: u["capacity"] for u in units} == {"C": 10, "K1": 5, "B1": 3}
    assert {u["unit_id"]: u["parent_id"] for u in units}["C"] is None
    inv = result.tables["invoices"].order_by("period").to_pyarrow().to_pylist()
    assert inv[0]["known_on"] == dt.date(2024, 1, 31)
    assert result.tables.source == tmp_path / "d"


def test_rows_after_as_of_are_counted_not_quarantined(tmp_path: Path) -> None:
    result = load_folder(write_folder(tmp_path / "d"), as_of=dt.date(2024, 2, 29))
    c = result.counts["vat_returns"]
    assert (c.rows_used, c.not_yet_known, c.quarantined) == (4, 2, {})  # filed 2024-03-15
    assert result.counts["cit_returns"].not_yet_known == 1
    assert result.counts["audits"].not_yet_known == 1  # selected 2024-03-01
    known = result.tables.known("vat_returns", dt.date(2024, 2, 29)).count().to_pyarrow().as_py()
    assert known == 2
    assert load_folder(write_folder(tmp_path / "e")).counts["vat_returns"].not_yet_known == 0
