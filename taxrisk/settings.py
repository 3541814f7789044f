"""Settings: one validated object, built by :func:`get_settings` and passed down.

Read from ``TAXRISK_*`` environment variables and a ``.env`` file in the working directory.
Nothing is created at import: :meth:`Settings.ensure_workspace` makes the folders when a
command needs them.

Workspace layout (``TAXRISK_WORKSPACE``, default ``./taxrisk-workspace``)::

    mlflow.db        MLflow tracking store (SQLite), unless MLFLOW_TRACKING_URI is set
    mlartifacts/     MLflow artifacts
    cases.db         the case store (SQLite), unless TAXRISK_DATABASE_URL is set
    quality/         data-quality reports (HTML + JSON), one folder per validated data folder
    quarantine/      quarantined rows, one file per table
    optuna/          Optuna studies (SQLite)
    reports/         explanation reports
    tmp/             DuckDB spill space (and Spark's local dir and warehouse, TAXRISK_ENGINE=spark)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]

_PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAXRISK_", env_file=".env", extra="ignore")

    environment: Literal["development", "production"] = "development"
    workspace: Path = Path("taxrisk-workspace")
    database_url: str | None = None
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "TAXRISK_MLFLOW_TRACKING_URI"),
    )
    registered_model: str = "taxrisk"
    experiment: str = "taxrisk"
    secret_key: str = "changeme"
    # DuckDB, the embedded engine
    duckdb_threads: int | None = None
    duckdb_memory_limit: str = "6GB"  # DuckDB's limit is not the whole process: 6GB kept validate at 1M taxpayers under 8 GB RSS
    # the engine of the feature catalog and scoring (features/engine.py, docs/spark.md)
    engine: Literal["duckdb", "spark"] = "duckdb"
    spark_master: str = "local[*]"  # or spark://host:7077, yarn, or a Spark Connect sc://host:15002
    spark_driver_memory: str = "4g"
    spark_shuffle_partitions: int | None = None  # None: Spark's default (200)
    seed: int = 42
    # scoring and dispatch tunables: a TOML overriding serving/config.toml (TAXRISK_SERVING_CONFIG)
    serving_config: Path | None = None
    # indicator thresholds and parameters: a TOML overriding features/indicator_defaults.toml
    # (TAXRISK_INDICATOR_CONFIG)
    indicator_config: Path | None = None

    @model_validator(mode="after")
    def _no_placeholder_secret_in_production(self) -> Settings:
        if self.environment == "production" and self.secret_key in _PLACEHOLDER_SECRETS:
            raise ValueError("TAXRISK_SECRET_KEY must be set to a real secret in production")
        return self

    # Derived paths -------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.workspace.expanduser().resolve()

    @property
    def quality_dir(self) -> Path:
        return self.root / "quality"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def snapshots_dir(self) -> Path:
        """Validated snapshots of data folders (``taxrisk.features.loading.load_validated``)."""
        return self.root / "snapshots"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def optuna_dir(self) -> Path:
        return self.root / "optuna"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def cases_url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'cases.db'}"

    def ensure_workspace(self) -> Path:
        for d in (
            self.root,
            self.quality_dir,
            self.quarantine_dir,
            self.snapshots_dir,
            self.reports_dir,
            self.optuna_dir,
            self.tmp_dir,
            self.artifacts_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
        return self.root


def get_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, ``.env`` and explicit overrides."""
    return Settings(**overrides)
