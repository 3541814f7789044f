"""The whole feature catalog on Apache Spark (local mode) equals DuckDB's, column by column.

One Spark session and one catalog run per test session (``spark_world`` and
``spark_features`` in ``tests/conftest.py``): a 500-taxpayer, 24-month generated world,
validated once on DuckDB; Spark reads exactly the validated snapshot (docs/spark.md).
Counts and flags must be equal; floats within 1e-9 relative (Spark and DuckDB sum floats in
different orders). Percentiles are ranked on values rounded to 6 decimals on both engines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from taxrisk.features.catalog import CATALOG
from taxrisk.features.engine import engine_backend, spark_tables_at
from taxrisk.features.matrix import build_matrix
from taxrisk.serving.spark_scoring import read_matrix

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def duck(spark_world: dict) -> pd.DataFrame:
    return build_matrix(spark_world["loaded"].tables, spark_world["as_of"])


@pytest.fixture(scope="module")
def spark(spark_features: str) -> pd.DataFrame:
    return read_matrix(spark_features)


def test_same_rows_and_columns(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    assert len(duck) > 300
    assert list(spark.index) == list(duck.index)
    assert list(spark.columns) == list(duck.columns)
    assert dict(spark.dtypes.astype(str)) == dict(duck.dtypes.astype(str))
    assert sum(c.endswith("__fired") for c in spark.columns) == len(CATALOG)


def test_every_column_equal(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    bad = []
    for c in duck.columns:
        a, b = duck[c], spark[c]
        if not pd.api.types.is_float_dtype(a.dtype):
            # categories, fired flags: exact
            if not a.astype(str).equals(b.astype(str)):
                bad.append((c, int((a.astype(str) != b.astype(str)).sum())))
            continue
        x, y = a.to_numpy(), b.to_numpy()
        same_null = np.array_equal(np.isnan(x), np.isnan(y))
        close = np.allclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
        if not (same_null and close):
            diff = ~np.isclose(x, y, rtol=1e-9, atol=1e-9, equal_nan=True)
            bad.append((c, int(diff.sum())))
    assert not bad, f"columns differing between DuckDB and Spark (column, rows): {bad}"


def test_fired_counts_equal_and_nonzero(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    fired = [c for c in duck.columns if c.endswith("__fired")]
    a, b = duck[fired].sum(), spark[fired].sum()
    pd.testing.assert_series_equal(a, b)
    assert (a > 0).sum() >= 10  # the comparison is not between two empty matrices


def test_spark_reads_exactly_the_validated_rows(spark_world: dict) -> None:
    """Validation stays on DuckDB; Spark reads the snapshot: rows in = used + quarantined,
    and Spark sees exactly the used rows of every table."""
    loaded, tables = spark_world["loaded"], spark_world["spark"]
    assert set(tables) == set(loaded.tables)
    for name, c in loaded.counts.items():
        assert c.rows_in == c.rows_used + sum(c.quarantined.values()), name
        assert tables.con.to_spark(tables[name]).count() == c.rows_used, name


def test_engine_setting_selects_spark(spark_world: dict) -> None:
    con = engine_backend(spark_world["settings"])
    assert con.name == "pyspark"
    # the same snapshot read from a URL (as for hdfs:// or s3a://) gives the same table
    snap = spark_world["loaded"].snapshot.path
    t = spark_tables_at(con, snap.as_uri(), ["taxpayers"])
    assert (
        con.to_spark(t["taxpayers"]).count() == spark_world["loaded"].counts["taxpayers"].rows_used
    )
