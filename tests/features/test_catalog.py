"""The catalog: one conformance test over every entry (scikit-learn's parametrize_with_checks
style), plus the registry's own rules.

Every indicator is checked for: documentation in both languages and the basis of its
threshold, a known measure and direction, alignment (one value per active taxpayer),
determinism, blindness to rows dated after the as-of date, and rendering to PySpark SQL.

The suite runs over the default catalog *plus* a family declared in this test module
(:data:`EXTRA`): an indicator added by declaration alone (a source, a derived column, a
benchmark, a norm and the indicator, its threshold given in the config) goes through the same
checks, and appears in the matrix and the catalog export, with no other change.
"""

from __future__ import annotations

import datetime as dt
import re

import ibis
import ibis.expr.types as ir
import pandas as pd
import pytest
from factory import world_frames
from taxrisk.features.catalog import (
    CATALOG,
    MEASURES,
    SOURCES,
    classic_ids,
    default_catalog,
    records,
    switched_off,
)
from taxrisk.features.config import IndicatorConfig, default_config
from taxrisk.features.indicators._base import (
    Benchmark,
    Context,
    Derived,
    Family,
    Indicator,
    Source,
    safe_div,
)
from taxrisk.features.matrix import _Pipeline, build_matrix
from taxrisk.features.schema import SCHEMAS
from taxrisk.features.tables import Tables

AS_OF = dt.date(2024, 3, 20)
_CJK = re.compile(r"[\u4e00-\u9fff]")


# -- an indicator added from outside the package, by declaration alone ----------------------


def _peak_source(ctx: Context) -> ir.Table:
    w = ctx.window("electricity", 12)
    return w.group_by(["as_of", "taxpayer_id"]).aggregate(kwh_max_12=w.kwh.max())


EXTRA = Family(
    name="test_extra",
    order=35,
    sources=(Source("elec_peak", ("electricity",), _peak_source, granularity="month"),),
    derived=(
        Derived(
            "kwh_peak_ratio",
            ("kwh_max_12", "kwh_month_avg"),
            lambda b, c: safe_div(b.kwh_max_12, b.kwh_month_avg),
        ),
    ),
    benchmarks=(Benchmark("kwh_peak_ratio"),),
    norms=("peak_ratio_warning",),
    indicators=(
        Indicator(
            id="power_peak",
            name_zh="用电峰值异常",
            name_en="Electricity peak far above the monthly mean",
            tables=("electricity",),
            compute=lambda b, c: safe_div(b.kwh_peak_ratio, b.ind_kwh_peak_ratio_med),
            direction="high",
            measure="notice",
            basis="test: 1.5 times the industry median peak ratio",
            guide_zh="核实用电峰值月份的生产记录与销售申报,检查是否存在集中生产、账外销售。",
            guide_en="Check production records and declared sales in the peak months of power "
            "use for concentrated production sold off the books.",
        ),
    ),
)
EXTENDED = default_catalog().with_family(EXTRA)
CONFIG: IndicatorConfig = default_config().with_thresholds(power_peak=1.5)
IDS = list(EXTENDED.indicators)


def _future_changed(frames: dict[str, pd.DataFrame], as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Every row dated after ``as_of`` changed (money x 7, ids kept) or deleted (every other
    one), per the contract's as-of rule."""
    iso = as_of.isoformat()
    month = as_of.strftime("%Y-%m")
    out = {}
    for name, df in frames.items():
        df = df.copy()
        rule = SCHEMAS[name].known_on
        if rule.column is None:
            out[name] = df
            continue
        col = df[rule.column].astype(str)
        if rule.period_end:
            # a period is known at its end: this month's rows are not yet known either
            late = (
                col.str[:7] >= month
                if SCHEMAS[name].column(rule.column).kind == "month"
                else (col >= month[:4])
            )
        else:
            late = col > iso
        if name == "audits":
            late = late | (df["closed_on"].astype(str) > iso)
        money = [c.name for c in SCHEMAS[name].columns if c.kind == "float"]
        for c in money:
            df.loc[late, c] = pd.to_numeric(df.loc[late, c], errors="coerce") * 7
        drop = late & (pd.Series(range(len(df)), index=df.index) % 2 == 0)
        if name == "taxpayers":  # keep every taxpayer; a later deregistration is unknown
            drop = drop & False
            later = df["deregistered_on"].astype(str).between(iso, "9999", inclusive="right")
            df.loc[later, "deregistered_on"] = None
        out[name] = df[~drop]
    return out


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return world_frames(70, 30, seed=11)


@pytest.fixture(scope="module")
def runs(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Three builds of one world (the extended catalog): twice as is, once with the future
    changed."""
    kw = {"config": CONFIG, "catalog": EXTENDED}
    a = build_matrix(Tables.from_frames(frames), AS_OF, **kw)
    b = build_matrix(Tables.from_frames(frames), AS_OF, **kw)
    c = build_matrix(Tables.from_frames(_future_changed(frames, AS_OF)), AS_OF, **kw)
    return {"a": a, "b": b, "future": c}


@pytest.fixture(scope="module")
def base_schema(frames: dict[str, pd.DataFrame]) -> ibis.Schema:
    pipe = _Pipeline(
        Tables.from_frames(frames), [AS_OF], lazy=True, config=CONFIG, catalog=EXTENDED
    )
    return pipe.values().schema()


@pytest.mark.parametrize("ind_id", IDS)
def test_documented(ind_id: str) -> None:
    ind = EXTENDED.indicators[ind_id]
    assert ind.id == ind_id and re.fullmatch(r"[a-z][a-z0-9_]*", ind_id)
    assert len(ind.basis) > 20  # why its threshold: the documents or a population quantile
    assert ind_id in CONFIG.thresholds
    assert _CJK.search(ind.name_zh) and _CJK.search(ind.guide_zh)
    assert ind.name_en.strip() and len(ind.guide_en) > 60 and not _CJK.search(ind.guide_en)
    assert ind.measure in MEASURES and ind.direction in ("high", "low")
    assert ind.tables and all(t in SCHEMAS for t in ind.tables)


@pytest.mark.parametrize("ind_id", IDS)
def test_aligned_deterministic_and_blind_to_the_future(
    ind_id: str, runs: dict[str, pd.DataFrame]
) -> None:
    a, b, c = runs["a"], runs["b"], runs["future"]
    ind = EXTENDED.indicators[ind_id]
    cols = [ind_id, f"{ind_id}__fired"] + ([f"{ind_id}__pct"] if ind.pct else [])
    assert all(col in a.columns for col in cols)
    assert a.index.is_unique and a.index.equals(b.index) and a.index.equals(c.index)
    assert a[ind_id].dtype == "float64" and a[f"{ind_id}__fired"].dtype == "int8"
    assert set(a[f"{ind_id}__fired"].unique()) <= {0, 1}
    assert (a.loc[a[ind_id].isna(), f"{ind_id}__fired"] == 0).all()
    pd.testing.assert_frame_equal(a[cols], b[cols])
    pd.testing.assert_frame_equal(a[cols], c[cols])


@pytest.mark.parametrize("ind_id", IDS)
def test_renders_to_pyspark(ind_id: str, base_schema: ibis.Schema) -> None:
    ibis.pyspark  # noqa: B018 - registers the PySpark compiler options
    base = ibis.table(base_schema, name="base")
    ind = EXTENDED.indicators[ind_id]
    value = ind.value(base, CONFIG)
    pct = ibis.literal(0.5) if ind.line == "quantile" else None
    expr = base.select("taxpayer_id", v=value, f=ind.fired(base, value, CONFIG, pct=pct))
    sql = ibis.to_sql(expr, dialect="pyspark")
    assert "SELECT" in sql


@pytest.mark.parametrize("name", list(EXTENDED.sources))
def test_sources_render_to_pyspark(name: str) -> None:
    """Each source, over unbound tables, for one date and for many (no DuckDB-only SQL)."""
    ibis.pyspark  # noqa: B018
    unbound = Tables(
        con=None,  # type: ignore[arg-type]
        tables={
            n: ibis.table(
                {c.name: _ibis_type(c.kind) for c in s.columns} | {"known_on": "date"}, name=n
            )
            for n, s in SCHEMAS.items()
        },
    )
    for dates in ([AS_OF], [AS_OF, dt.date(2024, 5, 2)]):
        ctx = Context.create(unbound, dates)
        sql = ibis.to_sql(EXTENDED.sources[name].build(ctx), dialect="pyspark")
        assert "asof" not in sql.lower().replace("as_of", "")


def _ibis_type(kind: str) -> str:
    return {"str": "string", "float": "float64", "int": "int64"}.get(kind, "date")


def test_classic_rules_are_the_documents_old_screens() -> None:
    assert set(classic_ids()) == {
        "vat_burden",
        "zero_negative_streak",
        "low_declaration_streak",
        "input_tax_vs_sales_change",
        "invoice_vs_declared",
        "stranded_invoices",
        "two_tax",
    }


def test_switched_off_names_the_missing_tables() -> None:
    present = {n for n, s in SCHEMAS.items() if not s.optional}
    off = switched_off(present)
    assert off["electricity_vs_sales"] == "missing optional table electricity"
    assert "vat_burden" not in off and "invoice_vs_declared" not in off
    assert switched_off(set(SCHEMAS)) == {}


def test_domain_table_is_covered() -> None:
    """Every indicator of DOMAIN.md's table and issue 5 has an entry."""
    needed = {
        "vat_burden",
        "zero_negative_streak",
        "low_declaration_streak",
        "input_tax_vs_sales_change",
        "invoice_vs_declared",
        "stranded_invoices",
        "fuel_input",
        "two_tax",
        "equity_transfer_no_tax",
        "property_no_declaration",
        "land_use_tax",
        "electricity_vs_sales",
        "wages_vs_sales",
        "sales_per_head",
        "three_period",
        "peer_burden",
        "fixed_quota_vs_peers",
        "long_loss",
        "shell_company",
        "shell_supplier_exposure",
        "power_model_gap",
        "input_output_gap",
        "kiln_model_gap",
        "volume_density_gap",
        "chain_gap",
    }
    assert needed <= set(CATALOG)


@pytest.mark.slow
def test_whole_matrix_renders_to_pyspark() -> None:
    """The entire lazy pipeline (sources, benchmarks, peers, percentiles, dates) compiles for
    PySpark, with no engine-specific construct (as-of joins, seeded samples)."""
    from taxrisk.features.matrix import matrix_expression

    ibis.pyspark  # noqa: B018
    tables = Tables.from_frames(world_frames(12, 16, seed=3))
    expr = matrix_expression(tables, [dt.date(2022, 12, 20), dt.date(2023, 2, 2)])
    sql = ibis.to_sql(expr, dialect="pyspark")
    assert "ASOF" not in sql.upper().replace("AS_OF", "") and "TABLESAMPLE" not in sql.upper()
    assert "PERCENTILE" in sql and "RANK" in sql


def test_an_indicator_added_by_declaration_reaches_the_matrix_and_the_export(
    runs: dict[str, pd.DataFrame],
) -> None:
    """The test family's source, derived column, benchmark and norm are built, its indicator
    has value, flag and percentile, and the catalog export lists it with its threshold; the
    default catalog is untouched."""
    a = runs["a"]
    assert {"kwh_max_12", "kwh_peak_ratio", "power_peak", "power_peak__pct"} <= set(a.columns)
    assert a["power_peak"].notna().any() and a["power_peak__fired"].isin([0, 1]).all()
    # the value is the peak ratio over the industry's median peak ratio
    has = a["kwh_peak_ratio"].notna()
    med = a[has].groupby(["industry", "taxpayer_type"], observed=True)["kwh_peak_ratio"]
    expected = a.loc[has, "kwh_peak_ratio"] / med.transform("median")
    pd.testing.assert_series_equal(
        a.loc[has, "power_peak"], expected.round(9), check_names=False, atol=1e-6
    )
    fired = a["power_peak"] >= 1.5
    assert (a["power_peak__fired"] == fired.astype("int8")).all()
    rows = {r["id"]: r for r in records(EXTENDED, CONFIG)}
    assert rows["power_peak"]["threshold"] == 1.5 and rows["power_peak"]["family"] == "test_extra"
    assert "power_peak" not in CATALOG and "elec_peak" not in SOURCES


def test_a_threshold_for_no_indicator_or_an_indicator_without_one_is_an_error() -> None:
    from taxrisk.features.config import ConfigError

    tables = Tables.from_frames(world_frames(12, 14, seed=2))
    with pytest.raises(ConfigError, match=r"thresholds\.power_peak: no threshold"):
        build_matrix(tables, AS_OF, catalog=EXTENDED)
    with pytest.raises(ConfigError, match=r"thresholds\.nope: unknown indicator"):
        build_matrix(tables, AS_OF, config=default_config().with_thresholds(nope=1.0))


def test_norms_read_are_the_contracts() -> None:
    """The families read only the contract's industry_norms metrics (CONTRACT section 1)."""
    assert set(default_catalog().norms) == {
        "kwh_per_unit",
        "input_output_ratio",
        "loss_rate",
        "avg_price",
        "density_t_per_m3",
        "tax_burden_warning",
    }


def test_an_indicator_ranking_dated_records_by_percentile_is_refused() -> None:
    """A taxpayer's own dated records (audits, registry events, property) are read at the
    as-of date, the industry percentiles at the information date: an indicator that would
    rank the former by the latter is a declaration error, named, not a silent mix."""
    family = Family(
        name="test_dated",
        order=80,
        indicators=(
            Indicator(
                id="audited_often",
                name_zh="多次被检查",
                name_en="Audited often",
                tables=("audits",),
                compute=lambda b, c: b.prior_audits.cast("float64"),
                direction="high",
                measure="notice",
                basis="test",
                guide_zh="测试。",
                guide_en="Test.",
            ),
        ),
    )
    tables = Tables.from_frames(world_frames(12, 14, seed=2))
    config = default_config().with_thresholds(audited_often=2.0)
    with pytest.raises(ValueError, match=r"audited_often reads a taxpayer's dated records"):
        build_matrix(tables, AS_OF, catalog=default_catalog().with_family(family), config=config)
