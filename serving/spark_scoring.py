"""Scoring on Apache Spark: the feature matrix, the ranking and the contributions, distributed.

For a province whose matrix does not fit one machine (``TAXRISK_ENGINE=spark``; see
``docs/spark.md``). :func:`score_on_spark` runs, on the Spark session of the tables:

1. **features**: the catalog (:func:`taxrisk.features.matrix.matrix_table`, the same Ibis code
   as on DuckDB) over the validated snapshot's Parquet files, written as Parquet
   (``features.parquet``, one row per active taxpayer);
2. **predict**: ``mapInPandas`` with the unwrapped :class:`~taxrisk.training.models.YieldModel`
   (broadcast once to the executors): P(adjusted), the amount and the expected yield of
   each row, batch by batch;
3. **rank**: a distributed sort by expected yield (descending, ties by taxpayer_id, as
   :func:`taxrisk.serving.scoring.rank_predictions`), a count per sorted partition, and each
   row's rank = the rows of the partitions before it + its position in its own; risk levels
   and measures as in :mod:`taxrisk.serving.scoring` (``[risk_levels]``, ``[measures]``);
   written as ``ranking.parquet`` (:data:`~taxrisk.serving.scoring.RANKING_COLUMNS`);
4. **contributions** for the rows of rank <= ``explain_top`` (the cases near the cut):
   TreeSHAP per indicator in yuan (:func:`taxrisk.serving.explain.contributions`) in
   ``mapInPandas``, written as ``contributions.parquet`` (the
   :class:`~taxrisk.serving.explain.Explanation` items) and ``contribution_base.parquet``.

Nothing of size N is collected on the driver here; what the driver reads back
(:func:`read_ranking`) is the ranking, 8 columns per taxpayer. Dispatch and publishing
(:mod:`taxrisk.serving.runs`) run in-process on it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .config import ServingConfig
from .explain import BASE_COLUMNS as _BASE
from .scoring import RANKING_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from taxrisk.features.tables import Tables
    from taxrisk.training.models import YieldModel

__all__ = [
    "SparkRun",
    "SparkScores",
    "explain_spark",
    "rank_spark",
    "read_matrix",
    "read_ranking",
    "score_features",
    "score_on_spark",
    "score_run_on_spark",
    "spark_features",
]

log = logging.getLogger(__name__)

_PRED_SCHEMA = (
    "taxpayer_id string, unit_id string, risk_score double, expected_amount double, "
    "expected_yield double"
)


@dataclass
class SparkScores:
    """Where a Spark scoring wrote its tables (URLs or paths), with counts and timings (s)."""

    features: str
    ranking: str
    contributions: str | None
    contribution_base: str | None
    scored: int
    explained: int
    timings: dict[str, float] = field(default_factory=dict)


def _session(df: DataFrame) -> SparkSession:
    return df.sparkSession


def _shared(session: SparkSession, value: Any) -> Any:
    """A broadcast of ``value`` where the session has a SparkContext (classic Spark); on Spark
    Connect (no SparkContext) the value travels in the function's closure instead."""
    try:
        return session.sparkContext.broadcast(value)
    except Exception:  # Spark Connect
        return None


def _value(shared: Any, fallback: Any) -> Any:
    return shared.value if shared is not None else fallback


def _fired_filled(df: DataFrame) -> DataFrame:
    """Fired flags null -> 0, as the pandas hand-off types them (a null flag is 'not fired')."""
    from pyspark.sql import functions as F

    cols = [
        F.coalesce(F.col(c).cast("int"), F.lit(0)).alias(c) if c.endswith("__fired") else F.col(c)
        for c in df.columns
    ]
    return df.select(*cols)


def score_features(features: DataFrame, model: YieldModel) -> DataFrame:
    """Predictions of every row of a Spark feature table: taxpayer_id, unit_id, risk_score,
    expected_amount, expected_yield (``mapInPandas``; the model is broadcast once)."""
    needed = ["taxpayer_id", "unit_id", *model.feature_names_in_]
    missing = [c for c in needed if c not in features.columns]
    if missing:
        from taxrisk.training.models import FeatureMismatch

        raise FeatureMismatch(missing, [])
    shared = _shared(_session(features), model)
    local = None if shared is not None else model

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m = _value(shared, local)
        for b in batches:
            if b.empty:
                continue
            pred = m.predict(b, allow_extra=True)
            yield pd.DataFrame(
                {
                    "taxpayer_id": b["taxpayer_id"].astype("str").to_numpy(),
                    "unit_id": b["unit_id"].astype("str").to_numpy(),
                    "risk_score": pred["probability"].to_numpy(dtype="float64"),
                    "expected_amount": pred["amount"].to_numpy(dtype="float64"),
                    "expected_yield": pred["expected_yield"].to_numpy(dtype="float64"),
                }
            )

    return features.select(*needed).mapInPandas(predict, _PRED_SCHEMA)  # type: ignore[arg-type]


def rank_spark(predictions: DataFrame, cfg: ServingConfig) -> DataFrame:
    """The ranking (:data:`RANKING_COLUMNS`) of Spark predictions, computed distributed.

    Rank 1 is the highest expected yield, ties by taxpayer_id (a missing yield last), as
    :func:`~taxrisk.serving.scoring.rank_predictions`: a global sort, the row count of each
    sorted partition (a few numbers to the driver), then rank = rows before the partition +
    position within it. Levels: the first ``[risk_levels]`` level whose ``top_share`` holds
    (rank / N) and whose ``min_probability`` holds, else ``minimal``; measures per
    ``[measures]``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    session = _session(predictions)
    ey = F.col("expected_yield")
    keyed = predictions.withColumn("_key", F.when(F.isnan(ey), F.lit(None)).otherwise(ey))
    order = [F.col("_key").desc_nulls_last(), F.col("taxpayer_id").asc()]
    srt = keyed.orderBy(*order).withColumn("_part", F.spark_partition_id())
    srt = srt.localCheckpoint(eager=True)  # the partition ids are fixed from here on
    counts = sorted((r["_part"], r["count"]) for r in srt.groupBy("_part").count().collect())
    offsets, total = [], 0
    for part, n in counts:
        offsets.append((int(part), total))
        total += int(n)
    off = session.createDataFrame(offsets or [(0, 0)], "_part int, _offset long")
    within = F.row_number().over(Window.partitionBy("_part").orderBy(*order))
    ranked = srt.join(F.broadcast(off), "_part").withColumn("rank", F.col("_offset") + within)
    position = F.col("rank") / F.lit(float(max(total, 1)))
    p = F.col("risk_score")
    level = F.lit("minimal")
    for lv in reversed(list(cfg.risk_levels)):
        level = F.when(
            (position <= F.lit(lv.top_share)) & (p >= F.lit(lv.min_probability)), F.lit(lv.name)
        ).otherwise(level)
    ranked = ranked.withColumn("risk_level", level)
    m = cfg.measures
    measure = F.lit(None).cast("string")
    for name, meas in m.by_level.items():
        measure = F.when(F.col("risk_level") == name, F.lit(meas)).otherwise(measure)
    audit = (
        (F.col("risk_level") == "high")
        & (p >= F.lit(m.audit_min_probability))
        & (F.col("_key") >= F.lit(m.audit_min_yield))  # NaN is not >= (Spark orders it last)
    )
    ranked = ranked.withColumn(
        "recommended_measure", F.when(audit, F.lit("audit")).otherwise(measure)
    )
    return ranked.select(*RANKING_COLUMNS)


def explain_spark(features: DataFrame, model: YieldModel) -> DataFrame:
    """TreeSHAP contributions of every row of ``features`` (``mapInPandas``): one row per
    taxpayer with the base columns of :class:`~taxrisk.serving.explain.Explanation` and the
    items as parallel arrays (``_item``, ``_kind``, ``_logodds``, ``_logamount``, ``_yuan``)."""
    from . import explain

    shared = _shared(_session(features), model)
    local = None if shared is not None else model
    schema = (
        "taxpayer_id string, "
        + ", ".join(f"{c} double" for c in _BASE)
        + ", _item array<string>, _kind array<string>, _logodds array<double>, "
        "_logamount array<double>, _yuan array<double>"
    )

    def contrib(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m = _value(shared, local)
        for b in batches:
            if b.empty:
                continue
            b = b.set_index(b["taxpayer_id"].astype("str"))
            ex = explain.contributions(m, b)
            it = ex.items
            n_items = len(it) // len(b)
            ids = ex.base.index.to_numpy()
            out = pd.DataFrame({"taxpayer_id": ids})
            for c in _BASE:
                out[c] = ex.base[c].to_numpy(dtype="float64")
            # the items as arrays (named apart: the base has logodds and logamount too)
            for c in ("item", "kind"):
                out[f"_{c}"] = list(it[c].to_numpy(dtype=object).reshape(len(b), n_items))
            for c in ("logodds", "logamount", "yuan"):
                out[f"_{c}"] = list(it[c].to_numpy(dtype="float64").reshape(len(b), n_items))
            yield out

    cols = ["taxpayer_id", *model.feature_names_in_]
    return features.select(*cols).mapInPandas(contrib, schema)  # type: ignore[arg-type]


def _write(df: DataFrame, url: str) -> str:
    df.write.mode("overwrite").parquet(url)
    return url


def spark_features(tables: Tables, as_of: dt.date, url: str | Path) -> str:
    """The feature matrix as of ``as_of`` computed on the Spark session of ``tables`` (a
    PySpark Ibis backend) and written as Parquet at ``url``; returns the URL. Columns: those of
    :func:`~taxrisk.features.matrix.build_matrix` with ``taxpayer_id`` (fired flags 0/1)."""
    from taxrisk.features.matrix import matrix_table

    con = tables.con
    if con.name != "pyspark":
        raise ValueError(f"Spark scoring needs tables on a PySpark backend, not {con.name!r}")
    with matrix_table(tables, [as_of]) as expr:
        feats = _fired_filled(con.to_spark(expr).drop("as_of"))  # type: ignore[attr-defined]
        return _write(feats, str(url))


def score_on_spark(
    tables: Tables,
    as_of: dt.date,
    model: YieldModel,
    cfg: ServingConfig,
    out: str | Path,
    *,
    explain_top: int = 0,
    features: str | None = None,
) -> SparkScores:
    """Features, predictions, ranking and the contributions of the top ``explain_top`` ranks,
    all on the Spark session of ``tables`` (a PySpark Ibis backend), written as Parquet under
    ``out`` (a local path or any URL Spark writes: ``hdfs://``, ``s3a://``). ``features``: a
    feature table already written by :func:`spark_features` for this as-of date (not rebuilt).
    """
    from pyspark.sql import functions as F

    session: SparkSession = tables.con._session  # type: ignore[attr-defined]
    base = str(out).rstrip("/")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    features_url = features or spark_features(tables, as_of, f"{base}/features.parquet")
    timings["features"] = time.perf_counter() - t0
    feats = session.read.parquet(features_url)

    t0 = time.perf_counter()
    ranking = rank_spark(score_features(feats, model), cfg)
    ranking_url = _write(ranking.orderBy("rank"), f"{base}/ranking.parquet")
    ranking = session.read.parquet(ranking_url)
    scored = ranking.count()
    timings["predict_rank"] = time.perf_counter() - t0

    contrib_url = base_url = None
    explained = 0
    if explain_top > 0:
        t0 = time.perf_counter()
        top = ranking.filter(F.col("rank") <= explain_top).select("taxpayer_id")
        wide = explain_spark(feats.join(top, "taxpayer_id", "left_semi"), model)
        wide = wide.localCheckpoint(eager=True)
        base_url = _write(wide.select("taxpayer_id", *_BASE), f"{base}/contribution_base.parquet")
        zipped = F.arrays_zip("_item", "_kind", "_logodds", "_logamount", "_yuan")
        items = wide.select("taxpayer_id", F.explode(zipped).alias("z")).select(
            "taxpayer_id",
            *[F.col(f"z._{c}").alias(c) for c in ("item", "kind", "logodds", "logamount", "yuan")],
        )
        contrib_url = _write(items, f"{base}/contributions.parquet")
        explained = wide.count()
        timings["contributions"] = time.perf_counter() - t0
    log.info("spark scoring: %d scored, %d explained, %s", scored, explained, timings)
    return SparkScores(
        features=features_url,
        ranking=ranking_url,
        contributions=contrib_url,
        contribution_base=base_url,
        scored=scored,
        explained=explained,
        timings={k: round(v, 3) for k, v in timings.items()},
    )


@dataclass
class SparkRun:
    """What a scoring run (:func:`taxrisk.serving.runs.run_scoring` with
    ``TAXRISK_ENGINE=spark``) takes from Spark: the ranking and the matrix read back from the
    Parquet files Spark wrote, the top contributions, and where they are."""

    scores: SparkScores
    ranking: pd.DataFrame
    matrix: pd.DataFrame
    items: pd.DataFrame | None
    base: pd.DataFrame | None

    def explanation(self, model: YieldModel, matrix: pd.DataFrame, ids: pd.Index) -> Any:
        """The :class:`~taxrisk.serving.explain.Explanation` of ``ids``: Spark's for the top
        ranks, computed here (in-process) for the others (e.g. exploration cases)."""
        from . import explain

        ids = pd.Index(ids, dtype="str")
        done = self.base.index if self.base is not None else pd.Index([], dtype="str")
        rest = ids.difference(done, sort=False)
        parts_items, parts_base = [], []
        if self.items is not None and self.base is not None:
            keep = ids.intersection(done, sort=False)
            parts_items.append(self.items[self.items["taxpayer_id"].isin(keep)])
            parts_base.append(self.base.loc[keep])
        if len(rest):
            more = explain.contributions(model, matrix.loc[rest])
            parts_items.append(more.items)
            parts_base.append(more.base)
        if not parts_items:
            return explain.contributions(model, matrix.iloc[:0])
        items = pd.concat(parts_items, ignore_index=True)
        base = pd.concat(parts_base)
        base.index = base.index.astype("str").rename("taxpayer_id")
        return explain.Explanation(items=items.reset_index(drop=True), base=base)


def score_run_on_spark(
    settings: Any, loaded: Any, as_of: dt.date, model: YieldModel, cfg: ServingConfig, run_id: str
) -> SparkRun:
    """The Spark part of a scoring run: the validated snapshot of ``loaded`` on a Spark
    session (:func:`taxrisk.features.engine.engine_tables`), :func:`score_on_spark` into
    ``<workspace>/spark/<run_id>/`` (contributions for the ranks up to the units' capacity
    plus ``[dispatch].explain_beyond_cut``), then the ranking, the matrix and the
    contributions read back for dispatch and publishing."""
    from taxrisk.features.engine import engine_tables

    tables = engine_tables(loaded, settings)
    capacity = int(loaded.tables["units"].capacity.sum().execute() or 0)
    out = Path(settings.root) / "spark" / run_id
    scores = score_on_spark(
        tables,
        as_of,
        model,
        cfg,
        out,
        explain_top=capacity + cfg.dispatch.explain_beyond_cut,
    )
    items = pd.read_parquet(scores.contributions) if scores.contributions else None
    base = None
    if scores.contribution_base:
        base = pd.read_parquet(scores.contribution_base).set_index("taxpayer_id")
        base.index = base.index.astype("str")
    if items is not None:
        items = items.astype({"taxpayer_id": "str", "item": "str", "kind": "str"})
    return SparkRun(
        scores=scores,
        ranking=read_ranking(scores.ranking),
        matrix=read_matrix(scores.features),
        items=items,
        base=base,
    )


def read_ranking(path: str | Path) -> pd.DataFrame:
    """A ranking written by :func:`score_on_spark` as the in-process scorer returns it (rank
    order, the same column types)."""
    df = pd.read_parquet(path)
    df = df.sort_values("rank", kind="stable").reset_index(drop=True)
    df["taxpayer_id"] = df["taxpayer_id"].astype("str")
    df["unit_id"] = df["unit_id"].astype("str")
    df["rank"] = df["rank"].astype(int)
    df["risk_level"] = df["risk_level"].astype(object)
    df["recommended_measure"] = df["recommended_measure"].astype(object)
    return df[RANKING_COLUMNS]


def read_matrix(path: str | Path) -> pd.DataFrame:
    """The Spark feature table (local Parquet) as :func:`~taxrisk.features.matrix.build_matrix`
    returns it (index taxpayer_id, typed)."""
    from taxrisk.features.matrix import matrix_frame

    df = pd.read_parquet(path)
    df.insert(0, "as_of", np.datetime64("1970-01-01", "D"))
    return matrix_frame(df).drop(columns="as_of").set_index("taxpayer_id")
