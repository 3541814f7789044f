"""Point-in-time training examples: no label from the future, no feature from after selection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from taxrisk.features.loading import load_folder
from taxrisk.training.dataset import (
    AuditOutcomeSource,
    AuditTableSource,
    NotEnoughExamples,
    build_training_set,
    snapshot_dates,
)
from training_factories import audit, minimal_tables, tp, vat_year, write_folder

AS_OF = dt.date(2024, 12, 31)


AUDITS = [
    audit("A1", "T1", "2024-06-15", "2024-09-01", "adjusted", 500.0),
    audit("A2", "T2", "2024-06-20", "2025-03-01", "no_change", 0.0),  # closes after the as-of
    audit("A3", "T3", "2024-07-10"),  # still open
    audit("A4", "T4", "2024-08-05", "2024-10-01", "no_change", 0.0, "random", 0.1),
]


def _world(root: Path, t1_vat: list[dict]):
    taxpayers = [tp(f"T{i}") for i in range(1, 7)]
    frames = minimal_tables(taxpayers, AUDITS)
    frames["vat_returns"] = t1_vat + [r for i in range(2, 7) for r in vat_year(f"T{i}", scale=i)]
    return load_folder(write_folder(root, frames)).tables


def test_snapshot_never_after_selection() -> None:
    s = pd.Series(pd.to_datetime(["2024-06-15", "2024-06-30", "2024-07-01"]))
    assert snapshot_dates(s, "month_end").dt.date.astype(str).tolist() == [
        "2024-05-31",
        "2024-06-30",
        "2024-06-30",
    ]
    assert (snapshot_dates(s, "exact") == s).all()


@pytest.fixture(scope="module")
def base_world(tmp_path_factory: pytest.TempPathFactory):
    tables = _world(tmp_path_factory.mktemp("base"), vat_year("T1"))
    return tables, build_training_set(tables, AS_OF)


def test_no_label_from_the_future(base_world) -> None:
    tables, ts = base_world
    source = AuditTableSource(tables)
    assert isinstance(source, AuditOutcomeSource)
    # A2 closed after the as-of date and A3 is open: known, unlabelled
    assert sorted(ts.X.index) == ["A1", "A4"]
    assert sorted(ts.open_audits["case_id"]) == ["A2", "A3"]
    assert ts.open_audits["outcome"].isna().all() and ts.open_audits["tax_recovered"].isna().all()
    assert (
        ts.examples.loc["A1", "adjusted"] == 1 and ts.examples.loc["A1", "tax_recovered"] == 500.0
    )
    assert ts.examples.loc["A4", "adjusted"] == 0
    assert "selection_reason" not in ts.X.columns and "selection_probability" not in ts.X.columns
    # at 2024-09-15 A1 is labelled, A4 (closed 2024-10-01) is not yet, A3 is unknown
    mid = source.outcomes(dt.date(2024, 9, 15)).set_index("case_id")
    assert mid.loc["A1", "outcome"] == "adjusted"
    assert pd.isna(mid.loc["A4", "outcome"]) and pd.isna(mid.loc["A4", "closed_on"])
    assert "A3" in mid.index and "A9" not in mid.index
    assert sorted(source.outcomes(dt.date(2024, 6, 16))["case_id"]) == ["A1"]
    with pytest.raises(NotEnoughExamples):
        build_training_set(tables, dt.date(2024, 8, 31), min_examples=1)


def test_no_feature_from_after_selection(base_world, tmp_path: Path) -> None:
    base = base_world[1]
    # every T1 return filed after A1's selection (2024-06-15) multiplied by 100
    later = build_training_set(
        _world(tmp_path / "b", vat_year("T1", bump_after="2024-06-15", factor=100.0)), AS_OF
    )
    pd.testing.assert_frame_equal(base.X.loc[["A1"]], later.X.loc[["A1"]])
    # the test is sensitive: changing a return filed before the snapshot changes the features
    earlier = build_training_set(
        _world(tmp_path / "c", vat_year("T1", bump_after="2024-03-01", factor=100.0)), AS_OF
    )
    assert not base.X.loc[["A1"]].equals(earlier.X.loc[["A1"]])
