"""The one parsing path (parse_column) and the as-of rule (known_on)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import ibis
import pandas as pd
import pytest
from taxrisk.features.schema import SCHEMAS, load_order
from taxrisk.features.tables import Tables, parse_column


def _parse(values: list[object], kind: str) -> list[object]:
    t = ibis.memtable({"v": values})
    out = ibis.duckdb.connect().execute(t.select(p=parse_column(t.v, kind)))  # type: ignore[arg-type]
    return [None if pd.isna(x) else x for x in out["p"]]


@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        (
            "month",
            ["2024-02", "2024-13", "24-02", " 2024-12 "],
            [dt.date(2024, 2, 1), None, None, dt.date(2024, 12, 1)],
        ),
        (
            "quarter",
            ["2024-Q1", "2024-Q4", "2024-Q5", "2024Q1"],
            [dt.date(2024, 1, 1), dt.date(2024, 10, 1), None, None],
        ),
        (
            "date",
            ["2024-02-29", "2023-02-29", "2024/01/01", "2024-01-05"],
            [dt.date(2024, 2, 29), None, None, dt.date(2024, 1, 5)],
        ),
        ("float", ["1.5", "-2", "abc", "1e3"], [1.5, -2.0, None, 1000.0]),
        ("int", ["3", "3.0", "3.5", "x"], [3, 3, None, None]),
    ],
)
def test_parse_column(kind: str, values: list[object], expected: list[object]) -> None:
    got = _parse(values, kind)
    got = [x.date() if isinstance(x, pd.Timestamp) else x for x in got]
    assert got == expected


def test_parquet_native_dates_become_periods() -> None:
    got = _parse([pd.Timestamp("2024-05-17"), pd.Timestamp("2024-11-02")], "quarter")
    assert [x.date() for x in got] == [dt.date(2024, 4, 1), dt.date(2024, 10, 1)]


def test_known_on_follows_the_as_of_rule() -> None:
    tables = Tables.from_frames(
        {
            "electricity": pd.DataFrame(
                {
                    "taxpayer_id": ["a", "a"],
                    "period": ["2024-01", "2024-02"],
                    "kwh": [1.0, 2.0],
                    "charge": [1.0, 1.0],
                }
            ),
            "cit_returns": pd.DataFrame(
                {
                    "taxpayer_id": ["a"],
                    "period": ["2024-Q3"],
                    "revenue": [1.0],
                    "cost": [1.0],
                    "profit": [0.0],
                    "tax_payable": [0.0],
                    "filed_on": ["2024-10-15"],
                }
            ),
        }
    )
    e = tables["electricity"].execute()
    assert [d.date() if hasattr(d, "date") else d for d in e["known_on"]] == [
        dt.date(2024, 1, 31),
        dt.date(2024, 2, 29),
    ]
    assert len(tables.known("electricity", dt.date(2024, 2, 28)).execute()) == 1
    assert len(tables.known("cit_returns", dt.date(2024, 10, 14)).execute()) == 0
    assert len(tables.known("cit_returns", dt.date(2024, 10, 15)).execute()) == 1
    assert "electricity" not in tables.missing and "property" in tables.missing


def test_load_order_puts_parents_first() -> None:
    order = load_order()
    assert set(order) == set(SCHEMAS)
    for name in order:
        for fk in SCHEMAS[name].foreign_keys:
            assert order.index(fk.ref_table) <= order.index(name)


def test_active_at_a_date_ignores_future_deregistration() -> None:
    frame = pd.DataFrame(
        {
            "taxpayer_id": ["new", "old", "gone", "leaving"],
            "name": ["a", "b", "c", "d"],
            "unit_id": ["U"] * 4,
            "industry": ["I"] * 4,
            "taxpayer_type": ["general"] * 4,
            "collection_method": ["self_assessed"] * 4,
            "registered_on": ["2024-07-01", "2020-01-01", "2020-01-01", "2020-01-01"],
            "deregistered_on": [None, None, "2024-06-30", "2024-07-01"],
            "registered_capital": [1.0] * 4,
        }
    )
    tables = Tables.from_frames({"taxpayers": frame})
    active = set(tables.active(dt.date(2024, 6, 30)).execute()["taxpayer_id"])
    assert active == {"old", "leaving"}


def test_connect_quotes_the_temp_path(tmp_path: Path) -> None:
    """Settings reach DuckDB as quoted literals: a workspace path with a quote and a space."""
    from taxrisk.features.tables import connect

    from taxrisk.settings import get_settings

    settings = get_settings(workspace=tmp_path / "work space o'brien")
    con = connect(settings)
    got = con.raw_sql("SELECT current_setting('temp_directory')").fetchone()[0]
    assert got == str(settings.tmp_dir)
    assert settings.tmp_dir.is_dir()


def test_in_force_keeps_the_latest_version_known() -> None:
    from taxrisk.features.tables import in_force

    t = ibis.memtable(
        {
            "v": [1, 2, 3],
            "known_on": [dt.date(2024, 1, 10), dt.date(2024, 3, 5), None],
            "superseded_on": [dt.date(2024, 3, 5), None, None],
        }
    )

    def at(d: dt.date) -> list[int]:
        return sorted(t.filter(in_force(t, d)).v.to_pyarrow().to_pylist())

    assert at(dt.date(2024, 1, 9)) == [3]
    assert at(dt.date(2024, 1, 10)) == [1, 3]
    assert at(dt.date(2024, 3, 4)) == [1, 3]
    assert at(dt.date(2024, 3, 5)) == [2, 3]


def _versioned_returns() -> Tables:
    """Two VAT return versions of one month (the first superseded on 2024-03-05), a later
    month, and a month outside a 3-month window of 2024-04."""
    from taxrisk.features.tables import known_on_expr

    rows = pd.DataFrame(
        {
            "taxpayer_id": ["a", "a", "a", "b"],
            "period": ["2024-02", "2024-02", "2024-03", "2023-10"],
            "sales": [10.0, 12.0, 7.0, 1.0],
            "output_tax": [1.3, 1.56, 0.91, 0.13],
            "input_tax": [0.5, 0.5, 0.2, 0.0],
            "input_tax_transferred_out": [0.0] * 4,
            "tax_payable": [0.8, 1.06, 0.71, 0.13],
            "credit_carried_forward": [0.0] * 4,
            "filed_on": ["2024-03-01", "2024-03-05", "2024-05-10", "2023-11-10"],
        }
    )
    tables = Tables.from_frames({"vat_returns": rows})
    t = tables["vat_returns"]
    first = (t.period == dt.date(2024, 2, 1)) & (t.sales == 10.0)
    versioned = t.mutate(
        known_on=known_on_expr(t, SCHEMAS["vat_returns"]),
        superseded_on=ibis.ifelse(first, ibis.date(2024, 3, 5), ibis.null("date")),
    )
    tables.tables["vat_returns"] = tables.con.create_table("vat_v", versioned, overwrite=True)
    return tables


@pytest.mark.parametrize(
    "dates", [[dt.date(2024, 4, 30)], [dt.date(2024, 3, 4), dt.date(2024, 4, 30)]]
)
def test_a_window_of_some_columns_has_the_windows_rows(dates: list[dt.date]) -> None:
    """``window(..., columns=)`` keeps the as-of rule (known, latest version) and the period
    bounds: the same rows as the whole window, with only those columns (plus the as-of rule's
    and the window's own)."""
    from taxrisk.features.indicators._base import Context

    ctx = Context.create(_versioned_returns(), dates)
    keys = ["as_of", "taxpayer_id", "period", "sales", "k"]
    whole = ctx.window("vat_returns", 3).select(*keys).to_pandas()
    some = ctx.window("vat_returns", 3, columns=("taxpayer_id", "sales"))
    assert "output_tax" not in some.columns and "filed_on" not in some.columns
    got = some.select(*keys).to_pandas()
    order = ["as_of", "taxpayer_id", "period", "sales"]
    pd.testing.assert_frame_equal(
        got.sort_values(order).reset_index(drop=True),
        whole.sort_values(order).reset_index(drop=True),
    )
    # on 2024-04-30 the amended February (12.0) is in force, not the first version, and
    # March is not filed yet; October 2023 is outside the window
    last = got[pd.to_datetime(got["as_of"]).dt.date == dt.date(2024, 4, 30)]
    assert sorted(last["sales"]) == [12.0]


def test_a_window_of_an_unknown_column_names_it() -> None:
    from taxrisk.features.indicators._base import Context

    ctx = Context.create(_versioned_returns(), [dt.date(2024, 4, 30)])
    with pytest.raises(KeyError, match="vat_returns: no column amount"):
        ctx.window("vat_returns", 3, columns=("taxpayer_id", "amount"))
