"""The champion gate, branch by branch, against a real MLflow registry (SQLite, temp folder).

Every branch is set up so that the wrong decision is the easy one: where the gate must keep
the champion, the candidate has the higher point estimate or the champion is the worse model
(an error that promoted, a comparison on audits the champion saw, or a decision on the point
estimate alone would fail the test); where it must promote, the champion is clearly worse.

Models: ``good`` learns the planted signal of :func:`synthetic.audits_frame`, ``bad`` the
same features with shuffled labels. Validation audits: 800, selected 2023-01-01..2024-11-30.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from synthetic import audits_frame
from taxrisk.training import tracking
from taxrisk.training.models import YieldModel
from taxrisk.training.validation import (
    METRICS,
    Discrimination,
    metric_on_rows,
    ranking_metrics,
)

from taxrisk.settings import get_settings

PARAMS = {"n_estimators": 40, "num_leaves": 7}
METRIC = "val_all_yield_capture"
MIN = 30
BEFORE_ALL = "2022-12-31"  # a champion trained then has seen none of the validation audits

Xv, exv = audits_frame(n=800, seed=2)
ROWS = np.arange(len(Xv))
metric = metric_on_rows(METRIC, exv, 0.2)


def _fit(shuffle: bool, extra_column: bool = False) -> YieldModel:
    X, ex = audits_frame(n=1200, seed=1, shuffle_labels=shuffle)
    if extra_column:  # a feature the current matrix no longer has
        X = X.assign(retired=np.arange(len(X), dtype=float))
    return YieldModel(PARAMS, PARAMS).fit(X, ex["adjusted"], ex["tax_recovered"])


GOOD, BAD = _fit(False), _fit(True)
GOOD_SCORES = GOOD.predict(Xv)["expected_yield"].to_numpy()
BAD_SCORES = BAD.predict(Xv)["expected_yield"].to_numpy()


def _register(name: str, model: YieldModel, train_as_of: str, exp: str) -> str:
    """Register ``model`` as a new version of ``name`` and make it champion."""
    example = Xv.assign(**{c: 0.0 for c in model.feature_names_in_ if c not in Xv.columns})
    with mlflow.start_run(experiment_id=exp) as r:
        decision = tracking.ChampionDecision(True, "test fixture: champion by fiat")
        return tracking.log_and_register(model, example, name, r.info.run_id, train_as_of, decision)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One registry for the module: champions ``good`` and ``bad`` trained before all audits."""
    ws = tmp_path_factory.mktemp("gate_ws")
    settings = get_settings(workspace=ws, mlflow_tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    exp = tracking.configure(settings)
    _register("good", GOOD, BEFORE_ALL, exp)
    _register("bad", BAD, BEFORE_ALL, exp)
    return SimpleNamespace(settings=settings, exp=exp)


@pytest.fixture
def reg(store: SimpleNamespace) -> SimpleNamespace:
    """The module's registry, with MLflow pointed at it (other tests move the global URI)."""
    tracking.configure(store.settings)
    client = MlflowClient(tracking_uri=store.settings.tracking_uri)
    return SimpleNamespace(client=client, exp=store.exp, settings=store.settings)


def _gate(reg: SimpleNamespace, name: str, scores: np.ndarray, **kw):
    kw.setdefault("min_examples", MIN)
    return tracking.gate(
        reg.client,
        name,
        METRIC,
        metric,
        scores,
        Xv,
        exv["selected_on"],
        kw.pop("min_examples"),
        **kw,
    )


def _after(n: int) -> str:
    """A train_as_of leaving exactly ``n`` validation audits selected after it."""
    sel = exv["selected_on"].sort_values()
    day = sel.iloc[-n - 1]
    assert (sel > day).sum() == n, "pick n at a date boundary"
    return day.date().isoformat()


# -- the metric and the bootstrap ------------------------------------------------------------


@pytest.mark.parametrize("name", METRICS)
def test_metric_on_rows_equals_ranking_metrics(name: str) -> None:
    rows = np.random.default_rng(0).integers(0, len(Xv), len(Xv))  # a draw, with repeats
    got = metric_on_rows(f"val_{name}", exv, 0.2)(GOOD_SCORES, rows)
    want = ranking_metrics(GOOD_SCORES[rows], exv.iloc[rows], 0.2)[name]
    assert got == pytest.approx(want, nan_ok=True) and np.isfinite(got)


def test_paired_bootstrap_is_seeded_and_paired() -> None:
    a = tracking.paired_bootstrap(metric, GOOD_SCORES, BAD_SCORES, ROWS, seed=3)
    assert a == tracking.paired_bootstrap(metric, GOOD_SCORES, BAD_SCORES, ROWS, seed=3)
    assert 0 < a[0] < a[1]
    # paired: identical rankings differ by exactly 0 on every draw
    assert tracking.paired_bootstrap(metric, GOOD_SCORES, GOOD_SCORES.copy(), ROWS) == (0.0, 0.0)
    with pytest.raises(ValueError, match="undefined"):
        tracking.paired_bootstrap(lambda s, r: float("nan"), GOOD_SCORES, BAD_SCORES, ROWS)


def test_decision_rule() -> None:
    d = tracking.champion_decision
    assert d("m", 0.6, None, None).promote  # no champion
    assert not d("m", 0.9, 0.1, "3", "boom").promote  # an error keeps
    assert not d("m", 0.9, 0.1, "3").promote  # no interval, no margin
    assert not d("m", 0.6, 0.5, "3", interval=(-0.01, 0.2)).promote  # straddles 0
    assert not d("m", 0.6, 0.5, "3", interval=(0.0, 0.2)).promote  # reaches 0
    assert not d("m", 0.5, 0.5, "3", interval=(0.01, 0.2)).promote  # a tie never promotes
    assert not d("m", float("nan"), 0.5, "3", interval=(0.01, 0.2)).promote
    win = d("m", 0.6, 0.5, "3", interval=(0.01, 0.2), n_audits=40)
    assert win.promote and "[+0.0100, +0.2000]" in win.reason and win.n_audits == 40


# -- the gate against the registry -----------------------------------------------------------


def test_no_champion_promotes(reg: SimpleNamespace) -> None:
    d, _ = _gate(reg, "fresh", BAD_SCORES)  # even a poor candidate: there is nothing to keep
    assert d.promote and "no champion" in d.reason
    with mlflow.start_run(experiment_id=reg.exp) as r:
        tracking.log_decision(d)
        v = tracking.log_and_register(BAD, Xv, "fresh", r.info.run_id, BEFORE_ALL, d)
    assert tracking.current_champion(reg.client, "fresh") == v
    assert reg.client.get_run(r.info.run_id).data.tags["champion_decision"] == "promoted"


def test_clear_win_promotes_and_records_figures(reg: SimpleNamespace) -> None:
    champion = _register("win", BAD, BEFORE_ALL, reg.exp)
    d, note = _gate(reg, "win", GOOD_SCORES)
    assert d.promote, d.reason
    assert d.champion_version == champion and d.n_audits == len(Xv)
    assert d.interval is not None and 0 < d.interval[0] <= d.difference <= d.interval[1]
    assert d.candidate_metric == pytest.approx(metric(GOOD_SCORES, ROWS))
    assert d.champion_metric == pytest.approx(metric(BAD_SCORES, ROWS))
    assert "beats" in d.reason and f"{d.interval[0]:+.4f}" in d.reason
    assert f"{len(Xv)} validation audits selected after {BEFORE_ALL}" in note
    with mlflow.start_run(experiment_id=reg.exp) as r:
        tracking.log_decision(d)
        v = tracking.log_and_register(GOOD, Xv, "win", r.info.run_id, "2024-12-31", d)
    assert tracking.current_champion(reg.client, "win") == v != champion
    run = reg.client.get_run(r.info.run_id).data
    assert run.tags["champion_decision"] == "promoted" and run.tags["champion_reason"] == d.reason
    assert run.metrics["gate.interval_low"] == pytest.approx(d.interval[0])
    assert run.metrics["gate.n_audits"] == len(Xv) and run.metrics["gate.promoted"] == 1.0
    tags = reg.client.get_model_version("win", v).tags
    assert tags["champion_decision"] == d.reason and tags["gate.champion_version"] == champion
    assert float(tags["gate.difference"]) == pytest.approx(d.difference)


def test_clear_loss_keeps(reg: SimpleNamespace) -> None:
    d, _ = _gate(reg, "good", BAD_SCORES)
    assert not d.promote and "does not beat" in d.reason
    assert d.interval is not None and d.interval[1] < 0
    with mlflow.start_run(experiment_id=reg.exp) as r:
        tracking.log_decision(d)
        v = tracking.log_and_register(BAD, Xv, "good", r.info.run_id, "2024-12-31", d)
    assert tracking.current_champion(reg.client, "good") == "1" != v
    assert reg.client.get_run(r.info.run_id).data.tags["champion_decision"] == "kept"
    assert reg.client.get_model_version("good", v).tags["gate.promoted"] == "0.0"


def test_tie_keeps(reg: SimpleNamespace) -> None:
    d, _ = _gate(reg, "good", GOOD.predict(Xv)["expected_yield"].to_numpy())
    assert not d.promote and d.difference == 0.0 and d.interval == (0.0, 0.0)
    assert "does not beat" in d.reason and "[+0.0000, +0.0000]" in d.reason


def test_within_noise_keeps(reg: SimpleNamespace) -> None:
    # the champion's own scores, jittered: a higher point estimate, but not beyond noise
    jitter = np.exp(np.random.default_rng(9).normal(0, 0.3, len(Xv)))
    d, _ = _gate(reg, "good", GOOD_SCORES * jitter)
    assert d.difference is not None and d.difference > 0, "the set-up needs a higher point"
    assert d.interval is not None and d.interval[0] < 0 < d.interval[1]
    assert not d.promote and "within noise" in d.reason
    assert f"[{d.interval[0]:+.4f}, {d.interval[1]:+.4f}]" in d.reason


def test_too_few_unseen_audits_keeps(reg: SimpleNamespace) -> None:
    """A worse champion that saw nearly every validation audit is kept: too few unseen."""
    n = 25
    _register("few", BAD, _after(n), reg.exp)
    d, _ = _gate(reg, "few", GOOD_SCORES)
    assert not d.promote and d.n_audits == n
    assert "too few unseen audits to compare" in d.reason and f"{n} validation audits" in d.reason
    # the threshold is min_examples: with exactly that many unseen audits, they are compared
    d_at, _ = _gate(reg, "few", GOOD_SCORES, min_examples=n)
    assert d_at.n_audits == n and "too few" not in d_at.reason and d_at.interval is not None
    # a champion without train_as_of: no audit is known to be unseen
    with mlflow.start_run(experiment_id=reg.exp) as r:
        fiat = tracking.ChampionDecision(True, "fiat")
        v = tracking.log_and_register(BAD, Xv, "untagged", r.info.run_id, "x", fiat)
    reg.client.delete_model_version_tag("untagged", v, "train_as_of")
    d_none, _ = _gate(reg, "untagged", GOOD_SCORES)
    assert not d_none.promote and "too few unseen audits" in d_none.reason
    assert "no train_as_of" in d_none.reason


def test_compares_only_audits_the_champion_cannot_have_seen(reg: SimpleNamespace) -> None:
    """Perfect on the unseen audits, worst possible on the others: promoted, on the unseen."""
    as_of = _after(200)
    _register("half", GOOD, as_of, reg.exp)
    unseen = (exv["selected_on"] > pd.Timestamp(as_of)).to_numpy()
    rec = exv["tax_recovered"].to_numpy()
    scores = np.where(unseen, rec, -rec - 1.0)
    # on every validation audit this candidate loses to the champion ...
    assert metric(scores, ROWS) < metric(GOOD_SCORES, ROWS)
    d, note = _gate(reg, "half", scores)
    # ... but the gate compares the 200 unseen ones, where it is the oracle
    assert d.promote and d.n_audits == 200 and d.candidate_metric == 1.0
    assert f"200 validation audits selected after {as_of}" in note


# -- errors keep the champion ----------------------------------------------------------------


def _assert_kept(d: tracking.ChampionDecision, caplog: pytest.LogCaptureFixture, what: str):
    assert not d.promote and d.error is not None and what in d.error
    assert "kept" in d.reason and d.error in d.reason
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "gate" in r.message]
    assert warned and what in warned[-1].getMessage()


def test_champion_that_cannot_score_the_matrix_is_kept(
    reg: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    """A worse champion whose feature no longer exists: kept (it used to be replaced)."""
    old = _register("retired", _fit(True, extra_column=True), BEFORE_ALL, reg.exp)
    with caplog.at_level(logging.WARNING, logger="taxrisk.training.tracking"):
        d, _ = _gate(reg, "retired", GOOD_SCORES)
    _assert_kept(d, caplog, "retired")
    assert "missing 1 column(s) retired" in d.reason and d.champion_version == old
    with mlflow.start_run(experiment_id=reg.exp) as r:
        tracking.log_decision(d)
        tracking.log_and_register(GOOD, Xv, "retired", r.info.run_id, "2024-12-31", d)
    assert tracking.current_champion(reg.client, "retired") == old
    assert reg.client.get_run(r.info.run_id).data.tags["champion_decision"] == "kept"


def test_champion_that_cannot_be_loaded_is_kept(
    reg: SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    _register("lost", BAD, BEFORE_ALL, reg.exp)
    where = reg.client.get_model_version_download_uri("lost", "1")
    shutil.rmtree(Path(where.removeprefix("file://")))  # the champion's files are gone
    with caplog.at_level(logging.WARNING, logger="taxrisk.training.tracking"):
        d, _ = _gate(reg, "lost", GOOD_SCORES)
    _assert_kept(d, caplog, "scoring it")


def test_metric_error_keeps(reg: SimpleNamespace, caplog: pytest.LogCaptureFixture) -> None:
    def broken(scores: np.ndarray, rows: np.ndarray) -> float:
        if not np.array_equal(scores, GOOD_SCORES):  # the champion's scores
            raise ZeroDivisionError("no recovered yuan")
        return metric(scores, rows)

    with caplog.at_level(logging.WARNING, logger="taxrisk.training.tracking"):
        d, _ = tracking.gate(
            reg.client, "bad", METRIC, broken, GOOD_SCORES, Xv, exv["selected_on"], MIN
        )
    _assert_kept(d, caplog, "no recovered yuan")


def test_undefined_metric_keeps(reg: SimpleNamespace) -> None:
    d, _ = tracking.gate(
        reg.client,
        "bad",
        METRIC,
        lambda s, r: float("nan"),
        GOOD_SCORES,
        Xv,
        exv["selected_on"],
        MIN,
    )
    assert not d.promote and "has no" in d.reason


def test_registry_error_keeps(
    reg: SimpleNamespace, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(*_a: object, **_k: object) -> None:
        raise MlflowException("connection refused", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(reg.client, "get_model_version_by_alias", down)
    with caplog.at_level(logging.WARNING, logger="taxrisk.training.tracking"):
        d, _ = _gate(reg, "bad", GOOD_SCORES)
    _assert_kept(d, caplog, "connection refused")


def test_cli_prints_a_kept_champion_and_why(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from taxrisk.cli import app

    error = "scoring it: feature matrix does not match the model: missing 1 column(s) retired"
    decision = tracking.champion_decision(METRIC, None, None, "4", error)
    comparison = pd.DataFrame(
        [[0.5, 0.4, 0.6, 0.7]],
        index=pd.Index(["model"], name="ranking"),
        columns=["all_yield_capture", "all_precision", "all_auc", "random_yield_capture"],
    )
    result = SimpleNamespace(
        comparison=comparison,
        bias_method="none",
        run_id="r1",
        version="5",
        decision=decision,
        wall_seconds=1.0,
        discrimination={
            "random_yield_capture": Discrimination(
                "random_yield_capture", False, "one audit holds 97.0% of the recovered yuan"
            )
        },
    )
    monkeypatch.setattr("taxrisk.training.pipeline.train", lambda *a, **k: result)
    data = tmp_path / "data"
    data.mkdir()
    res = CliRunner().invoke(app, ["train", str(data), "--as-of", "2025-12-31"])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "not champion: champion v4 kept" in out and "missing 1 column(s) retired" in out
    assert "warning: the champion gate could not compare the models, so the champion v4" in out
    # a figure that cannot tell rankings apart is printed as n/d, with why, not as a result
    assert "0.700" not in out and "n/d" in out and "one audit holds 97.0%" in out
