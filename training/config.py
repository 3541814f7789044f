"""Training configuration: ``training/config.toml`` as one validated object.

:func:`load_config` reads the packaged defaults, overlays an optional TOML file (same
sections, any subset of keys) and validates the result with pydantic: an unknown section or
key, a wrong type or a value out of range is a :class:`ConfigError` naming the key
(``training.snapshot: Input should be 'exact', 'month_end' or 'quarter_end' (got 'weekly')``).

**One source of truth per default**: every default lives in ``config.toml`` and only there.
The models below declare types and ranges, not defaults, so a key missing from the packaged
file is an error too. :class:`TrainingConfig` keeps flat attribute names (``cfg.snapshot``,
``cfg.bias_method``, ...) for the code that reads it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from taxrisk.errors import TaxriskError

__all__ = ["ConfigError", "TrainingConfig", "load_config"]

DEFAULT_PATH = Path(__file__).with_name("config.toml")

Snapshot = Literal["exact", "month_end", "quarter_end"]
MeasureUse = Literal["ignore", "filter"]


class ConfigError(TaxriskError):
    """The training configuration is malformed."""


class _Section(BaseModel):
    # strict: "0.25" is not a float and 1.5 is not an int; ints are accepted for floats
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TrainingSection(_Section):
    snapshot: Snapshot
    validation_share: float = Field(gt=0, lt=1)
    default_trials: int = Field(ge=0)
    seed: int
    min_examples: int = Field(ge=1)
    min_adjusted: int = Field(ge=1)
    top_share: float = Field(gt=0, le=1)
    primary_metric: str
    recency_half_life_months: float = Field(ge=0)


class LabelsSection(_Section):
    metric_months: int = Field(ge=1)
    normalise_covered: bool
    max_scale: float = Field(ge=1)
    measure: MeasureUse


class ValidationSection(_Section):
    closure_quantile: float = Field(gt=0, le=1)
    inner_share: float = Field(gt=0, lt=1)
    bootstrap_resamples: int = Field(ge=10)
    interval_level: float = Field(gt=0, lt=1)
    max_single_share: float = Field(gt=0, le=1)
    max_interval_overlap: float = Field(gt=0, le=1)
    min_audits: int = Field(ge=2)


class BiasSection(_Section):
    method: Literal["none", "ipw", "auto"]
    max_weight: float = Field(ge=1)
    auto_min_gain: float = Field(ge=0)
    unaudited_per_snapshot: int = Field(ge=0)


class LightGBMSection(_Section):
    n_estimators: int = Field(ge=1)
    learning_rate: float = Field(gt=0)
    num_leaves: int = Field(ge=2)
    min_child_samples: int = Field(ge=1)
    subsample: float = Field(gt=0, le=1)
    subsample_freq: int = Field(ge=0)
    colsample_bytree: float = Field(gt=0, le=1)
    reg_lambda: float = Field(ge=0)
    n_jobs: int = Field(ge=1)
    monotone_fired: bool


class TuningSection(_Section):
    max_estimators: int = Field(ge=1)
    early_stopping_rounds: int = Field(ge=1)


Range = tuple[float, float]


class SearchSection(_Section):
    learning_rate: Range | None = None
    num_leaves: Range | None = None
    min_child_samples: Range | None = None
    colsample_bytree: Range | None = None
    reg_lambda: Range | None = None
    subsample: Range | None = None

    @field_validator("*")
    @classmethod
    def _ordered(cls, v: Range | None) -> Range | None:
        if v is not None and not v[0] <= v[1]:
            raise ValueError(f"low {v[0]} above high {v[1]}")
        return v


class EffectivenessSection(_Section):
    hit_yuan: float = Field(ge=0)
    cofire_jaccard: float = Field(gt=0, le=1)
    bootstrap_resamples: int = Field(ge=10)


class TailPriorSection(_Section):
    weights: list[float] = Field(min_length=1)
    top: int = Field(ge=1)
    max_cost: float = Field(ge=0)
    resamples: int = Field(ge=10)

    @field_validator("weights")
    @classmethod
    def _in_unit(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= w <= 1.0 for w in v):
            raise ValueError("every weight must be in [0, 1]")
        return v


class TrainingConfig(_Section):
    """The whole training config, one section per TOML table."""

    training: TrainingSection
    labels: LabelsSection
    validation: ValidationSection
    bias: BiasSection
    lightgbm: LightGBMSection
    tuning: TuningSection
    search: SearchSection
    effectiveness: EffectivenessSection
    tail_prior: TailPriorSection

    # flat names used across the training code ------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        return self.training.snapshot

    @property
    def validation_share(self) -> float:
        return self.training.validation_share

    @property
    def default_trials(self) -> int:
        return self.training.default_trials

    @property
    def seed(self) -> int:
        return self.training.seed

    @property
    def min_examples(self) -> int:
        return self.training.min_examples

    @property
    def min_adjusted(self) -> int:
        return self.training.min_adjusted

    @property
    def top_share(self) -> float:
        return self.training.top_share

    @property
    def primary_metric(self) -> str:
        return self.training.primary_metric

    @property
    def recency_half_life_months(self) -> float:
        return self.training.recency_half_life_months

    @property
    def bias_method(self) -> str:
        return self.bias.method

    @property
    def max_weight(self) -> float:
        return self.bias.max_weight

    @property
    def auto_min_gain(self) -> float:
        return self.bias.auto_min_gain

    @property
    def unaudited_per_snapshot(self) -> int:
        return self.bias.unaudited_per_snapshot

    @property
    def max_estimators(self) -> int:
        return self.tuning.max_estimators

    @property
    def early_stopping_rounds(self) -> int:
        return self.tuning.early_stopping_rounds

    @property
    def lightgbm_params(self) -> dict[str, Any]:
        """The fixed LightGBM parameters (``monotone_fired`` included) as a dict."""
        return self.lightgbm.model_dump()

    @property
    def search_space(self) -> dict[str, list[float]]:
        """The Optuna ranges that are set, as ``{param: [low, high]}``."""
        return {k: list(v) for k, v in self.search.model_dump(exclude_none=True).items()}

    def replace(self, section: str, **values: Any) -> TrainingConfig:
        """A copy with some keys of one section changed (validated like the file)."""
        raw = self.model_dump()
        raw[section] = {**raw[section], **values}
        return _validate(raw, "replace()")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read training config: {exc}") from exc


def _validate(raw: dict[str, Any], source: str) -> TrainingConfig:
    # TOML arrays are lists; the ranges are pairs
    search = raw.get("search")
    if isinstance(search, dict):
        raw = {
            **raw,
            "search": {k: tuple(v) if isinstance(v, list) else v for k, v in search.items()},
        }
    try:
        return TrainingConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        got = f" (got {err['input']!r})" if err["type"] != "missing" else ""
        raise ConfigError(f"training config ({source}): {where}: {err['msg']}{got}") from exc


def load_config(path: Path | str | None = None) -> TrainingConfig:
    """The packaged defaults, overlaid with ``path`` when given; validated."""
    raw = _read(DEFAULT_PATH)
    source = DEFAULT_PATH.name
    if path is not None:
        raw = _merge(raw, _read(Path(path)))
        source = f"{path} over {DEFAULT_PATH.name}"
    return _validate(raw, source)
