"""Store rows -> response schemas, with the catalog's zh/en names and response guides.

Pure functions: no session, no HTTP. An item the catalog does not know (a raw feature) is
named by its id in both languages.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from taxrisk.features.catalog import CATALOG
from taxrisk.serving.store.models import Action, Case, CaseIndicator, Feedback, RunUnit, ScoringRun

from .schemas import (
    ActionOut,
    CaseDetailOut,
    CaseSummaryOut,
    CurrentRunOut,
    FeedbackOut,
    GuideOut,
    IndicatorOut,
    ReasonOut,
    ScoresOut,
    TaxpayerOut,
    TaxpayerRiskOut,
    UnitCapacityOut,
)

__all__ = [
    "TOP_REASONS",
    "case_detail",
    "case_summary",
    "current_run",
    "fired",
    "guides",
    "indicator",
    "names",
    "risk_from_case",
    "risk_from_explanation",
    "unit_capacity",
]

#: fired indicators shown per case in a list
TOP_REASONS = 3


def names(item: str) -> tuple[str, str]:
    """(zh, en) name of a catalog indicator, or the item id twice."""
    entry = CATALOG.get(item)
    return (entry.name_zh, entry.name_en) if entry is not None else (item, item)


def reason(row: CaseIndicator) -> ReasonOut:
    zh, en = names(row.item)
    return ReasonOut(
        indicator_id=row.item,
        name_zh=zh,
        name_en=en,
        value=row.value,
        contribution=row.contribution,
    )


def fired(items: Iterable[CaseIndicator]) -> list[CaseIndicator]:
    """The fired catalog indicators among a case's items, largest |contribution| first."""
    return sorted((r for r in items if r.fired and r.kind == "indicator"), key=lambda r: r.position)


def case_summary(case: Case) -> CaseSummaryOut:
    """One row of a unit's list (reads ``case.indicators``: load them with the case)."""
    return CaseSummaryOut(
        case_id=case.case_id,
        taxpayer_id=case.taxpayer_id,
        name=case.taxpayer_name,
        unit_id=case.unit_id,
        rank=case.rank,
        risk_score=case.risk_score,
        risk_level=case.risk_level,
        expected_yield=case.expected_yield,
        top_reasons=[reason(r) for r in fired(case.indicators)[:TOP_REASONS]],
        recommended_measure=case.recommended_measure,
        status=case.status,
        selection=case.selection,
        officer=case.officer,
        due_on=case.due_on,
    )


def indicator(row: CaseIndicator) -> IndicatorOut:
    zh, en = names(row.item)
    return IndicatorOut(
        item=row.item,
        kind=row.kind,
        name_zh=zh,
        name_en=en,
        fired=row.fired,
        value=row.value,
        percentile=row.percentile,
        contribution=row.contribution,
    )


def _guides(rows: Iterable[CaseIndicator]) -> list[GuideOut]:
    return guides(r.item for r in rows)


def guides(items: Iterable[str]) -> list[GuideOut]:
    """The catalog's response guides of ``items`` (unknown ids skipped)."""
    out = []
    for item in items:
        entry = CATALOG.get(item)
        if entry is not None:
            out.append(
                GuideOut(
                    indicator_id=entry.id,
                    name_zh=entry.name_zh,
                    name_en=entry.name_en,
                    measure=entry.measure,
                    guide_zh=entry.guide_zh,
                    guide_en=entry.guide_en,
                )
            )
    return out


def case_detail(
    case: Case,
    items: Sequence[CaseIndicator],
    feedback: Sequence[Feedback],
    history: Sequence[Action],
) -> CaseDetailOut:
    """Everything about one case; ``items``: all its indicator rows, by position."""
    ordered = sorted(items, key=lambda r: r.position)
    shown = fired(ordered)
    return CaseDetailOut(
        case_id=case.case_id,
        run_id=case.run_id,
        as_of=case.as_of,
        model_version=case.model_version,
        unit_id=case.unit_id,
        route_reason=case.route_reason,
        selection=case.selection,
        selection_probability=case.selection_probability,
        status=case.status,
        officer=case.officer,
        due_on=case.due_on,
        created_at=case.created_at,
        updated_at=case.updated_at,
        closed_at=case.closed_at,
        taxpayer=TaxpayerOut(
            taxpayer_id=case.taxpayer_id,
            name=case.taxpayer_name,
            industry=case.industry,
            taxpayer_type=case.taxpayer_type,
            managing_unit_id=case.managing_unit_id,
        ),
        scores=ScoresOut.model_validate(case),
        recommended_measure=case.recommended_measure,
        indicators=[indicator(r) for r in shown],
        contributions=[indicator(r) for r in ordered if r.contribution is not None],
        guide=_guides(shown),
        feedback=[FeedbackOut.model_validate(f) for f in feedback],
        history=[ActionOut.model_validate(a) for a in history],
    )


def unit_capacity(row: RunUnit | None) -> UnitCapacityOut | None:
    return UnitCapacityOut.model_validate(row) if row is not None else None


def current_run(run: ScoringRun | None) -> CurrentRunOut | None:
    if run is None:
        return None
    return CurrentRunOut(
        run_id=run.run_id,
        as_of=run.as_of,
        published_at=run.published_at,
        model_version=run.model_version,
    )


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def risk_from_case(case: Case) -> TaxpayerRiskOut:
    """A taxpayer's risk as its latest case in the store has it."""
    ordered = sorted(case.indicators, key=lambda r: r.position)
    return TaxpayerRiskOut(
        taxpayer_id=case.taxpayer_id,
        source="case",
        name=case.taxpayer_name,
        run_id=case.run_id,
        as_of=case.as_of,
        model_version=case.model_version,
        case_id=case.case_id,
        unit_id=case.unit_id,
        rank=case.rank,
        risk_score=case.risk_score,
        expected_amount=case.expected_amount,
        expected_yield=case.expected_yield,
        risk_level=case.risk_level,
        recommended_measure=case.recommended_measure,
        base_yield=case.base_yield,
        indicators=[indicator(r) for r in ordered],
        guide=_guides(fired(ordered)),
    )


def risk_from_explanation(found: Mapping[str, Any], case: Case | None) -> TaxpayerRiskOut:
    """A taxpayer's risk from ``taxrisk.serving.runs.explain_taxpayer`` (its dict: the run,
    ``score`` = the ranking row, ``indicators`` = ``explain.indicator_table`` records)."""
    score: Mapping[str, Any] = found.get("score") or {}
    rank = _number(score.get("rank"))
    rows = []
    for r in found.get("indicators") or []:
        item = str(r.get("indicator"))
        zh, en = names(item)
        rows.append(
            IndicatorOut(
                item=item,
                kind="indicator",
                name_zh=str(r.get("name_zh") or zh),
                name_en=str(r.get("name_en") or en),
                fired=bool(r.get("fired")),
                value=_number(r.get("value")),
                percentile=_number(r.get("percentile")),
                contribution=_number(r.get("yuan")),
            )
        )
    as_of = found.get("as_of")
    return TaxpayerRiskOut(
        taxpayer_id=str(found.get("taxpayer_id")),
        source="run",
        name=case.taxpayer_name if case is not None else None,
        run_id=found.get("run_id"),
        as_of=dt.date.fromisoformat(str(as_of)[:10]) if as_of else None,
        model_version=found.get("model_version"),
        case_id=case.case_id if case is not None else None,
        unit_id=str(score["unit_id"]) if score.get("unit_id") is not None else None,
        rank=int(rank) if rank is not None else None,
        risk_score=_number(score.get("risk_score")),
        expected_amount=_number(score.get("expected_amount")),
        expected_yield=_number(found.get("expected_yield", score.get("expected_yield"))),
        risk_level=str(score["risk_level"]) if score.get("risk_level") is not None else None,
        recommended_measure=(
            str(score["recommended_measure"]) if score.get("recommended_measure") else None
        ),
        base_yield=_number(found.get("base_yield")),
        indicators=rows,
        guide=guides(r.item for r in rows if r.fired),
    )
