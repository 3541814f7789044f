"""A scoring run: score every active taxpayer, dispatch the cases, publish it all at once.

:func:`run_scoring` is what ``taxrisk score`` does (CONTRACT section 2):

1. load the data folder (validated, point in time) and fingerprint its files;
2. load the champion (or ``--model URI``) and build the feature matrix as of the date;
3. predict P(adjusted), the amount and the expected yield; levels and measures
   (:mod:`taxrisk.serving.scoring`);
4. route every taxpayer (:mod:`taxrisk.serving.routing`) and allocate the cases within each
   unit's capacity, with the exploration share and the overflow to lighter measures
   (:mod:`taxrisk.serving.dispatch`);
5. explain, per indicator and in yuan, every dispatched case and the ranks near the cut
   (:mod:`taxrisk.serving.explain`);
6. monitoring: PSI of every feature and of the score against the previous run and the
   model's training data, selection rates (:mod:`taxrisk.serving.monitoring`);
7. **publish**: the run's Parquet files are written to ``runs/<run_id>.partial/`` and renamed
   to ``runs/<run_id>/``; then ONE database transaction writes the units, the run, its units,
   the superseded cases, the new cases with their indicators and the action-log entries, and
   commits. Killed at any point before the commit, the run publishes nothing: no row refers to
   it and the previous run stays current (a folder left without its row is removed by the
   next run). Logging to MLflow comes after the commit and cannot unpublish a run.

Re-running the same as-of with the same model creates no duplicate case (a taxpayer that
already has a case for that as-of and model version is skipped). A run supersedes an earlier
dispatch's open case only while the case is in a state of ``[supersede].states`` (default
``new``: nobody has touched it); a case already being worked on is kept, and its taxpayer is
not dispatched again while it is open.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, select, update

from taxrisk.progress import ProgressFn, report

from .config import ServingConfig, config_for
from .errors import RunNotFound, ScoringError
from .explain import TAIL_ITEM
from .store import action_log
from .store.action_log import Actor
from .store.models import OPEN_STATES, Case, CaseIndicator, RunUnit, ScoringRun, Unit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from taxrisk.training.tracking import LoadedModel

    from taxrisk.settings import Settings


__all__ = [
    "RunResult",
    "current_run",
    "data_fingerprint",
    "explain_taxpayer",
    "overflow_rules",
    "route_candidates",
    "run_scoring",
]

log = logging.getLogger(__name__)

#: table files of a data folder that the fingerprint covers
_TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class RunResult:
    """What a published run produced (the ranking in memory, the rest in the store)."""

    run_id: str
    as_of: dt.date
    model_uri: str
    model_version: str | None
    counts: dict[str, int]
    timings: dict[str, float]
    ranking: pd.DataFrame
    units: pd.DataFrame
    run_dir: Path


def data_fingerprint(data_dir: Path) -> str:
    """SHA-256 over the data folder's table files: relative path, size and modification time.

    Contents are not hashed (a 1M-taxpayer folder holds gigabytes); any rewrite of a file
    changes its modification time. ``truth/`` is not a table and is left out.
    """
    h = hashlib.sha256()
    for p in sorted(Path(data_dir).rglob("*")):
        rel = p.relative_to(data_dir)
        if not p.is_file() or p.suffix not in _TABLE_SUFFIXES or rel.parts[0] == "truth":
            continue
        st = p.stat()
        h.update(f"{rel.as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _runs_dir(settings: Settings) -> Path:
    return settings.root / "runs"


class _Clock:
    """Stage timings (seconds): each :meth:`stage` call ends the previous stage."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._current: str | None = None
        self._t = self.t0 = time.perf_counter()

    def stage(self, name: str | None) -> None:
        now = time.perf_counter()
        if self._current is not None:
            self.timings[self._current] = round(now - self._t, 3)
        self._current, self._t = name, now
        if name is not None:
            log.info("scoring run: %s", name)

    def done(self) -> dict[str, float]:
        self.stage(None)
        self.timings["total"] = round(time.perf_counter() - self.t0, 3)
        return dict(self.timings)


def _load_model(settings: Settings, model_uri: str | None) -> LoadedModel:
    from taxrisk.training import tracking

    if model_uri:
        return tracking.load_yield_model(model_uri, settings.tracking_uri)
    return tracking.load_champion(settings)


def _training_reference(settings: Settings, model: LoadedModel) -> pd.DataFrame | None:
    """The model's training examples' features (an MLflow artifact), cached in the workspace."""
    from taxrisk.training.tracking import TRAINING_MATRIX

    if model.run_id is None:
        return None
    cache = settings.root / "cache" / "reference" / f"{model.run_id}.parquet"
    if not cache.exists():
        try:
            import mlflow

            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            mlflow.set_tracking_uri(settings.tracking_uri)
            got = mlflow.artifacts.download_artifacts(
                run_id=model.run_id, artifact_path=TRAINING_MATRIX
            )
        except Exception as exc:  # an older model without the artifact: no reference
            log.warning("no training reference for run %s: %s", model.run_id, exc)
            return None
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(got, cache)
    return pd.read_parquet(cache)


def current_run(session: Session) -> Any:
    """The current scoring run (the latest published), or None."""
    return session.scalars(
        select(ScoringRun).order_by(ScoringRun.published_at.desc()).limit(1)
    ).first()


def _remove_orphans(session: Session, runs_dir: Path) -> None:
    """Folders of runs that never published (killed before their commit)."""
    if not runs_dir.exists():
        return
    published = set(session.scalars(select(ScoringRun.run_id)))
    for d in runs_dir.iterdir():
        name = d.name.removesuffix(".partial")
        if d.is_dir() and name not in published:
            shutil.rmtree(d, ignore_errors=True)


def _case_id(as_of: dt.date, taxpayer_id: str, version: str) -> str:
    return f"C{as_of:%Y%m%d}-{taxpayer_id}-v{version}"


def run_scoring(
    settings: Settings,
    data_dir: Path,
    as_of: dt.date,
    *,
    model_uri: str | None = None,
    config: ServingConfig | None = None,
    actor: Actor | None = None,
    progress: ProgressFn | None = None,
    matrix: pd.DataFrame | None = None,
) -> RunResult:
    """Score, dispatch and publish one run (see the module docstring). Returns the result.

    ``matrix``: the feature matrix as of ``as_of`` when already built (benchmarks); by default
    it is built from the data folder.
    """
    from taxrisk.features.loading import load_validated
    from taxrisk.features.matrix import build_matrix
    from taxrisk.features.tables import connect

    from . import dispatch, explain, monitoring, routing
    from .scoring import score_matrix
    from .store.session import make_engine, session_factory, upgrade

    cfg = config or config_for(settings)
    actor = actor or Actor("taxrisk score", "system")
    settings.ensure_workspace()
    data_dir = Path(data_dir).resolve()
    clock = _Clock()
    started = _now()
    run_id = f"R{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"

    clock.stage("load")
    report(progress, "load data folder", 0, 1)
    fingerprint = data_fingerprint(data_dir)
    loaded = load_validated(
        data_dir,
        snapshots=settings.snapshots_dir,
        con=connect(settings),
        as_of=as_of,
        progress=progress,
    )
    tables = loaded.tables
    model = _load_model(settings, model_uri)
    version = model.version or "unregistered"

    clock.stage("features")
    spark = None
    if matrix is None and settings.engine == "spark":
        # features, predictions, ranking and the top contributions on Spark (docs/spark.md)
        from .spark_scoring import score_run_on_spark

        spark = score_run_on_spark(settings, loaded, as_of, model.model, cfg, run_id)
        matrix, ranking = spark.matrix, spark.ranking
    elif matrix is None:
        matrix = build_matrix(tables, as_of, progress=progress)
    if matrix.empty:
        raise ScoringError(f"no active taxpayer at {as_of}: nothing to score")
    matrix.index = matrix.index.astype("str")

    clock.stage("predict")
    report(progress, "predict", 0, 1)
    if spark is None:
        ranking = score_matrix(model.model, matrix, cfg)
    report(progress, "predict", 1, 1)

    clock.stage("allocation")
    units = tables["units"].to_pandas()
    units["unit_id"] = units["unit_id"].astype("str")
    engine = make_engine(settings)
    try:
        upgrade(engine)
        factory = session_factory(engine)
        with factory() as s:
            busy = _busy_taxpayers(s, as_of, version, cfg)
            used = _used_capacity(s, as_of, version)
            _remove_orphans(s, _runs_dir(settings))
        # this cycle's room: a re-run of the same as-of and model only fills what is left
        room = units[["unit_id", "capacity", "level"]].copy()
        room["capacity"] = (
            room["capacity"].astype(int) - room["unit_id"].map(used).fillna(0).astype(int)
        ).clip(lower=0)
        cross = routing.cross_county(
            tables, as_of, matrix, min_share=cfg.routing.cross_county_share
        )
        candidates = routing.candidate_frame(ranking, matrix, cross)
        candidates["measure"] = ranking["recommended_measure"].to_numpy()
        candidates = candidates[~candidates["taxpayer_id"].isin(busy)].reset_index(drop=True)
        routed = route_candidates(candidates, units, cfg)
        alloc = dispatch.allocate(
            routed,
            room,
            exploration_share=cfg.dispatch.exploration_share,
            seed=cfg.dispatch.seed,
            exploration_measure="assessment",
            **overflow_rules(cfg),
        )
        cases = alloc.cases.copy()
        cases["taxpayer_id"] = cases["taxpayer_id"].astype("str")

        clock.stage("contributions")
        k = int(units["capacity"].sum())
        near = ranking.loc[ranking["rank"] <= k + cfg.dispatch.explain_beyond_cut, "taxpayer_id"]
        dispatched = cases.loc[cases["selection"].isin(["model", "exploration"]), "taxpayer_id"]
        to_explain = pd.Index(pd.concat([dispatched, near]).unique())
        report(progress, "contributions", 0, len(to_explain))
        if spark is not None:  # computed on Spark for the top ranks; the rest here
            expl = spark.explanation(model.model, matrix, to_explain)
        else:
            expl = explain.contributions(model.model, matrix.loc[to_explain])
        report(progress, "contributions", len(to_explain), len(to_explain))

        clock.stage("monitoring")
        score = ranking.set_index("taxpayer_id")["expected_yield"]
        profile = {"features": monitoring.profile(matrix), "score": monitoring.profile(score)}
        selected = pd.Series(matrix.index.isin(dispatched), index=matrix.index)
        mon = _monitoring(settings, factory, model, matrix, score, selected)

        clock.stage("write")
        run_dir = _runs_dir(settings) / run_id
        partial = run_dir.with_name(run_id + ".partial")
        partial.mkdir(parents=True)
        ranking.to_parquet(partial / "ranking.parquet", index=False)
        matrix.sort_index().to_parquet(partial / "matrix.parquet", row_group_size=10_000)
        expl.items.to_parquet(partial / "contributions.parquet", index=False)
        expl.base.to_parquet(partial / "contribution_base.parquet")
        (partial / "profile.json").write_text(json.dumps(profile), encoding="utf-8")
        partial.rename(run_dir)

        clock.stage("publish")
        names = (
            tables["taxpayers"]
            .select("taxpayer_id", "name", "industry", "taxpayer_type")
            .to_pandas()
            .astype({"taxpayer_id": "str"})
            .set_index("taxpayer_id")
        )
        with factory() as s, s.begin():
            counts = _publish(
                s,
                run_id=run_id,
                as_of=as_of,
                model=model,
                version=version,
                data_dir=data_dir,
                fingerprint=fingerprint,
                cfg=cfg,
                actor=actor,
                started=started,
                units=units,
                alloc=alloc,
                cases=cases,
                ranking=ranking,
                matrix=matrix,
                expl=expl,
                names=names,
                monitoring=mon,
                artifacts={
                    n: f"runs/{run_id}/{n}"
                    for n in (
                        "ranking.parquet",
                        "matrix.parquet",
                        "contributions.parquet",
                        "contribution_base.parquet",
                        "profile.json",
                    )
                },
                n_scored=len(ranking),
                n_busy=len(busy),
                progress=progress,
            )
            timings = clock.done()
            s.execute(update(ScoringRun).where(ScoringRun.run_id == run_id).values(timings=timings))
            log.info("scoring run: publishing %s: rows written, committing", run_id)
            if os.environ.get("TAXRISK_SLOW_PUBLISH"):  # fault injection for the kill test only
                time.sleep(float(os.environ["TAXRISK_SLOW_PUBLISH"]))
        _log_to_mlflow(settings, run_id, as_of, version, counts, timings, mon)
        return RunResult(
            run_id,
            as_of,
            model.resolved_uri,
            model.version,
            counts,
            timings,
            ranking,
            alloc.units,
            run_dir,
        )
    finally:
        engine.dispose()


def _busy_taxpayers(session: Session, as_of: dt.date, version: str, cfg: ServingConfig) -> set[str]:
    """Taxpayers this run must not dispatch: a case for the same as-of and model version
    exists (any state: a re-run), or an open case a new run may not supersede."""
    rows = session.execute(
        select(Case.taxpayer_id, Case.as_of, Case.model_version, Case.status)
    ).all()
    out: set[str] = set()
    for tid, c_as_of, c_version, status in rows:
        same = c_as_of == as_of and c_version == version
        kept = status in OPEN_STATES and status not in cfg.supersede.states
        if same or kept:
            out.add(str(tid))
    return out


def route_candidates(
    candidates: pd.DataFrame, units: pd.DataFrame, cfg: ServingConfig
) -> pd.DataFrame:
    """:func:`~taxrisk.serving.routing.route` with the ``[routing]`` rules of ``cfg``."""
    from . import routing

    return routing.route(
        candidates,
        units,
        key_line=cfg.routing.key_taxpayer_line,
        complex_fired=cfg.routing.complex_fired,
        escalation_line=cfg.routing.complex_yield,
        city_fallback=cfg.routing.city_fallback,
    )


def overflow_rules(cfg: ServingConfig) -> dict[str, Any]:
    """The ``[measures]`` keyword arguments of :func:`~taxrisk.serving.dispatch.allocate` and
    :func:`~taxrisk.serving.dispatch.greedy`: which measures take capacity, and what each
    becomes when no unit has room."""
    return {
        "officer_measures": cfg.measures.needs_officer,
        "lighter": {str(k): str(v) for k, v in cfg.measures.overflow.items()},
    }


def _used_capacity(session: Session, as_of: dt.date, version: str) -> dict[str, int]:
    """Cases per unit already dispatched in this cycle (same as-of and model version) that
    take an officer's time (model and exploration selections, not superseded)."""
    from sqlalchemy import func

    rows = session.execute(
        select(Case.unit_id, func.count())
        .where(
            Case.as_of == as_of,
            Case.model_version == version,
            Case.selection.in_(["model", "exploration"]),
            Case.status != "superseded",
        )
        .group_by(Case.unit_id)
    ).all()
    return {str(u): int(n) for u, n in rows}


def _monitoring(
    settings: Settings,
    factory: Any,
    model: LoadedModel,
    matrix: pd.DataFrame,
    score: pd.Series,
    selected: pd.Series,
) -> dict[str, Any]:
    """PSI of every feature and of the score (expected yield) against the previous run and
    against the model's training examples, and the selection rates of this run."""
    from . import monitoring

    out: dict[str, Any] = {}
    with factory() as s:
        prev = current_run(s)
    if prev is not None:
        path = settings.root / str(prev.artifacts.get("profile.json", ""))
        if path.is_file():
            ref = json.loads(path.read_text(encoding="utf-8"))
            out["vs_previous"] = _psi_summary(monitoring.psi(ref["features"], matrix), prev.run_id)
            out["score_psi_vs_previous"] = _score_psi(monitoring.psi(ref["score"], score))
    ref_matrix = _training_reference(settings, model)
    if ref_matrix is not None:
        ref = monitoring.profile(ref_matrix)
        out["vs_training"] = _psi_summary(monitoring.psi(ref, matrix), model.run_id)
        ref_score = model.model.predict(ref_matrix, allow_extra=True)["expected_yield"]
        out["score_psi_vs_training"] = _score_psi(
            monitoring.psi(monitoring.profile(ref_score.rename(score.name)), score)
        )
    rates = monitoring.selection_rates(matrix, selected)
    out["selection_rates"] = json.loads(rates.to_json(orient="records", force_ascii=False))
    return out


def _score_psi(table: pd.DataFrame) -> float:
    return round(float(table["psi"].iloc[0]), 6) if len(table) else float("nan")


def _psi_summary(table: pd.DataFrame, against: str | None) -> dict[str, Any]:
    t = table.dropna(subset=["psi"]).sort_values("psi", ascending=False)
    return {
        "against": against,
        "features": len(t),
        "moderate": int(((t["psi"] >= 0.1) & (t["psi"] < 0.25)).sum()),
        "shifted": int((t["psi"] >= 0.25).sum()),
        "psi": {str(r.feature): round(float(r.psi), 6) for r in t.itertuples()},
    }


def _publish(session: Session, **kw: Any) -> dict[str, int]:
    """Everything of one run, in the caller's transaction."""
    s = session
    now = _now()
    cfg: ServingConfig = kw["cfg"]
    as_of: dt.date = kw["as_of"]
    version: str = kw["version"]
    actor = kw["actor"]
    run_id: str = kw["run_id"]
    units: pd.DataFrame = kw["units"]
    # units: the data folder's hierarchy, upserted
    existing = {u.unit_id: u for u in s.scalars(select(Unit))}
    for r in units.itertuples(index=False):
        values = {
            "parent_id": None if pd.isna(r.parent_id) else str(r.parent_id),
            "level": str(r.level),
            "name": str(r.name),
            "capacity": int(r.capacity),
        }
        if r.unit_id in existing:
            for key, v in values.items():
                setattr(existing[r.unit_id], key, v)
        else:
            s.add(Unit(unit_id=r.unit_id, **values))
    s.flush()
    # supersede: open cases of earlier dispatches still in a supersede state
    stale = s.scalars(
        select(Case).where(
            Case.status.in_(cfg.supersede.states),
            ~((Case.as_of == as_of) & (Case.model_version == version)),
        )
    ).all()
    superseded = []
    for c in stale:
        c.status, c.updated_at = "superseded", now
        superseded.append(
            action_log.Entry(
                "case.superseded",
                case_id=c.case_id,
                run_id=run_id,
                reason=f"superseded by run {run_id} (rule [supersede].states = "
                f"{list(cfg.supersede.states)}: untouched cases of an earlier dispatch)",
            )
        )
    action_log.append_many(s, actor, superseded, at=now)
    cases: pd.DataFrame = kw["cases"]
    ranking: pd.DataFrame = kw["ranking"].set_index("taxpayer_id")
    names: pd.DataFrame = kw["names"]
    c = cases[cases["selection"].isin(["model", "exploration", "overflow"])].copy()
    r = ranking.reindex(c["taxpayer_id"])
    nm = names.reindex(c["taxpayer_id"])
    expl = kw["expl"]
    base = expl.base["base_yield"] if len(expl.base) else pd.Series(dtype=float)
    # the measure the case asks for: the recommended one, lighter for an overflow, and an
    # assessment for an exploration case (a random sample is unbiased only if it is examined)
    measure = c["measure"].to_numpy()
    limits = cfg.time_limits
    ids = [_case_id(as_of, t, version) for t in c["taxpayer_id"]]
    rows = [
        {
            "case_id": cid,
            "run_id": run_id,
            "as_of": as_of,
            "model_version": version,
            "taxpayer_id": tid,
            "taxpayer_name": "" if pd.isna(name) else str(name),
            "industry": None if pd.isna(ind) else str(ind),
            "taxpayer_type": None if pd.isna(tt) else str(tt),
            "managing_unit_id": str(mu),
            "unit_id": str(unit),
            "route_reason": str(reason),
            "selection": str(sel),
            "selection_probability": None if pd.isna(prob) else float(prob),
            "rank": int(rank),
            "risk_score": float(p),
            "expected_amount": float(amt),
            "expected_yield": float(ey),
            "risk_level": str(lv),
            "recommended_measure": str(ms),
            "base_yield": float(base[tid]) if tid in base.index else None,
            "status": "new",
            "due_on": as_of + dt.timedelta(days=limits[ms]),  # type: ignore[index]
            "created_at": now,
            "updated_at": now,
        }
        for cid, tid, name, ind, tt, mu, unit, reason, sel, prob, rank, p, amt, ey, lv, ms in zip(
            ids,
            c["taxpayer_id"],
            nm["name"],
            nm["industry"],
            nm["taxpayer_type"],
            r["unit_id"],
            c["unit_id"],
            c["route_reason"],
            c["selection"],
            c["selection_probability"],
            r["rank"],
            r["risk_score"],
            r["expected_amount"],
            r["expected_yield"],
            r["risk_level"],
            measure,
            strict=True,
        )
    ]
    s.add(
        ScoringRun(
            run_id=run_id,
            as_of=as_of,
            model_uri=kw["model"].resolved_uri,
            model_version=version,
            data_dir=str(kw["data_dir"]),
            data_fingerprint=kw["fingerprint"],
            config_version=cfg.version,
            started_at=kw["started"],
            published_at=now,
            created_by=actor.name,
            counts={},
            timings={},
            monitoring=kw["monitoring"],
            artifacts=kw["artifacts"],
        )
    )
    s.flush()
    total = len(rows)
    chunk = 5000
    for i in range(0, total, chunk):
        s.execute(insert(Case), rows[i : i + chunk])
        report(kw["progress"], "publish cases", min(i + chunk, total), total)
    ind_rows = _indicator_rows(
        kw["matrix"], expl, dict(zip(c["taxpayer_id"], ids, strict=True)), cfg.dispatch.top_items
    )
    for i in range(0, len(ind_rows), 20000):
        s.execute(insert(CaseIndicator), ind_rows[i : i + 20000])
    au = kw["alloc"].units
    full = units.set_index("unit_id")["capacity"].astype(int)
    over = c.loc[c["selection"] == "overflow", "unit_id"].value_counts()
    s.execute(
        insert(RunUnit),
        [
            {
                "run_id": run_id,
                "unit_id": str(u.unit_id),
                "capacity": int(full.get(u.unit_id, u.capacity)),
                "assigned": int(u.assigned) + int(u.exploration),
                "exploration": int(u.exploration),
                "overflow": int(over.get(u.unit_id, 0)),
                "expected_yield": float(u.assigned_yield),
                "shadow_price": 0.0 if pd.isna(u.shadow_price) else float(u.shadow_price),
            }
            for u in au.itertuples(index=False)
        ],
    )
    counts = {
        "scored": int(kw["n_scored"]),
        "cases": total,
        "model": int((c["selection"] == "model").sum()),
        "exploration": int((c["selection"] == "exploration").sum()),
        "overflow": int((c["selection"] == "overflow").sum()),
        "superseded": len(stale),
        "busy": int(kw["n_busy"]),
        "capacity": int(units["capacity"].sum()),
    }
    s.execute(update(ScoringRun).where(ScoringRun.run_id == run_id).values(counts=counts))
    # the log: one entry per case that takes an officer's time, and one for the run that
    # fixes the whole list (overflow letters included) by a digest
    action_log.append_many(
        s,
        actor,
        [
            action_log.Entry(
                "case.dispatched",
                case_id=row["case_id"],
                run_id=run_id,
                detail={
                    "unit_id": row["unit_id"],
                    "selection": row["selection"],
                    "measure": row["recommended_measure"],
                    "selection_probability": row["selection_probability"],
                },
            )
            for row in rows
            if row["selection"] != "overflow"
        ],
        at=now,
    )
    digest = hashlib.sha256(
        "\n".join(
            f"{row['case_id']}\t{row['unit_id']}\t{row['recommended_measure']}" for row in rows
        ).encode()
    ).hexdigest()
    action_log.append(
        s,
        actor,
        "run.published",
        run_id=run_id,
        detail={
            "counts": counts,
            "cases_sha256": digest,
            "config_version": cfg.version,
            "model_version": version,
            "as_of": as_of.isoformat(),
        },
    )
    return counts


def _indicator_rows(
    matrix: pd.DataFrame, expl: Any, case_of: dict[str, str], top: int
) -> list[dict[str, Any]]:
    """Per case: every fired indicator, plus the ``top`` largest other contributions; ordered
    by descending |contribution| (fired first, catalog order, among equals). Vectorised: a
    1M-taxpayer run has tens of thousands of cases and ~220 items each."""
    from taxrisk.features.catalog import CATALOG

    ids = pd.Index(list(case_of), dtype="str")
    m = matrix.loc[ids]
    flags = [i for i in CATALOG if f"{i}__fired" in m.columns]
    on = m[[f"{i}__fired" for i in flags]].fillna(0).to_numpy() == 1
    r, c = np.nonzero(on)
    fired = pd.DataFrame(
        {"taxpayer_id": ids[r], "item": np.asarray(flags, dtype=object)[c], "fired": True}
    )
    items = expl.items
    items = items.loc[items["taxpayer_id"].isin(ids), ["taxpayer_id", "item", "yuan"]]
    items = items.astype({"taxpayer_id": "str", "item": "str"})
    fired = fired.astype({"taxpayer_id": "str", "item": "str"})
    fired = fired.merge(items, on=["taxpayer_id", "item"], how="left")
    others = items.merge(
        fired[["taxpayer_id", "item", "fired"]], how="left", on=["taxpayer_id", "item"]
    )
    others = others[others["fired"].isna()].assign(fired=False)
    others = others.assign(_abs=others["yuan"].abs()).sort_values(
        ["taxpayer_id", "_abs"], ascending=[True, False], kind="stable"
    )
    others = others.groupby("taxpayer_id", sort=False).head(top).drop(columns="_abs")
    sel = pd.concat([fired, others], ignore_index=True)
    sel["_abs"] = sel["yuan"].abs().fillna(0.0)
    sel = sel.sort_values(["taxpayer_id", "_abs"], ascending=[True, False], kind="stable")
    sel["position"] = sel.groupby("taxpayer_id", sort=False).cumcount()
    numeric = [c for c, t in m.dtypes.items() if pd.api.types.is_numeric_dtype(t)]
    values = m[numeric].to_numpy(dtype="float64", na_value=np.nan)
    cols = pd.Index(numeric)
    row = ids.get_indexer(sel["taxpayer_id"])

    def lookup(names: pd.Series) -> np.ndarray:
        pos = cols.get_indexer(names)
        out = np.full(len(names), np.nan)
        ok = pos >= 0
        out[ok] = values[row[ok], pos[ok]]
        return out

    value = lookup(sel["item"])
    pct = lookup(sel["item"] + "__pct")
    frame = pd.DataFrame(
        {
            "case_id": sel["taxpayer_id"].map(case_of).to_numpy(),
            "item": sel["item"].to_numpy(),
            "position": sel["position"].to_numpy(),
            "kind": np.select(
                [sel["item"].isin(list(CATALOG)), sel["item"] == TAIL_ITEM],
                ["indicator", "prior"],
                "feature",
            ),
            "fired": sel["fired"].astype(bool).to_numpy(),
            "value": np.where(np.isfinite(value), value, np.nan),
            "percentile": pct,
            "contribution": sel["yuan"].to_numpy(dtype="float64"),
        }
    )
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def _log_to_mlflow(
    settings: Settings,
    run_id: str,
    as_of: dt.date,
    version: str,
    counts: dict[str, int],
    timings: dict[str, float],
    mon: dict[str, Any],
) -> None:
    """The run's counts, timings and monitoring as an MLflow run (experiment ``<name>-scoring``).

    After the commit: a failure here is logged and does not unpublish the run.
    """
    try:
        import mlflow

        mlflow.set_tracking_uri(settings.tracking_uri)
        name = f"{settings.experiment}-scoring"
        exp = mlflow.get_experiment_by_name(name)
        exp_id = (
            exp.experiment_id
            if exp
            else mlflow.create_experiment(name, artifact_location=settings.artifacts_dir.as_uri())
        )
        with mlflow.start_run(experiment_id=exp_id, run_name=run_id):
            mlflow.set_tags(
                {"scoring_run": run_id, "as_of": as_of.isoformat(), "model_version": version}
            )
            mlflow.log_metrics({f"count_{k}": float(v) for k, v in counts.items()})
            mlflow.log_metrics({f"seconds_{k}": float(v) for k, v in timings.items()})
            for key in ("vs_previous", "vs_training"):
                if key in mon:
                    mlflow.log_metric(f"psi_{key}_shifted", float(mon[key]["shifted"]))
            for key in ("score_psi_vs_previous", "score_psi_vs_training"):
                if key in mon:
                    mlflow.log_metric(key, float(mon[key]))
            mlflow.log_dict(mon, "monitoring.json")
    except Exception as exc:
        log.warning("scoring run %s: not logged to MLflow: %s", run_id, exc)


def explain_taxpayer(session: Session, settings: Settings, taxpayer_id: str) -> dict[str, Any]:
    """The latest score and explanation of one taxpayer (on demand, TreeSHAP on one row).

    From the current run: its ranking row, and the contributions computed in bulk when the
    taxpayer was near the cut, else computed now from the run's stored matrix with the run's
    model. Raises :class:`RunNotFound` without a run, ``KeyError`` for an unknown taxpayer.
    """
    from taxrisk.training.tracking import load_yield_model

    from . import explain

    run = current_run(session)
    if run is None:
        raise RunNotFound("no scoring run has been published yet (run `taxrisk score`)")
    tid = str(taxpayer_id)
    root = settings.root
    ranking = pd.read_parquet(
        root / run.artifacts["ranking.parquet"], filters=[("taxpayer_id", "==", tid)]
    )
    if ranking.empty:
        raise KeyError(f"taxpayer {tid!r} was not scored in run {run.run_id}")
    row = pd.read_parquet(
        root / run.artifacts["matrix.parquet"], filters=[("taxpayer_id", "==", tid)]
    )
    row.index = row.index.astype("str")
    model = _cached_model(run.model_uri, settings.tracking_uri, load_yield_model)
    expl = explain.contributions(model.model, row)
    table = explain.indicator_table(row, expl, tid, "zh", top=10)
    base = expl.base.iloc[0]
    return {
        "taxpayer_id": tid,
        "run_id": run.run_id,
        "as_of": run.as_of.isoformat(),
        "model_version": run.model_version,
        "score": json.loads(ranking.iloc[0].to_json()),
        "base_yield": float(base["base_yield"]),
        "expected_yield": float(base["expected_yield"]),
        "indicators": json.loads(table.to_json(orient="records", force_ascii=False)),
    }


_MODELS: dict[str, Any] = {}


def _cached_model(uri: str, tracking_uri: str, loader: Callable[[str, str], Any]) -> Any:
    """Models loaded once per process (loading from MLflow takes about a second)."""
    key = f"{tracking_uri}|{uri}"
    if key not in _MODELS:
        _MODELS[key] = loader(uri, tracking_uri)
    return _MODELS[key]
