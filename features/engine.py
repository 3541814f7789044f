"""The engine the feature catalog runs on, chosen in one place: DuckDB or Apache Spark.

``TAXRISK_ENGINE=duckdb`` (default): the in-process DuckDB connection of
:func:`taxrisk.features.tables.connect`. ``TAXRISK_ENGINE=spark``: an Ibis PySpark backend on a
Spark session (:func:`spark_session`; ``TAXRISK_SPARK_MASTER``, default ``local[*]``, or a Spark
Connect URL ``sc://host:15002``). The catalog (:func:`taxrisk.features.matrix.build_matrix`) is
the same Ibis code on both; there is no second implementation of any indicator.

The split (see ``docs/spark.md``): validation and quarantine stay on DuckDB and write the
validated snapshot (:func:`taxrisk.features.loading.load_validated`); Spark reads exactly the
snapshot's Parquet files (:func:`spark_tables`), so rows in = rows used + rows quarantined holds
on both engines. A folder of clean Parquet files at any URL Spark reads (``hdfs://``,
``s3a://``) can be read the same way (:func:`spark_tables_at`).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis

from .schema import SCHEMAS
from .tables import Tables, connect

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from taxrisk.settings import Settings

    from .loading.folder import LoadResult

__all__ = [
    "ENGINES",
    "engine_backend",
    "engine_tables",
    "spark_backend",
    "spark_session",
    "spark_tables",
    "spark_tables_at",
]

log = logging.getLogger(__name__)

ENGINES = ("duckdb", "spark")


def spark_session(settings: Settings | None = None) -> SparkSession:
    """The Spark session for the settings (one per process: Spark's ``getOrCreate``).

    Local mode (``local[*]``, ``local[2]``, ``spark://...``, ``yarn``): workers run this
    process's Python (``PYSPARK_PYTHON``), the driver binds to ``SPARK_LOCAL_IP`` (default
    127.0.0.1 for local masters), the SQL warehouse is a temporary folder (nothing is written
    as a managed table), ``TAXRISK_SPARK_DRIVER_MEMORY`` sizes the driver. A master starting
    with ``sc://`` is a Spark Connect server: the session is a thin client and the cluster's
    own settings apply.
    """
    master = settings.spark_master if settings is not None else "local[*]"
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        return SparkSession.builder.remote(master).getOrCreate()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    tmp = Path(settings.tmp_dir) if settings is not None else Path(tempfile.gettempdir())
    tmp.mkdir(parents=True, exist_ok=True)
    warehouse = tempfile.mkdtemp(prefix="spark-warehouse-", dir=tmp)
    builder = (
        SparkSession.builder.master(master)
        .appName("taxrisk")
        .config("spark.sql.warehouse.dir", warehouse)
        .config("spark.local.dir", str(tmp))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    if settings is not None:
        builder = builder.config("spark.driver.memory", settings.spark_driver_memory)
        if settings.spark_shuffle_partitions:
            builder = builder.config(
                "spark.sql.shuffle.partitions", str(settings.spark_shuffle_partitions)
            )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _backend_class() -> type:
    ibis.pyspark  # noqa: B018 - loading the entry point registers the PySpark compiler options
    from ibis.backends.pyspark import Backend

    class PySparkBackend(Backend):  # type: ignore[misc]
        """Ibis 12's PySpark backend with stages that Spark can plan.

        ``Table.cache()`` (each stage of the matrix) is an eager *local checkpoint*: the
        result is computed once and kept on the executors, and later queries see it as a
        relation with no lineage. Ibis's own ``cache()`` keeps the lineage, so Spark analyses
        every earlier stage's whole plan again for each later stage (the feature matrix of
        500 taxpayers did not finish planning in 10 minutes). It also registers in-memory
        tables (the as-of dates) before compiling, which Ibis 12's PySpark ``cache()`` omits.
        """

        def _create_cached_table(self, name: str, expr: Any) -> Any:
            self._run_pre_execute_hooks(expr)
            df = self._session.sql(self.compile(expr)).localCheckpoint(eager=True)
            df.createOrReplaceTempView(name)
            self._cached_dataframes[name] = df
            return self.table(name)

        def to_spark(self, expr: Any) -> Any:
            """The Spark DataFrame of an Ibis expression (lazy; in-memory tables registered)."""
            self._run_pre_execute_hooks(expr)
            return self._session.sql(self.compile(expr))

        def _drop_cached_table(self, name: str) -> None:
            self._session.catalog.dropTempView(name)
            df = self._cached_dataframes.pop(name, None)
            if df is not None:
                df.unpersist()

    return PySparkBackend


def spark_backend(settings: Settings | None = None) -> ibis.BaseBackend:
    """An Ibis PySpark backend on :func:`spark_session`."""
    return _backend_class()().connect(spark_session(settings))  # type: ignore[no-any-return]


def engine_backend(settings: Settings | None = None) -> ibis.BaseBackend:
    """The Ibis backend the feature catalog runs on (``Settings.engine``)."""
    engine = settings.engine if settings is not None else "duckdb"
    if engine == "spark":
        return spark_backend(settings)
    return connect(settings)


def spark_tables_at(con: ibis.BaseBackend, url: str, names: Iterable[str] | None = None) -> Tables:
    """Clean tables from ``<url>/<table>.parquet`` (a file or a folder of part files) on the
    Spark backend ``con``: the validated snapshot's layout, at any URL Spark reads (a local
    path, ``hdfs://namenode/path``, ``s3a://bucket/path``). ``names``: the tables to read
    (default: every contract table whose file exists; only local paths can be listed, give
    the names for remote URLs)."""
    session = con._session  # type: ignore[attr-defined]
    base = url.rstrip("/")
    if names is None:
        local = Path(base.removeprefix("file://"))
        names = [n for n in SCHEMAS if (local / f"{n}.parquet").exists()]
    tables = {}
    for name in names:
        view = f"taxrisk_{name}"
        session.read.parquet(f"{base}/{name}.parquet").createOrReplaceTempView(view)
        tables[name] = con.table(view)
    return Tables(con=con, tables=tables, source=None)


def spark_tables(loaded: LoadResult, con: ibis.BaseBackend) -> Tables:
    """The validated snapshot of ``loaded`` (:func:`~taxrisk.features.loading.load_validated`)
    as tables on the Spark backend ``con``: exactly the rows DuckDB uses, no second validation.
    """
    if loaded.snapshot is None:
        raise ValueError("spark_tables needs a load from a validated snapshot (load_validated)")
    t = spark_tables_at(con, loaded.snapshot.path.resolve().as_uri(), list(loaded.tables))
    t.source = loaded.tables.source
    t.notes = list(loaded.tables.notes)
    return t


def engine_tables(loaded: LoadResult, settings: Settings | None) -> Tables:
    """The tables the catalog runs on for the settings' engine: the loaded (DuckDB) tables, or
    the same validated snapshot read by Spark (``TAXRISK_ENGINE=spark``)."""
    if settings is None or settings.engine != "spark":
        return loaded.tables
    return spark_tables(loaded, spark_backend(settings))


def describe(con: ibis.BaseBackend) -> dict[str, Any]:
    """The engine of a backend, for logs and benchmark records."""
    if con.name == "pyspark":
        sc = con._session.sparkContext  # type: ignore[attr-defined]
        return {"engine": "spark", "master": sc.master, "parallelism": sc.defaultParallelism}
    return {"engine": con.name}
