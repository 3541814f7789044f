"""The case store's tables (SQLAlchemy 2 declarative models).

What lives here, and why (docs/dispatch.md has the whole story):

* ``units``: the bureau's hierarchy, copied from the data folder by every scoring run (the API
  scopes a selector to its unit and the units below it).
* ``scoring_runs``: one row per *published* run. A run is written in one transaction, so a
  row exists only for a run that finished; the current run is the latest ``published_at``.
  Large per-taxpayer outputs (the full ranking, the matrix for on-demand explanations) are
  Parquet files in the workspace (``runs/<run_id>/``), named in ``artifacts``.
* ``run_units``: per run and unit, the capacity, what was assigned and the allocation's shadow
  price (yuan of expected yield one more case of capacity would bring).
* ``cases``: one per taxpayer and dispatch (按户归集), with its selection (``model``,
  ``exploration`` with its inclusion probability, ``overflow`` = a lighter measure outside
  capacity), the recommended measure, the unit and officer, the due date and the state.
* ``case_indicators``: the indicators behind a case (every fired one, and the largest
  contributions), with value, industry percentile and contribution in yuan.
* ``feedback``: the response result of a case (outcome, measure taken, money recovered).
* ``actions``: the append-only action log, chained by SHA-256 hashes (``serving/store/
  action_log.py``); ``action_log_head`` holds one row, the count and hash of the last entry
  (the lock appends take, and a check against the truncation of the tail).
* ``users``: API users with a role and a unit; only a hash of the token is stored.

Money is yuan (float); dates are ``date``; instants are timezone-aware UTC ``datetime``
(:class:`UTCDateTime`: stored as UTC, read back aware on SQLite too, where the driver would
otherwise return naive values).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "CASE_STATES",
    "FEEDBACK_STATUSES",
    "OPEN_STATES",
    "Action",
    "ActionLogHead",
    "Base",
    "Case",
    "CaseIndicator",
    "Feedback",
    "RunUnit",
    "ScoringRun",
    "UTCDateTime",
    "Unit",
    "User",
]

#: the states of a case (docs/dispatch.md has the diagram): open ones first
OPEN_STATES = ("new", "assigned", "in_progress", "escalated", "returned", "review")
CASE_STATES = (*OPEN_STATES, "closed", "superseded")
#: a feedback row's standing: ``accepted`` (closed the case directly), ``pending`` (the case is
#: in review), ``approved`` (a second person closed it), ``rejected`` (sent back to work)
FEEDBACK_STATUSES = ("accepted", "pending", "approved", "rejected")

_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An instant: ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL, ISO text on SQLite.

    Values are converted to UTC on the way in (a naive value is taken as UTC) and come back
    timezone-aware UTC from both engines.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=_NAMING)
    type_annotation_map = {  # noqa: RUF012
        dict[str, Any]: JSON,
        dt.datetime: UTCDateTime(),
    }


class Unit(Base):
    __tablename__ = "units"

    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))  # city / county / branch
    name: Mapped[str] = mapped_column(String(200))
    capacity: Mapped[int] = mapped_column(Integer)


class ScoringRun(Base):
    __tablename__ = "scoring_runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date, index=True)
    model_uri: Mapped[str] = mapped_column(String(500))
    model_version: Mapped[str | None] = mapped_column(String(64))
    data_dir: Mapped[str] = mapped_column(Text)
    data_fingerprint: Mapped[str] = mapped_column(String(64))
    config_version: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[dt.datetime] = mapped_column()
    published_at: Mapped[dt.datetime] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    #: scored, cases, model, exploration, overflow, superseded, kept, ...
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: seconds per stage: load, features, predict, contributions, allocation, write
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: PSI against the previous run and the training data, selection rates (monitoring.py)
    monitoring: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: paths of the run's Parquet files, relative to the workspace
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: capture@K of the dispatched cases and of the raw ranking, when measured (experiments)
    notes: Mapped[str | None] = mapped_column(Text)

    units: Mapped[list[RunUnit]] = relationship(back_populates="run", cascade="all")


class RunUnit(Base):
    __tablename__ = "run_units"

    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer)
    assigned: Mapped[int] = mapped_column(Integer)  # model + exploration cases
    exploration: Mapped[int] = mapped_column(Integer)
    overflow: Mapped[int] = mapped_column(Integer)
    expected_yield: Mapped[float] = mapped_column(Float)  # of the assigned cases, yuan
    shadow_price: Mapped[float] = mapped_column(Float)  # yuan per extra case of capacity

    run: Mapped[ScoringRun] = relationship(back_populates="units")


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # Re-running the same as-of and model creates no duplicate case (docs/dispatch.md).
        UniqueConstraint("taxpayer_id", "as_of", "model_version", name="uq_cases_dispatch"),
        Index("ix_cases_unit_status", "unit_id", "status"),
    )

    case_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("scoring_runs.run_id"), index=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    model_version: Mapped[str] = mapped_column(String(64))
    taxpayer_id: Mapped[str] = mapped_column(String(64), index=True)
    taxpayer_name: Mapped[str] = mapped_column(String(300))
    industry: Mapped[str | None] = mapped_column(String(64))
    taxpayer_type: Mapped[str | None] = mapped_column(String(32))
    managing_unit_id: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[str] = mapped_column(String(64))  # the unit responsible now
    route_reason: Mapped[str] = mapped_column(String(32))  # managing/key_taxpayer/cross_county
    selection: Mapped[str] = mapped_column(String(16))  # model / exploration / overflow
    selection_probability: Mapped[float | None] = mapped_column(Float)
    rank: Mapped[int] = mapped_column(Integer)
    risk_score: Mapped[float] = mapped_column(Float)  # P(adjusted)
    expected_amount: Mapped[float] = mapped_column(Float)  # yuan, if adjusted
    expected_yield: Mapped[float] = mapped_column(Float)  # yuan
    risk_level: Mapped[str] = mapped_column(String(16))
    recommended_measure: Mapped[str] = mapped_column(String(16))
    base_yield: Mapped[float | None] = mapped_column(Float)  # explanation's base value, yuan
    status: Mapped[str] = mapped_column(String(16), default="new")
    officer: Mapped[str | None] = mapped_column(String(100))
    due_on: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column()
    updated_at: Mapped[dt.datetime] = mapped_column()
    closed_at: Mapped[dt.datetime | None] = mapped_column()

    indicators: Mapped[list[CaseIndicator]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="CaseIndicator.position"
    )
    feedback: Mapped[list[Feedback]] = relationship(back_populates="case", cascade="all")


class CaseIndicator(Base):
    __tablename__ = "case_indicators"

    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(80), primary_key=True)  # indicator id or feature
    position: Mapped[int] = mapped_column(Integer)  # 0 = largest |contribution|
    kind: Mapped[str] = mapped_column(String(16))  # indicator / feature
    fired: Mapped[bool] = mapped_column(Boolean)
    value: Mapped[float | None] = mapped_column(Float)
    percentile: Mapped[float | None] = mapped_column(Float)  # within the industry, (0, 1]
    contribution: Mapped[float | None] = mapped_column(Float)  # yuan of expected yield

    case: Mapped[Case] = relationship(back_populates="indicators")


class Feedback(Base):
    __tablename__ = "feedback"

    feedback_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.case_id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # no_change / adjusted
    measure_taken: Mapped[str] = mapped_column(String(16))
    tax_recovered: Mapped[float] = mapped_column(Float)
    late_fees: Mapped[float] = mapped_column(Float)
    penalties: Mapped[float] = mapped_column(Float)
    notes: Mapped[str] = mapped_column(Text, default="")
    covers_from: Mapped[str | None] = mapped_column(String(7))  # YYYY-MM
    covers_to: Mapped[str | None] = mapped_column(String(7))
    submitted_by: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[dt.datetime] = mapped_column()
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[dt.datetime | None] = mapped_column()
    #: FEEDBACK_STATUSES; the case's outcome is its feedback in accepted/approved
    status: Mapped[str] = mapped_column(String(16), default="accepted")

    case: Mapped[Case] = relationship(back_populates="feedback")


class Action(Base):
    """One entry of the action log: append-only, chained by ``hash`` (see action_log.py)."""

    __tablename__ = "actions"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[str | None] = mapped_column(String(80), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ActionLogHead(Base):
    """The one row (``id`` = 1) naming the last entry of the action log.

    Written by every append in the same transaction; its row lock serialises appends.
    ``seq`` = 0 and ``hash`` = 64 zeros for an empty log (the migration inserts the row).
    """

    __tablename__ = "action_log_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class User(Base):
    __tablename__ = "users"

    user_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin / analyst / selector
    unit_id: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()
