"""Feedback becomes labels: closed cases as audit outcomes for the next training set.

:class:`StoreOutcomes` is an :class:`~taxrisk.training.dataset.AuditOutcomeSource` over the
case store; ``taxrisk train`` reads it beside the data folder's ``audits`` table
(``training.dataset.CombinedSource``), point in time as ever: a case is known from its run's
as-of date (its ``selected_on``), and its label only from the day it closed.

One case, one outcome row (CONTRACT ``audits`` columns):

* ``selected_on`` = the run's as-of date (the features the case was chosen on);
* ``selection_reason`` = ``random`` for an exploration case (with its recorded inclusion
  probability as ``selection_probability``: the next round's unbiased estimate), ``model``
  for model-selected and overflow cases, ``tip`` for a taxpayer a selector added by hand;
* ``closed_on`` = the day the case closed (after approval where one was needed);
* ``outcome``, ``tax_recovered``, ``late_fees``, ``penalties``, ``covers_from``/``covers_to``
  from the accepted feedback; ``measure`` = the measure taken.

Dropped and superseded cases carry no outcome and are not labels. :func:`load_feedback_file`
reads a CSV/JSON file of results for ``taxrisk feedback``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from taxrisk.training.dataset import OUTCOME_COLUMNS, mask_future

from .errors import InvalidFeedback
from .store.cases import FeedbackIn
from .store.models import Case, Feedback, ScoringRun

__all__ = ["FEEDBACK_FIELDS", "StoreOutcomes", "closed_case_outcomes", "load_feedback_file"]

_REASON = {"model": "model", "overflow": "model", "exploration": "random", "manual": "tip"}
#: the columns of a feedback file (CSV header or JSON keys); case_id, outcome and
#: measure_taken are required
FEEDBACK_FIELDS = (
    "case_id",
    "outcome",
    "measure_taken",
    "tax_recovered",
    "late_fees",
    "penalties",
    "notes",
    "covers_from",
    "covers_to",
)


def closed_case_outcomes(session: Session) -> pd.DataFrame:
    """Every case of the store with its accepted feedback, as audit outcome rows.

    Columns: :data:`~taxrisk.training.dataset.OUTCOME_COLUMNS` plus unit_id, measure,
    covers_from, covers_to. Open cases have null closed_on and outcome (known to exist,
    unlabelled); dropped and superseded cases are left out.
    """
    rows = session.execute(
        select(Case, Feedback, ScoringRun.as_of)
        .join(ScoringRun, ScoringRun.run_id == Case.run_id, isouter=True)
        .join(
            Feedback,
            (Feedback.case_id == Case.case_id) & Feedback.status.in_(("accepted", "approved")),
            isouter=True,
        )
        .where(Case.status != "superseded")
        .order_by(Case.case_id, Feedback.feedback_id)
    ).all()
    out: dict[str, dict[str, Any]] = {}
    for case, fb, as_of in rows:
        rec = out.setdefault(
            case.case_id,
            {
                "case_id": case.case_id,
                "taxpayer_id": case.taxpayer_id,
                "selected_on": pd.Timestamp(as_of or case.as_of),
                "selection_reason": _REASON.get(case.selection, "model"),
                "selection_probability": case.selection_probability,
                "closed_on": pd.NaT,
                "outcome": None,
                "tax_recovered": math.nan,
                "late_fees": math.nan,
                "penalties": math.nan,
                "unit_id": case.unit_id,
                "measure": case.recommended_measure,
                "covers_from": None,
                "covers_to": None,
                "_dropped": False,
            },
        )
        if case.status == "closed" and fb is not None and case.closed_at is not None:
            if fb.outcome not in ("adjusted", "no_change"):
                rec["_dropped"] = True
                continue
            rec |= {
                "closed_on": pd.Timestamp(case.closed_at.date()),
                "outcome": fb.outcome,
                "tax_recovered": fb.tax_recovered,
                "late_fees": fb.late_fees,
                "penalties": fb.penalties,
                "measure": fb.measure_taken,
                "covers_from": fb.covers_from,
                "covers_to": fb.covers_to,
            }
        elif case.status == "closed":
            rec["_dropped"] = True  # closed without a result: dropped by a selector
    frame = pd.DataFrame(list(out.values()))
    if frame.empty:
        return pd.DataFrame(columns=[*OUTCOME_COLUMNS, "unit_id", "measure"])
    frame = frame[~frame.pop("_dropped")]
    return frame.reset_index(drop=True)


class StoreOutcomes:
    """The case store's cases as an :class:`~taxrisk.training.dataset.AuditOutcomeSource`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def outcomes(self, as_of: dt.date) -> pd.DataFrame:
        with Session(self.engine) as s:
            frame = closed_case_outcomes(s)
        if frame.empty:
            return frame[list(OUTCOME_COLUMNS)]
        return mask_future(frame[list(OUTCOME_COLUMNS)], as_of)


def _money(value: Any, field: str, where: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0.0
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InvalidFeedback(f"{where}: {field} must be a number of yuan, got {value!r}") from None
    return x


def load_feedback_file(path: Path) -> list[tuple[str, FeedbackIn]]:
    """(case_id, feedback) pairs from a CSV (header row) or JSON (a list of objects) file.

    Unknown columns and missing required ones are errors naming the file and the column; the
    values themselves are validated by the case service when recorded.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise InvalidFeedback(f"{path}: expected a JSON list of objects")
            records = data
        elif path.suffix.lower() == ".csv":
            records = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
        else:
            raise InvalidFeedback(f"{path}: expected a .csv or .json file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, pd.errors.ParserError) as exc:
        raise InvalidFeedback(f"{path}: cannot read feedback: {exc}") from exc
    out: list[tuple[str, FeedbackIn]] = []
    for i, rec in enumerate(records, start=1):
        where = f"{path}, row {i}"
        unknown = sorted(set(rec) - set(FEEDBACK_FIELDS))
        if unknown:
            raise InvalidFeedback(f"{path}, column {unknown[0]!r}: unknown feedback column")
        for req in ("case_id", "outcome", "measure_taken"):
            if not str(rec.get(req) or "").strip():
                raise InvalidFeedback(f"{where}, column {req!r}: required")
        out.append(
            (
                str(rec["case_id"]).strip(),
                FeedbackIn(
                    outcome=str(rec["outcome"]).strip(),
                    measure_taken=str(rec["measure_taken"]).strip(),
                    tax_recovered=_money(rec.get("tax_recovered"), "tax_recovered", where),
                    late_fees=_money(rec.get("late_fees"), "late_fees", where),
                    penalties=_money(rec.get("penalties"), "penalties", where),
                    notes=str(rec.get("notes") or ""),
                    covers_from=(str(rec.get("covers_from") or "").strip() or None),
                    covers_to=(str(rec.get("covers_to") or "").strip() or None),
                ),
            )
        )
    return out
