"""Display shapes for the runs page (``ScoringRun.monitoring``) and the model page (MLflow
metrics), tolerant of keys they do not know: anything unrecognised is listed as it is.

``ScoringRun.monitoring`` as ``serving/runs.py`` writes it: ``vs_previous`` / ``vs_training``
(``{against, features, moderate, shifted, psi: {feature: psi}}``), ``score_psi_vs_previous``
(a number, or a mapping with ``psi``), ``selection_rates`` (records of dimension, group,
population, selected, rate). Metrics of a training run: ``<ranker>.<metric>`` for the
backtest (rankers ``model``, ``old_rules``, ``logistic``, ``random``...), ``val_<metric>``,
``labels.<reason>.<examples|adjusted>`` and ``time.<stage>_s``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MonitoringView", "PsiView", "model_metrics", "monitoring_view", "psi_reading"]

#: how many of the most shifted features the runs page lists
TOP_SHIFTED = 10
_RANKER_ORDER = ("model", "old_rules", "logistic", "random", "oracle")


def psi_reading(value: float | None) -> str:
    """``stable`` below 0.1, ``moderate`` to 0.25, ``shift`` above (monitoring.reading)."""
    if value is None or not math.isfinite(value):
        return "unknown"
    return "stable" if value < 0.1 else "moderate" if value <= 0.25 else "shift"


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass(frozen=True)
class PsiView:
    key: str
    against: str | None
    features: int | None
    moderate: int | None
    shifted: int | None
    top: list[tuple[str, float | None, str]]


@dataclass(frozen=True)
class MonitoringView:
    score_psi: float | None
    psi: list[PsiView]
    rates: dict[str, list[dict[str, Any]]]
    other: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.score_psi is None and not self.psi and not self.rates and not self.other


def monitoring_view(mon: Mapping[str, Any]) -> MonitoringView:
    score_psi = None
    psi: list[PsiView] = []
    rates: dict[str, list[dict[str, Any]]] = {}
    other: list[tuple[str, str]] = []
    for key, value in mon.items():
        if key.startswith("score_psi"):
            score_psi = _num(value.get("psi") if isinstance(value, Mapping) else value)
        elif isinstance(value, Mapping) and isinstance(value.get("psi"), Mapping):
            table = sorted(
                ((str(f), _num(v)) for f, v in value["psi"].items()),
                key=lambda fv: -(fv[1] if fv[1] is not None else -math.inf),
            )
            psi.append(
                PsiView(
                    key=key,
                    against=value.get("against"),
                    features=value.get("features"),
                    moderate=value.get("moderate"),
                    shifted=value.get("shifted"),
                    top=[(f, v, psi_reading(v)) for f, v in table[:TOP_SHIFTED]],
                )
            )
        elif key == "selection_rates" and isinstance(value, list):
            for row in value:
                if isinstance(row, Mapping):
                    rates.setdefault(str(row.get("dimension", "")), []).append(dict(row))
        else:
            other.append((key, json.dumps(value, ensure_ascii=False, default=str)[:2000]))
    return MonitoringView(score_psi=score_psi, psi=psi, rates=rates, other=other)


def model_metrics(metrics: Mapping[str, float | None]) -> dict[str, Any]:
    """``{"rankers", "backtest": [(metric, {ranker: value})], "validation", "labels",
    "timings", "other"}`` from a training run's flat metrics."""
    backtest: dict[str, dict[str, float | None]] = {}
    validation: list[tuple[str, float | None]] = []
    labels: dict[str, dict[str, float | None]] = {}
    timings: list[tuple[str, float | None]] = []
    other: list[tuple[str, float | None]] = []
    rankers: set[str] = set()
    for name, value in sorted(metrics.items()):
        head, _, rest = name.partition(".")
        if name.startswith("val_"):
            validation.append((name[4:], value))
        elif head == "labels" and rest:
            reason, _, what = rest.rpartition(".")
            labels.setdefault(reason, {})[what] = value
        elif head == "time" and rest:
            timings.append((rest.removesuffix("_s"), value))
        elif rest and "." not in rest:
            rankers.add(head)
            backtest.setdefault(rest, {})[head] = value
        else:
            other.append((name, value))
    order = [r for r in _RANKER_ORDER if r in rankers] + sorted(rankers - set(_RANKER_ORDER))
    return {
        "rankers": order,
        "backtest": sorted(backtest.items()),
        "validation": validation,
        "labels": sorted(labels.items()),
        "timings": timings,
        "other": other,
    }
