"""A small, realistic case store written straight through the models (for store, API and page
tests). Import by basename: ``from store_factories import seed_store``.

:func:`seed_store` writes, in the caller's transaction (it flushes; the caller commits):

* units: city ``U00`` 市局 -> counties ``U01``, ``U02`` -> branch ``U011`` under ``U01``;
* one published :class:`ScoringRun` (``SEED_RUN_ID``, as of ``SEED_AS_OF``) with its
  :class:`RunUnit` rows;
* ``n_cases`` cases (default 20) in rank order, spread over the units and states by
  :data:`PLAN` (cycled beyond 20), with Chinese taxpayer names, 3-6 :class:`CaseIndicator`
  rows each (real catalog ids, fired and not, contributions in yuan, position 0 = largest
  ``|contribution|``), due dates relative to ``today`` (some open cases overdue);
* feedback: the ``closed`` cases have accepted feedback, the ``review`` case pending feedback
  submitted by ``sel_u01`` (above the approval line);
* action-log entries (dispatch, assign, start, feedback, escalate, return, supersede) through
  :func:`action_log.append`;
* users ``admin``, ``analyst``, ``sel_u01`` (selector of U01), ``sel_u02`` (selector of U02),
  their tokens in :attr:`SeedInfo.tokens`.

Everything is deterministic for a given ``seed`` (money, indicators); ids do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from taxrisk.features.catalog import CATALOG
from taxrisk.serving.config import load_config
from taxrisk.serving.store import action_log, users
from taxrisk.serving.store.action_log import SYSTEM, Actor
from taxrisk.serving.store.models import (
    Case,
    CaseIndicator,
    Feedback,
    RunUnit,
    ScoringRun,
    Unit,
)

__all__ = ["PLAN", "SEED_AS_OF", "SEED_RUN_ID", "SeedInfo", "Seeded", "seed_store"]

SEED_RUN_ID = "run-20261201-0001"
SEED_AS_OF = dt.date(2026, 12, 1)
MODEL_VERSION = "3"

#: unit_id -> (parent, level, name, capacity)
UNITS: dict[str, tuple[str | None, str, str, int]] = {
    "U00": (None, "city", "市局", 6),
    "U01": ("U00", "county", "城东区税务局", 6),
    "U02": ("U00", "county", "城西区税务局", 6),
    "U011": ("U01", "branch", "城东区税务局第一税务所", 4),
}

_NAMES = [
    "华北面粉有限公司",
    "金泰煤业有限责任公司",
    "宏达建材有限公司",
    "永兴砖瓦厂",
    "福源酒业有限公司",
    "瑞丰纺织有限公司",
    "新城房地产开发有限公司",
    "康泰大药房连锁有限公司",
    "鑫源成品油销售有限公司",
    "恒通汽车销售服务有限公司",
    "东方水泥有限公司",
    "绿野淀粉有限公司",
    "佳美超市有限公司",
    "长城啤酒有限公司",
    "天和物业租赁有限公司",
    "顺达建筑工程有限公司",
    "合众食品有限公司",
    "嘉禾葡萄酒业有限公司",
    "利民汽车修理厂",
    "鼎盛贸易有限公司",
]
_INDUSTRIES = ["1311", "0610", "3031", "3031", "1512", "1713", "7010", "5251", "5265", "5261"]

# (unit, status, selection, route_reason, officer); rank = position + 1
PLAN: list[tuple[str, str, str, str, str | None]] = [
    ("U00", "in_progress", "model", "key_taxpayer", "王强"),  # 1: above the approval line
    ("U01", "review", "model", "managing", "张伟"),  # 2: feedback pending (sel_u01)
    ("U02", "new", "model", "managing", None),
    ("U011", "assigned", "model", "managing", "李明"),  # overdue
    ("U01", "new", "model", "managing", None),
    ("U02", "in_progress", "model", "managing", "刘洋"),  # overdue
    ("U00", "new", "model", "cross_county", None),
    ("U011", "new", "model", "managing", None),
    ("U01", "closed", "model", "managing", "陈静"),  # feedback accepted (adjusted)
    ("U02", "assigned", "model", "managing", "杨帆"),
    ("U01", "escalated", "model", "managing", None),  # managed by U011, escalated to U01
    ("U00", "returned", "model", "managing", None),  # managed by U02, returned to the city
    ("U011", "in_progress", "model", "managing", "赵磊"),  # overdue
    ("U01", "assigned", "model", "managing", "黄丽"),
    ("U02", "new", "exploration", "managing", None),
    ("U011", "superseded", "model", "managing", None),
    ("U01", "new", "overflow", "managing", None),
    ("U02", "closed", "model", "managing", "周敏"),  # feedback accepted (no_change)
    ("U00", "assigned", "model", "key_taxpayer", "吴刚"),
    ("U011", "new", "exploration", "managing", None),
]
_OVERDUE_RANKS = {4, 6, 13}
_MANAGING_OVERRIDE = {11: "U011", 12: "U02"}


@dataclass
class SeedInfo:
    """What :func:`seed_store` wrote (ids to assert on)."""

    run_id: str
    as_of: dt.date
    today: dt.date
    units: dict[str, str]  # unit_id -> name
    case_ids: list[str]  # rank order
    by_status: dict[str, list[str]] = field(default_factory=dict)
    by_unit: dict[str, list[str]] = field(default_factory=dict)
    overdue: list[str] = field(default_factory=list)  # open and due_on < today
    tokens: dict[str, str] = field(default_factory=dict)  # user name -> API token
    actors: dict[str, Actor] = field(default_factory=dict)  # user name -> Actor
    approval_line: float = 1_000_000.0  # yuan (serving config)

    def first(self, status: str, unit_id: str | None = None) -> str:
        """The best-ranked case in ``status`` (and ``unit_id``); KeyError if none."""
        for cid in self.by_status.get(status, []):
            if unit_id is None or cid in self.by_unit.get(unit_id, []):
                return cid
        raise KeyError(f"no seeded case in {status!r} at {unit_id!r}")


class Seeded(NamedTuple):
    """The ``seeded`` fixture: a session on a seeded store (committed), its engine, the info."""

    session: Session
    info: SeedInfo
    engine: Engine


def _indicators(rng: random.Random, case_id: str, expected_yield: float) -> list[CaseIndicator]:
    ids = rng.sample(sorted(CATALOG), rng.randint(3, 6))
    n_fired = rng.randint(1, len(ids) - 1)
    rows = []
    for k, item in enumerate(ids):
        fired = k < n_fired
        share = rng.uniform(0.15, 0.45) if fired else rng.uniform(-0.05, 0.08)
        rows.append(
            CaseIndicator(
                case_id=case_id,
                item=item,
                position=0,
                kind="indicator",
                fired=fired,
                value=round(rng.uniform(0.0, 3.0), 4),
                percentile=round(rng.uniform(0.9, 1.0) if fired else rng.uniform(0.2, 0.8), 4),
                contribution=round(expected_yield * share, 2),
            )
        )
    rows.append(
        CaseIndicator(
            case_id=case_id,
            item="registered_capital",
            position=0,
            kind="feature",
            fired=False,
            value=round(rng.uniform(1e5, 5e7), 2),
            percentile=None,
            contribution=round(expected_yield * rng.uniform(-0.03, 0.03), 2),
        )
    )
    rows.sort(key=lambda r: -abs(r.contribution or 0.0))
    for pos, r in enumerate(rows):
        r.position = pos
    return rows


def seed_store(
    session: Session,
    *,
    n_cases: int = 20,
    today: dt.date | None = None,
    seed: int = 0,
    with_users: bool = True,
) -> SeedInfo:
    """Write the seeded store described in the module docstring; flushes, does not commit.

    ``today``: the day overdue is judged against (default: the real today); due dates are set
    relative to it. ``n_cases`` >= 1 (beyond 20 the :data:`PLAN` repeats).
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    today = today or dt.date.today()
    rng = random.Random(seed)
    cfg = load_config()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for uid, (parent, level, name, capacity) in UNITS.items():
        session.add(Unit(unit_id=uid, parent_id=parent, level=level, name=name, capacity=capacity))
    run = ScoringRun(
        run_id=SEED_RUN_ID,
        as_of=SEED_AS_OF,
        model_uri=f"models:/taxrisk/{MODEL_VERSION}",
        model_version=MODEL_VERSION,
        data_dir="/data/city-2026-12",
        data_fingerprint="9f2c" * 16,
        config_version=cfg.version,
        started_at=now - dt.timedelta(minutes=3),
        published_at=now - dt.timedelta(minutes=1),
        created_by="system",
        counts={"scored": 1500, "cases": n_cases, "model": 0, "exploration": 0, "overflow": 0},
        timings={"load": 1.2, "features": 4.8, "predict": 0.4, "allocation": 0.1, "write": 0.3},
        monitoring={"psi_max": 0.04},
        artifacts={"ranking": f"runs/{SEED_RUN_ID}/ranking.parquet"},
    )
    session.add(run)
    session.flush()
    system = SYSTEM
    action_log.append(
        session, system, "run.published", run_id=SEED_RUN_ID, detail={"cases": n_cases}
    )

    info = SeedInfo(
        run_id=SEED_RUN_ID,
        as_of=SEED_AS_OF,
        today=today,
        units={u: v[2] for u, v in UNITS.items()},
        case_ids=[],
        approval_line=cfg.approval.yield_line,
    )
    per_unit: dict[str, list[Case]] = {u: [] for u in UNITS}
    cases: list[Case] = []
    for i in range(n_cases):
        rank = i + 1
        unit, status, selection, route, officer = PLAN[i % len(PLAN)]
        cycle = i // len(PLAN)
        tp = f"TP{rank:05d}"
        name = _NAMES[i % len(_NAMES)] + (f"({cycle + 1})" if cycle else "")
        if rank == 1:
            exp_yield = 1_850_000.0
        elif rank == 2:
            exp_yield = 1_200_000.0
        else:
            exp_yield = round(600_000.0 * 0.82 ** (rank - 3) * rng.uniform(0.95, 1.05), 2)
        score = round(max(0.05, 0.92 - 0.035 * i + rng.uniform(-0.01, 0.01)), 4)
        level = "high" if rank <= 2 else "medium" if rank <= 8 else "low"
        measure = cfg.measure_for(level, score, exp_yield)
        if selection == "overflow":
            measure = "notice"
        elif selection == "exploration":
            measure = "assessment"
        due = today + dt.timedelta(days=cfg.time_limits[measure])  # type: ignore[index]
        if rank in _OVERDUE_RANKS:
            due = today - dt.timedelta(days=5 + rank)
        case_id = f"C-{SEED_AS_OF:%Y%m%d}-{tp}"
        case = Case(
            case_id=case_id,
            run_id=SEED_RUN_ID,
            as_of=SEED_AS_OF,
            model_version=MODEL_VERSION,
            taxpayer_id=tp,
            taxpayer_name=name,
            industry=_INDUSTRIES[i % len(_INDUSTRIES)],
            taxpayer_type="general" if rank % 5 else "small_scale",
            managing_unit_id=_MANAGING_OVERRIDE.get(rank, unit if unit != "U00" else "U01"),
            unit_id=unit,
            route_reason=route,
            selection=selection,
            selection_probability=0.05 if selection == "exploration" else None,
            rank=rank,
            risk_score=score,
            expected_amount=round(exp_yield / score, 2),
            expected_yield=exp_yield,
            risk_level=level,
            recommended_measure=measure,
            base_yield=12_500.0,
            status=status,
            officer=officer,
            due_on=due,
            created_at=now - dt.timedelta(minutes=1),
            updated_at=now,
            closed_at=now if status == "closed" else None,
        )
        case.indicators = _indicators(rng, case_id, exp_yield)
        session.add(case)
        cases.append(case)
        per_unit[unit].append(case)
        info.case_ids.append(case_id)
        info.by_status.setdefault(status, []).append(case_id)
        info.by_unit.setdefault(unit, []).append(case_id)
        if status in ("new", "assigned", "in_progress", "escalated", "returned", "review") and (
            due < today
        ):
            info.overdue.append(case_id)
    session.flush()

    for ru, members in per_unit.items():
        counted = [c for c in members if c.selection != "overflow"]
        session.add(
            RunUnit(
                run_id=SEED_RUN_ID,
                unit_id=ru,
                capacity=UNITS[ru][3],
                assigned=len(counted),
                exploration=sum(c.selection == "exploration" for c in members),
                overflow=sum(c.selection == "overflow" for c in members),
                expected_yield=round(sum(c.expected_yield for c in counted), 2),
                shadow_price=round(min((c.expected_yield for c in counted), default=0.0), 2),
            )
        )
    for c in cases:
        action_log.append(
            session,
            system,
            "case.dispatched",
            case_id=c.case_id,
            run_id=SEED_RUN_ID,
            detail={
                "unit_id": c.managing_unit_id if c.rank in _MANAGING_OVERRIDE else c.unit_id,
                "selection": c.selection,
                "rank": c.rank,
                "expected_yield": c.expected_yield,
            },
        )
    session.flush()

    if with_users:
        for uname, role, unit_id in (
            ("admin", "admin", None),
            ("analyst", "analyst", None),
            ("sel_u01", "selector", "U01"),
            ("sel_u02", "selector", "U02"),
        ):
            user, token = users.add_user(session, uname, role, unit_id)
            info.tokens[uname] = token
            info.actors[uname] = Actor(user.name, user.role, user.unit_id)
    admin = info.actors.get("admin", Actor("admin", "admin"))
    sel01 = info.actors.get("sel_u01", Actor("sel_u01", "selector", "U01"))

    for c in cases:
        _history(session, c, admin, sel01, now)
    session.flush()
    return info


def _history(session: Session, c: Case, admin: Actor, sel01: Actor, now: dt.datetime) -> None:
    """Log (and, for feedback, store) how ``c`` reached its seeded state."""
    log = action_log.append
    if c.status in ("assigned", "in_progress", "review", "closed"):
        log(
            session,
            admin,
            "case.assigned",
            case_id=c.case_id,
            detail={"from": "new", "to": "assigned", "officer": c.officer},
        )
    if c.status in ("in_progress", "review", "closed"):
        log(
            session,
            admin,
            "case.started",
            case_id=c.case_id,
            detail={"from": "assigned", "to": "in_progress"},
        )
    if c.status == "escalated":
        log(
            session,
            admin,
            "case.escalated",
            case_id=c.case_id,
            reason="跨区县经营,需市局协调",
            detail={
                "from": "new",
                "to": "escalated",
                "unit_from": c.managing_unit_id,
                "unit_to": c.unit_id,
            },
        )
    if c.status == "returned":
        log(
            session,
            admin,
            "case.returned",
            case_id=c.case_id,
            reason="纳税人已注销,退回市局",
            detail={
                "from": "new",
                "to": "returned",
                "unit_from": c.managing_unit_id,
                "unit_to": c.unit_id,
            },
        )
    if c.status == "superseded":
        log(
            session,
            SYSTEM,
            "case.superseded",
            case_id=c.case_id,
            run_id=c.run_id,
            reason="被新一轮评分取代",
            detail={"from": "new", "to": "superseded"},
        )
    if c.status == "review":
        fb = Feedback(
            case_id=c.case_id,
            outcome="adjusted",
            measure_taken="assessment",
            tax_recovered=1_100_000.0,
            late_fees=55_000.0,
            penalties=0.0,
            notes="约谈举证后补缴增值税",
            covers_from="2025-01",
            covers_to="2025-12",
            submitted_by=sel01.name,
            submitted_at=now,
            status="pending",
        )
        session.add(fb)
        log(
            session,
            sel01,
            "case.feedback",
            case_id=c.case_id,
            detail={
                "from": "in_progress",
                "to": "review",
                "outcome": "adjusted",
                "total": 1_155_000.0,
            },
        )
    if c.status == "closed":
        adjusted = c.rank % 2 == 1
        fb = Feedback(
            case_id=c.case_id,
            outcome="adjusted" if adjusted else "no_change",
            measure_taken="assessment",
            tax_recovered=86_000.0 if adjusted else 0.0,
            late_fees=4_300.0 if adjusted else 0.0,
            penalties=0.0,
            notes="核实少计收入,已补税" if adjusted else "经核实无问题",
            covers_from="2025-01",
            covers_to="2025-12",
            submitted_by=admin.name,
            submitted_at=now,
            status="accepted",
        )
        session.add(fb)
        log(
            session,
            admin,
            "case.feedback",
            case_id=c.case_id,
            detail={
                "from": "in_progress",
                "to": "closed",
                "outcome": fb.outcome,
                "total": fb.tax_recovered + fb.late_fees + fb.penalties,
            },
        )
