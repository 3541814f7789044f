"""Loading a data folder: every rule, every stop case, the quarantine file, the as-of count.

Each test writes a tiny folder of CSV or Parquet files (:func:`write_folder`) from a valid base
world, changed in one place.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from taxrisk.features.errors import (
    AmbiguousTable,
    MissingColumn,
    MissingTable,
    TableUnreadable,
)
from taxrisk.features.loading import RULES, LoadResult, _passes, _row_checks, _typed, load_folder
from taxrisk.features.schema import SCHEMAS

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


def test_bom_is_accepted(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_csv(root / "taxpayers.csv", base_world()["taxpayers"], bom=True)
    result = load_folder(root)
    assert result.counts["taxpayers"].rows_used == 3
    names = set(result.tables["taxpayers"].to_pyarrow().column("taxpayer_id").to_pylist())
    assert names == {"T1", "T2", "T3"}


@pytest.mark.parametrize(
    ("table", "changes", "rule", "column"),
    [
        ("taxpayers", {"taxpayer_id": "T9", "name": ""}, "not_null", "name"),
        ("taxpayers", {"taxpayer_id": "T9", "name": "   "}, "not_null", "name"),
        ("vat_returns", {"period": "2024-03", "sales": "abc"}, "type", "sales"),
        ("vat_returns", {"period": "2024-03", "sales": "NaN"}, "type", "sales"),
        ("units", {"unit_id": "B9", "capacity": "2.5"}, "type", "capacity"),
        ("vat_returns", {"period": "2024-03", "filed_on": "2024/04/15"}, "date_format", "filed_on"),
        (
            "taxpayers",
            {"taxpayer_id": "T9", "registered_on": "2023-02-30"},
            "date_format",
            "registered_on",
        ),
        ("vat_returns", {"period": "2024-3"}, "period_format", "period"),
        ("cit_returns", {"period": "2024-Q5"}, "period_format", "period"),
        ("cit_returns", {"period": "2024-06"}, "period_format", "period"),
        (
            "taxpayers",
            {"taxpayer_id": "T9", "taxpayer_type": "big"},
            "allowed_values",
            "taxpayer_type",
        ),
        ("audits", {"case_id": "A9", "outcome": "maybe"}, "allowed_values", "outcome"),
        ("vat_returns", {"period": "2024-03", "sales": "-1"}, "negative_value", "sales"),
        ("units", {"unit_id": "B9", "capacity": "-1"}, "negative_value", "capacity"),
        ("audits", {"case_id": "A9", "penalties": "-5"}, "negative_value", "penalties"),
        (
            "vat_returns",
            {"taxpayer_id": "NOBODY", "period": "2024-03"},
            "foreign_key",
            "taxpayer_id",
        ),
        ("audits", {"case_id": "A9", "unit_id": "NOWHERE"}, "foreign_key", "unit_id"),
        ("taxpayers", {"taxpayer_id": "T9", "unit_id": "NOWHERE"}, "foreign_key", "unit_id"),
        ("units", {"unit_id": "B9", "parent_id": "NOWHERE"}, "foreign_key", "parent_id"),
        # first broken rule wins: not_null before type before negative_value
        (
            "vat_returns",
            {"period": "2024-03", "filed_on": "", "sales": "x"},
            "not_null",
            "filed_on",
        ),
        ("vat_returns", {"period": "2024-03", "sales": "x", "input_tax": "-3"}, "type", "sales"),
    ],
)
def test_each_rule_quarantines_the_row(
    tmp_path: Path, table: str, changes: dict[str, str], rule: str, column: str
) -> None:
    world = with_row(table, **changes)
    result = load_folder(write_folder(tmp_path / "d", world), quarantine_dir=tmp_path / "q")
    counts = result.counts[table]
    assert counts.quarantined == {rule: 1}
    assert counts.rows_in == len(world[table]) and counts.rows_used == len(world[table]) - 1
    rows = quarantine_rows(tmp_path / "q" / f"{table}.csv")
    assert len(rows) == 1
    assert rows[0]["rule"] == rule and rows[0]["column"] == column
    assert rows[0]["source_row"] == str(len(world[table]))
    if changes.get(column, "").strip():  # the original text of the offending value is kept
        assert rows[0][column] == changes[column]
    assert_invariant(result)


@pytest.mark.parametrize(
    ("table", "changes"),
    [
        ("vat_returns", {"period": "2024-03", "tax_payable": "-25"}),  # excess input
        ("cit_returns", {"period": "2024-Q2", "profit": "-900"}),  # a loss
        ("invoices", {"period": "2024-03", "amount": "-500", "tax": "-65"}),  # red-letter invoice
        ("invoices", {"period": "2024-03", "buyer_id": "NOT-REGISTERED"}),  # counterparty outside
        ("invoices", {"period": "2024-03", "seller_id": "NOT-REGISTERED"}),
        ("units", {"unit_id": "B9", "capacity": "3.0"}),  # an integer written as float
        ("vat_returns", {"period": " 2024-03 ", "sales": " 12.5 "}),  # padding
        ("audits", {"case_id": "A2", "closed_on": "", "outcome": "", "tax_recovered": ""}),  # open
    ],
)
def test_allowed_values_are_not_quarantined(
    tmp_path: Path, table: str, changes: dict[str, str]
) -> None:
    world = with_row(table, **changes)
    result = load_folder(write_folder(tmp_path / "d", world))
    assert result.counts[table].quarantined == {}
    assert result.counts[table].rows_used == len(world[table])


def test_duplicate_key_quarantines_every_copy(tmp_path: Path) -> None:
    world = base_world()
    world["vat_returns"].append({**world["vat_returns"][1], "sales": "999"})  # T1 2024-02 again
    world["vat_returns"].append({**world["vat_returns"][1], "sales": "998"})
    result = load_folder(write_folder(tmp_path / "d", world), quarantine_dir=tmp_path / "q")
    assert result.counts["vat_returns"].quarantined == {"duplicate_key": 3}
    rows = quarantine_rows(tmp_path / "q" / "vat_returns.csv")
    assert [r["source_row"] for r in rows] == ["2", "5", "6"]
    assert {r["column"] for r in rows} == {"taxpayer_id+period"}
    assert {r["period"] for r in rows} == {"2024-02"}
    used = (
        result.tables["vat_returns"]
        .filter(lambda t: t.taxpayer_id == "T1")
        .count()
        .to_pyarrow()
        .as_py()
    )
    assert used == 1


def test_duplicate_key_compares_typed_values(tmp_path: Path) -> None:
    """``2024-01`` and `` 2024-01`` are the same period, so the same key."""
    world = with_row("vat_returns", taxpayer_id="T1", period=" 2024-01")
    result = load_folder(write_folder(tmp_path / "d", world))
    assert result.counts["vat_returns"].quarantined == {"duplicate_key": 2}


def test_foreign_keys_cascade_from_quarantined_parents(tmp_path: Path) -> None:
    world = base_world()
    world["units"][2]["capacity"] = "-3"  # B1 goes (negative_value) ...
    result = load_folder(write_folder(tmp_path / "d", world), quarantine_dir=tmp_path / "q")
    # ... so do its taxpayers T2, T3 (foreign_key) and their returns
    assert result.counts["units"].quarantined == {"negative_value": 1}
    assert result.counts["taxpayers"].quarantined == {"foreign_key": 2}
    assert result.counts["vat_returns"].quarantined == {"foreign_key": 2}
    assert result.counts["invoices"].quarantined == {}  # counterparties are not checked
    assert_invariant(result)


def test_self_reference_cascades_within_the_table(tmp_path: Path) -> None:
    world = base_world()
    world["units"][1]["level"] = "province"  # K1 goes; B1 (child of K1) then has no parent
    result = load_folder(write_folder(tmp_path / "d", world), quarantine_dir=tmp_path / "q")
    assert result.counts["units"].quarantined == {"allowed_values": 1, "foreign_key": 1}
    rows = quarantine_rows(tmp_path / "q" / "units.csv")
    assert [(r["unit_id"], r["rule"]) for r in rows] == [
        ("K1", "allowed_values"),
        ("B1", "foreign_key"),
    ]
    # every taxpayer hangs below K1 -> all quarantined -> every return and audit too
    assert result.counts["taxpayers"].rows_used == 0
    assert result.counts["audits"].quarantined == {"foreign_key": 1}


def test_industries_parent_resolves_within_the_table(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    write_csv(
        root / "industries.csv",
        [
            dict(industry="C", name="制造业", parent="", model=""),
            dict(industry="C13", name="农副食品加工", parent="C", model="input_output"),
            dict(industry="C131", name="谷物磨制", parent="C13", model="input_output"),
            dict(industry="X1", name="orphan", parent="X", model=""),
        ],
    )
    result = load_folder(root)
    assert result.counts["industries"].quarantined == {"foreign_key": 1}
    assert "industries" not in result.missing_optional


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


def test_rows_after_as_of_are_counted_not_quarantined(tmp_path: Path) -> None:
    result = load_folder(write_folder(tmp_path / "d"), as_of=dt.date(2024, 2, 29))
    c = result.counts["vat_returns"]
    assert (c.rows_used, c.not_yet_known, c.quarantined) == (4, 2, {})  # filed 2024-03-15
    assert result.counts["cit_returns"].not_yet_known == 1
    assert result.counts["audits"].not_yet_known == 1  # selected 2024-03-01
    known = result.tables.known("vat_returns", dt.date(2024, 2, 29)).count().to_pyarrow().as_py()
    assert known == 2
    assert load_folder(write_folder(tmp_path / "e")).counts["vat_returns"].not_yet_known == 0


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


def test_parquet_nan_money_is_a_type_error(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "d")
    (root / "cit_returns.csv").unlink()
    pq.write_table(
        pa.table(
            {
                "taxpayer_id": ["T1", "T2"],
                "period": ["2024-Q1", "2024-Q1"],
                "revenue": [1.0, float("nan")],
                "cost": [1.0, 1.0],
                "profit": [0.0, 0.0],
                "tax_payable": [0.0, 0.0],
                "filed_on": ["2024-04-10", "2024-04-10"],
            }
        ),
        root / "cit_returns.parquet",
    )
    result = load_folder(root)
    assert result.counts["cit_returns"].quarantined == {"type": 1}


def test_rule_names_are_stable() -> None:
    assert RULES == (
        "not_null",
        "type",
        "date_format",
        "period_format",
        "allowed_values",
        "negative_value",
        "duplicate_key",
        "foreign_key",
    )


# ------------------------------------------------------------------------------------------
# The invariant, on random messy tables (hypothesis)

_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=6)


def _pick(*good: str) -> st.SearchStrategy[str]:
    """Mostly plausible values, sometimes garbage."""
    return st.one_of(st.sampled_from(good), _text)


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
        "name": _text,
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


_any_text = st.one_of(
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
    _text,
)
_VALID = {
    "str": ["T1", "C", "x y"],
    "float": ["0", "1.5", "12", "1e3", "-0"],
    "int": ["0", "3", "3.0"],
    "date": ["2024-01-15", " 2024-02-29"],
    "month": ["2024-01", "2024-12"],
    "quarter": ["2024-Q2"],
}


def _column_values(schema_name: str, column: str) -> st.SearchStrategy[str]:
    c = SCHEMAS[schema_name].column(column)
    valid = list(c.allowed) if c.allowed else _VALID[c.kind]
    if c.nullable:
        valid = [*valid, ""]
    return st.one_of(
        st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), _any_text
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    table=st.sampled_from(["units", "taxpayers", "vat_returns", "audits", "social_insurance"]),
    data=st.data(),
)
def test_fast_path_never_hides_a_broken_rule(table: str, data: st.DataObject) -> None:
    """Rows the cheap pre-test lets through are rows no ordered check flags."""
    schema = SCHEMAS[table]
    row = st.fixed_dictionaries({c: _column_values(table, c) for c in schema.column_names})
    rows = data.draw(st.lists(row, min_size=1, max_size=40))
    raw = ibis.memtable({c: [r[c] for r in rows] for c in schema.column_names})
    typed = _typed(raw, schema)
    chain = ibis.cases(
        *[(cond, i) for i, (_, cond) in enumerate(_row_checks(typed, schema))], else_=None
    )
    out = ibis.duckdb.connect().execute(typed.select(ok=_passes(typed, schema), check=chain))
    for ok, check in zip(out["ok"], out["check"], strict=True):
        if ok:
            assert pd.isna(check), rows
