"""The catalog: one conformance test over every entry (scikit-learn's parametrize_with_checks
style), plus the registry's own rules.

Every indicator is checked for: documentation in both languages, a known measure and
direction, alignment (one value per active taxpayer), determinism, blindness to rows dated
after the as-of date, and rendering to PySpark SQL.
"""

from __future__ import annotations

import datetime as dt
import re

import ibis
import pandas as pd
import pytest
from factory import world_frames
from taxrisk.features.catalog import CATALOG, MEASURES, SOURCES, classic_ids, switched_off
from taxrisk.features.indicators._base import Context
from taxrisk.features.matrix import _Pipeline, build_matrix
from taxrisk.features.schema import SCHEMAS
from taxrisk.features.tables import Tables

AS_OF = dt.date(2024, 3, 20)
IDS = list(CATALOG)
_CJK = re.compile(r"[\u4e00-\u9fff]")


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
    """Three builds of one world: twice as is, once with the future changed."""
    a = build_matrix(Tables.from_frames(frames), AS_OF)
    b = build_matrix(Tables.from_frames(frames), AS_OF)
    c = build_matrix(Tables.from_frames(_future_changed(frames, AS_OF)), AS_OF)
    return {"a": a, "b": b, "future": c}


@pytest.fixture(scope="module")
def base_schema(frames: dict[str, pd.DataFrame]) -> ibis.Schema:
    pipe = _Pipeline(Tables.from_frames(frames), [AS_OF], lazy=True)
    return pipe.values().schema()


@pytest.mark.parametrize("ind_id", IDS)
def test_documented(ind_id: str) -> None:
    ind = CATALOG[ind_id]
    assert ind.id == ind_id and re.fullmatch(r"[a-z][a-z0-9_]*", ind_id)
    assert _CJK.search(ind.name_zh) and _CJK.search(ind.guide_zh)
    assert ind.name_en.strip() and len(ind.guide_en) > 60 and not _CJK.search(ind.guide_en)
    assert ind.measure in MEASURES and ind.direction in ("high", "low")
    assert ind.tables and all(t in SCHEMAS for t in ind.tables)


@pytest.mark.parametrize("ind_id", IDS)
def test_aligned_deterministic_and_blind_to_the_future(
    ind_id: str, runs: dict[str, pd.DataFrame]
) -> None:
    a, b, c = runs["a"], runs["b"], runs["future"]
    cols = [ind_id, f"{ind_id}__fired"] + ([f"{ind_id}__pct"] if CATALOG[ind_id].pct else [])
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
    ind = CATALOG[ind_id]
    value = ind.value(base)
    expr = base.select("taxpayer_id", v=value, f=ind.fired(base, value))
    sql = ibis.to_sql(expr, dialect="pyspark")
    assert "SELECT" in sql


@pytest.mark.parametrize("name", list(SOURCES))
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
        sql = ibis.to_sql(SOURCES[name].build(ctx), dialect="pyspark")
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
