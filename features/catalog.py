"""The indicator catalog: every risk indicator, declared once (DESIGN: "indicators are a
catalog").

An entry (:class:`Indicator`) carries its id, names in Chinese and English, the contract
tables it needs, its computation (a pure Ibis expression over the per-taxpayer base table),
the direction that means risk, the recommended measure (``outreach`` < ``guidance`` <
``notice`` < ``assessment`` < ``audit``), the response guide (风险应对指南) in both languages,
the ``basis`` of its threshold (a passage of the documents or a population quantile) and
whether it is one of the documents' old rules the bureaus run (``classic``). Its threshold is
data: ``[thresholds]`` of the run's config (:mod:`taxrisk.features.config`).

Indicators come in families, one module each under ``features/indicators/``; each module
declares a ``FAMILY`` (:class:`~.indicators._base.Family`) with its sources, derived
columns, benchmarks, the norms it reads, and its indicators. The catalog discovers the
modules; the matrix builder loops over the catalog. **To add an indicator**: declare it in
its family's ``INDICATORS`` (or a new module with a ``FAMILY``) and give it a threshold in
``features/indicator_defaults.toml``; nothing else changes. Code outside the package (a
test, a bureau's own indicators) extends a catalog with :meth:`Catalog.with_family` and
passes it to ``build_matrix(..., catalog=...)``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from . import indicators as _pkg
from .config import IndicatorConfig, current_config
from .indicators._base import Benchmark, Derived, Family, Indicator, Source, Transform
from .schema import SCHEMAS

__all__ = [
    "CATALOG",
    "MEASURES",
    "SOURCES",
    "Catalog",
    "Family",
    "Indicator",
    "Source",
    "classic_ids",
    "default_catalog",
    "records",
    "switched_off",
]

MEASURES = ("outreach", "guidance", "notice", "assessment", "audit")

#: the columns of the catalog export (``taxrisk indicators --format csv|json``)
RECORD_FIELDS = (
    "id",
    "family",
    "name_zh",
    "name_en",
    "tables",
    "direction",
    "line",
    "threshold",
    "threshold_unit",
    "unit",
    "measure",
    "classic",
    "basis",
    "guide_zh",
    "guide_en",
)


@dataclass(frozen=True)
class Catalog:
    """Families of indicators, in build order, and everything they declare."""

    families: tuple[Family, ...]
    indicators: dict[str, Indicator] = field(init=False, repr=False)
    family_of: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        inds: dict[str, Indicator] = {}
        fam_of: dict[str, str] = {}
        for fam in self.families:
            for ind in fam.indicators:
                if ind.id in inds:
                    raise ValueError(f"indicator {ind.id!r} declared twice ({fam.name})")
                inds[ind.id] = ind
                fam_of[ind.id] = fam.name
        object.__setattr__(self, "indicators", inds)
        object.__setattr__(self, "family_of", fam_of)
        self._check()

    @property
    def sources(self) -> dict[str, Source]:
        return {s.name: s for f in self.families for s in f.sources}

    @property
    def derived(self) -> list[Derived]:
        return [d for f in self.families for d in f.derived]

    @property
    def benchmarks(self) -> list[Benchmark]:
        return [b for f in self.families for b in f.benchmarks]

    @property
    def transforms(self) -> list[Transform]:
        return [t for f in self.families for t in f.transforms]

    @property
    def norms(self) -> tuple[str, ...]:
        """The ``industry_norms`` metrics any family reads, first-declared order."""
        return tuple(dict.fromkeys(n for f in self.families for n in f.norms))

    def with_family(self, family: Family) -> Catalog:
        """This catalog plus one family (built in its ``order``)."""
        fams = sorted((*self.families, family), key=lambda f: (f.order, f.name))
        return Catalog(tuple(fams))

    def classic_ids(self) -> list[str]:
        return [i.id for i in self.indicators.values() if i.classic]

    def switched_off(self, present: set[str] | frozenset[str]) -> dict[str, str]:
        """``{indicator_id: reason}`` for indicators whose tables are not all present."""
        out: dict[str, str] = {}
        for ind in self.indicators.values():
            missing = [t for t in ind.tables if t not in present]
            if missing:
                kinds = ["optional" if SCHEMAS[t].optional else "required" for t in missing]
                out[ind.id] = "missing " + ", ".join(
                    f"{k} table {t}" for k, t in zip(kinds, missing, strict=True)
                )
        return out

    def _check(self) -> None:
        names: set[str] = set()
        for fam in self.families:
            for s in fam.sources:
                if s.name in names:
                    raise ValueError(f"source {s.name!r} declared twice ({fam.name})")
                names.add(s.name)
        for ind in self.indicators.values():
            if ind.measure not in MEASURES:
                raise ValueError(f"{ind.id}: unknown measure {ind.measure!r}")
            if ind.direction not in ("high", "low"):
                raise ValueError(f"{ind.id}: direction must be 'high' or 'low'")
            if not all(t in SCHEMAS for t in ind.tables):
                raise ValueError(f"{ind.id}: unknown table in {ind.tables}")
            if ind.line == "quantile" and not ind.pct:
                raise ValueError(f"{ind.id}: a quantile line needs pct=True")


def _discover() -> tuple[Family, ...]:
    fams = []
    for mod in pkgutil.iter_modules(_pkg.__path__):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_pkg.__name__}.{mod.name}")
        fam = getattr(module, "FAMILY", None)
        if isinstance(fam, Family):
            fams.append(fam)
    return tuple(sorted(fams, key=lambda f: (f.order, f.name)))


@cache
def default_catalog() -> Catalog:
    """Every family of ``features/indicators/``, in build order."""
    return Catalog(_discover())


#: the default catalog's indicators by id (build order)
CATALOG: dict[str, Indicator] = default_catalog().indicators
#: the default catalog's sources by name
SOURCES: dict[str, Source] = default_catalog().sources


def classic_ids() -> list[str]:
    """Ids of the documents' old rules (the bureaus' current screens), catalog order."""
    return default_catalog().classic_ids()


def switched_off(present: set[str] | frozenset[str]) -> dict[str, str]:
    """``{indicator_id: reason}`` for indicators whose tables are not all present."""
    return default_catalog().switched_off(present)


def records(
    catalog: Catalog | None = None, config: IndicatorConfig | None = None
) -> list[dict[str, Any]]:
    """The catalog as rows for analysts (one per indicator, :data:`RECORD_FIELDS`), with
    the thresholds of ``config`` (default: the run's)."""
    catalog = catalog or default_catalog()
    cfg = config or current_config()
    rows = []
    for ind_id, ind in catalog.indicators.items():
        rows.append(
            {
                "id": ind_id,
                "family": catalog.family_of[ind_id],
                "name_zh": ind.name_zh,
                "name_en": ind.name_en,
                "tables": " ".join(ind.tables),
                "direction": ind.direction,
                "line": ind.line,
                "threshold": cfg.threshold(ind_id),
                "threshold_unit": ind.threshold_unit
                or ("industry quantile" if ind.line == "quantile" else ind.unit),
                "unit": ind.unit,
                "measure": ind.measure,
                "classic": ind.classic,
                "basis": ind.basis,
                "guide_zh": ind.guide_zh,
                "guide_en": ind.guide_en,
            }
        )
    return rows
