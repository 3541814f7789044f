"""Scoring runs end to end on the demo world: publish, dispatch within capacity, explain,
re-run without duplicates, supersede by the rule, publish nothing when killed, and feed the
closed cases back as the next round's labels."""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

AS_OF = dt.date(2025, 12, 31)
EARLIER = dt.date(2025, 9, 30)

pytestmark = pytest.mark.slow


def _settings():  # type: ignore[no-untyped-def]
    from taxrisk.settings import get_settings

    return get_settings()


@contextmanager
def _session(settings):  # type: ignore[no-untyped-def]
    """A session on the settings' store; the engine is disposed afterwards (PostgreSQL
    connections must not outlive the test)."""
    from taxrisk.serving.store.session import make_engine, session_factory, upgrade

    engine = make_engine(settings)
    try:
        upgrade(engine)
        with session_factory(engine)() as s:
            yield s
    finally:
        engine.dispose()


def test_run_publishes_cases_within_capacity(
    demo_world: Path, scoring_env: Path, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite and on PostgreSQL (``store_url`` is parametrized over both)."""
    from taxrisk.features.catalog import CATALOG
    from taxrisk.serving.runs import current_run, run_scoring
    from taxrisk.serving.store.models import Action, Case, CaseIndicator, RunUnit, ScoringRun

    monkeypatch.setenv("TAXRISK_DATABASE_URL", store_url)
    settings = _settings()
    result = run_scoring(settings, demo_world, AS_OF)
    units = pd.read_parquet(demo_world / "units.parquet")
    with _session(settings) as s:
        run = current_run(s)
        assert run is not None and run.run_id == result.run_id
        assert run.data_fingerprint and len(run.data_fingerprint) == 64
        assert run.model_version == result.model_version == "1"
        assert run.counts["scored"] == len(result.ranking)
        assert {"load", "features", "predict", "contributions", "allocation", "total"} <= set(
            run.timings
        )
        cases = s.scalars(select(Case)).all()
        assert cases and len({c.taxpayer_id for c in cases}) == len(cases)  # 按户归集
        taken = [c for c in cases if c.selection in ("model", "exploration")]
        per_unit = pd.Series([c.unit_id for c in taken]).value_counts()
        cap = units.set_index("unit_id")["capacity"]
        assert (per_unit <= cap.reindex(per_unit.index)).all(), "a unit got more than capacity"
        assert len(taken) == min(int(cap.sum()), len(result.ranking))
        # exploration: drawn at random with the inclusion probability recorded
        explore = [c for c in taken if c.selection == "exploration"]
        assert explore and all(0 < c.selection_probability <= 1 for c in explore)
        assert all(c.selection_probability is None for c in taken if c.selection == "model")
        # overflow: lighter measures, never silently dropped
        over = [c for c in cases if c.selection == "overflow"]
        assert all(c.recommended_measure in ("notice", "outreach") for c in over)
        ru = s.scalars(select(RunUnit).where(RunUnit.run_id == run.run_id)).all()
        assert {u.unit_id for u in ru} == set(units["unit_id"].astype(str))
        assert all(u.assigned <= u.capacity and u.shadow_price >= 0 for u in ru)
        # every dispatched case explained per indicator, contributions + base = expected yield
        for c in taken[:30]:
            rows = s.scalars(select(CaseIndicator).where(CaseIndicator.case_id == c.case_id)).all()
            assert rows, c.case_id
            assert all(r.contribution is not None for r in rows)
            assert all(r.item in CATALOG for r in rows if r.kind == "indicator")
            assert c.base_yield is not None and c.base_yield > 0
        # every fired indicator of a case is among its indicators
        matrix = pd.read_parquet(scoring_env / run.artifacts["matrix.parquet"])
        c = taken[0]
        fired = (
            {i for i in CATALOG if matrix.at[c.taxpayer_id, f"{i}__fired"] == 1}
            if f"{next(iter(CATALOG))}__fired" in matrix.columns
            else set()
        )
        got = {r.item for r in c.indicators if r.fired}
        assert fired <= got | {i for i in fired if f"{i}__fired" not in matrix.columns}
        # the log: one entry per dispatched case, and the run
        n_log = s.scalar(select(func.count()).select_from(Action))
        assert n_log == len(taken) + 1
        assert s.scalar(select(func.count()).select_from(ScoringRun)) == 1


def test_rerun_same_as_of_creates_no_duplicate(demo_world: Path, scoring_env: Path) -> None:
    from taxrisk.serving.runs import run_scoring
    from taxrisk.serving.store.models import Case, ScoringRun

    settings = _settings()
    first = run_scoring(settings, demo_world, AS_OF)
    second = run_scoring(settings, demo_world, AS_OF)
    with _session(settings) as s:
        assert s.scalar(select(func.count()).select_from(ScoringRun)) == 2
        n = s.scalar(select(func.count()).select_from(Case))
        assert n == first.counts["cases"]
        assert second.counts["cases"] == 0 and second.counts["superseded"] == 0
        # the second run compares itself with the first: same data, no shift
        run2 = s.get(ScoringRun, second.run_id)
        assert run2.monitoring["vs_previous"]["shifted"] == 0
        assert run2.monitoring["score_psi_vs_previous"] < 0.01


def test_new_as_of_supersedes_untouched_cases_only(demo_world: Path, scoring_env: Path) -> None:
    from taxrisk.serving.runs import run_scoring
    from taxrisk.serving.store import cases as svc
    from taxrisk.serving.store.action_log import Actor
    from taxrisk.serving.store.models import Action, Case

    settings = _settings()
    run_scoring(settings, demo_world, EARLIER)
    admin = Actor("boss", "admin")
    with _session(settings) as s:
        first = s.scalars(select(Case).where(Case.selection == "model").order_by(Case.rank)).all()
        worked = first[0]
        svc.assign(s, admin, worked.case_id, "officer li")
        s.commit()
        worked_id, worked_tp = worked.case_id, worked.taxpayer_id
        untouched = {c.case_id for c in first[1:]}
    later = run_scoring(settings, demo_world, AS_OF)
    with _session(settings) as s:
        assert s.get(Case, worked_id).status == "assigned"  # kept: somebody works on it
        states = {
            c.case_id: c.status for c in s.scalars(select(Case).where(Case.case_id.in_(untouched)))
        }
        assert set(states.values()) == {"superseded"}
        assert later.counts["superseded"] >= len(untouched)
        # the worked taxpayer is not dispatched again while its case is open
        again = s.scalars(
            select(Case).where(Case.taxpayer_id == worked_tp, Case.run_id == later.run_id)
        ).all()
        assert again == []
        reasons = s.scalars(select(Action.reason).where(Action.action == "case.superseded"))
        assert all("supersede" in r for r in reasons)


def test_killed_run_publishes_nothing(demo_world: Path, scoring_env: Path) -> None:
    """A real `taxrisk score` process, SIGKILLed inside its publishing transaction."""
    from taxrisk.serving.runs import current_run, run_scoring
    from taxrisk.serving.store.models import Case, CaseIndicator, ScoringRun

    settings = _settings()
    previous = run_scoring(settings, demo_world, EARLIER)
    with _session(settings) as s:
        n_cases = s.scalar(select(func.count()).select_from(Case))
        n_ind = s.scalar(select(func.count()).select_from(CaseIndicator))
    # TAXRISK_SLOW_PUBLISH (runs.py) holds the open transaction for 30 s once its rows are in
    env = dict(os.environ, TAXRISK_SLOW_PUBLISH="30")
    exe = str(Path(sys.executable).with_name("taxrisk"))
    proc = subprocess.Popen(
        [exe, "-v", "score", str(demo_world), "--as-of", AS_OF.isoformat()],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "rows written, committing" in line:
            break
        if not line and proc.poll() is not None:
            pytest.fail(f"score ended before publishing: {seen[-2000:]}")
    time.sleep(0.5)  # inside the transaction: rows written, not committed
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    with _session(settings) as s:
        assert s.scalar(select(func.count()).select_from(ScoringRun)) == 1
        assert current_run(s).run_id == previous.run_id
        assert s.scalar(select(func.count()).select_from(Case)) == n_cases
        assert s.scalar(select(func.count()).select_from(CaseIndicator)) == n_ind
    # its folder is left without a row; the next run removes it and publishes normally
    runs_dir = scoring_env / "runs"
    assert len(list(runs_dir.iterdir())) == 2
    run_scoring(settings, demo_world, AS_OF)
    assert len(list(runs_dir.iterdir())) == 2


def test_feedback_becomes_next_rounds_labels(demo_world: Path, scoring_env: Path) -> None:
    """Two rounds: score, dispatch, record outcomes, and the training set sees them."""
    from taxrisk.features.loading import load_folder
    from taxrisk.serving.config import load_config
    from taxrisk.serving.feedback import StoreOutcomes
    from taxrisk.serving.runs import run_scoring
    from taxrisk.serving.store import cases as svc
    from taxrisk.serving.store.action_log import Actor
    from taxrisk.serving.store.models import Case
    from taxrisk.serving.store.session import make_engine
    from taxrisk.training.dataset import AuditTableSource, CombinedSource, build_training_set

    settings = _settings()
    run_scoring(settings, demo_world, EARLIER)
    officer = Actor("officer wang", "admin")
    line = load_config().approval.yield_line
    closed_on = dt.datetime(2025, 11, 20, 10, 0, tzinfo=dt.UTC)
    with _session(settings) as s:
        cases = s.scalars(
            select(Case).where(Case.selection.in_(["model", "exploration"])).order_by(Case.rank)
        ).all()
        chosen = [c for c in cases if c.selection == "model"][:6] + [
            c for c in cases if c.selection == "exploration"
        ][:2]
        for i, c in enumerate(chosen):
            fb = svc.FeedbackIn(
                outcome="adjusted" if i % 2 == 0 else "no_change",
                measure_taken="assessment",
                tax_recovered=12000.0 * (i + 1) if i % 2 == 0 else 0.0,
            )
            svc.record_feedback(s, officer, c.case_id, fb, approval_line=line, now=closed_on)
        s.commit()
        ids = {c.case_id: c for c in chosen}
        explore_p = {
            c.case_id: c.selection_probability for c in chosen if c.selection == "exploration"
        }
    tables = load_folder(demo_world, as_of=AS_OF).tables
    engine = make_engine(settings)
    source = CombinedSource(AuditTableSource(tables), StoreOutcomes(engine))
    ts = build_training_set(tables, AS_OF, source)
    got = ts.examples  # index case_id
    assert set(ids) <= set(got.index), "closed cases are examples of the next round"
    for cid, c in ids.items():
        row = got.loc[cid]
        assert row["taxpayer_id"] == c.taxpayer_id
        assert pd.Timestamp(row["selected_on"]).date() == EARLIER
        want = "random" if c.selection == "exploration" else "model"
        assert row["selection_reason"] == want
    for cid, p in explore_p.items():
        assert np.isclose(got.loc[cid, "selection_probability"], p)
    # point in time: not yet closed at the earlier date, so no label then
    early = build_training_set(tables, dt.date(2025, 11, 1), source, min_examples=1)
    assert not set(ids) & set(early.examples.index)
    # and the next `train` learns from them: its label counts include the store's cases
    from taxrisk.training.pipeline import train

    result = train(demo_world, AS_OF, settings=settings, trials=0,
                   extra_outcomes=(StoreOutcomes(engine),))  # fmt: skip
    before = build_training_set(tables, AS_OF).label_counts()["examples"]
    after = result.label_counts["examples"]
    added = after.sub(before, fill_value=0)
    assert added.get("random", 0) == len(explore_p)
    assert added.get("model", 0) == len(ids) - len(explore_p)
    assert added.drop(["random", "model"], errors="ignore").abs().sum() == 0
    engine.dispose()


def test_feedback_file_is_all_or_nothing(
    demo_world: Path, scoring_env: Path, tmp_path: Path
) -> None:
    from taxrisk.serving.runs import run_scoring
    from taxrisk.serving.store.models import Case, Feedback
    from typer.testing import CliRunner

    from taxrisk.cli import app

    settings = _settings()
    run_scoring(settings, demo_world, AS_OF)
    with _session(settings) as s:
        ids = s.scalars(
            select(Case.case_id).where(Case.selection == "model").order_by(Case.rank).limit(2)
        ).all()
    header = "case_id,outcome,measure_taken,tax_recovered,late_fees,penalties,notes\n"
    bad = tmp_path / "bad.csv"
    bad.write_text(
        header
        + f"{ids[0]},adjusted,assessment,5000,0,0,ok\n{ids[1]},adjusted,assessment,-1,0,0,x\n"
    )
    runner = CliRunner()
    res = runner.invoke(app, ["feedback", str(bad)])
    assert res.exit_code != 0
    with _session(settings) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 0  # nothing stored
        assert {c.status for c in s.scalars(select(Case).where(Case.case_id.in_(ids)))} == {"new"}
    good = tmp_path / "good.csv"
    good.write_text(
        header + f"{ids[0]},adjusted,assessment,5000,100,0,补缴\n{ids[1]},no_change,notice,0,0,0,\n"
    )
    res = runner.invoke(app, ["feedback", str(good)])
    assert res.exit_code == 0, res.output
    assert "2 closed" in res.output
    res = runner.invoke(app, ["cases", "--status", "closed", "--csv", _root_unit(demo_world)])
    assert res.exit_code == 0, res.output
    text = res.output[res.output.index("case_id,") :]  # stdout; stderr may come before
    listed = pd.read_csv(io.StringIO(text))
    assert sorted(listed["case_id"]) == sorted(ids) and set(listed["status"]) == {"closed"}
    res = runner.invoke(app, ["verify-log"])
    assert res.exit_code == 0, res.output


def _root_unit(data_dir: Path) -> str:
    u = pd.read_parquet(data_dir / "units.parquet")
    return str(u.loc[u["parent_id"].isna(), "unit_id"].iloc[0])
