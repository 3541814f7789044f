"""The pipeline's stages on DuckDB run only the columns they compute: a column a stage keeps
unchanged is read from the previous stage's Arrow table by row id (``_gathered``), not copied
through the engine again. These tests pin down when a column counts as unchanged, and that
the matrix is the same whatever a stage does to the rows or to a column in place."""

from __future__ import annotations

import datetime as dt
import re

import ibis
import pandas as pd
import pyarrow as pa
import pytest
from factory import world_frames
from taxrisk.features.catalog import default_catalog
from taxrisk.features.indicators._base import Benchmark, Family, Transform
from taxrisk.features.matrix import (
    _ROW,
    _each_column,
    _gathered,
    _Pipeline,
    _reads,
    _to_frame,
    build_matrix,
    build_with_timings,
    masked_reductions,
)
from taxrisk.features.tables import Tables

AS_OF = dt.date(2024, 3, 20)


@pytest.fixture(scope="module")
def tables() -> Tables:
    return Tables.from_frames(world_frames(60, 30, seed=5))


@pytest.fixture(scope="module")
def default(tables: Tables) -> pd.DataFrame:
    return build_matrix(tables, AS_OF)


def _with(fn: object) -> object:
    """The default catalog with one transform, run before the peers stage."""
    family = Family(name="test_stage", order=65, transforms=(Transform("test", fn),))  # type: ignore[arg-type]
    return default_catalog().with_family(family)


def test_a_column_changed_in_place_is_computed_again(tables: Tables, default: pd.DataFrame) -> None:
    """A stage that rewrites an existing column (same name) must not get the previous
    stage's copy of it."""
    catalog = _with(lambda b, c: b.mutate(sales_12=b.sales_12 * 2.0 + 1.0))
    m = build_matrix(tables, AS_OF, catalog=catalog)  # type: ignore[arg-type]
    known = default["sales_12"].notna()
    assert known.sum() > 30
    pd.testing.assert_series_equal(m.loc[known, "sales_12"], default.loc[known, "sales_12"] * 2 + 1)
    # the columns it did not touch are those of the default build
    pd.testing.assert_series_equal(m["vat_burden"], default["vat_burden"])


def test_a_stage_that_reorders_rows_gives_the_same_matrix(
    tables: Tables, default: pd.DataFrame
) -> None:
    """Rows coming back in another order (a sort here; a parallel join does it by itself)
    are put back in the previous stage's order before its columns are reused."""
    catalog = _with(lambda b, c: b.order_by(ibis.desc("taxpayer_id")))
    m = build_matrix(tables, AS_OF, catalog=catalog)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(m, default)


def test_a_stage_that_drops_rows_reads_the_others_by_row_id(
    tables: Tables, default: pd.DataFrame
) -> None:
    """Other rows than the previous stage's: the kept columns are taken at each row's id."""
    gone = sorted(default.index)[::3]
    catalog = _with(lambda b, c: b.filter(~b.taxpayer_id.isin(gone)))
    m = build_matrix(tables, AS_OF, catalog=catalog)  # type: ignore[arg-type]
    # the dropped taxpayers leave the matrix, with their context columns
    assert set(m.index) == set(default.index) - set(gone)
    # columns computed before the transform are the default build's on the rows left
    for c in ("sales_12", "vat_burden", "inv_out_amount_12", "age_months"):
        pd.testing.assert_series_equal(m[c], default.loc[m.index, c])


def test_which_columns_are_read_by_row_id() -> None:
    stage = ibis.table({_ROW: "int64", "k": "string", "x": "float64", "y": "float64"}, "s")
    other = ibis.table({"k": "string", "z": "float64"}, "o")
    t = stage.mutate(x=stage.x + 1, w=stage.y).rename(y2="y")
    # x is rewritten, w and y2 are y unchanged under another name
    assert _gathered(t, stage) == {"k": "k", "w": "y", "y2": "y"}
    j = stage.left_join(other, "k").drop("k_right")
    # a joined column is the other table's, not the stage's
    assert _gathered(j, stage) == {"k": "k", "x": "x", "y": "y"}
    # a union: read by row id where the other branch is null for the row id and the column
    new = other.select(
        ibis.null("int64").name(_ROW),
        "k",
        x=ibis.null("float64"),
        y=other.z,
    )
    u = stage.select(_ROW, "k", "x", "y").union(new)
    assert _gathered(u, stage) == {"x": "x"}
    # without the row id, nothing can be read by it
    assert _gathered(stage.drop(_ROW), stage) == {}


def test_masked_reductions_give_the_filtered_numbers_without_filter_clauses() -> None:
    """Every null-skipping reduction with ``where`` (the sources' form) becomes the same
    reduction of a masked value: the same numbers, nulls included (a group whose selection
    is empty: null sums, means, minima and maxima, a count of 0), and no ``FILTER`` left in
    the SQL (DuckDB runs thirty of them at half the speed)."""
    con = ibis.duckdb.connect()
    df = pd.DataFrame(
        {
            "g": ["a", "a", "a", "b", "b", "c"],
            "k": [1, 5, 13, 2, 14, 20],
            "x": [1.5, None, -2.0, 4.0, 8.0, 3.0],
        }
    )
    t = con.create_table("t", df)
    r = t.k <= 12
    agg = t.group_by("g").aggregate(
        s=t.x.sum(where=r),
        m=t.x.mean(where=r),
        lo=t.k.min(where=t.x > 0),
        hi=t.x.max(where=r),
        n=t.k.count(where=r),
        nx=t.x.count(where=r),
        all_rows=t.x.sum(),
    )
    masked = masked_reductions(agg)
    assert "FILTER" in ibis.to_sql(agg)
    assert "FILTER" not in ibis.to_sql(masked)
    want = agg.to_pandas().sort_values("g").reset_index(drop=True)
    got = masked.to_pandas().sort_values("g").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want)
    # the empty selection (group c: k=20) is null for the values, 0 for the counts
    c = got[got.g == "c"].iloc[0]
    assert pd.isna(c.s) and pd.isna(c.m) and pd.isna(c.hi)
    assert c.n == 0 and c.nx == 0 and c.all_rows == 3.0


def test_sums_of_recorded_values_are_exact_in_any_order() -> None:
    """A sum (or mean) of money is rounded to the fen the contract's amounts are kept in, a
    sum of physical quantities to the thousandth, traced through the sources' relations (a
    month pivot, a negation, a mask): the same number whatever order the rows are added in.
    Values off the grid (a ratio) and columns of tables outside the contract stay as added."""
    con = ibis.duckdb.connect()
    rows = pd.DataFrame(
        {
            "seller_id": ["a"] * 3 + ["b"] * 3,
            "amount": [0.1, 0.2, 0.3, 0.3, 0.2, 0.1],
        }
    )
    assert sum(rows.amount[:3]) != sum(rows.amount[3:])  # floats: 0.6000000000000001 vs 0.6
    inv = con.create_table("invoices", rows.assign(share=rows.amount))
    agg = inv.group_by("seller_id").aggregate(
        total=inv.amount.sum(),
        credit=(-inv.amount).sum(where=inv.amount > 0.15),
        avg=inv.amount.mean(),
        share=inv.share.sum(),
        half=(inv.amount / 2).sum(),
    )
    got = masked_reductions(agg).to_pandas().set_index("seller_id")
    assert got.total.tolist() == [0.6, 0.6]
    assert got.credit.tolist() == [-0.5, -0.5]
    assert got.avg.tolist() == [0.6 / 3, 0.6 / 3]
    sql = ibis.to_sql(masked_reductions(agg))
    assert sql.count("ROUND(") == 3  # not the undeclared column, not the ratio
    # physical quantities, pivoted per month first (the operations source's form)
    ops_rows = pd.DataFrame(
        {
            "taxpayer_id": ["a"] * 3,
            "period": pd.to_datetime(["2025-01-01", "2025-02-01", "2025-03-01"]),
            "metric": ["output_t"] * 3,
            "value": [0.1, 0.2, 0.3],
        }
    )
    op = con.create_table("operations", ops_rows)
    m = op.group_by(["taxpayer_id", "period"]).aggregate(
        _out=op.value.max(where=op.metric == "output_t")
    )
    a = masked_reductions(m.group_by("taxpayer_id").aggregate(out=m._out.sum()))
    assert "ROUND(" in ibis.to_sql(a) and a.to_pandas().out.tolist() == [0.6]
    # a table outside the contract is not rounded
    other = con.create_table("t_other", rows)
    plain = other.group_by("seller_id").aggregate(total=other.amount.sum())
    assert "ROUND(" not in ibis.to_sql(masked_reductions(plain))


def test_a_cast_keeps_the_grid_only_where_the_type_holds_it() -> None:
    """A fen amount cast to float64 or to a decimal type is still on the fen grid (its sum
    is rounded), to an integer on the unit grid; cast to float32 it is no longer exact (about
    7 digits), so its sum is left as added."""
    con = ibis.duckdb.connect()
    inv = con.create_table(
        "invoices", pd.DataFrame({"seller_id": ["a", "a"], "amount": [0.1, 0.2]})
    )

    def rounds(value: ibis.Value) -> int | None:  # the decimals its sum is rounded to
        agg = masked_reductions(inv.group_by("seller_id").aggregate(s=value.sum()))
        assert agg.s.type().is_float64()  # a round to 0 digits included
        found = re.search(r"ROUND\(SUM\(.*\), (\d+)\)", ibis.to_sql(agg), re.S)
        return None if found is None else int(found.group(1))

    assert rounds(inv.amount) == 2
    assert rounds(inv.amount.cast("float64")) == 2
    assert rounds(inv.amount.cast("decimal(12, 1)").cast("float64")) == 1
    assert rounds(inv.amount.cast("int64").cast("float64")) == 0
    assert rounds(inv.amount.cast("float32").cast("float64")) is None
    got = masked_reductions(inv.group_by("seller_id").aggregate(s=inv.amount.cast("float64").sum()))
    assert got.to_pandas().s.tolist() == [0.3]


def test_the_hand_off_on_several_threads_is_the_one_thread_hand_off(tables: Tables) -> None:
    """The matrix is handed to pandas column by column on Arrow's CPU threads; each thread
    writes its own columns, so the frame is the one-thread frame to the bit (the default
    build above ran on this machine's threads: at least two under the suite)."""
    before = pa.cpu_count()
    try:
        pa.set_cpu_count(1)
        one = build_matrix(tables, AS_OF)
        pa.set_cpu_count(4)
        four = build_matrix(tables, AS_OF)
    finally:
        pa.set_cpu_count(before)
    assert one.shape[1] > 150
    pd.testing.assert_frame_equal(four, one, check_exact=True)


def test_the_hand_off_reads_gathered_columns_at_their_row_ids() -> None:
    """Columns left in a stage's Arrow table (text, numbers, flags) are read at the collected
    rows' ids, once, in the frame's (as_of, taxpayer_id) order; a row without an id (a
    taxpayer registered after the information date) gets nulls there."""
    stage = pa.table(
        {
            "taxpayer_id": ["T3", "T1", "T2"],
            "industry": ["C", "A", "B"],
            "x": [30.0, 10.0, None],
            "v__fired": pa.array([1, 0, None], pa.int8()),
        }
    )
    d = dt.date(2024, 3, 20)
    collected = pa.table(
        {
            "as_of": [d, d, d, d],
            "y": [4.0, 3.0, 2.0, 1.0],
            _ROW: pa.array([None, 0, 2, 1], pa.int64()),
            "taxpayer_id": ["T4", "T3", "T2", "T1"],
            "unit_id": ["U4", "U3", "U2", "U1"],  # computed: read in the collected order
            "taxpayer_type": ["general"] * 4,
            "collection_method": ["audit"] * 4,
        }
    )
    src = {"industry": "industry", "x": "x", "v__fired": "v__fired"}
    out = _to_frame(collected, ["y"], (stage, src))
    assert out["taxpayer_id"].tolist() == ["T1", "T2", "T3", "T4"]
    assert out["industry"].astype(object).where(out["industry"].notna(), None).tolist() == [
        "A",
        "B",
        "C",
        None,
    ]
    assert out["unit_id"].tolist() == ["U1", "U2", "U3", "U4"]
    assert out["y"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert out["x"].tolist()[:1] == [10.0] and out["x"].isna().tolist() == [
        False,
        True,
        False,
        True,
    ]
    assert out.loc[2, "x"] == 30.0
    assert out["v__fired"].tolist() == [0, 0, 1, 0] and out["v__fired"].dtype == "int8"


def test_an_error_placing_one_column_is_raised() -> None:
    done: list[int] = []

    def place(j: int) -> None:
        if j == 3:
            raise ValueError("column 3 does not cast")
        done.append(j)

    with pytest.raises(ValueError, match="column 3"):
        _each_column(place, 8)
    assert 3 not in done


def test_day_sources_no_statistic_reads_are_built_at_the_as_of_date_only(
    tables: Tables, default: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``equity_tax`` and the other dated-record sources no benchmark, peer group or rank
    reads are not built at the information date (their columns would be replaced at the
    as-of date anyway); the matrix is the one built with every source at both dates."""
    timings: dict[str, float] = {}
    build_with_timings(tables, [AS_OF], timings)
    assert {"equity_tax@as_of", "property_tax@as_of", "history@as_of"} <= set(timings)
    assert not {"equity_tax", "property_tax", "history"} & set(timings)
    # property's held area feeds the land-tax benchmark: built at both dates
    assert {"property", "property@as_of"} <= set(timings)
    monkeypatch.setattr(_Pipeline, "_built_later", lambda self: {})
    every: dict[str, float] = {}
    frame, _ = build_with_timings(tables, [AS_OF], every)
    assert {"equity_tax", "history"} <= set(every)
    assert default["equity_unmatched_24"].gt(0).any()
    pd.testing.assert_frame_equal(default, frame.drop(columns="as_of").set_index("taxpayer_id"))


def test_a_statistic_reading_a_day_source_has_it_built_at_the_information_date(
    tables: Tables,
) -> None:
    """A benchmark or a transform's group statistic over a dated-record column needs the
    information date's values: that source is built there again."""

    def audits_per_industry(b: ibis.Table, c: object) -> ibis.Table:
        per = b.group_by("industry").aggregate(_ind_audits=b.prior_audits.sum())
        return b.left_join(per, "industry").drop("industry_right")

    by_transform = _with(audits_per_industry)
    later = set(_Pipeline(tables, [AS_OF], catalog=by_transform)._built_later())  # type: ignore[arg-type]
    assert "history" not in later and "equity_tax" in later
    family = Family(name="test_bench", order=65, benchmarks=(Benchmark("equity_unmatched_24"),))
    by_benchmark = default_catalog().with_family(family)
    later = set(_Pipeline(tables, [AS_OF], catalog=by_benchmark)._built_later())
    assert "equity_tax" not in later and "history" in later
    m = build_matrix(tables, AS_OF, catalog=by_benchmark)
    assert m["ind_equity_unmatched_24_med"].notna().all()


def test_reads_counts_every_use_but_passing_a_column_through() -> None:
    t = ibis.table({"a": "float64", "b": "float64", "c": "string", "d": "int64"}, name="t")
    assert _reads(t.select("a", "b", x="c"), t) == set()
    assert _reads(t.mutate(e=t.a + 1.0), t) == {"a"}
    assert _reads(t.filter(t.d > 0), t) == {"d"}
    m = t.mutate(e=1.0)  # passed through, then grouped and summed
    assert _reads(m.group_by("c").aggregate(s=m.b.sum()), t) == {"b", "c"}
    assert _reads(t.mutate(r=t.a.rank().over(group_by=t.c)), t) == {"a", "c"}
    u = ibis.table({"c": "string", "v": "float64"}, name="u")
    assert _reads(t.left_join(u, t.d.cast("string") == u.c), t) == {"d"}


@pytest.mark.parametrize("dates", [[AS_OF], [dt.date(2024, 1, 31), AS_OF]])
def test_the_invoice_sides_are_two_reads_not_one_shared_window(
    tables: Tables, dates: list[dt.date]
) -> None:
    """Each side of the invoice source reads its own columns: one window expression shared by
    both group-bys compiles to a common table expression, which DuckDB materialises (the 34M
    rows of the window at 1M taxpayers, 2 GB); two reads of the table are streaming scans.
    Its numbers are the matrix identity test's."""
    from taxrisk.features.matrix import source_table

    p = _Pipeline(tables, dates)
    src = next(s for s in p.sources if s.name == "invoices")
    sql = ibis.to_sql(source_table(src, p.ctx), dialect="duckdb")
    assert not re.search(r"\bWITH\b", sql), sql[:400]
    assert len(re.findall(r'FROM (?:"\w+"\.)*"invoices" AS', sql)) == 2


def test_one_arrow_table_registered_twice_is_two_views(tables: Tables) -> None:
    """The percentile step registers the values stage's Arrow table again (numbered already):
    dropping that second view must leave the stage's own view in place (views named by the
    Arrow table were one name, and dropping one dropped both)."""
    pipe = _Pipeline(tables, [AS_OF])
    arrow = pa.table({"x": [1, 2, 3]})
    first, second = pipe._register(arrow), pipe._register(arrow)
    assert first.get_name() != second.get_name()
    pipe._drop(second)
    assert first.x.sum().execute() == 6
    pipe._drop(first)
    assert not _stage_views(tables)


def test_a_build_releases_every_stage_it_holds(
    tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    """Every stage a build materialised is released at its end, none left behind on the
    connection and none failing to release (the values stage did, once its view had been
    dropped under it)."""
    with caplog.at_level("DEBUG", logger="taxrisk.features.matrix"):
        build_matrix(tables, AS_OF)
    assert "could not release" not in caplog.text
    assert not _stage_views(tables)


def _stage_views(tables: Tables) -> list[str]:
    """The stage views registered on ``tables``' DuckDB connection."""
    rows = tables.con.con.sql(  # type: ignore[attr-defined]
        "SELECT view_name FROM duckdb_views() WHERE view_name LIKE '_taxrisk_stage_%'"
    ).fetchall()
    return [r[0] for r in rows]
