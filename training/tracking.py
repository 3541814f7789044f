"""MLflow: the run of a training, the pyfunc model, the registry and the champion gate.

* :func:`configure` points MLflow at the workspace (SQLite store, artifact folder) unless
  ``MLFLOW_TRACKING_URI`` names a server; telemetry is off.
* :class:`YieldPyfunc` wraps a fitted :class:`~taxrisk.training.models.YieldModel` so that
  ``mlflow.pyfunc.load_model(uri).predict(matrix)`` returns, per row, ``expected_yield``
  (yuan), ``probability`` (P(adjusted)) and ``amount`` (yuan if adjusted). Extra columns of
  the matrix are ignored; missing ones raise
  :class:`~taxrisk.training.models.FeatureMismatch`. ``unwrap_python_model().model`` gives the
  ``YieldModel`` (for TreeSHAP contributions).
* :func:`load_model` (the pyfunc at a URI) and :func:`load_champion` (the unwrapped
  :class:`~taxrisk.training.models.YieldModel` in service, with its version and run): scoring
  predicts with the unwrapped model, whose own feature check is vectorised (MLflow's pyfunc
  schema enforcement checks values one by one: 15.7 s of 16.7 s at 20,000 taxpayers).
* :func:`champion_decision` is the gate: a candidate takes the alias ``champion`` only if its
  metric on the run's validation audits beats the current champion's on the same audits.
"""

from __future__ import annotations

import importlib.metadata as md
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from taxrisk.features.errors import TaxriskError

from .models import YieldModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from taxrisk.settings import Settings

__all__ = [
    "CHAMPION",
    "ChampionDecision",
    "LoadedModel",
    "ModelLoadError",
    "YieldPyfunc",
    "champion_decision",
    "configure",
    "current_champion",
    "gate",
    "load_champion",
    "load_model",
    "log_and_register",
    "model_signature",
    "signature_frame",
]

CHAMPION = "champion"
#: artifact of a training run: the training examples' feature matrix (monitoring's reference)
TRAINING_MATRIX = "reference/training_matrix.parquet"


class ModelLoadError(TaxriskError):
    """A model cannot be loaded (no champion, unknown URI, unreadable artifact)."""


@dataclass(frozen=True)
class LoadedModel:
    """A registered model ready to score: the fitted model and where it came from."""

    uri: str
    model: YieldModel
    version: str | None
    run_id: str | None
    train_as_of: str | None

    @property
    def resolved_uri(self) -> str:
        """``models:/name/N`` for a registered version (an alias moves; a version does not)."""
        if self.version is None or not self.uri.startswith("models:/"):
            return self.uri
        name = self.uri[len("models:/") :].split("@", 1)[0].rsplit("/", 1)[0]
        return f"models:/{name}/{self.version}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_model(uri: str, tracking_uri: str) -> Any:
    """The MLflow pyfunc model at ``uri`` (e.g. ``models:/taxrisk@champion``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        raise ModelLoadError(
            f"cannot load model {uri!r} from {tracking_uri}: {_first_line(exc)} "
            "(train one with `taxrisk train`, or pass --model URI)"
        ) from exc


def _version_of(uri: str, tracking_uri: str) -> tuple[str | None, str | None, str | None]:
    """(version, run id, train_as_of) of a ``models:/name@alias`` or ``models:/name/N`` URI."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        return None, None, None
    rest = uri[len("models:/") :]
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, number = rest.rsplit("/", 1)
            mv = client.get_model_version(name, number)
    except (MlflowException, ValueError) as exc:
        raise ModelLoadError(
            f"no model version for {uri!r} in {tracking_uri}: {_first_line(exc)} "
            "(train one with `taxrisk train`, or pass --model URI)"
        ) from exc
    return str(mv.version), mv.run_id, (mv.tags or {}).get("train_as_of")


def load_yield_model(uri: str, tracking_uri: str) -> LoadedModel:
    """The fitted :class:`YieldModel` behind ``uri``, with its version, run and as-of."""
    version, run_id, train_as_of = _version_of(uri, tracking_uri)
    pyfunc = load_model(uri, tracking_uri)
    try:
        inner = pyfunc.unwrap_python_model().model
    except Exception as exc:  # not a taxrisk model
        raise ModelLoadError(f"{uri!r} is not a taxrisk YieldModel: {_first_line(exc)}") from exc
    if not isinstance(inner, YieldModel):
        raise ModelLoadError(f"{uri!r} is not a taxrisk YieldModel ({type(inner).__name__})")
    return LoadedModel(uri, inner, version, run_id, train_as_of)


def load_champion(settings: Settings) -> LoadedModel:
    """The model in service: alias ``champion`` of the settings' registered model."""
    return load_yield_model(
        f"models:/{settings.registered_model}@{CHAMPION}", settings.tracking_uri
    )


def configure(settings: Settings) -> str:
    """Point MLflow at the settings' tracking store; returns the experiment id."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    settings.ensure_workspace()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.experiment)
    if exp is None:
        return mlflow.create_experiment(
            settings.experiment, artifact_location=settings.artifacts_dir.as_uri()
        )
    return exp.experiment_id


def signature_frame(matrix: pd.DataFrame) -> pd.DataFrame:
    """The matrix as the model signature sees it: categoricals as text, numbers as float64."""
    out = {}
    for c in matrix.columns:
        s = matrix[c]
        if isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s.dtype):
            out[c] = s.astype("str").where(s.notna(), None).astype(object)
        else:
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=matrix.index)


def model_signature(example: pd.DataFrame, output: pd.DataFrame) -> Any:
    """Signature naming every feature column (type ``any``: the model types them itself).

    MLflow's schema enforcement refuses ``category`` columns and int -> float conversion, so
    declaring exact types would reject the feature matrix as built; the model's own check
    (:func:`~taxrisk.training.models.prepare_features`) types and validates the columns.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inputs = Schema([ColSpec(AnyType(), str(c)) for c in example.columns])
    outputs = Schema([ColSpec("double", str(c)) for c in output.columns])
    return ModelSignature(inputs=inputs, outputs=outputs)


try:  # the pyfunc base class; importing mlflow is slow, so only this module does it
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


class YieldPyfunc(_PythonModel):  # type: ignore[misc,valid-type]
    """MLflow pyfunc wrapper: predict(matrix) -> expected_yield, probability, amount."""

    def __init__(self, model: YieldModel) -> None:
        self.model = model

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        """Per row: expected_yield (yuan), probability (P(adjusted)), amount (yuan if adjusted)."""
        frame = pd.DataFrame(model_input)
        out = self.model.predict(frame, allow_extra=True)
        return out[["expected_yield", "probability", "amount"]]


@dataclass(frozen=True)
class ChampionDecision:
    """Whether the candidate version takes the alias, and why (one sentence)."""

    promote: bool
    reason: str
    champion_version: str | None = None
    champion_metric: float | None = None


def champion_decision(
    metric_name: str,
    candidate: float,
    champion: float | None,
    champion_version: str | None,
    champion_error: str | None = None,
) -> ChampionDecision:
    """The gate: promote when there is no champion, or the candidate's metric is higher.

    A champion that cannot be scored on this validation (``champion_error``: e.g. its features
    no longer exist) is replaced; a tie keeps the current champion.
    """
    if champion_version is None:
        return ChampionDecision(True, "no champion yet: the candidate becomes champion")
    if champion_error is not None:
        return ChampionDecision(
            True,
            f"champion v{champion_version} cannot score this validation ({champion_error}): replaced",
            champion_version,
        )
    if champion is None or not np.isfinite(champion):
        return ChampionDecision(
            True,
            f"champion v{champion_version} has no {metric_name} here: replaced",
            champion_version,
            champion,
        )
    if not np.isfinite(candidate) or candidate <= champion:
        return ChampionDecision(
            False,
            f"candidate {metric_name} {candidate:.4f} does not beat champion v{champion_version} "
            f"{champion:.4f} on the same validation audits: alias kept",
            champion_version,
            champion,
        )
    return ChampionDecision(
        True,
        f"candidate {metric_name} {candidate:.4f} beats champion v{champion_version} "
        f"{champion:.4f} on the same validation audits",
        champion_version,
        champion,
    )


def current_champion(client: MlflowClient, name: str) -> str | None:
    """Version number holding the alias ``champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def log_params_flat(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested parameters for ``mlflow.log_params`` (values as short strings)."""
    out: dict[str, str] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= log_params_flat(v, f"{key}.")
        else:
            out[key] = str(v)[:500]
    return out


def gate(
    client: MlflowClient,
    name: str,
    metric_name: str,
    metric: Callable[[np.ndarray, np.ndarray], float],
    candidate_scores: np.ndarray,
    X_val: pd.DataFrame,
    selected_on: pd.Series,
    min_examples: int,
) -> tuple[ChampionDecision, str]:
    """Score the current champion on the candidate's validation audits and decide.

    ``metric(scores, mask)``: the gate metric of ``scores`` on the validation rows in ``mask``
    (higher is better). Fairness: when the champion carries its training as-of date (version
    tag ``train_as_of``) and at least ``min_examples`` validation audits were selected after
    it, both are compared on those audits only (the champion cannot have trained on them);
    otherwise on every validation audit. Returns the decision and a sentence saying which
    audits were compared.
    """
    import mlflow

    version = current_champion(client, name)
    everything = np.ones(len(X_val), dtype=bool)
    if version is None:
        return champion_decision(metric_name, metric(candidate_scores, everything), None, None), ""
    subset, note = everything, " Compared on every validation audit."
    champ_as_of = client.get_model_version(name, version).tags.get("train_as_of")
    if champ_as_of:
        unseen = (pd.to_datetime(selected_on) > pd.Timestamp(champ_as_of)).to_numpy()
        if unseen.sum() >= min_examples:
            subset = unseen
            note = f" Compared on the {int(unseen.sum())} validation audits selected after {champ_as_of}."
    candidate = metric(candidate_scores, subset)
    try:
        champ = load_model(f"models:/{name}/{version}", mlflow.get_tracking_uri())
        cs = np.asarray(champ.predict(signature_frame(X_val))["expected_yield"], dtype=float)
    except Exception as exc:  # any failure to score means "cannot compare"
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        return champion_decision(metric_name, candidate, None, version, reason), note
    return champion_decision(metric_name, candidate, metric(cs, subset), version), note


def log_and_register(
    model: YieldModel,
    X: pd.DataFrame,
    name: str,
    run_id: str,
    train_as_of: Any,
    decision: ChampionDecision,
) -> str:
    """Log ``model`` as the active run's pyfunc model ``model``, register it, apply ``decision``.

    Signature and input example come from ``X`` (five rows). Returns the new version number.
    """
    import mlflow
    from mlflow import MlflowClient

    example = signature_frame(X.iloc[:5])
    wrapper = YieldPyfunc(model)
    sig = model_signature(example, wrapper.predict(None, example))
    reqs = [f"{p}=={md.version(p)}" for p in ("lightgbm", "pandas", "numpy", "scikit-learn")]
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=wrapper,
        signature=sig,
        input_example=example,
        pip_requirements=reqs,
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_model_version_tag(name, version, "train_as_of", str(train_as_of))
    client.set_model_version_tag(name, version, "run_id", run_id)
    client.set_model_version_tag(name, version, "champion_decision", decision.reason[:4000])
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    return version
