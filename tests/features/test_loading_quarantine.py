"""Quarantine files and counts: original values, stale files, source rows, the invariant."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from tempfile import TemporaryDirectory

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loading_world import (
    base_world,
    quarantine_rows,
    text_cells,
    with_row,
    write_folder,
)
from taxrisk.features.loading import RULES, load_folder


def test_quarantine_file_keeps_original_values_and_stale_files_go(tmp_path: Path) -> None:
    world = with_row("taxpayers", taxpayer_id="T9", name="丁", registered_capital="1,000")
    q = tmp_path / "q"
    q.mkdir()
    (q / "vat_returns.csv").write_text("stale", encoding="utf-8")
    (q / "keep-me.txt").write_text("not ours", encoding="utf-8")
    result = load_folder(write_folder(tmp_path / "d", world), quarantine_dir=q)
    assert result.counts["taxpayers"].quarantine_file == q / "taxpayers.csv"
    rows = quarantine_rows(q / "taxpayers.csv")
    assert rows == [
        {
            "source_row": "4",
            "rule": "type",
            "column": "registered_capital",
            "taxpayer_id": "T9",
            "name": "丁",
            "unit_id": "K1",
            "industry": "C13",
            "taxpayer_type": "general",
            "collection_method": "self_assessed",
            "registered_on": "2020-01-01",
            "deregistered_on": "",
            "registered_capital": "1,000",
        }
    ]
    assert not (q / "vat_returns.csv").exists()
    assert (q / "keep-me.txt").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_source_row_is_file_order_on_a_big_file(tmp_path: Path, fmt: str) -> None:
    """Many row groups / CSV buffers read in parallel still report the file's row numbers."""
    n = 300_000
    bad = {7, 150_001, 299_998}  # 1-based rows with a negative count
    world = base_world()
    root = write_folder(tmp_path / "d", world)
    (root / "invoices.csv").unlink()
    counts = [-1 if i + 1 in bad else 1 for i in range(n)]
    table = pa.table(
        {
            "seller_id": [f"S{i}" for i in range(n)],
            "buyer_id": ["B"] * n,
            "period": ["2024-01"] * n,
            "amount": [1.0] * n,
            "tax": [0.1] * n,
            "count": counts,
        }
    )
    if fmt == "parquet":
        pq.write_table(table, root / "invoices.parquet", row_group_size=20_000)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, root / "invoices.csv")
    result = load_folder(root, quarantine_dir=tmp_path / "q")
    assert result.counts["invoices"].quarantined == {"negative_value": 3}
    rows = quarantine_rows(tmp_path / "q" / "invoices.csv")
    assert [int(r["source_row"]) for r in rows] == sorted(bad)
    assert [r["seller_id"] for r in rows] == [f"S{i - 1}" for i in sorted(bad)]


# ------------------------------------------------------------------------------------------
# The invariant, on random messy tables (hypothesis)


def _pick(*good: str) -> st.SearchStrategy[str]:
    """Mostly plausible values, sometimes garbage."""
    return st.one_of(st.sampled_from(good), text_cells)


_money = _pick("0", "1", "12.5", "-1", "1e3", "", " 7 ", "NaN", "abc", "1,000")
_vat_row = st.fixed_dictionaries(
    {
        "taxpayer_id": _pick("T1", "T2", "T3", "NOBODY", "", " "),
        "period": _pick("2024-01", "2024-02", "2024-03", "2024-13", "2024-1", "2024/01", ""),
        "sales": _money,
        "output_tax": _money,
        "input_tax": _money,
        "input_tax_transferred_out": _money,
        "tax_payable": _money,
        "credit_carried_forward": _money,
        "filed_on": _pick("2024-02-15", "2024-03-15", "2024-02-30", "15/02/2024", ""),
    }
)
_unit_row = st.fixed_dictionaries(
    {
        "unit_id": _pick("C", "K1", "B1", "B2"),
        "parent_id": _pick("", "C", "K1", "B1", "X"),
        "level": _pick("city", "county", "branch", "town"),
        "name": text_cells,
        "capacity": _pick("1", "0", "-2", "2.5", "3.0", "", "x"),
    }
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    vat=st.lists(_vat_row, min_size=1, max_size=25),
    units=st.lists(_unit_row, min_size=1, max_size=6),
    as_of=st.sampled_from([None, dt.date(2024, 2, 20)]),
)
def test_rows_in_equals_used_plus_quarantined(
    vat: list[dict[str, str]], units: list[dict[str, str]], as_of: dt.date | None
) -> None:
    world = base_world()
    world["vat_returns"] = vat
    world["units"] = world["units"] + units
    with TemporaryDirectory() as tmp:
        root = write_folder(Path(tmp) / "d", world)
        result = load_folder(root, as_of=as_of, quarantine_dir=Path(tmp) / "q")
        for name, c in result.counts.items():
            assert c.rows_in == len(world[name]), name
            assert c.rows_in == c.rows_used + sum(c.quarantined.values()), name
            assert set(c.quarantined) <= set(RULES)
            assert 0 <= c.not_yet_known <= c.rows_used
            used = result.tables[name].count().to_pyarrow().as_py()
            assert used == c.rows_used
            qfile = Path(tmp) / "q" / f"{name}.csv"
            if c.quarantined:
                with qfile.open(encoding="utf-8", newline="") as fh:
                    rows = list(csv.DictReader(fh))
                assert len(rows) == sum(c.quarantined.values())
                assert len({r["source_row"] for r in rows}) == len(rows)
            else:
                assert not qfile.exists()
