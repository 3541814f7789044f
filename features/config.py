"""The feature layer's configuration: thresholds, windows, family parameters and the
industry-model defaults, as validated data.

The packaged defaults are ``features/indicator_defaults.toml``. :func:`load_config` reads
them, deep-merges an override file over them (only the keys it names change) and validates
the result with the pydantic models below: an unknown key or a value of the wrong type is a
:class:`ConfigError` naming the file and the dotted key (``thresholds.two_tax: Input should
be a valid number``). Thresholds are checked against a catalog when one is given (every
indicator needs one; a threshold for no indicator is an error).

A run gets its config explicitly (``build_matrix(..., config=...)``) or from
:func:`current_config`: the config installed for this run by :func:`use_config` (the CLI
installs the file of ``--config`` / ``TAXRISK_INDICATOR_CONFIG``), else the packaged
defaults. Nothing is read at import.
"""

from __future__ import annotations

import contextlib
import contextvars
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import TaxriskError

__all__ = [
    "DEFAULTS_FILE",
    "ConfigError",
    "IndicatorConfig",
    "current_config",
    "default_config",
    "load_config",
    "use_config",
]

DEFAULTS_FILE = Path(__file__).resolve().parent / "indicator_defaults.toml"


class ConfigError(TaxriskError):
    """The indicator configuration is invalid (one line naming the file and the key)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Windows(_Section):
    grace_months: int = Field(ge=0, le=12)


class Declarations(_Section):
    low_declaration_yuan: float = Field(ge=0)
    low_declaration_token_only: bool
    surcharge_rate_fallback: float = Field(gt=0, lt=1)


class Shell(_Section):
    issue_pay_ratio: float = Field(gt=0)
    young_months: int = Field(ge=0)
    max_headcount: float = Field(ge=0)
    surge_ratio: float = Field(gt=0)


class Peers(_Section):
    min_group: int = Field(ge=1)
    size_band_log10_width: float = Field(gt=0)


class Models(_Section):
    input_output_ratio: float = Field(gt=0, le=1)
    floor_share: float = Field(gt=0, le=1)
    loss_rate: float = Field(ge=0, lt=1)
    density_t_per_m3: float = Field(gt=0)
    kwh_per_unit: float = Field(gt=0)
    vat_rate: float = Field(gt=0, lt=1)


class IndicatorConfig(_Section):
    """The validated configuration of one run (immutable)."""

    windows: Windows
    thresholds: dict[str, float]
    declarations: Declarations
    shell: Shell
    peers: Peers
    models: Models
    #: the files it was read from, defaults first (for messages and run records)
    sources: tuple[str, ...] = ()

    def threshold(self, indicator_id: str) -> float:
        try:
            return self.thresholds[indicator_id]
        except KeyError:
            raise ConfigError(
                f"{self._where()}: thresholds.{indicator_id}: no threshold for indicator "
                f"{indicator_id!r} (add it to [thresholds])"
            ) from None

    def check(self, indicator_ids: Iterable[str]) -> IndicatorConfig:
        """Every indicator has a threshold and every threshold an indicator."""
        ids = set(indicator_ids)
        unknown = sorted(set(self.thresholds) - ids)
        if unknown:
            raise ConfigError(
                f"{self._where()}: thresholds.{unknown[0]}: unknown indicator "
                f"(known: see `taxrisk indicators`)"
            )
        missing = sorted(ids - set(self.thresholds))
        if missing:
            self.threshold(missing[0])
        return self

    def with_thresholds(self, **values: float) -> IndicatorConfig:
        """A copy with these thresholds added or changed (e.g. an indicator added in code)."""
        return self.model_copy(update={"thresholds": {**self.thresholds, **values}})

    def _where(self) -> str:
        return " + ".join(self.sources) or "indicator config"


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: indicator config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _merge(base: dict[str, Any], over: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in over.items():
        here = f"{prefix}{key}"
        if key not in base:
            # a threshold may be new (an indicator added in code); checked against the catalog
            if prefix != "thresholds.":
                raise ConfigError(f"{path}: {here}: unknown key")
            base[key] = value
        elif isinstance(base[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: {here}: expected a table [{here}], got {value!r}")
            _merge(base[key], value, path, here + ".")
        else:
            base[key] = value


def _validate(data: dict[str, Any], sources: tuple[str, ...]) -> IndicatorConfig:
    try:
        return IndicatorConfig.model_validate({**data, "sources": sources})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        got = err.get("input")
        raise ConfigError(
            f"{' + '.join(sources)}: {key}: {err['msg']} (got {got!r})"
            if err["type"] != "extra_forbidden"
            else f"{' + '.join(sources)}: {key}: unknown key"
        ) from None


def load_config(
    override: Path | str | None = None, *, indicator_ids: Iterable[str] | None = None
) -> IndicatorConfig:
    """The packaged defaults, with ``override`` (a TOML file) merged over them, validated.

    ``indicator_ids``: check the thresholds against these indicators (the catalog's)."""
    data = _read(DEFAULTS_FILE)
    sources: tuple[str, ...] = (str(DEFAULTS_FILE),)
    if override is not None:
        path = Path(override)
        _merge(data, _read(path), path)
        sources += (str(path),)
    cfg = _validate(data, sources)
    return cfg.check(indicator_ids) if indicator_ids is not None else cfg


@cache
def default_config() -> IndicatorConfig:
    """The packaged defaults (read once, on first use; not at import)."""
    return load_config()


_CURRENT: contextvars.ContextVar[IndicatorConfig | None] = contextvars.ContextVar(
    "taxrisk_indicator_config", default=None
)


def current_config() -> IndicatorConfig:
    """The config installed for this run (:func:`use_config`), else the packaged defaults."""
    return _CURRENT.get() or default_config()


@contextlib.contextmanager
def use_config(cfg: IndicatorConfig) -> Iterator[IndicatorConfig]:
    """Install ``cfg`` as the run's config for the duration of the block."""
    token = _CURRENT.set(cfg)
    try:
        yield cfg
    finally:
        _CURRENT.reset(token)


def install(cfg: IndicatorConfig | None) -> None:
    """Install ``cfg`` as this process's run config (the CLI, once per command); ``None``
    puts the packaged defaults back."""
    _CURRENT.set(cfg)
