"""Shared fixtures.

``demo_world``: one small synthetic city (session scope), generated once by the project's own
generator, for integration tests of loading, features, training and evaluation. Tests needing
exact assertions write their own tiny files instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test helper modules are imported by basename (``from synthetic import ...``); make those of
# the training and features tests importable from the other folders too.
sys.path[:0] = [str(Path(__file__).parent / d) for d in ("training", "features")]

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

DEMO_TAXPAYERS = 1500
DEMO_MONTHS = 30
DEMO_SEED = 7


@pytest.fixture(scope="session")
def demo_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated data folder (with ``truth/``); read-only for tests."""
    from taxrisk.experiments.demo import generate

    out = tmp_path_factory.mktemp("demo_world")
    generate(out, taxpayers=DEMO_TAXPAYERS, months=DEMO_MONTHS, seed=DEMO_SEED)
    return out


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder, set as TAXRISK_WORKSPACE (and no MLFLOW_TRACKING_URI)."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(ws))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return ws


@pytest.fixture(scope="session")
def trained(demo_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A champion trained once on the demo world (1 trial): its MLflow tracking URI and as-of.

    Tests that score use it through :func:`scoring_env` with a workspace and store of their own.
    """
    import datetime as dt

    from taxrisk.training.pipeline import train

    from taxrisk.settings import get_settings

    ws = tmp_path_factory.mktemp("trained_ws")
    settings = get_settings(workspace=ws, mlflow_tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    train(demo_world, dt.date(2025, 12, 31), settings=settings, trials=1)
    return {"tracking_uri": settings.tracking_uri, "workspace": str(ws)}


@pytest.fixture
def scoring_env(trained: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh workspace and case store (SQLite) that sees the session's trained champion."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("TAXRISK_WORKSPACE", str(ws))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained["tracking_uri"])
    monkeypatch.delenv("TAXRISK_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return ws


# Apache Spark (tests marked ``spark``): ONE local session per test session, and the catalog
# run once on it over a small world (a Spark job has seconds of fixed cost per stage).
SPARK_TAXPAYERS = 500
SPARK_MONTHS = 24
SPARK_SEED = 3


@pytest.fixture(scope="session")
def spark_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A small generated world, validated once (DuckDB), and its snapshot as tables on a local
    Spark session: keys folder, as_of, settings, loaded (DuckDB), spark (Tables on PySpark)."""
    import datetime as dt

    from taxrisk.experiments.demo import generate
    from taxrisk.features.engine import spark_backend, spark_tables
    from taxrisk.features.loading import load_validated
    from taxrisk.features.tables import connect

    from taxrisk.settings import get_settings

    folder = tmp_path_factory.mktemp("spark_world")
    generate(folder, taxpayers=SPARK_TAXPAYERS, months=SPARK_MONTHS, seed=SPARK_SEED)
    ws = tmp_path_factory.mktemp("spark_ws")
    settings = get_settings(
        workspace=ws,
        engine="spark",
        spark_master="local[2]",
        spark_driver_memory="2g",
        spark_shuffle_partitions=4,
    )
    settings.ensure_workspace()
    as_of = dt.date(2025, 12, 31)
    loaded = load_validated(
        folder, snapshots=settings.snapshots_dir, con=connect(settings), as_of=as_of
    )
    con = spark_backend(settings)
    yield {
        "folder": folder,
        "as_of": as_of,
        "settings": settings,
        "loaded": loaded,
        "spark": spark_tables(loaded, con),
    }
    con._session.stop()  # type: ignore[attr-defined]  # the JVM leaves with the last Spark test


@pytest.fixture(scope="session")
def spark_features(spark_world: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The whole catalog run on Spark over ``spark_world``, written as Parquet (its path)."""
    from taxrisk.serving.spark_scoring import spark_features as build

    out = tmp_path_factory.mktemp("spark_out") / "features.parquet"
    return build(spark_world["spark"], spark_world["as_of"], out)  # type: ignore[arg-type]
