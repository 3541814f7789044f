"""Labels on the metric's scale (issue 11, item 4): recovered yuan per covered month, times the
24 months CONTRACT section 4 counts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from taxrisk.features.loading import load_folder
from taxrisk.training.dataset import (
    CombinedSource,
    apply_measure,
    build_training_set,
    covered_months,
    metric_scale,
)
from training_factories import audit, minimal_tables, tp, write_folder


def test_covered_months_and_scale() -> None:
    f = pd.Series(["2023-01", "2024-01", "2024-06", None, "2024-05"])
    t = pd.Series(["2025-12", "2024-12", "2024-06", "2024-12", "2024-01"])
    n = covered_months(f, t)
    assert n.tolist()[:3] == [36.0, 12.0, 1.0]
    assert pd.isna(n.iloc[3]) and pd.isna(n.iloc[4])  # unknown, and a reversed span
    s = metric_scale(f, t, 24, 12.0)
    assert s.tolist() == [pytest.approx(24 / 36), 2.0, 12.0, 1.0, 1.0]
    # dates (as the loader types months) work the same as text
    fd = pd.Series(pd.to_datetime(["2023-01-01", "2024-01-01"]))
    td = pd.Series(pd.to_datetime(["2025-12-01", "2024-12-01"]))
    assert covered_months(fd, td).tolist() == [36.0, 12.0]


def _audit(case: str, tid: str, rec: float, cf: str, ct: str, measure: str = "audit") -> dict:
    a = audit(case, tid, "2024-06-12", "2024-09-01", "adjusted", rec)
    return a | {"covers_from": cf, "covers_to": ct, "measure": measure}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory):
    audits = [
        _audit("L36", "T1", 36_000.0, "2021-07", "2024-06"),  # 36 months: 1,000 a month
        _audit("L12", "T2", 12_000.0, "2023-07", "2024-06"),  # 12 months: 1,000 a month
        _audit("L6", "T3", 6_000.0, "2024-01", "2024-06", "notice"),
        audit("N0", "T4", "2024-06-12", "2024-08-01", "no_change", 0.0),
    ]
    frames = minimal_tables([tp(f"T{i}") for i in range(1, 5)], audits)
    return load_folder(write_folder(tmp_path_factory.mktemp("labels"), frames)).tables


def test_recovered_put_on_the_24_month_scale(tables) -> None:
    ts = build_training_set(tables, dt.date(2024, 12, 31), metric_months=24)
    ex = ts.examples
    # the default (max_scale 1): a cover over 24 months is scaled down to 24 months' worth; a
    # shorter cover is kept as recovered (its other months are not known to hold gap)
    assert ex.loc["L36", "tax_recovered"] == pytest.approx(24_000.0)
    assert ex.loc["L12", "tax_recovered"] == pytest.approx(12_000.0)
    assert ex.loc["L6", "tax_recovered"] == pytest.approx(6_000.0)
    # scaling up allowed: the same monthly gap gives the same label, whatever was covered
    up = build_training_set(tables, dt.date(2024, 12, 31), metric_months=24, max_scale=24.0)
    for case in ("L36", "L12", "L6"):
        assert up.examples.loc[case, "tax_recovered"] == pytest.approx(24_000.0)
    assert ex.loc["L36", "recovered_raw"] == 36_000.0 and ex.loc["L36", "covered_months"] == 36
    assert ex.loc["N0", "tax_recovered"] == 0.0
    # without normalisation: as recovered
    raw = build_training_set(tables, dt.date(2024, 12, 31))
    assert raw.examples.loc["L36", "tax_recovered"] == 36_000.0
    assert raw.examples.loc["L12", "tax_recovered"] == 12_000.0


def test_measure_filter_drops_notices(tables) -> None:
    ts = build_training_set(tables, dt.date(2024, 12, 31))
    assert ts.examples.loc["L6", "measure"] == "notice"
    kept = apply_measure(ts, "filter")
    assert "L6" not in kept.X.index and len(kept.X) == len(kept.examples) == 3
    assert apply_measure(ts, "ignore") is ts


def test_sources_without_covers_keep_the_amount() -> None:
    class Bare:
        def outcomes(self, as_of: dt.date) -> pd.DataFrame:
            return pd.DataFrame(
                {
                    "case_id": ["X"],
                    "taxpayer_id": ["T1"],
                    "selected_on": pd.to_datetime(["2024-01-01"]),
                    "selection_reason": ["rule"],
                    "selection_probability": [float("nan")],
                    "closed_on": pd.to_datetime(["2024-03-01"]),
                    "outcome": ["adjusted"],
                    "tax_recovered": [10.0],
                    "late_fees": [0.0],
                    "penalties": [0.0],
                }
            )

    out = CombinedSource(Bare()).outcomes(dt.date(2024, 12, 31))
    assert {"measure", "covers_from", "covers_to"} <= set(out.columns)
    s = metric_scale(out["covers_from"], out["covers_to"], 24, 24.0)
    assert s.tolist() == [1.0]


def test_scale_cap(tmp_path: Path) -> None:
    f, t = pd.Series(["2024-06"]), pd.Series(["2024-06"])
    assert metric_scale(f, t, 24, 3.0).tolist() == [3.0]
