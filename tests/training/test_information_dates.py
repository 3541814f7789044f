"""Information dates (issue 11, item 3): a training example sees what a scoring run on its
selection date sees, no more and no less; a taxpayer's own small dated records (audits,
registry events, property) count at the as-of date itself, not at its information date;
attributes the registry gives only as of today are not features; registered capital is taken
as of the date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from taxrisk.features.loading import load_folder
from taxrisk.features.matrix import build_matrices, build_matrix
from taxrisk.training.dataset import UNDATED_ATTRIBUTES, build_training_set
from training_factories import audit, minimal_tables, tp, vat_year, write_folder

AS_OF = dt.date(2024, 12, 31)
SELECTED = "2024-06-12"


def _folder(root: Path, registrations: list[dict] | None = None) -> Path:
    """Five taxpayers with a year of VAT returns, audits of T1-T3, optional registry rows."""
    taxpayers = [tp(f"T{i}") for i in range(1, 6)]
    audits = [
        # an earlier audit of T1, closed on 2024-04-20 (known to both at the June selection)
        audit("P1", "T1", "2024-02-05", "2024-04-20", "adjusted", 800.0),
        audit("A1", "T1", SELECTED, "2024-09-01", "adjusted", 500.0),
        audit("A2", "T2", SELECTED, "2024-10-01", "no_change", 0.0),
        # T3's audit closes on 2024-06-05: after the information date of the June selection
        # (2024-05-31), before the selection itself
        audit("P3", "T3", "2024-03-01", "2024-06-05", "adjusted", 300.0),
        audit("A3", "T3", SELECTED, "2024-11-01", "no_change", 0.0),
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


def test_an_audit_closed_during_the_as_of_month_is_seen_at_the_as_of_date(world) -> None:
    before = build_matrix(world, dt.date(2024, 6, 4))
    after = build_matrix(world, dt.date.fromisoformat(SELECTED))
    assert before.attrs["information_date"] == after.attrs["information_date"] == "2024-05-31"
    assert before.loc["T3", "prior_audits"] == 0 and before.loc["T3", "recovered_24m"] == 0
    assert after.loc["T3", "prior_audits"] == 1 and after.loc["T3", "recovered_24m"] == 300.0
    assert after.loc["T3", "prior_adjusted_share"] == 1.0
    # and the training example selected that day sees it, as the scoring run does
    ts = build_training_set(world, AS_OF)
    assert ts.X.loc["A3", "prior_audits"] == 1
    assert ts.X.loc["A3", "recovered_24m"] == 300.0


def test_two_dates_of_one_month_differ_by_their_dated_records_only(world) -> None:
    days = [dt.date(2024, 6, 4), dt.date.fromisoformat(SELECTED)]
    batch = build_matrices(world, days)
    for d in days:
        one = build_matrix(world, d)
        got = batch.loc[d].loc[one.index, one.columns]
        pd.testing.assert_frame_equal(got, one, check_names=False, check_categorical=False)
    a, b = batch.loc[days[0]], batch.loc[days[1]]
    differs = [c for c in a.columns if not a[c].equals(b[c])]
    assert "prior_audits" in differs
    # everything read at the information date (returns, benchmarks, percentiles) is shared
    assert not [c for c in differs if c.startswith("vat_") or c.endswith("__pct")]


def test_a_registry_event_counts_from_its_own_date(tmp_path: Path) -> None:
    regs = [
        {
            "taxpayer_id": "T4",
            "changed_on": "2024-06-03",
            "change_type": "legal_rep",
            "amount": "",
            "counterparty": "",
        }
    ]
    tables = load_folder(_folder(tmp_path, regs)).tables
    assert build_matrix(tables, dt.date(2024, 6, 2)).loc["T4", "legal_rep_changes_12"] == 0
    assert build_matrix(tables, dt.date(2024, 6, 3)).loc["T4", "legal_rep_changes_12"] == 1
