"""The numpy industry percentiles and group ranks (used on DuckDB) equal the engine's window
versions (:func:`add_percentiles`, :func:`add_ranks`: what Spark runs) on data with ties,
nulls, NaN, a null industry or group, near-ties that only the 6-decimal rounding merges, and
several as-of dates."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pandas as pd
from taxrisk.features.indicators._base import Rank
from taxrisk.features.indicators.peers import (
    add_percentiles,
    add_ranks,
    group_ranks,
    industry_percentiles,
    percentile_inputs,
    rank_inputs,
)


def _frame(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n).round(2)  # many ties
    a[rng.random(n) < 0.1] = np.nan  # nulls (pandas NaN -> NULL in the engine)
    b = rng.choice([0.03, 0.03 + 1e-9, 0.01, 0.05, 0.0, -0.0], size=n)  # ties after rounding
    c = rng.normal(size=n)  # continuous
    c[:7] = np.nan
    industry = rng.choice(["A", "B", "C", None], size=n, p=[0.5, 0.3, 0.15, 0.05])
    as_of = rng.choice([dt.date(2025, 6, 30), dt.date(2025, 12, 31)], size=n)
    return pd.DataFrame(
        {
            "as_of": as_of,
            "taxpayer_id": [f"TP{i:06d}" for i in range(n)],
            "industry": industry,
            "a": a,
            "b": b,
            "c": c,
        }
    )


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    df = df.assign(as_of=pd.to_datetime(df["as_of"]))
    return df.sort_values(["as_of", "taxpayer_id"]).reset_index(drop=True)


def test_numpy_percentiles_equal_the_engine() -> None:
    con = ibis.duckdb.connect()
    cols = ["a", "b", "c"]
    for seed in (1, 2, 3):
        t = con.create_table(f"t{seed}", _frame(seed))
        want = _sorted(add_percentiles(t, cols).to_pandas())
        got = _sorted(
            industry_percentiles(percentile_inputs(t, cols).to_pyarrow(), cols).to_pandas()
        )
        assert got["taxpayer_id"].tolist() == want["taxpayer_id"].tolist()
        for c in cols:
            w, g = want[f"{c}__pct"].to_numpy(float), got[f"{c}__pct"].to_numpy(float)
            assert (np.isnan(w) == np.isnan(g)).all(), c
            assert w[~np.isnan(w)].min() > 0 and w[~np.isnan(w)].max() == 1.0
            np.testing.assert_array_equal(g, w, err_msg=c)


def test_engine_nan_ranks_above_every_number() -> None:
    """A NaN (not NULL) value ranks as the engine ranks it: above every number, tied with
    the other NaNs."""
    con = ibis.duckdb.connect()
    con.raw_sql(
        "CREATE TABLE nan_world AS SELECT DATE '2025-12-31' AS as_of, 'TP' || i::VARCHAR AS taxpayer_id, 'A' AS industry,"
        " CASE WHEN i % 5 = 0 THEN 'NaN'::DOUBLE WHEN i % 7 = 0 THEN NULL"
        " ELSE (i % 11)::DOUBLE END AS v FROM range(200) r(i)"
    )
    t = con.table("nan_world")
    assert t.v.isnan().sum().execute() == 40
    want = _sorted(add_percentiles(t, ["v"]).to_pandas())
    got = _sorted(industry_percentiles(percentile_inputs(t, ["v"]).to_pyarrow(), ["v"]).to_pandas())
    np.testing.assert_array_equal(got["v__pct"].to_numpy(float), want["v__pct"].to_numpy(float))


def test_numpy_group_ranks_equal_the_engine() -> None:
    """Ranks within (as_of, a group expression), the peer groups' mechanism: groups built
    from several columns, one of them null (a null group is one group, as in the engine),
    two ranks sharing a group, and the group sizes."""
    con = ibis.duckdb.connect()

    def by_industry(b: ibis.Table) -> ibis.Value:
        return b.industry

    def by_industry_band(b: ibis.Table) -> ibis.Value:
        return b.industry + "|" + (b.c > 0).cast("string")

    ranks = [
        Rank("_pa", "a", by_industry, count="_na"),
        Rank("_pb", "b", by_industry),
        Rank("_pc", "c", by_industry_band, count="_nc"),
        Rank("_pa2", "a", by_industry_band),
    ]
    for seed in (4, 5):
        t = con.create_table(f"r{seed}", _frame(seed))
        want = _sorted(add_ranks(t, ranks).to_pandas())
        inputs, group_of = rank_inputs(t, ranks, ["taxpayer_id"])
        assert len(set(group_of)) == 2  # the shared group is computed once
        got = _sorted(
            group_ranks(inputs.to_pyarrow(), ranks, ["taxpayer_id", "as_of"], group_of).to_pandas()
        )
        assert got["taxpayer_id"].tolist() == want["taxpayer_id"].tolist()
        for c in ("_pa", "_pb", "_pc", "_pa2", "_na", "_nc"):
            w, g = want[c].to_numpy(float), got[c].to_numpy(float)
            assert (np.isnan(w) == np.isnan(g)).all(), c
            np.testing.assert_array_equal(g, w, err_msg=c)
        assert want["_nc"].min() >= 1 and want["_na"].max() > want["_nc"].min()
