"""Information dates (issue 11, item 3): a training example sees what a scoring run on its
selection date sees, no more and no less; attributes the registry gives only as of today are
not features; registered capital is taken as of the date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from taxrisk.features.loading import load_folder
from taxrisk.features.matrix import build_matrix
from taxrisk.training.dataset import UNDATED_ATTRIBUTES, build_training_set
from training_factories import audit, minimal_tables, tp, vat_year, write_folder

AS_OF = dt.date(2024, 12, 31)
SELECTED = "2024-06-12"


def _folder(root: Path, registrations: list[dict] | None = None) -> Path:
    taxpayers = [tp(f"T{i}") for i in range(1, 6)]
    audits = [
        # an earlier audit of T1, closed on 2024-04-20 (known to both at the June selection)
        audit("P1", "T1", "2024-02-05", "2024-04-20", "adjusted", 800.0),
        audit("A1", "T1", SELECTED, "2024-09-01", "adjusted", 500.0),
        audit("A2", "T2", SELECTED, "2024-10-01", "no_change", 0.0),
    ]
    frames = minimal_tables(taxpayers, audits)
    frames["vat_returns"] = [r for i in range(1, 6) for r in vat_year(f"T{i}", scale=i)]
    if registrations:
        frames["registrations"] = registrations
    return write_folder(root, frames)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return load_folder(_folder(tmp_path_factory.mktemp("info"))).tables


def test_training_example_sees_what_scoring_on_its_selection_date_sees(world) -> None:
    ts = build_training_set(world, AS_OF)
    scoring = build_matrix(world, dt.date.fromisoformat(SELECTED))
    assert scoring.attrs["information_date"] == "2024-05-31"
    x = ts.X.loc["A1"]
    want = scoring.loc["T1", list(ts.X.columns)]
    pd.testing.assert_series_equal(x, want, check_names=False)
    assert ts.examples.loc["A1", "snapshot"] == pd.Timestamp(SELECTED)
    # the April return (filed 2024-05-10) and the earlier audit are seen by both
    assert x["prior_audits"] == 1


def test_month_end_snapshot_had_one_more_month_of_lag(world) -> None:
    # the old default: featured as of 2024-05-31, i.e. information of 2024-04-30
    old = build_training_set(world, AS_OF, snapshot="month_end")
    new = build_training_set(world, AS_OF)
    scoring = build_matrix(world, dt.date.fromisoformat(SELECTED))
    cols = [c for c in new.X.columns if c.startswith("vat_") or c.startswith("sales")]
    assert cols
    differs = [c for c in cols if old.X.loc["A1", c] != scoring.loc["T1", c]]
    assert differs, "the month_end snapshot should miss the April return"
    assert all(
        new.X.loc["A1", c] == scoring.loc["T1", c] for c in cols if pd.notna(new.X.loc["A1", c])
    )


def test_undated_registry_attributes_are_not_features(world) -> None:
    ts = build_training_set(world, AS_OF)
    assert not set(UNDATED_ATTRIBUTES) & set(ts.X.columns)
    assert "industry" in ts.X.columns


def test_registered_capital_as_of_the_date(tmp_path: Path) -> None:
    regs = [
        # T1's capital changes to 9,000,000 before its selection, T2's only after
        {
            "taxpayer_id": "T1",
            "changed_on": "2024-03-02",
            "change_type": "capital",
            "amount": 9e6,
            "counterparty": "",
        },
        {
            "taxpayer_id": "T2",
            "changed_on": "2024-08-02",
            "change_type": "capital",
            "amount": 9e6,
            "counterparty": "",
        },
    ]
    tables = load_folder(_folder(tmp_path, regs)).tables
    ts = build_training_set(tables, AS_OF)
    import numpy as np

    assert ts.X.loc["A1", "log_registered_capital"] == pytest.approx(np.log(9e6 + 1))
    # the later change does not reach the June example: the capital at registration
    assert ts.X.loc["A2", "log_registered_capital"] == pytest.approx(np.log(1e6 + 1))
    # and at the end of the year both changes are known
    m = build_matrix(tables, AS_OF)
    assert m.loc["T2", "log_registered_capital"] == pytest.approx(np.log(9e6 + 1))
