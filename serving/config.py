"""Scoring and dispatch configuration: ``serving/config.toml`` as one validated object.

:func:`load_config` reads the packaged defaults, overlays an optional TOML file (the same
sections, any subset of keys; ``TAXRISK_SERVING_CONFIG`` names one) and validates the result
with pydantic: an unknown key or a wrong type is a :class:`ServingConfigError` naming the key.
``version`` is stored on every scoring run, so a case can always be traced to the rules that
made it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ServingError

if TYPE_CHECKING:
    from taxrisk.settings import Settings

__all__ = [
    "MEASURES",
    "Measure",
    "RiskLevel",
    "ServingConfig",
    "ServingConfigError",
    "config_for",
    "load_config",
]

DEFAULT_PATH = Path(__file__).with_name("config.toml")

#: the five measures, lightest first (税法宣传, 纳税辅导, 风险提示, 纳税评估, 税务稽查)
MEASURES = ("outreach", "guidance", "notice", "assessment", "audit")
Measure = Literal["outreach", "guidance", "notice", "assessment", "audit"]
LevelName = Literal["high", "medium", "low", "minimal"]


class ServingConfigError(ServingError):
    """The scoring and dispatch configuration is malformed."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RiskLevel(_Strict):
    """A risk level: expected yield within the top ``top_share`` and P >= ``min_probability``."""

    name: str = ""
    top_share: float = Field(gt=0, le=1)
    min_probability: float = Field(ge=0, le=1)


class Measures(_Strict):
    by_level: dict[LevelName, Measure]
    audit_min_probability: float = Field(ge=0, le=1)
    audit_min_yield: float = Field(ge=0)
    needs_officer: tuple[Measure, ...]
    overflow: dict[Measure, Measure]

    @model_validator(mode="after")
    def _complete(self) -> Measures:
        missing = {"high", "medium", "low", "minimal"} - set(self.by_level)
        if missing:
            raise ValueError(f"by_level lacks {sorted(missing)}")
        for heavy, light in self.overflow.items():
            if MEASURES.index(light) >= MEASURES.index(heavy):
                raise ValueError(f"overflow.{heavy} = {light!r} is not a lighter measure")
        lacking = [m for m in self.needs_officer if m not in self.overflow]
        if lacking:
            raise ValueError(f"overflow has no lighter measure for {lacking}")
        return self


class Routing(_Strict):
    key_taxpayer_line: float = Field(ge=0)
    cross_county_share: float = Field(gt=0, le=1)
    city_fallback: bool
    complex_fired: int = Field(ge=1)
    complex_yield: float = Field(ge=0)


class Dispatch(_Strict):
    exploration_share: float = Field(ge=0, lt=1)
    seed: int
    explain_beyond_cut: int = Field(ge=0)
    top_items: int = Field(ge=1)


class Approval(_Strict):
    yield_line: float = Field(ge=0)


class Supersede(_Strict):
    states: tuple[Literal["new", "assigned", "returned"], ...]


class ServingConfig(_Strict):
    version: str
    risk_levels: tuple[RiskLevel, ...]
    measures: Measures
    routing: Routing
    dispatch: Dispatch
    time_limits: dict[Measure, int]
    approval: Approval
    supersede: Supersede

    @model_validator(mode="after")
    def _limits(self) -> ServingConfig:
        missing = set(MEASURES) - set(self.time_limits)
        if missing:
            raise ValueError(f"time_limits lacks {sorted(missing)}")
        if any(v <= 0 for v in self.time_limits.values()):
            raise ValueError("time_limits must be positive days")
        return self

    def measure_for(self, level: str, probability: float, expected_yield: float) -> str:
        """The recommended measure of one taxpayer (see ``[measures]``)."""
        m = self.measures
        if (
            level == "high"
            and probability >= m.audit_min_probability
            and expected_yield >= m.audit_min_yield
        ):
            return "audit"
        return m.by_level[level]  # type: ignore[index]


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ServingConfigError(f"{path}: cannot read serving config: {exc}") from exc


def config_for(settings: Settings) -> ServingConfig:
    """The serving config of these settings (``TAXRISK_SERVING_CONFIG`` overlays the defaults)."""
    return load_config(settings.serving_config)


def load_config(path: Path | str | None = None) -> ServingConfig:
    """The packaged defaults, overlaid with ``path`` when given; validated."""
    raw = _read(DEFAULT_PATH)
    if path is not None:
        raw = _merge(raw, _read(Path(path)))
    levels = raw.get("risk_levels")
    if isinstance(levels, dict):  # TOML table (ordered) -> tuple of named levels
        raw["risk_levels"] = [
            {"name": k, **v} if isinstance(v, dict) else v for k, v in levels.items()
        ]
    for key in ("needs_officer",):
        if isinstance(raw.get("measures", {}).get(key), list):
            raw["measures"][key] = tuple(raw["measures"][key])
    if isinstance(raw.get("supersede", {}).get("states"), list):
        raw["supersede"]["states"] = tuple(raw["supersede"]["states"])
    raw["risk_levels"] = tuple(raw.get("risk_levels", ()))
    try:
        return ServingConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        source = f"{path} over {DEFAULT_PATH.name}" if path else DEFAULT_PATH.name
        raise ServingConfigError(
            f"serving config ({source}): {where}: {err['msg']} (got {err.get('input')!r})"
        ) from exc
