"""Request and response bodies of the API: input schemas (``...In``) apart from output (``...Out``).

Inputs are strict (pydantic strict mode, unknown fields refused): ``false`` is not a number,
``"12"`` is not a number, ``NaN``/``Infinity`` and numbers beyond 10^13 yuan are refused, text
is bounded and carries no NUL. Money is yuan, dates ISO ``YYYY-MM-DD``, months ``YYYY-MM``,
instants ISO 8601 in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from taxrisk.serving.config import Measure

__all__ = [
    "ActionOut",
    "AddTaxpayerIn",
    "ApproveIn",
    "AssignIn",
    "CaseDetailOut",
    "CasePageOut",
    "CaseSummaryOut",
    "ErrorOut",
    "FeedbackIn",
    "FeedbackOut",
    "FeedbackResultOut",
    "GuideOut",
    "HealthOut",
    "IndicatorOut",
    "ModelOut",
    "ReasonIn",
    "ReasonOut",
    "RerouteIn",
    "RunDetailOut",
    "RunOut",
    "RunPageOut",
    "RunUnitOut",
    "ScoresOut",
    "TaxpayerOut",
    "TaxpayerRiskOut",
    "UnitCapacityOut",
    "error_responses",
]

CaseStatus = Literal[
    "new", "assigned", "in_progress", "escalated", "returned", "review", "closed", "superseded"
]
RiskLevelName = Literal["high", "medium", "low", "minimal"]
Outcome = Literal["no_change", "adjusted"]

#: the largest amount of money accepted, yuan (10^13: more than any taxpayer's whole tax)
MAX_YUAN = 1e13


def _no_surrogates(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    return value


_ANY_TEXT = r"^[^\x00]*$"  # never NUL: PostgreSQL refuses it in text
_SOME_TEXT = r"^[^\x00]*\S[^\x00]*$"  # and at least one non-space character

Notes = Annotated[str, Field(max_length=4000, pattern=_ANY_TEXT), AfterValidator(_no_surrogates)]
Reason = Annotated[
    str, Field(min_length=1, max_length=2000, pattern=_SOME_TEXT), AfterValidator(_no_surrogates)
]
OptionalReason = Annotated[
    str, Field(max_length=2000, pattern=_ANY_TEXT), AfterValidator(_no_surrogates)
]
Name = Annotated[
    str, Field(min_length=1, max_length=100, pattern=_SOME_TEXT), AfterValidator(_no_surrogates)
]
Money = Annotated[float, Field(ge=0, le=MAX_YUAN, allow_inf_nan=False)]
Month = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", examples=["2026-06"])]
TaxpayerId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$"),
    AfterValidator(_no_surrogates),
]
UnitId = TaxpayerId


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- inputs ------------------------------------------------------------------------------


class FeedbackIn(_In):
    """The response result of a case (CONTRACT ``POST /cases/{case_id}/feedback``)."""

    outcome: Outcome
    measure_taken: Measure
    tax_recovered: Money = 0.0
    late_fees: Money = 0.0
    penalties: Money = 0.0
    notes: Notes = ""
    covers_from: Month | None = None
    covers_to: Month | None = None

    @model_validator(mode="after")
    def _period(self) -> FeedbackIn:
        if self.covers_from and self.covers_to and self.covers_from > self.covers_to:
            raise ValueError("covers_from must not be after covers_to")
        return self


class AssignIn(_In):
    officer: Name
    reason: OptionalReason = ""


class ReasonIn(_In):
    """An action that needs a reason (escalate, return, drop, reject)."""

    reason: Reason


class ApproveIn(_In):
    reason: OptionalReason = ""


class RerouteIn(_In):
    unit_id: UnitId
    reason: Reason


class AddTaxpayerIn(_In):
    """Add a taxpayer the scoring run did not select (selection ``manual``)."""

    taxpayer_id: TaxpayerId
    reason: Reason
    measure: Measure = "assessment"


# --- outputs -----------------------------------------------------------------------------


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error: a sentence, or for request validation (422) the list of problems."""

    detail: str | list[ErrorItem]


class ReasonOut(_Out):
    """A fired indicator behind a case, with its catalog names."""

    indicator_id: str
    name_zh: str
    name_en: str
    value: float | None
    contribution: float | None = Field(description="yuan of expected yield")


class CaseSummaryOut(_Out):
    case_id: str
    taxpayer_id: str
    name: str
    unit_id: str
    rank: int
    risk_score: float = Field(description="P(adjusted), in [0, 1]")
    risk_level: str
    expected_yield: float = Field(description="yuan")
    top_reasons: list[ReasonOut]
    recommended_measure: str
    status: str
    selection: str
    officer: str | None
    due_on: dt.date


class UnitCapacityOut(_Out):
    """The unit's share of the current scoring run (dispatch's allocation)."""

    run_id: str
    capacity: int
    assigned: int
    exploration: int
    overflow: int
    expected_yield: float = Field(description="of the assigned cases, yuan")
    shadow_price: float = Field(description="yuan of expected yield per extra case of capacity")


class CasePageOut(BaseModel):
    unit_id: str
    total: int = Field(description="cases matching the filters, all pages")
    limit: int
    offset: int
    capacity: UnitCapacityOut | None = Field(description="None before any scoring run")
    items: list[CaseSummaryOut]


class TaxpayerOut(_Out):
    taxpayer_id: str
    name: str
    industry: str | None
    taxpayer_type: str | None
    managing_unit_id: str


class ScoresOut(_Out):
    rank: int
    risk_score: float = Field(description="P(adjusted)")
    expected_amount: float = Field(description="yuan recovered if adjusted")
    expected_yield: float = Field(description="yuan")
    risk_level: str
    base_yield: float | None = Field(description="the explanation's base value, yuan")


class IndicatorOut(_Out):
    item: str = Field(description="indicator id, or feature name")
    kind: str = Field(description="indicator / feature")
    name_zh: str
    name_en: str
    fired: bool
    value: float | None
    percentile: float | None = Field(description="within the industry, (0, 1]")
    contribution: float | None = Field(description="yuan of expected yield")


class GuideOut(BaseModel):
    """The response guide (风险应对指南) of a fired indicator, from the catalog."""

    indicator_id: str
    name_zh: str
    name_en: str
    measure: str
    guide_zh: str
    guide_en: str


class ActionOut(_Out):
    seq: int
    at: dt.datetime
    actor: str
    role: str
    action: str
    reason: str
    detail: dict[str, Any]


class FeedbackOut(_Out):
    feedback_id: int
    status: str = Field(description="accepted, pending (awaiting approval), approved, rejected")
    outcome: str = Field(description="no_change, adjusted, or dropped (taken off the list)")
    measure_taken: str
    tax_recovered: float
    late_fees: float
    penalties: float
    notes: str
    covers_from: str | None
    covers_to: str | None
    submitted_by: str
    submitted_at: dt.datetime
    approved_by: str | None
    approved_at: dt.datetime | None


class CaseDetailOut(BaseModel):
    case_id: str
    run_id: str
    as_of: dt.date
    model_version: str
    unit_id: str
    route_reason: str
    selection: str
    selection_probability: float | None
    status: str
    officer: str | None
    due_on: dt.date
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    taxpayer: TaxpayerOut
    scores: ScoresOut
    recommended_measure: str
    indicators: list[IndicatorOut] = Field(description="every fired indicator")
    contributions: list[IndicatorOut] = Field(
        description="every item with a contribution, largest |contribution| first"
    )
    guide: list[GuideOut] = Field(description="response guides of the fired indicators")
    feedback: list[FeedbackOut]
    history: list[ActionOut] = Field(description="the action log of the case, oldest first")


class FeedbackResultOut(BaseModel):
    case_id: str
    status: str = Field(description="closed, or review when a second person must approve")
    approval_required: bool
    detail: str
    feedback: FeedbackOut


class TaxpayerRiskOut(BaseModel):
    """A taxpayer's latest score and its explanation."""

    taxpayer_id: str
    source: Literal["run", "case"] = Field(
        description="'run': the current scoring run's ranking and an on-demand explanation; "
        "'case': the taxpayer's latest case in the store"
    )
    name: str | None
    run_id: str | None
    as_of: dt.date | None
    model_version: str | None
    case_id: str | None = Field(description="the latest case of the taxpayer, if any")
    unit_id: str | None
    rank: int | None
    risk_score: float | None = Field(description="P(adjusted)")
    expected_amount: float | None = Field(description="yuan recovered if adjusted")
    expected_yield: float | None = Field(description="yuan")
    risk_level: str | None
    recommended_measure: str | None
    base_yield: float | None = Field(description="the explanation's base value, yuan")
    indicators: list[IndicatorOut] = Field(
        description="fired indicators and the largest contributions, largest |yuan| first"
    )
    guide: list[GuideOut] = Field(description="response guides of the fired indicators")


class RunOut(_Out):
    run_id: str
    as_of: dt.date
    model_uri: str
    model_version: str | None
    config_version: str
    started_at: dt.datetime
    published_at: dt.datetime
    created_by: str
    counts: dict[str, Any]
    timings: dict[str, Any] = Field(description="seconds per stage")
    monitoring: dict[str, Any] = Field(description="PSI and selection rates (monitoring.py)")


class RunPageOut(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[RunOut]


class RunUnitOut(_Out):
    unit_id: str
    capacity: int
    assigned: int
    exploration: int
    overflow: int
    expected_yield: float
    shadow_price: float


class RunDetailOut(RunOut):
    data_fingerprint: str
    artifacts: dict[str, Any]
    notes: str | None
    units: list[RunUnitOut]


class CurrentRunOut(BaseModel):
    run_id: str
    as_of: dt.date
    published_at: dt.datetime
    model_version: str | None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    model_version: str | None = Field(description="the model version of the current run")
    run: CurrentRunOut | None


class ModelOut(BaseModel):
    """The model in service (MLflow's ``champion``) and its training run's metrics."""

    name: str
    alias: str
    status: Literal["in_service", "no_model", "unavailable"]
    in_service: bool
    detail: str
    version: str | None
    run_id: str | None
    model_uri: str | None
    registered_at: dt.datetime | None
    train_as_of: str | None
    champion_decision: str | None
    metrics: dict[str, float | None]
    plots: list[str] = Field(description="names for GET /api/v1/model/plots/{name}")
    current_run: CurrentRunOut | None = Field(description="the run whose cases are being worked")


_ERROR_MEANING = {
    400: "the request body is not valid JSON text (bytes that are not UTF-8)",
    401: "no token, or an invalid or revoked one",
    403: "outside the user's rights",
    404: "no such object, or one the user may not see",
    409: "the case's state does not allow this",
    413: "request body too large",
    422: "invalid input",
    501: "not available in this installation",
    503: "the case store (or the model registry) is unavailable: retry",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer (503, the case
    store being unreachable, can happen on every route)."""
    return {c: {"model": ErrorOut, "description": _ERROR_MEANING[c]} for c in sorted({*codes, 503})}
