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
* :func:`gate` and :func:`champion_decision` are the champion gate. It fails closed: a
  candidate takes the alias ``champion`` when there is none yet, or when, on validation
  audits neither model was fitted on (selected after the champion's ``train_as_of``, in the
  candidate's validation part; both scored on the same feature rows), the 90% paired
  bootstrap interval (:func:`paired_bootstrap`) of its metric minus the champion's lies above
  0. Any error, too few such audits, a tie or an interval reaching 0 keep the champion.
"""

from __future__ import annotations

import importlib.metadata as md
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from taxrisk.errors import TaxriskError

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
    "log_decision",
    "model_signature",
    "paired_bootstrap",
    "signature_frame",
]

log = logging.getLogger(__name__)

CHAMPION = "champion"
#: the gate's noise margin: paired bootstrap draws of the compared audits, interval level
BOOTSTRAP_RESAMPLES = 1000
INTERVAL_LEVEL = 0.90
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
    """Whether the candidate version takes the alias, why (one sentence), and the figures.

    ``candidate_metric`` / ``champion_metric``: the gate metric of each on the compared
    audits; ``difference``: candidate - champion; ``interval``: the paired bootstrap interval
    of the difference at ``level``; ``n_audits``: how many audits were compared; ``error``:
    why the two could not be compared (the champion is then kept).
    """

    promote: bool
    reason: str
    champion_version: str | None = None
    champion_metric: float | None = None
    candidate_metric: float | None = None
    difference: float | None = None
    interval: tuple[float, float] | None = None
    n_audits: int | None = None
    level: float = INTERVAL_LEVEL
    error: str | None = None

    def figures(self) -> dict[str, float]:
        """The decision as MLflow metrics ``gate.*`` (finite values only)."""
        raw: dict[str, float | None] = {
            "gate.promoted": float(self.promote),
            "gate.candidate": self.candidate_metric,
            "gate.champion": self.champion_metric,
            "gate.difference": self.difference,
            "gate.interval_low": None if self.interval is None else self.interval[0],
            "gate.interval_high": None if self.interval is None else self.interval[1],
            "gate.interval_level": self.level if self.interval is not None else None,
            "gate.n_audits": None if self.n_audits is None else float(self.n_audits),
        }
        return {k: float(v) for k, v in raw.items() if v is not None and np.isfinite(v)}


def _finite(x: float | None) -> bool:
    return x is not None and bool(np.isfinite(x))


def champion_decision(
    metric_name: str,
    candidate: float | None,
    champion: float | None,
    champion_version: str | None,
    champion_error: str | None = None,
    *,
    interval: tuple[float, float] | None = None,
    n_audits: int | None = None,
    level: float = INTERVAL_LEVEL,
    compared_on: str = "the same validation audits",
) -> ChampionDecision:
    """The gate's rule on its figures; it fails closed (only a shown win moves the alias).

    ``candidate`` / ``champion``: the gate metric of each on the compared audits
    (``compared_on`` says which, ``n_audits`` how many); ``interval``: the paired bootstrap
    interval at ``level`` of candidate - champion.

    * no champion (``champion_version`` None): promote;
    * ``champion_error`` (reading, loading or scoring the champion, or a metric, failed): keep;
    * either metric missing or not finite: keep;
    * candidate <= champion (a tie included): keep;
    * promote only if ``interval`` is finite and its lower bound is above 0; no interval, or
      one reaching 0 or below (the difference is within noise), keeps the champion.
    """
    v = champion_version
    if v is None:
        return ChampionDecision(
            True, "no champion yet: the candidate becomes champion", candidate_metric=candidate
        )
    figures: dict[str, Any] = {
        "champion_version": v,
        "champion_metric": champion,
        "candidate_metric": candidate,
        "n_audits": n_audits,
        "level": level,
    }
    if champion_error is not None:
        return ChampionDecision(
            False,
            f"champion v{v} kept: it cannot be compared with the candidate ({champion_error})",
            error=champion_error,
            **figures,
        )
    if not _finite(champion) or not _finite(candidate):
        which = "champion" if not _finite(champion) else "candidate"
        return ChampionDecision(
            False,
            f"champion v{v} kept: the {which} has no {metric_name} on {compared_on}",
            **figures,
        )
    assert candidate is not None and champion is not None  # for the type checker
    diff = candidate - champion
    ci = None
    if interval is not None and _finite(interval[0]) and _finite(interval[1]):
        ci = (float(interval[0]), float(interval[1]))
    spread = f", {level:.0%} paired bootstrap interval [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else ""
    figures |= {"difference": diff, "interval": ci}

    def said(verb: str) -> str:
        return (
            f"candidate {metric_name} {candidate:.4f} {verb} champion v{v} {champion:.4f} on "
            f"{compared_on} (difference {diff:+.4f}{spread}"
        )

    if ci is not None and ci[0] > 0 and diff > 0:
        return ChampionDecision(True, said("beats") + ", above 0)", **figures)
    if diff <= 0:
        return ChampionDecision(False, said("does not beat") + "): alias kept", **figures)
    if ci is None:
        return ChampionDecision(
            False,
            said("does not beat") + "; no interval of the difference, so no margin over noise): "
            "alias kept",
            **figures,
        )
    return ChampionDecision(
        False,
        said("does not beat") + ", not above 0: within noise): alias kept",
        **figures,
    )


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    candidate_scores: np.ndarray,
    champion_scores: np.ndarray,
    rows: np.ndarray,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = INTERVAL_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval at ``level`` of ``metric(candidate) - metric(champion)``.

    Each of ``resamples`` draws resamples ``rows`` (positions) with replacement, seeded; both
    rankings are scored on the same draw (paired). Draws where the metric is undefined (nan:
    e.g. no recovered yuan drawn) are left out; raises ``ValueError`` if most are.
    """
    rows = np.asarray(rows)
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for b in range(resamples):
        draw = rows[rng.integers(0, len(rows), len(rows))]
        diffs[b] = metric(candidate_scores, draw) - metric(champion_scores, draw)
    ok = diffs[np.isfinite(diffs)]
    if len(ok) < resamples / 2:
        raise ValueError(f"the metric is undefined on {resamples - len(ok)} of {resamples} draws")
    tail = (1 - level) / 2
    lo, hi = np.quantile(ok, [tail, 1 - tail])
    return float(lo), float(hi)


_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


def current_champion(client: MlflowClient, name: str) -> str | None:
    """Version number holding the alias ``champion``, or None when there is none.

    Only "no such model" and "no such alias" mean None; any other registry error raises
    (the gate must not mistake an unreachable registry for an empty one).
    """
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException as exc:
        if exc.error_code in _NOT_FOUND:
            return None
        raise


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


def _kept(metric_name: str, version: str, error: str, **kw: Any) -> ChampionDecision:
    """Keep the champion: it could not be compared (logged as a warning)."""
    log.warning("champion gate: champion v%s kept, cannot compare: %s", version, error)
    return champion_decision(metric_name, None, None, version, error, **kw)


def gate(
    client: MlflowClient,
    name: str,
    metric_name: str,
    metric: Callable[[np.ndarray, np.ndarray], float],
    candidate_scores: np.ndarray,
    X_val: pd.DataFrame,
    selected_on: pd.Series,
    min_examples: int,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = INTERVAL_LEVEL,
    seed: int = 0,
) -> tuple[ChampionDecision, str]:
    """Compare the candidate with the current champion on audits neither was fitted on.

    ``X_val``: feature rows of validation audits the candidate was *not* fitted on (its time
    split's validation part), ``candidate_scores`` its expected yield on them (same order),
    ``selected_on`` their selection dates. ``metric(scores, rows)``: the gate metric of
    ``scores`` on the validation rows at integer positions ``rows`` (repeats allowed: a
    bootstrap draw; higher is better).

    The compared audits are those selected after the champion's ``train_as_of`` version tag:
    its examples had closed by then, so it cannot have seen them. Both models score the same
    feature rows (the candidate's matrix: the same data horizon). Fewer than
    ``min_examples`` such audits keep the champion, and so does any error reading, loading
    or scoring it or computing a metric (logged as a warning, said in the reason). The
    candidate is promoted only if the ``level`` paired bootstrap interval
    (:func:`paired_bootstrap`, ``resamples`` draws, ``seed``) of candidate - champion lies
    above 0. Returns the decision and a sentence saying which audits were compared.
    """
    kw: dict[str, Any] = {"level": level}
    try:
        version = current_champion(client, name)
    except Exception as exc:  # the gate fails closed
        reason = f"champion kept: the registry cannot be read ({_first_line(exc)})"
        log.warning("champion gate: %s", reason)
        return ChampionDecision(False, reason, level=level, error=_first_line(exc)), ""
    if version is None:
        try:
            cand = float(metric(candidate_scores, np.arange(len(X_val))))
        except Exception:  # only a figure here: nothing to compare with
            log.warning("champion gate: candidate metric not computed", exc_info=True)
            cand = float("nan")
        return champion_decision(metric_name, cand, None, None), ""
    try:
        champ_as_of = (client.get_model_version(name, version).tags or {}).get("train_as_of")
        sel = pd.to_datetime(pd.Series(selected_on)).to_numpy()
        if len(sel) != len(X_val) or len(candidate_scores) != len(X_val):
            raise ValueError(
                f"{len(X_val)} validation rows, {len(sel)} selection dates and "
                f"{len(candidate_scores)} candidate scores"
            )
        unseen = sel > np.datetime64(pd.Timestamp(champ_as_of)) if champ_as_of else None
    except Exception as exc:
        return _kept(metric_name, version, f"reading its train_as_of: {_first_line(exc)}", **kw), ""
    if unseen is None or int(unseen.sum()) < min_examples:
        n = 0 if unseen is None else int(unseen.sum())
        why = (
            f"{n} validation audits selected after its train_as_of {champ_as_of}"
            if champ_as_of
            else "it has no train_as_of tag, so no audit is known to be unseen"
        )
        log.info("champion gate: too few unseen audits (%d)", n)
        return (
            ChampionDecision(
                False,
                f"too few unseen audits to compare: {why}, at least {min_examples} needed: "
                f"champion v{version} kept",
                champion_version=version,
                n_audits=n,
                level=level,
            ),
            "",
        )
    rows = np.flatnonzero(unseen)
    where = (
        f"the {len(rows)} validation audits selected after {champ_as_of} (neither model was "
        "fitted on them)"
    )
    kw |= {"n_audits": len(rows), "compared_on": where}
    note = f" Compared on {where}, both scored on the same feature rows."
    try:
        champion = load_yield_model(f"models:/{name}/{version}", client.tracking_uri).model
        champ_scores = np.full(len(X_val), np.nan)
        champ_scores[rows] = champion.predict(X_val.iloc[rows], allow_extra=True)[
            "expected_yield"
        ].to_numpy(dtype=float)
    except Exception as exc:
        return _kept(metric_name, version, f"scoring it: {_first_line(exc)}", **kw), note
    cand_scores = np.asarray(candidate_scores, dtype=float)
    try:
        cand = float(metric(cand_scores, rows))
        champ = float(metric(champ_scores, rows))
    except Exception as exc:
        return _kept(
            metric_name, version, f"computing {metric_name}: {_first_line(exc)}", **kw
        ), note
    interval = None
    if _finite(cand) and _finite(champ):
        try:
            interval = paired_bootstrap(
                metric, cand_scores, champ_scores, rows, resamples=resamples, level=level, seed=seed
            )
        except Exception as exc:
            return (
                _kept(
                    metric_name, version, f"bootstrap of {metric_name}: {_first_line(exc)}", **kw
                ),
                note,
            )
    decision = champion_decision(metric_name, cand, champ, version, interval=interval, **kw)
    if decision.error is None and not decision.promote and decision.interval is None:
        log.warning("champion gate: %s", decision.reason)
    return decision, note


def log_decision(decision: ChampionDecision) -> None:
    """Record ``decision`` on the active MLflow run: tags and the ``gate.*`` metrics."""
    import mlflow

    mlflow.set_tags(
        {
            "champion_decision": "promoted" if decision.promote else "kept",
            "champion_reason": decision.reason[:5000],
            "champion_compared_with": decision.champion_version or "",
        }
    )
    if figures := decision.figures():
        mlflow.log_metrics(figures)


def log_and_register(
    model: YieldModel,
    X: pd.DataFrame,
    name: str,
    run_id: str,
    train_as_of: Any,
    decision: ChampionDecision,
) -> str:
    """Log ``model`` as the active run's pyfunc model ``model``, register it, apply ``decision``.

    Signature and input example come from ``X`` (five rows). Version tags: ``train_as_of``,
    ``run_id``, ``champion_decision`` (the reason), ``gate.champion_version`` and the
    decision's figures ``gate.*`` (:meth:`ChampionDecision.figures`). Returns the new version
    number.
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
    if decision.champion_version is not None:
        client.set_model_version_tag(
            name, version, "gate.champion_version", decision.champion_version
        )
    for key, value in decision.figures().items():
        client.set_model_version_tag(name, version, key, repr(value))
    if decision.promote:
        client.set_registered_model_alias(name, CHAMPION, version)
    return version
