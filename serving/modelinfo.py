"""The model in service, as MLflow knows it: the registered model's ``champion`` version.

:func:`model_info` reads the registry (``settings.registered_model``, alias ``champion``), the
version's training run, its metrics and the names of its plot artifacts (``*.png``), and
returns a :class:`ModelInfo`. It fails soft: no tracking store, no registered model, no
champion, or an MLflow error all give a :class:`ModelInfo` with ``in_service=False`` and a
sentence in ``detail`` (the API answers 200 with that state, never a 500). It never creates
a tracking store: a SQLite URI naming a missing file means "no model in service".

:class:`ModelInfoCache` keeps the answer for a few seconds (MLflow lookups take tens of
milliseconds and the champion changes once per training). :func:`model_plot` returns the bytes
of one of the champion run's plots, by a name :func:`model_info` listed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = ["CHAMPION", "ModelInfo", "ModelInfoCache", "model_info", "model_plot"]

log = logging.getLogger(__name__)

CHAMPION = "champion"

ModelStatus = Literal["in_service", "no_model", "unavailable"]

#: MLflow's answers for "no such registered model" and "no such alias"; any other error means
#: the registry could not be read
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


@dataclass(frozen=True)
class ModelInfo:
    """What is known of the champion.

    ``status``: ``in_service`` (a champion exists), ``no_model`` (nothing registered or no
    alias), ``unavailable`` (the registry could not be read). ``metrics``: the training run's
    metrics (non-finite values as None). ``plots``: artifact paths of the run's PNG plots.
    """

    name: str
    alias: str
    status: ModelStatus
    detail: str
    version: str | None = None
    run_id: str | None = None
    model_uri: str | None = None
    registered_at: dt.datetime | None = None
    train_as_of: str | None = None
    champion_decision: str | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    plots: tuple[str, ...] = ()

    @property
    def in_service(self) -> bool:
        return self.status == "in_service"


def _sqlite_file(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for other schemes and in-memory stores)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = unquote(uri[len(prefix) :].split("?", 1)[0])
    return Path(path) if path and path != ":memory:" else None


def _client(settings: Settings) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _no_model(settings: Settings, detail: str, status: ModelStatus = "no_model") -> ModelInfo:
    return ModelInfo(name=settings.registered_model, alias=CHAMPION, status=status, detail=detail)


def _store_missing(settings: Settings) -> bool:
    path = _sqlite_file(settings.tracking_uri)
    return path is not None and not path.exists()


def model_info(settings: Settings) -> ModelInfo:
    """The champion of ``settings.registered_model``, or a clear "no model in service"."""
    name = settings.registered_model
    if _store_missing(settings):
        return _no_model(
            settings, f"no model in service: no tracking store at {settings.tracking_uri}"
        )
    try:
        from mlflow.exceptions import MlflowException

        client = _client(settings)
        try:
            mv = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException as exc:
            if exc.error_code not in _ABSENT:
                raise
            log.info("no champion for %s: %s", name, exc)
            return _no_model(
                settings, f"no model in service: {name!r} has no version with alias {CHAMPION!r}"
            )
        run_id = mv.run_id or (mv.tags or {}).get("run_id")
        metrics: dict[str, float | None] = {}
        plots: tuple[str, ...] = ()
        if run_id:
            run = client.get_run(run_id)
            metrics = {k: _finite(v) for k, v in sorted(run.data.metrics.items())}
            plots = tuple(
                sorted(a.path for a in client.list_artifacts(run_id) if a.path.endswith(".png"))
            )
        created = getattr(mv, "creation_timestamp", None)
        return ModelInfo(
            name=name,
            alias=CHAMPION,
            status="in_service",
            detail=f"model {name!r} version {mv.version} holds the alias {CHAMPION!r}",
            version=str(mv.version),
            run_id=run_id,
            model_uri=f"models:/{name}@{CHAMPION}",
            registered_at=dt.datetime.fromtimestamp(created / 1000, tz=dt.UTC) if created else None,
            train_as_of=(mv.tags or {}).get("train_as_of"),
            champion_decision=(mv.tags or {}).get("champion_decision"),
            metrics=metrics,
            plots=plots,
        )
    except Exception as exc:  # fail soft: the API reports the state, it does not 500
        log.warning("model registry unavailable: %s", exc)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return _no_model(settings, f"model registry unavailable: {first}", "unavailable")


def model_plot(settings: Settings, info: ModelInfo, name: str) -> bytes | None:
    """The bytes of plot ``name`` of the champion's run; None unless ``name`` is in
    ``info.plots`` (only listed artifacts are ever read: no path from a request reaches MLflow)."""
    if not info.in_service or info.run_id is None or name not in info.plots:
        return None
    try:
        client = _client(settings)
        with tempfile.TemporaryDirectory() as tmp:
            local = client.download_artifacts(info.run_id, name, tmp)
            return Path(local).read_bytes()
    except Exception as exc:
        log.warning("cannot read plot %s of run %s: %s", name, info.run_id, exc)
        return None


class ModelInfoCache:
    """:func:`model_info` remembered for ``ttl`` seconds (thread-safe; one lookup at a time)."""

    def __init__(self, settings: Settings, ttl: float = 30.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: ModelInfo | None = None
        self._at = -math.inf

    def get(self) -> ModelInfo:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self.ttl:
                self._value = model_info(self.settings)
                self._at = time.monotonic()
            return self._value

    def clear(self) -> None:
        with self._lock:
            self._value = None
