"""Training configuration: the tunables of ``training/config.toml`` as one typed object.

:func:`load_config` reads the packaged defaults, optionally overlays another TOML file
(same sections, any subset of keys) and returns a frozen :class:`TrainingConfig`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from taxrisk.errors import TaxriskError

__all__ = ["ConfigError", "TrainingConfig", "load_config"]

DEFAULT_PATH = Path(__file__).with_name("config.toml")


class ConfigError(TaxriskError):
    """The training configuration is malformed."""


@dataclass(frozen=True)
class TrainingConfig:
    snapshot: Literal["month_end", "quarter_end", "exact"] = "month_end"
    validation_share: float = 0.25
    default_trials: int = 5
    seed: int = 42
    min_examples: int = 30
    min_adjusted: int = 10
    top_share: float = 0.2
    primary_metric: str = "val_all_yield_capture"
    bias_method: Literal["none", "ipw", "auto"] = "auto"
    max_weight: float = 20.0
    auto_min_gain: float = 0.02
    unaudited_per_snapshot: int = 1000
    max_estimators: int = 1000
    early_stopping_rounds: int = 30
    lightgbm: dict[str, Any] = field(default_factory=dict)
    search: dict[str, list[float]] = field(default_factory=dict)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(path: Path | None = None) -> TrainingConfig:
    """The packaged defaults, overlaid with ``path`` when given."""
    raw = tomllib.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    if path is not None:
        try:
            raw = _merge(raw, tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read training config: {exc}") from exc
    try:
        t, b = raw["training"], raw["bias"]
        cfg = TrainingConfig(
            snapshot=t["snapshot"],
            validation_share=float(t["validation_share"]),
            default_trials=int(t["default_trials"]),
            seed=int(t["seed"]),
            min_examples=int(t["min_examples"]),
            min_adjusted=int(t["min_adjusted"]),
            top_share=float(t["top_share"]),
            primary_metric=str(t["primary_metric"]),
            bias_method=b["method"],
            max_weight=float(b["max_weight"]),
            auto_min_gain=float(b.get("auto_min_gain", 0.02)),
            unaudited_per_snapshot=int(b["unaudited_per_snapshot"]),
            max_estimators=int(raw["tuning"]["max_estimators"]),
            early_stopping_rounds=int(raw["tuning"]["early_stopping_rounds"]),
            lightgbm=dict(raw["lightgbm"]),
            search={k: list(v) for k, v in raw["search"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"training config: missing or invalid entry {exc}") from exc
    if cfg.snapshot not in ("month_end", "exact"):
        raise ConfigError(
            f"training.snapshot: expected 'month_end' or 'exact', got {cfg.snapshot!r}"
        )
    if cfg.bias_method not in ("none", "ipw", "auto"):
        raise ConfigError(f"bias.method: expected none, ipw or auto, got {cfg.bias_method!r}")
    if not 0 < cfg.validation_share < 1:
        raise ConfigError(f"training.validation_share: expected (0, 1), got {cfg.validation_share}")
    return cfg
