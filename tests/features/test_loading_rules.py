"""The quarantine rules, in their documented order, one at a time; the fast path."""

from __future__ import annotations

from pathlib import Path

import ibis
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loading_world import (
    any_text,
    assert_invariant,
    base_world,
    quarantine_rows,
    with_row,
    write_csv,
    write_folder,
)
from taxrisk.features.loading import RULES, load_folder
from taxrisk.features.loading.rules import _fast_month, _passes, _row_checks, _typed
from taxrisk.features.schema import SCHEMAS
from taxrisk.features.tables import parse_column


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
    # returns are versioned: the duplicate is the key plus the day it was filed
    assert {r["column"] for r in rows} == {"taxpayer_id+period+filed_on"}
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
        st.sampled_from(valid), st.sampled_from(valid), st.sampled_from(valid), any_text
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


_MONTH_TEXTS = [
    "2024-01",
    "2024-12",
    "2024-1",
    " 2024-01",
    "2024-01 ",
    "\t2024-01",
    "2024-01\n",
    "0999-01",
    "999-01",
    "0000-01",
    "0024-01",
    "24-01",
    "10000-01",
    "+2024-01",
    "-2024-01",
    "2024-00",
    "2024-13",
    "2024-01-05",
    "2024- 1",
    "2024-001",
    "02024-01",
    "１９９９-01",
    "",
    "  ",
    None,
]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.one_of(st.sampled_from(_MONTH_TEXTS), any_text), max_size=30))
def test_fast_month_parse_equals_parse_column(texts: list[str | None]) -> None:
    """The cheap parse of ``YYYY-MM`` periods (``rules._fast_month``) gives exactly what
    :func:`parse_column` gives, on every text (the cheap path only takes texts that print
    back as themselves)."""
    texts = [*_MONTH_TEXTS, *texts]
    t = ibis.memtable({"s": pa.array(texts, pa.string())})
    slow = parse_column(t.s, "month")
    out = ibis.duckdb.connect().to_pyarrow(
        t.select(slow=slow, fast=_fast_month(t.s, slow), cheap=_fast_month(t.s, ibis.null("date")))
    )
    assert out["fast"].equals(out["slow"])
    # the cheap path alone takes the plain texts, and only those the slow parse accepts
    took = out["cheap"].is_valid().to_pylist()
    assert took[texts.index("2024-01")]
    assert not took[texts.index(" 2024-01")]
    assert all(v for v, t_ in zip(out["slow"].is_valid().to_pylist(), took, strict=True) if t_)
