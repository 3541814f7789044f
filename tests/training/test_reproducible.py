"""Same data, same code, same seed: the same model, whatever order the engine returns rows in.

DuckDB runs with ``preserve_insertion_order = false``, so the order of the rows it hands over
is not part of the data. The training set is sorted (examples by selected_on, taxpayer_id,
case_id; the population sample's taxpayers by id) and tuning puts its rows in one order, so
a permutation of the tables on disk must not change anything. Predictions are compared with
no tolerance.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import audits_frame
from taxrisk.features.loading import load_folder
from taxrisk.training.config import load_config
from taxrisk.training.dataset import build_training_set
from taxrisk.training.tuning import tune
from training_factories import audit, minimal_tables, tp, vat_year, write_folder

from taxrisk.settings import get_settings

AS_OF = dt.date(2025, 12, 31)
TINY_AS_OF = dt.date(2024, 12, 31)


# -- the training set: row order on disk does not matter ------------------------------------


def _tiny_world(root: Path, audit_order: np.ndarray, taxpayer_order: np.ndarray):
    """20 taxpayers, 12 closed audits on 3 selection dates (ties), tables in the given order."""
    taxpayers = [tp(f"T{i:02d}") for i in range(1, 21)]
    audits = [
        audit(
            f"A{i:02d}",
            f"T{(i * 7) % 20 + 1:02d}",
            ("2024-06-15", "2024-07-10", "2024-08-05")[i % 3],
            "2024-11-01",
            "adjusted" if i % 2 else "no_change",
            100.0 * i if i % 2 else 0.0,
        )
        for i in range(12)
    ]
    frames = minimal_tables(
        [taxpayers[i] for i in taxpayer_order], [audits[i] for i in audit_order]
    )
    # the same returns whatever the taxpayer order (minimal_tables keys them on the first)
    frames["vat_returns"] = [r for i in range(1, 21) for r in vat_year(f"T{i:02d}", 1.0 + i % 5)]
    for name in ("cit_returns", "invoices"):
        key = "taxpayer_id" if name == "cit_returns" else "seller_id"
        frames[name] = [{**row, key: "T01"} for row in frames[name]]
    return load_folder(write_folder(root, frames)).tables


def test_training_set_does_not_depend_on_row_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    built = []
    for i, (a, t) in enumerate(
        [(np.arange(12), np.arange(20)), (rng.permutation(12), rng.permutation(20))]
    ):
        tables = _tiny_world(tmp_path / f"w{i}", a, t)
        built.append(build_training_set(tables, TINY_AS_OF, population_sample=4, seed=3))
    first, second = built
    assert len(first.examples) == 12 and first.population is not None
    ex = first.examples
    key = list(zip(ex["selected_on"], ex["taxpayer_id"], ex.index, strict=True))
    assert key == sorted(key), "examples sorted by (selected_on, taxpayer_id, case_id)"
    pd.testing.assert_frame_equal(first.examples, second.examples)
    pd.testing.assert_frame_equal(first.X, second.X)
    # the seeded sample of unaudited taxpayers draws the same taxpayers
    assert second.population is not None
    pd.testing.assert_frame_equal(first.population, second.population)
    pd.testing.assert_frame_equal(
        first.open_audits.reset_index(drop=True), second.open_audits.reset_index(drop=True)
    )


def test_tuning_does_not_depend_on_row_order(tmp_path: Path) -> None:
    X, ex = audits_frame(n=400, seed=6)
    ex = ex.assign(selected_on=ex["selected_on"].dt.to_period("M").dt.start_time)  # ties
    perm = np.random.default_rng(1).permutation(len(X))
    cfg = load_config()
    results = []
    for i, rows in enumerate([np.arange(len(X)), perm]):
        Xi, ei = X.iloc[rows], ex.iloc[rows]
        params, _ = tune(
            "classifier",
            Xi,
            ei["adjusted"].to_numpy(),
            ei["tax_recovered"].to_numpy(),
            ei["selected_on"].to_numpy(),
            base_params={"n_estimators": 30, "subsample": 0.7, "subsample_freq": 1},
            space=cfg.search_space,
            trials=3,
            storage=f"sqlite:///{tmp_path / 'studies.db'}",
            study_name=f"order-{i}",
            seed=7,
        )
        results.append(params)
    assert results[0] == results[1]


# -- the whole pipeline, twice on the same world and once on a permuted copy ----------------


def _permuted_copy(world: Path, out: Path) -> Path:
    """``world`` with the rows of its audits and taxpayers tables in another order."""
    shutil.copytree(world, out)
    for i, name in enumerate(("audits", "taxpayers")):
        df = pd.read_parquet(world / f"{name}.parquet")
        perm = np.random.default_rng(100 + i).permutation(len(df))
        assert (perm != np.arange(len(df))).any()
        df.iloc[perm].to_parquet(out / f"{name}.parquet", index=False)
    return out


@pytest.mark.slow
def test_train_twice_gives_the_same_model(
    demo_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taxrisk.features.matrix import build_matrix
    from taxrisk.training.pipeline import train
    from taxrisk.training.tracking import load_champion

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    permuted = _permuted_copy(demo_world, tmp_path / "permuted")
    # fewer unaudited taxpayers per snapshot than the demo world has, so that the selection
    # model's seeded sample is a real draw (with all of them, order could not matter); leaves
    # small enough that the weighted variant is not a constant on this small world (with
    # ~100 training audits and weights down to 0.01 it can be, and then hides its weights)
    default = load_config()
    cfg = default.replace("bias", method="auto", unaudited_per_snapshot=300).replace(
        "search", min_child_samples=(5, 20)
    )
    results, champions = [], []
    for i, world in enumerate([demo_world, demo_world, permuted]):
        ws = tmp_path / f"ws{i}"  # separate MLflow and Optuna stores
        # four DuckDB threads whatever the machine: float sums added in another order each
        # run must not reach the features, the sample or the weights
        settings = get_settings(
            workspace=ws, mlflow_tracking_uri=f"sqlite:///{ws / 'mlflow.db'}", duckdb_threads=4
        )
        # no Optuna trials: on this 1,500-taxpayer world (136 examples) two trials early-stop
        # at one tree, a model constant on the validation audits, which would reproduce
        # trivially; the fixed parameters grow 300 trees. Optuna's own reproducibility (same
        # seed, rows in another order) is the study test above.
        results.append(train(world, AS_OF, settings=settings, trials=0, config=cfg))
        champions.append(load_champion(settings).model)  # the registered model, reloaded
    matrix = build_matrix(load_folder(demo_world, as_of=AS_OF).tables, AS_OF)
    predictions = [m.predict(matrix, allow_extra=True) for m in champions]
    first = results[0]
    assert len(predictions[0]) > 1000
    assert first.comparison.loc["model_bias_ipw", "all_auc"] != 0.5  # the weights matter
    for result, pred in zip(results[1:], predictions[1:], strict=True):
        pd.testing.assert_frame_equal(pred, predictions[0], check_exact=True)
        order = pred.sort_values("expected_yield", ascending=False, kind="stable").index
        first_order = (
            predictions[0].sort_values("expected_yield", ascending=False, kind="stable").index
        )
        assert order.equals(first_order)  # the same ranking, taxpayer by taxpayer
        assert result.model.classifier_params == first.model.classifier_params
        assert result.model.regressor_params == first.model.regressor_params
        # every validation figure, the bias-weighted variant's included, is the same
        pd.testing.assert_frame_equal(result.comparison, first.comparison, check_exact=True)
        figures = {k: v for k, v in result.metrics.items() if not k.startswith("time.")}
        assert figures == {k: v for k, v in first.metrics.items() if not k.startswith("time.")}
        assert result.bias_method == first.bias_method


@pytest.mark.slow
def test_training_set_and_weights_identical_on_four_threads(demo_world: Path) -> None:
    """The training set, its population sample and the selection weights, built twice from
    the same files on four DuckDB threads (``train``'s engine is the settings' connection),
    are bit-identical: float sums added in another order each run must not reach them. With
    the sums unrounded the features differ by a few hundred cells from build to build."""
    from taxrisk.features.tables import connect
    from taxrisk.training.pipeline import _weights

    cfg = load_config()
    settings = get_settings(duckdb_threads=4)
    built = []
    for _ in range(2):
        tables = load_folder(demo_world, con=connect(settings), as_of=AS_OF, profile=False).tables
        ts = build_training_set(tables, AS_OF, population_sample=300, seed=cfg.seed)
        built.append((ts, _weights(ts, cfg)))
    (first, w1), (second, w2) = built
    assert first.population is not None and len(first.X) > 100 and w1 is not None
    pd.testing.assert_frame_equal(second.X, first.X, check_exact=True)
    pd.testing.assert_frame_equal(second.population, first.population, check_exact=True)
    assert w2 is not None and np.array_equal(w1, w2)
