"""The indicator catalog: every risk indicator, declared once (DESIGN: "indicators are a
catalog").

An entry (:class:`Indicator`) carries its id, names in Chinese and English, the contract
tables it needs, its computation (a pure Ibis expression over the per-taxpayer base table),
the direction that means risk, the threshold at which it fires, the recommended measure
(``outreach`` < ``guidance`` < ``notice`` < ``assessment`` < ``audit``), the response guide
(风险应对指南) in both languages and whether it is one of the documents' old rules the
bureaus run (``classic``). Thresholds and norms default from
``features/indicator_defaults.toml``.

To add an indicator: declare it in the module of its source under ``features/indicators/``
and append it to that module's ``INDICATORS``; the matrix builder picks it up.
"""

from __future__ import annotations

from .indicators import (
    declarations,
    history,
    invoices,
    network,
    peers,
    registry_events,
    third_party,
)
from .indicators._base import Derived, Indicator, Source, defaults
from .industry_models import DERIVED as _MODEL_DERIVED
from .industry_models import INDICATORS as _MODEL_INDICATORS
from .industry_models import SOURCES as _MODEL_SOURCES
from .schema import SCHEMAS

__all__ = [
    "CATALOG",
    "DERIVED",
    "MEASURES",
    "SOURCES",
    "Indicator",
    "Source",
    "classic_ids",
    "defaults",
    "switched_off",
]

MEASURES = ("outreach", "guidance", "notice", "assessment", "audit")

_MODULES = (declarations, invoices, third_party, registry_events, network, peers, history)

SOURCES: dict[str, Source] = {s.name: s for m in _MODULES for s in getattr(m, "SOURCES", [])} | {
    s.name: s for s in _MODEL_SOURCES
}

#: per-taxpayer columns computed on the joined base, in order (stage 1, then stage 2)
DERIVED: list[Derived] = [d for m in _MODULES for d in getattr(m, "DERIVED", [])] + list(
    _MODEL_DERIVED
)

CATALOG: dict[str, Indicator] = {
    i.id: i for m in _MODULES for i in getattr(m, "INDICATORS", [])
} | {i.id: i for i in _MODEL_INDICATORS}


def classic_ids() -> list[str]:
    """Ids of the documents' old rules (the bureaus' current screens), catalog order."""
    return [i.id for i in CATALOG.values() if i.classic]


def switched_off(present: set[str] | frozenset[str]) -> dict[str, str]:
    """``{indicator_id: reason}`` for indicators whose tables are not all present."""
    out: dict[str, str] = {}
    for ind in CATALOG.values():
        missing = [t for t in ind.tables if t not in present]
        if missing:
            kinds = ["optional" if SCHEMAS[t].optional else "required" for t in missing]
            out[ind.id] = "missing " + ", ".join(
                f"{k} table {t}" for k, t in zip(kinds, missing, strict=True)
            )
    return out


def _check() -> None:
    for ind in CATALOG.values():
        assert ind.measure in MEASURES, ind.id
        assert ind.direction in ("high", "low"), ind.id
        assert all(t in SCHEMAS for t in ind.tables), ind.id


_check()
