"""Reading: formats, encodings, headers, and every stop case (one line naming file and column)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loading_world import (
    base_world,
    quarantine_rows,
    write_csv,
    write_folder,
)
from taxrisk.features.errors import (
    AmbiguousTable,
    MissingColumn,
    MissingTable,
    TableUnreadable,
)
from taxrisk.features.loading import load_folder
from taxrisk.features.schema import SCHEMAS


def test_bom_is_accepted(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_csv(root / "taxpayers.csv", base_world()["taxpayers"], bom=True)
    result = load_folder(root)
    assert result.counts["taxpayers"].rows_used == 3
    names = set(result.tables["taxpayers"].to_pyarrow().column("taxpayer_id").to_pylist())
    assert names == {"T1", "T2", "T3"}


# ------------------------------------------------------------------------------------------
# Stop cases


def _stop(tmp_path: Path, root: Path, error: type[Exception], *fragments: str) -> str:
    with pytest.raises(error) as info:
        load_folder(root)
    text = str(info.value)
    assert "\n" not in text
    for f in fragments:
        assert f in text, text
    return text


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    rows = base_world()["vat_returns"]
    write_csv(root / "vat_returns.csv", rows, columns=[c for c in rows[0] if c != "filed_on"])
    _stop(tmp_path, root, MissingColumn, "vat_returns.csv", "'filed_on'")


def test_absent_nullable_column_is_read_as_null(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    rows = base_world()["audits"]
    write_csv(
        root / "audits.csv", rows, columns=[c for c in rows[0] if c != "selection_probability"]
    )
    result = load_folder(root)
    assert result.counts["audits"].missing_columns == ["selection_probability"]
    assert result.tables["audits"].to_pyarrow().column("selection_probability").to_pylist() == [
        None
    ]


def test_extra_columns_are_kept_out(tmp_path: Path) -> None:
    world = base_world()
    for r in world["units"]:
        r["comment"] = "x"
    result = load_folder(write_folder(tmp_path / "d", world))
    assert result.counts["units"].extra_columns == ["comment"]
    assert "comment" not in result.tables["units"].columns


def test_gbk_file_stops_with_iconv_hint(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    text = (root / "taxpayers.csv").read_text(encoding="utf-8")
    (root / "taxpayers.csv").write_bytes(text.encode("gbk"))
    msg = _stop(
        tmp_path, root, TableUnreadable, "taxpayers.csv", "not UTF-8", "iconv -f GBK -t UTF-8"
    )
    assert "'name'" in msg and "line 2" in msg


def test_non_utf8_far_into_the_file_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    rows = base_world()["invoices"] * 20000
    rows = [
        {**r, "period": f"{2000 + i // 12:04d}-{i % 12 + 1:02d}", "buyer_id": f"B{i}"}
        for i, r in enumerate(rows)
    ]
    path = write_csv(root / "invoices.csv", rows)
    with path.open("ab") as fh:
        fh.write("T1,\u4e59".encode("gbk") + b",2099-01,1,1,1\n")
    _stop(tmp_path, root, TableUnreadable, "invoices.csv", "not UTF-8", "iconv -f GBK")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty file"),
        (b"\n\n", "empty file"),
        (bytes(range(256)) * 4, "binary"),
        (b"PAR1\x15\x04\x15\x00\x00\x00garbage", "binary"),
    ],
)
def test_unreadable_csv_stops(tmp_path: Path, content: bytes, fragment: str) -> None:
    root = write_folder(tmp_path / "d")
    (root / "cit_returns.csv").write_bytes(content)
    _stop(tmp_path, root, TableUnreadable, "cit_returns.csv", fragment)


def test_malformed_csv_line_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    with (root / "cit_returns.csv").open("a", encoding="utf-8") as fh:
        fh.write("T2,2024-Q1,1,2,3,4,2024-04-20,EXTRA\n")
    _stop(
        tmp_path, root, TableUnreadable, "cit_returns.csv", "line 3", "expected 7 fields, found 8"
    )


def test_header_only_required_table_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_csv(root / "audits.csv", [], columns=list(base_world()["audits"][0]))
    _stop(tmp_path, root, TableUnreadable, "audits.csv", "header only")


def test_header_only_optional_table_is_absent(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_csv(root / "electricity.csv", [], columns=["taxpayer_id", "period", "kwh", "charge"])
    result = load_folder(root)
    assert "electricity" in result.missing_optional and "electricity" not in result.tables
    assert any("electricity.csv" in n for n in result.notes)


def test_both_formats_present_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_folder(root, {"units": base_world()["units"]}, fmt="parquet")
    _stop(tmp_path, root, AmbiguousTable, "units", "both units.csv and units.parquet")


def test_missing_required_table_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "audits.csv").unlink()
    _stop(tmp_path, root, MissingTable, "audits")


def test_unreadable_parquet_stops(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "invoices.csv").unlink()
    (root / "invoices.parquet").write_bytes(b"PAR1 this is not really parquet PAR1")
    _stop(tmp_path, root, TableUnreadable, "invoices.parquet")
    (root / "invoices.parquet").write_bytes(b"seller_id,buyer_id\n")
    _stop(tmp_path, root, TableUnreadable, "invoices.parquet", "not a Parquet file")


def test_truth_and_unknown_files_are_not_read(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "truth").mkdir()
    (root / "truth" / "gaps.csv").write_bytes(b"\x00\x01 not even text")
    (root / "truth" / "units.csv").write_bytes(b"")
    (root / "readme.txt").write_text("hello", encoding="utf-8")
    (root / "extra_table.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    result = load_folder(root)
    assert result.counts["units"].rows_used == 3
    assert any("readme.txt" in n for n in result.notes)
    assert any("extra_table.csv" in n for n in result.notes)


def test_semicolon_file_gets_a_delimiter_hint(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "units.csv").write_text(
        "unit_id;parent_id;level;name;capacity\nC;;city;x;1\n", encoding="utf-8"
    )
    _stop(tmp_path, root, MissingColumn, "units.csv", "'unit_id'", "delimiter must be a comma")


def test_trailing_comma_column_is_ignored(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    text = (root / "units.csv").read_text(encoding="utf-8")
    (root / "units.csv").write_text(text.replace("\n", ",\n"), encoding="utf-8")
    result = load_folder(root)
    assert result.counts["units"].rows_used == 3
    assert result.counts["units"].extra_columns == ["_unnamed_6"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    text = (root / "units.csv").read_text(encoding="utf-8")
    (root / "units.csv").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    result = load_folder(root)
    assert result.counts["units"].rows_used == 3
    assert result.counts["units"].quarantined == {}


def test_parquet_column_of_unusable_type_is_a_type_error(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "cit_returns.csv").unlink()
    pq.write_table(
        pa.table(
            {
                "taxpayer_id": ["T1"],
                "period": ["2024-Q1"],
                "revenue": [[1.0, 2.0]],
                "cost": [1.0],
                "profit": [0.0],
                "tax_payable": [0.0],
                "filed_on": ["2024-04-10"],
            }
        ),
        root / "cit_returns.parquet",
    )
    result = load_folder(root, quarantine_dir=tmp_path / "q")
    assert result.counts["cit_returns"].quarantined == {"type": 1}
    row = quarantine_rows(tmp_path / "q" / "cit_returns.csv")[0]
    assert (row["column"], row["revenue"]) == ("revenue", "[1.0, 2.0]")


# ------------------------------------------------------------------------------------------
# Parquet


def test_parquet_with_native_types(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "vat_returns.csv").unlink()
    (root / "taxpayers.csv").unlink()
    pq.write_table(
        pa.table(
            {
                "taxpayer_id": ["T1", "T1", "T2", "T2"],
                "period": pa.array(
                    [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 1, 31), None],
                    pa.date32(),
                ),
                "sales": [1000.0, 1000.0, -5.0, 1.0],
                "output_tax": [130.0, 130.0, 1.0, float("nan")],
                "input_tax": [100, 100, 1, 1],
                "input_tax_transferred_out": [0.0] * 4,
                "tax_payable": [30.0, -30.0, 0.0, 0.0],
                "credit_carried_forward": [0.0] * 4,
                "filed_on": pa.array([dt.datetime(2024, 2, 15, 9, 30)] * 4, pa.timestamp("us")),
            }
        ),
        root / "vat_returns.parquet",
    )
    tp = base_world()["taxpayers"]
    pq.write_table(
        pa.table(
            {
                **{
                    c: [r[c] for r in tp]
                    for c in (
                        "taxpayer_id",
                        "name",
                        "unit_id",
                        "industry",
                        "taxpayer_type",
                        "collection_method",
                    )
                },
                "registered_on": pa.array(
                    [dt.date(2020, 1, 1), dt.date(2021, 6, 1), dt.date(2022, 3, 15)]
                ),
                "deregistered_on": pa.array([None, dt.date(2024, 1, 1), None], pa.date32()),
                "registered_capital": pa.array([1e6, 2e6, 3e6]),
            }
        ),
        root / "taxpayers.parquet",
    )
    result = load_folder(root, quarantine_dir=tmp_path / "q")
    assert result.counts["taxpayers"].format == "parquet"
    assert result.counts["taxpayers"].quarantined == {}
    c = result.counts["vat_returns"]
    # row 3: period 2024-01-31 is January again -> duplicate of nothing (T2 has no other Jan);
    # but its sales is negative; row 4: null period (not_null)
    assert c.quarantined == {"not_null": 1, "negative_value": 1}
    vat = result.tables["vat_returns"].order_by("period").to_pyarrow().to_pylist()
    assert [r["period"] for r in vat] == [dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    assert vat[0]["filed_on"] == dt.date(2024, 2, 15) and vat[1]["tax_payable"] == -30.0
    rows = quarantine_rows(tmp_path / "q" / "vat_returns.csv")
    assert [(r["source_row"], r["rule"], r["column"]) for r in rows] == [
        ("3", "negative_value", "sales"),
        ("4", "not_null", "period"),
    ]
    dereg = {
        r["taxpayer_id"]: r["deregistered_on"]
        for r in result.tables["taxpayers"].to_pyarrow().to_pylist()
    }
    assert dereg == {"T1": None, "T2": dt.date(2024, 1, 1), "T3": None}


def test_parquet_without_rows(tmp_path: Path) -> None:
    """Zero rows: an optional table is absent, a required one stops the run."""
    root = write_folder(tmp_path / "d")
    empty = pa.table(
        {
            "taxpayer_id": pa.array([], pa.string()),
            "period": pa.array([], pa.string()),
            "kwh": pa.array([], pa.float64()),
            "charge": pa.array([], pa.float64()),
        }
    )
    pq.write_table(empty, root / "electricity.parquet")
    assert "electricity" in load_folder(root).missing_optional
    (root / "units.csv").unlink()
    pq.write_table(
        pa.table({c: pa.array([], pa.string()) for c in SCHEMAS["units"].column_names}),
        root / "units.parquet",
    )
    _stop(tmp_path, root, TableUnreadable, "units.parquet", "no rows")
